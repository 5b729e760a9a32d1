"""Results of a mixed logit / Poisson fit, as a statsmodels ``LikelihoodModelResults``.

``params`` are the fixed effects followed by the sd's and correlations of every level
(outermost first). ``cov_params()`` is the inverse observed information, from a
finite-difference Hessian of the log-likelihood in (beta, log sd, atanh corr) carried
back by the delta method (the fixed effects and the variance parameters are not
orthogonal in a GLMM, so the whole matrix is used, as lme4 and Stata do). Parameters on
the boundary (an sd at zero) are held fixed and get no standard error.
"""
from __future__ import annotations

import contextlib

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.base.wrapper as wrap
from statsmodels.base.model import LikelihoodModelResults

from .._kernels import gradient as _gradient
from ..models import information as inference, nagq0, nested_aghq
from .base import FitResults
from .conventions import ResultsConventions
from ..exceptions import BoundaryWarning
from ..models.glmm_boundary import not_identified
from .idioms import Lme4Idioms
from .after_fit import AfterFit
from .rows import row_keys as _row_keys, zb_sorted
from ..design.sampling_weights import no_lr_test
from ..stacklevel import user_stacklevel
from .linear import (MixedResults, MixedResultsWrapper, _corr_of_boundary_sd, _display_name, _named, _notes,
                      _sd_scale)

LATENT_VAR_LOGIT = np.pi ** 2 / 3
NOT_IDENTIFIED = ("not identified (the variance runs to infinity): %s; every cluster has only 0s or only successes, "
                  "so the likelihood keeps rising as the variance grows. The reported value is where the "
                  "optimizer stopped and has no standard error, and the fixed effects depend on it: drop that "
                  "random intercept (a model without it, e.g. a logit on the cluster-level covariates)")


class GLMMResults(FitResults, Lme4Idioms, AfterFit, ResultsConventions, LikelihoodModelResults):
    """Fit of a ``MixedLogit`` or ``MixedPoisson`` model; built complete by ``MixedGLM.fit``.

    Attributes
    ----------
    fe_params, bse_fe : pandas.Series
    re_params : pandas.DataFrame
        sd's and correlations with standard errors and 95% intervals (log / atanh scale).
    cov_re : dict of str -> pandas.DataFrame
        Random-effects covariance matrix per level.
    random_effects, random_effects_cov : dict of str -> pandas.DataFrame
        Conditional modes b = Lambda u per group, and Lambda H^{-1} Lambda' at the mode.
    nagq : int
        0 (Laplace, fixed effects in the penalized IRLS), 1 (Laplace) or the adaptive
        Gauss-Hermite points per dimension.
    llf, aic, bic, nobs, n_groups, converged, opt

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("contraception")
    >>> res = hlmext.melogit("use ~ C(livch) + age + age2 + urban + (1 | district)", df).fit(nagq=7)
    >>> round(res.llf, 3), round(float(res.bse["urban"]), 4)
    (-1186.229, 0.121)
    >>> print(res.lr_test_vs_regression())
    LR test vs. logistic regression: chibar2(01) = 45.20   Prob >= chibar2 = 0.0000
    """

    #: the dispersion parameter's rows (``/lnalpha``, ``alpha``; meglm and menbreg) and the LR
    #: test of alpha = 0 (menbreg), set by ``MixedFamily.fit``; None for the other families
    dispersion = dispersion_lr = None

    def __init__(self, model, x, nagq, opt, null_llf, se_glm, robust=None):
        p = model.k_fe
        beta, theta = np.asarray(x[:p], float), np.asarray(x[p:], float)
        self.nagq, self.reml, self.theta = int(nagq), False, theta
        self.method = {0: "Laplace (nagq=0)", 1: "Laplace"}.get(nagq, "AGHQ")
        self.integration = {0: "Laplace (nagq=0)", 1: "Laplace"}.get(nagq, "mvaghermite, %d points" % nagq)
        values = model.report_from_theta(theta)
        is_corr = np.concatenate([lv.cov.is_corr() for lv in model.levels[::-1]])
        fixed = inference.boundary_mask(values, is_corr, _sd_scale(model, 1.0, is_corr)[:-1])
        fixed |= _corr_of_boundary_sd(model, fixed)
        self.not_identified = self._not_identified(model)
        infinite = np.isin(model.report_names(), self.not_identified)
        boundary, fixed = fixed & ~infinite, fixed | infinite   # no standard errors at infinity either
        cov_pair = _newton_information_cov(model, opt, x, values, is_corr, fixed, nagq, robust)
        cov, cov_phi = cov_pair or self._covariance(model, beta, values, is_corr, fixed, nagq, se_glm, robust)
        top = model.levels[model.design.n_chain - 1]
        self.cov_type = "nonrobust" if robust is None else "cluster (%s, %d clusters of %r)" % (
            robust, top.n_groups, top.name)
        if nagq == 0 and robust is None:          # glmer's: conditional on theta, from the PIRLS
            cov[:p, :] = cov[:, :p] = 0.0
            own = getattr(model, "nagq0_fixed_cov", None)          # ordinal models: (beta, cuts)
            cov[:p, :p] = own(beta, theta) if own is not None else nagq0.fixed_cov(model, beta, theta)
        super().__init__(model, np.concatenate([beta, values]), normalized_cov_params=cov, scale=1.0)
        self.cov_params_default = cov
        self.opt, self.converged = opt, opt.converged
        self._llf = float(model.loglike_theta(beta, theta, nagq))
        self.null_llf = null_llf
        self.nobs, self.k_fe = model.nobs, p
        self.k_params = p + model.k_re
        self.deviance = -2.0 * self._llf
        self.aic = self.deviance + 2 * self.k_params
        self.bic = self.deviance + np.log(self.nobs) * self.k_params
        self.df_resid = self.nobs - p
        names = model.exog_names
        self.fe_params = pd.Series(beta, index=names, name="coef")
        self.bse_fe = pd.Series(np.sqrt(np.diag(cov[:p, :p])), index=names, name="se")
        self.cov_fe = _named(pd.DataFrame(cov[:p, :p], index=names, columns=names), "term")
        self.on_boundary = [nm for nm, b in zip(model.report_names(), boundary) if b]
        self.re_params = inference.re_table(model.report_names(), values, cov_phi, is_corr)
        self.cov_re, self.n_groups = {}, {}
        for lv, lam in zip(model.levels[::-1], model.lams(theta)[::-1]):
            self.cov_re[lv.name] = _named(pd.DataFrame(lam @ lam.T, index=lv.names, columns=lv.names), "effect")
            self.n_groups[lv.name] = lv.n_groups
        self._row_quantities(model, beta, theta)
        self.notes = _notes(self)
        if model.sampling is not None:
            self.notes.append("Sampling weights (%s): log pseudolikelihood, robust standard errors"
                              % model.sampling.describe())
        if robust is not None:
            self.notes.append("Std. Err. of all parameters adjusted for %d clusters in %s (%s)"
                              % (top.n_groups, top.name, robust))
        self._warn_boundary()
        if self.not_identified:
            self.notes.append(NOT_IDENTIFIED % ", ".join(self.not_identified))
            warnings.warn(NOT_IDENTIFIED % ", ".join(self.not_identified), BoundaryWarning, stacklevel=user_stacklevel())

    # what a fit on partitions of the data (``hlmext.results.glmm_distributed``) does otherwise
    @staticmethod
    def _not_identified(model):
        return not_identified(model)

    @staticmethod
    def _covariance(model, beta, values, is_corr, fixed, nagq, se_glm, robust):
        if robust is None:                        # nagq=0: the Laplace information (a dispersion profiled)
            return _information_cov(model, beta, values, is_corr, fixed, max(nagq, 1), se_glm)
        from .sandwich import glmm_robust
        return glmm_robust(model, beta, values, is_corr, fixed, nagq, se_glm, robust)

    def _row_quantities(self, model, beta, theta):
        """The BLUPs and the linear predictors of the fitted rows."""
        self.random_effects, self.random_effects_cov = _conditional_modes(model, beta, theta)
        self._eta_sorted = model._X @ beta + model.offset
        self._eta_cond_sorted = self._eta_sorted + zb_sorted(model, self.random_effects)

    @property
    def llf(self):
        """Log-likelihood at the optimum (with every constant: log C(n, y), -log y!)."""
        return self._llf

    # ------------------------------------------------------------------ predictions
    def predict(self, data=None, which="mu", conditional=False, offset=None, exog=None):
        """Linear predictor or mean for the fitted rows or new data.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            New data with the formula's columns (and the offset/exposure columns if the
            model was given them by name); default the fitted rows.
        which : {"mu", "eta", "marginal"}
            The linear predictor eta, or the inverse link of it: the probability of a
            success (logit; not multiplied by trials) or the expected count (Poisson,
            including offset and exposure); ``"marginal"``: the population-averaged mean,
            the inverse link averaged over the random-effects distribution (Stata's
            ``predict mu, marginal``; ``hlmext.results.marginal_means``).
        conditional : bool
            Add Z b (conditional modes); groups not seen in the fit get b = 0. Without it,
            the prediction is at b = 0 (a typical group), not averaged over the random effects.
        offset : array_like, optional
            Offset (log scale) of the new rows, when the model's offset was given as an array.
        exog : array_like (n, k_fe), optional
            statsmodels style: rows of the fixed-effects design (also accepted as the first
            argument when it is not a DataFrame); eta is ``X beta + offset`` at b = 0.

        Returns
        -------
        pandas.Series (ndarray for ``exog``)
        """
        if which not in ("mu", "eta", "marginal"):
            raise ValueError("which must be 'mu', 'eta' or 'marginal', not %r" % (which,))
        model = self.model
        if which == "marginal":
            if conditional:
                raise ValueError("which='marginal' averages over the random effects: it takes no conditional=True")
            out = self.get_prediction(exog if exog is not None else data, which="marginal", offset=offset)
            return out.predicted_mean.to_numpy() if X_given(data, exog) else out.predicted_mean.rename(None)
        from .prediction import exog_argument
        X = exog_argument(self, data, exog, conditional)
        if X is not None:
            eta = X @ self.fe_params.to_numpy() + (0.0 if offset is None else np.asarray(offset, float))
            return eta if which == "eta" else model._sm_family().link.inverse(eta)
        if data is None:
            eta = self._original_order(self._eta_cond_sorted if conditional else self._eta_sorted)
        else:
            eta = pd.Series(_new_eta(self, data, conditional, offset), index=data.index)
        return eta if which == "eta" else pd.Series(model._sm_family().link.inverse(eta.to_numpy()), index=eta.index)

    @property
    def fittedvalues(self):
        """Conditional means E[y | b]: trials x probability (logit) or expected counts (Poisson)."""
        self._check_rows()
        mu = self.model._sm_family().link.inverse(self._eta_cond_sorted) * self.model.trials
        return self._original_order(mu)

    @property
    def resid(self):
        """Response residuals y - E[y | b], in the data's row order."""
        self._check_rows()
        return self._original_order(self.model.design.endog) - self.fittedvalues

    # ------------------------------------------------------------------ tests
    def lr_test_vs_regression(self):
        """LR test against the model without random effects (chibar2 for one variance)."""
        no_lr_test(self.model)
        return inference.boundary_lr_test(self.llf, self.null_llf, self.model.k_re, self.model.versus)

    def _check_icc(self):
        if getattr(self.model, "latent_variance", None) is None:
            raise ValueError("icc() is defined for binary logit, probit and cloglog models (latent-response "
                             "scale); a %s has no single residual variance" % self.model.model_label)

    def _icc_variances(self, sds, k):
        """The latent residual variance pi^2/3 (fixed) and the covariance of the variances."""
        cov_var = np.zeros((k + 1, k + 1))
        cov_var[:k, :k] = self.cov_params()[self.k_fe:, self.k_fe:] * np.outer(2 * sds, 2 * sds)
        return self.model.latent_variance, cov_var

    def check_quadrature(self):
        """Refit with more quadrature points and report how much the estimates move.

        Laplace -> 7 -> 15 points after a Laplace fit, nagq -> 2 nagq + 1 otherwise.

        Returns
        -------
        QuadratureCheck
            ``table`` (llf and parameters per nagq), ``max_change`` (largest change of an
            estimate between consecutive rules, in standard errors), ``advice``.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("cbpp")
        >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
        >>> check = res.check_quadrature()
        >>> list(check.table.index), round(check.max_change, 2)
        (['Laplace', 'nagq=7', 'nagq=15'], 0.03)
        >>> print(check.advice)
        estimates move by less than 10% of a standard error: Laplace is accurate enough
        """
        model = self.model
        if model.nested:
            nested_aghq.check(model, 7)           # two nested levels only (refused with the reason)
        rules = [1, 7, 15] if self.nagq == 1 else [self.nagq, 2 * self.nagq + 1]
        start = np.concatenate([self.fe_params.to_numpy(), self.theta])
        fits = [self] + [model.fit(nagq=k, start=start) for k in rules[1:]]
        label = ["Laplace" if k == 1 else "nagq=%d" % k for k in rules]
        table = pd.DataFrame([np.concatenate([[r.llf], np.asarray(r.params)]) for r in fits],
                             index=pd.Index(label, name="rule"),
                             columns=pd.Index(["llf"] + list(self.model.data.param_names), name="parameter"))
        changes = []
        for a, b in zip(fits[:-1], fits[1:]):
            se = np.asarray(b.bse)
            ok = np.isfinite(se) & (se > 0)
            changes.append(float(np.max(np.abs(np.asarray(b.params) - np.asarray(a.params))[ok] / se[ok])))
        worst = int(np.argmax(changes))
        if changes[-1] > 0.1:
            advice = ("estimates still move by %.2f standard errors between %s and %s: use nagq=%d or more"
                      % (changes[-1], label[-2], label[-1], 2 * rules[-1] + 1))
        elif changes[worst] > 0.1:
            advice = ("estimates move by %.2f standard errors between %s and %s (more than 10%% of a standard "
                      "error): use nagq=%d or more" % (changes[worst], label[worst], label[worst + 1],
                                                       rules[worst + 1]))
        else:
            advice = "estimates move by less than 10%% of a standard error: %s is accurate enough" % label[0]
        return QuadratureCheck(table, max(changes), advice)

    # ------------------------------------------------------------------ summary
    model_label = property(lambda self: self.model.model_label)
    eform_label = property(lambda self: self.model.eform_label)
    endog_name = property(lambda self: self.model.endog_names)
    wald_chi2 = MixedResults.wald_chi2
    level_info = MixedResults.level_info
    fe_table = MixedResults.fe_table
    re_structure = MixedResults.re_structure

    @property
    def re_table(self):
        rows, index, k = [], [], 0
        for lv in self.model.levels[::-1]:
            names = lv.cov.report_names()
            block = self.re_params.iloc[k:k + len(names)]
            sd_rows = [i for i, nm in enumerate(names) if not nm.startswith("corr(")]
            cons = [i for i in sd_rows if names[i] == "sd(Intercept)"]
            order = [i for i in sd_rows if i not in cons] + cons + [i for i in range(len(names)) if i not in sd_rows]
            for i in order:
                rows.append(block.iloc[i].to_numpy())
                index.append((lv.name, _display_name(names[i])))
            k += len(names)
        return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["level", "parameter"]),
                            columns=self.re_params.columns)

    @property
    def lr_test(self):
        return None if self.model.sampling is not None else self.lr_test_vs_regression()

    conf_int = MixedResults.conf_int

    def _null_llf(self):
        return self.null_llf

    def _new_offset(self, data, offset):
        """Offset (log scale) of the rows of new data: ``offset=``, or the model's offset and
        exposure columns."""
        from ..formula import frames
        X = frames.exog_for(self.model.frame.fixed_design_info, data)
        return _new_eta(self, data, False, offset) - X @ self.fe_params.to_numpy()

    def _keep_before_removing_data(self):
        self.model._offset_given = _offset_given(self.model)


@dataclass
class QuadratureCheck:
    """Result of ``GLMMResults.check_quadrature``."""

    table: pd.DataFrame
    max_change: float
    advice: str

    def __str__(self):
        with pd.option_context("display.width", 120, "display.max_columns", 50):
            return "Quadrature check\n%s\n\nmax change: %.3g standard errors\n%s" % (
                self.table.T.to_string(float_format=lambda v: "%.6g" % v), self.max_change, self.advice)

    __repr__ = __str__


def _information_cov(model, beta, values, is_corr, fixed, nagq, se_glm):
    """Covariance of (beta, reported values) and of (beta, phi) from the observed information.

    The deviance's Hessian in (beta, phi_free), phi = (log sd, atanh corr): forward
    differences of the analytic gradient (Laplace or AGHQ, chained through d theta / d phi)
    from the optimum, with steps of 1e-5 (in standard errors of beta, and in phi): k + 1
    gradients instead of the 2k of central differences (each costs a quadrature over every
    cluster), for an error of about 1e-5 relative in the standard errors. Nested adaptive
    quadrature (whose gradient is itself by differences) takes central second differences of
    the deviance with steps of 5e-3 instead. Boundary parameters are held fixed (NaN rows and
    columns).
    """
    p, k = beta.size, values.size
    free = ~fixed
    phi0 = inference.to_phi(values[free], is_corr[free])
    x0 = np.concatenate([beta, phi0])

    def theta_of(phi):
        v = values.copy()
        v[free] = inference.from_phi(phi, is_corr[free])
        return model.theta_from_report(v)

    def gradient(x):
        _, g = model.loglike_theta(x[:p], theta_of(x[p:]), nagq, grad=True)
        jac = np.zeros((model.k_re, x.size - p))
        for i in range(x.size - p):
            e = np.zeros(x.size - p)
            e[i] = 1e-6
            jac[:, i] = (theta_of(x[p:] + e) - theta_of(x[p:] - e)) / 2e-6
        return -2.0 * np.concatenate([g[:p], jac.T @ g[p:]])

    with getattr(model, "exact_profile", contextlib.nullcontext)():   # a dispersion profiled to its root
        if model.nested and nagq > 1:
            # nested quadrature has no analytic gradient: second differences of the deviance itself
            # (differences of a difference gradient would divide its rounding by 1e-11)
            H = _value_hessian(lambda x: -2.0 * model.loglike_theta(x[:p], theta_of(x[p:]), nagq),
                               x0, np.concatenate([5e-3 * se_glm, np.full(phi0.size, 5e-3)]))
        else:
            steps = np.concatenate([1e-5 * se_glm, np.full(phi0.size, 1e-5)])
            g0 = gradient(x0)
            H = np.array([(gradient(x0 + e) - g0) / h for e, h in zip(np.diag(steps), steps)])
            H = 0.5 * (H + H.T)
    return _cov_of_hessian(H, values, is_corr, free, p)


def _newton_information_cov(model, opt, x, values, is_corr, fixed, nagq, robust):
    """``_information_cov`` from the Hessian of the Laplace stage's Newton steps
    (``glmm_optimize.LaplaceHessian``), or None where it does not apply: a Laplace fit with
    model-based standard errors, no parameter on the boundary, no profiled dispersion and
    that Hessian formed close to the optimum ``x``.

    At the optimum the deviance's gradient is zero (below 1e-9), so its Hessian in
    (beta, phi) is J' H J with J = d (beta, theta) / d (beta, phi), phi = (log sd, atanh
    corr): no new evaluation of the likelihood.
    """
    newton = getattr(opt, "laplace_hessian", None)
    if (newton is None or robust is not None or nagq != 1 or np.any(fixed) or not opt.converged
            or getattr(getattr(model, "spec", None), "dispersion", None)):
        return None
    H = newton.at(np.asarray(x, float))
    if H is None:
        return None
    p = model.k_fe
    phi0 = inference.to_phi(values, is_corr)
    J = np.zeros((p + model.k_re, p + phi0.size))
    J[:p, :p] = np.eye(p)
    for i in range(phi0.size):
        e = np.zeros(phi0.size)
        e[i] = 1e-6
        J[p:, p + i] = (model.theta_from_report(inference.from_phi(phi0 + e, is_corr))
                        - model.theta_from_report(inference.from_phi(phi0 - e, is_corr))) / 2e-6
    return _cov_of_hessian(J.T @ H @ J, values, is_corr, np.ones(values.size, dtype=bool), p)


def _cov_of_hessian(H, values, is_corr, free, p):
    """Covariance of (beta, reported values) and of (beta, phi) from the deviance's Hessian
    ``H`` in (beta, phi_free) (NaN rows and columns for the parameters not ``free``)."""
    k = values.size
    c = 2.0 * _inverse(H)
    if not (np.all(np.isfinite(c)) and np.all(np.diag(c) > 0)):
        c = np.full(H.shape, np.nan)
    idx = np.concatenate([np.arange(p), p + np.flatnonzero(free)])
    cov_phi = np.full((p + k, p + k), np.nan)
    cov_phi[np.ix_(idx, idx)] = c
    jac = np.concatenate([np.ones(p), np.where(is_corr, 1 - values ** 2, values)])
    return cov_phi * np.outer(jac, jac), cov_phi[p:, p:]


def _value_hessian(f, x0, steps):
    """Hessian of ``f`` at ``x0`` by central second differences with ``steps`` (error O(step^2))."""
    k = x0.size
    E = np.diag(steps)
    f0 = f(x0)
    H = np.empty((k, k))
    for i in range(k):
        H[i, i] = (f(x0 + E[i]) - 2.0 * f0 + f(x0 - E[i])) / steps[i] ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (f(x0 + E[i] + E[j]) - f(x0 + E[i] - E[j]) - f(x0 - E[i] + E[j])
                                 + f(x0 - E[i] - E[j])) / (4.0 * steps[i] * steps[j])
    f(x0)                              # last: the model's work arrays are those at the optimum
    return H


def _inverse(H):
    try:
        return np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full(H.shape, np.nan)


def _conditional_modes(model, beta, theta):
    """b = Lambda u and Lambda H^{-1} Lambda' per group and level (outermost level first)."""
    u, factor = model.modes(beta, theta)
    d, lams = model.design, model.lams(theta)
    if model.nested:
        hinv = _nested_cond_cov(model._tree, factor)
    else:
        linv = np.linalg.inv(factor)
        hinv = [np.einsum("gji,gjk->gik", linv, linv)]
    blocks, cond = {}, {}
    for i, (lv, lam) in enumerate(zip(d.levels, lams)):
        G, q = lv.n_groups, lv.q
        if lv.first >= 0:                        # a level of the nested chain
            uk, own = u[d.u_off[lv.first]:d.u_off[lv.first] + G * q].reshape(G, q), hinv[i]
        else:                                    # a crossed factor: its groups in the dense block
            start = d.n_u + lv.doff
            uk = u[start:start + G * q].reshape(G, q)
            dense = hinv[-1][0, lv.doff:lv.doff + G * q, lv.doff:lv.doff + G * q].reshape(G, q, G, q)
            own = dense[np.arange(G), :, np.arange(G), :]
        var = np.einsum("ij,gjk,lk->gil", lam, own, lam)
        blocks[lv.name] = _named(pd.DataFrame(uk @ lam.T, index=lv.labels, columns=lv.names), lv.name).sort_index()
        cols, vals = [], []
        for a in range(q):
            for b in range(a + 1):
                cols.append("var(%s)" % lv.names[a] if a == b else "cov(%s,%s)" % (lv.names[b], lv.names[a]))
                vals.append(var[:, a, b])
        cond[lv.name] = _named(pd.DataFrame(np.column_stack(vals), index=lv.labels, columns=cols), lv.name).sort_index()
    order = [lv.name for lv in d.levels[::-1]]
    return {k: blocks[k] for k in order}, {k: cond[k] for k in order}


def _nested_cond_cov(tree, S):
    """Diagonal blocks (H^{-1})_kk of every cluster, per kernel level: (G, q, q) arrays.

    ``tree`` is the kernel's layout (``MixedGLM._tree``) and ``S`` the factor's block rows;
    the blocks come from the selected inverse of H on the factor's pattern (the recurrence
    of ``hlmext._kernels.gradient.selected_inverse``), so no cluster's block row with its
    ancestors is formed densely.
    """
    qs, zoff, lf, parent, blk_off = (tree[k] for k in ("qs", "zoff", "level_first", "parent", "blk_off"))
    Q = int(zoff[-1])
    sel = np.empty(S.size)
    _gradient.selected_inverse(S, np.zeros(1), 0, 0, zoff, Q + 1, 0, lf, blk_off, parent, sel)
    out = []
    for l, q in enumerate(qs):
        D, G = Q - zoff[l] + 1, lf[l + 1] - lf[l]
        out.append(sel[blk_off[lf[l]]:blk_off[lf[l]] + G * q * D].reshape(G, q, D)[:, :, :q].copy())
    return out


def _new_eta(res, data, conditional, offset):
    from ..formula import frames
    model = res.model
    if model.frame is None:
        raise ValueError("predict on new data needs a model built from a formula (hlmext.melogit / mepoisson)")
    eta = frames.exog_for(model.frame.fixed_design_info, data) @ res.fe_params.to_numpy()
    if offset is not None:
        eta = eta + np.asarray(offset, float)
    else:
        for role, transform in (("offset", np.asarray), ("exposure", np.log)):
            if role in model.columns:
                if model.columns[role] not in data:
                    raise ValueError("data lacks the %s column %r" % (role, model.columns[role]))
                eta = eta + transform(data[model.columns[role]].to_numpy(float))
        if _offset_given(model) and not model.columns:
            raise ValueError("the model's offset was given as an array: pass offset=<log-scale offset of the "
                             "new rows> to predict")
    if conditional:
        for block in model.frame.random:
            Z = frames.exog_for(block.design_info, data)
            re = res.random_effects[block.term.level][block.names]
            b = re.reindex(_row_keys(data, block.term.group)).fillna(0.0).to_numpy()
            eta = eta + np.sum(Z * b, axis=1)
    return eta


def X_given(data, exog):
    """True when the rows were given as fixed-effects design rows (an array, not a DataFrame)."""
    return exog is not None or (data is not None and not isinstance(data, pd.DataFrame))


def _offset_given(model):
    """True if the model has an offset (kept by ``remove_data``, which drops the per-row one)."""
    if model.offset is None:
        return model._offset_given
    return bool(np.any(model.offset != 0))


class GLMMResultsWrapper(MixedResultsWrapper):
    """pandas labels for GLMM results: the same table as the linear model's."""


wrap.populate_wrapper(GLMMResultsWrapper, GLMMResults)
