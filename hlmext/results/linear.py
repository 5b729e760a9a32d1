"""Results of a linear mixed-model fit, as a statsmodels ``LikelihoodModelResults``.

``params`` are the fixed effects followed by the variance parameters on the reporting
scale (sd's and correlations of every level, outermost first, then ``sd(Residual)``);
``cov_params()`` is block diagonal: ``sigma^2 (RX'RX)^{-1}`` for the fixed effects (as
lme4 and Stata) and the delta-method covariance of the variance parameters. So
``bse``, ``conf_int``, ``t_test``, ``wald_test`` work as in statsmodels; ``re_params``
gives the Stata-style table of the variance parameters with intervals computed on the
log-sd / atanh-corr scale.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.base.wrapper as wrap
from scipy import linalg
from statsmodels.base.model import LikelihoodModelResults

from ..models import information as inference
from .base import FitResults
from .conventions import ResultsConventions
from ..models.gradient import GradientParts, diagonal_blocks
from .idioms import Lme4Idioms
from .lazy import cached
from .after_fit import AfterFit
from ..keywords import check_keywords
from ..exceptions import ConvergenceWarning, ModelError
from ..models.factorization import profiled_deviance
from .rows import row_keys as _row_keys, zb_sorted
from .within import wcorrelation
from ..design.sampling_weights import no_lr_test, top_weights
from ..stacklevel import user_stacklevel


def stata_name(name: str) -> str:
    return "_cons" if name == "Intercept" else name

_CONF_INT_KEYWORDS = {"profile": ("criterion",), "bootstrap": ("bootstrap", "n", "seed", "n_jobs", "progress")}
_CONF_INT_HINTS = {k: ("%s= applies to method=%r" % (k, m),) for m, ks in _CONF_INT_KEYWORDS.items() for k in ks}


class MixedResults(FitResults, Lme4Idioms, AfterFit, ResultsConventions, LikelihoodModelResults):
    """Fit of a ``LinearMixed`` model; built complete by ``LinearMixed.fit``.

    Attributes
    ----------
    fe_params, bse_fe : pandas.Series
        Fixed effects and their standard errors, in the formula's column order.
    re_params : pandas.DataFrame
        sd's, correlations and sd(Residual) with standard errors and 95% intervals.
    cov_re : dict of str -> pandas.DataFrame
        Random-effects covariance matrix of each level (Stata ``estat recovariance``).
    random_effects, random_effects_cov : dict of str -> pandas.DataFrame
        BLUPs (conditional modes) of every group and their conditional variances.
    scale : float
        Residual variance sigma^2.
    llf, aic, bic, nobs, n_groups, converged, opt
    """

    def __init__(self, model, theta, reml, opt, robust=None, robust_scope="all", factorization=None):
        f = model.factorize(theta) if factorization is None else factorization
        n, p = model.nobs, model.k_fe
        self.reml = bool(reml)
        self.method = "REML" if reml else "ML"
        self.theta = np.asarray(theta, float)
        sigma2 = f.prss / (n - p if reml else n)
        sigma = np.sqrt(sigma2)
        linv = _lower_inverse(f.L_x) if p else np.zeros((0, 0))
        cov_fe = sigma2 * (linv.T @ linv)

        values = model.report_from_theta(theta, sigma)
        is_corr = model.report_is_corr()
        fixed = inference.boundary_mask(values, is_corr, _sd_scale(model, sigma, is_corr))
        fixed[-1] = False
        fixed |= _corr_of_boundary_sd(model, fixed)
        # the standard errors of the variance parameters and the tables: computed on first use
        self._variances_of = (theta, sigma, values, is_corr, fixed, opt, f)
        self._cov_fe_model = self._cov_fe_used = cov_fe
        self._beta = f.beta
        params = np.concatenate([f.beta, values])
        super().__init__(model, params, normalized_cov_params=None, scale=sigma2)
        del self.__dict__["normalized_cov_params"]      # the class's cached attribute gives it
        self.opt = opt
        self.converged = opt.converged
        self.deviance = profiled_deviance(f, n, p, reml)
        self._llf = float(-0.5 * self.deviance)
        self.k_params = p + model.k_re + 1
        self.aic = self.deviance + 2 * self.k_params
        self.bic = self.deviance + np.log(n) * self.k_params
        self.nobs = n
        self.k_fe = p
        self.df_resid = n - p
        self._is_corr = is_corr
        self.on_boundary = [nm for nm, b in zip(model.report_names(), fixed) if b]
        self.n_groups = {lv.name: lv.n_groups for lv in model.levels[::-1]}
        self._variances_from = (f, sigma2)          # random_effects_cov, formed when asked for
        self.cov_type = "nonrobust"
        fixed_only = reml or robust_scope == "fixed"
        if robust is not None or getattr(model, "residual", None) is not None:
            self._cov_phi                     # now: a residual structure's model changes after the fit
        if robust is not None and fixed_only:   # cluster-robust fixed effects, from the conditional residuals
            cov_fe = _cluster_robust(model, cov_fe, self._fitted_sorted, sigma2, robust)
            self.cov_params_default = linalg.block_diag(cov_fe, self._variance_cov[0])
        elif robust is not None:          # sandwich of every parameter, from the per-cluster scores
            from .sandwich import lmm_robust
            cov, self._cov_phi = lmm_robust(model, f.beta, values, is_corr, fixed, cov_fe, robust)
            cov_fe = cov[:p, :p]
            self.cov_params_default = cov
        if robust is not None:
            self._cov_fe_used = cov_fe
            self.cov_type = "cluster (%s, %d clusters of %r)" % (robust, model.levels[-1].n_groups,
                                                                 model.levels[model.design.n_chain - 1].name)
        if model.sampling is not None:
            self.nobs = model.design.nobs

        self.notes = _notes(self)
        if model.sampling is not None:
            self.notes.append("Sampling weights (%s): log pseudolikelihood, robust standard errors"
                              % model.sampling.describe())
        if robust is not None:
            top = model.levels[model.design.n_chain - 1]
            what = "the fixed effects" if fixed_only else "all parameters"
            self.notes.append("Std. Err. of %s adjusted for %d clusters in %s (%s)"
                              % (what, top.n_groups, top.name, robust))
        self._warn_boundary()

    # ------------------------------------------------------------------ computed on first use
    @cached
    def _variance_cov(self):
        """Model-based (covariance of the reported variance parameters, of their log-sd /
        atanh-corr transforms); warns where the Hessian gives no standard error."""
        model = self.model
        theta, sigma, values, is_corr, fixed, opt, f = self._variances_of
        reml = self.reml

        def objective(v):
            th, s = model.theta_from_report(v)
            return model.deviance_at(th, s, reml)

        if fixed.any() or not model.has_analytic_gradient():
            cov_rep, cov_phi = inference.delta_cov(objective, values, is_corr, fixed)
        else:
            cov_rep, cov_phi = _cov_variance(model, theta, sigma, reml, values, is_corr, opt, f)
        missing_se = [nm for nm, b, v in zip(model.report_names(), fixed, np.diag(cov_phi)) if not b and not v > 0]
        if missing_se:
            warnings.warn("no standard errors for %s: the Hessian of the log-likelihood in the variance "
                          "parameters is not positive definite at the optimum (a flat or numerically noisy "
                          "likelihood); rescale the response and covariates, or simplify the random part"
                          % ", ".join(missing_se), ConvergenceWarning,
                          stacklevel=user_stacklevel(skip=("statsmodels", "pandas")))
        return cov_rep, cov_phi

    @cached
    def _cov_phi(self):
        return self._variance_cov[1]

    @cached
    def normalized_cov_params(self):
        """Model-based covariance of ``params`` (fixed effects, then the variance parameters)."""
        return linalg.block_diag(self._cov_fe_model, self._variance_cov[0])

    @cached
    def cov_params_default(self):
        return self.normalized_cov_params

    @cached
    def re_params(self):
        """sd's, correlations and sd(Residual) with standard errors and 95% intervals."""
        return inference.re_table(self.model.report_names(), self._variances_of[2], self._cov_phi, self._is_corr)

    @cached
    def fe_params(self):
        """Fixed effects, in the formula's column order."""
        return pd.Series(self._beta, index=self.model.exog_names, name="coef")

    @cached
    def bse_fe(self):
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self._cov_fe_used)), index=self.model.exog_names, name="se")

    @cached
    def cov_fe(self):
        """Covariance matrix of the fixed effects."""
        names = self.model.exog_names
        return _named(pd.DataFrame(self._cov_fe_used, index=names, columns=names), "term")

    @cached
    def cov_re(self):
        """Random-effects covariance matrix of each level (Stata ``estat recovariance``)."""
        model = self.model
        out = {}
        for lv, lam in zip(model.levels[::-1], model.lams(self.theta)[::-1]):
            out[lv.name] = _named(pd.DataFrame(self.scale * lam @ lam.T, index=lv.names, columns=lv.names),
                                  "effect")
        return out

    @cached
    def random_effects(self):
        """BLUPs (conditional modes) of every group, per level."""
        return _blups(self.model, self._variances_of[-1])

    def _keep_before_removing_data(self):
        super()._keep_before_removing_data()
        for name in ("re_params", "normalized_cov_params", "cov_params_default", "fe_params", "bse_fe", "cov_fe",
                     "cov_re", "random_effects"):
            getattr(self, name)
        if getattr(self, "opt", None) is not None:
            self.opt.hessian                   # formed on first use, by evaluations that may need the rows

    @property
    def random_effects_cov(self):
        """Conditional (co)variances of the BLUPs per level (lme4's ``condVar``), one row per group."""
        if getattr(self, "_random_effects_cov", None) is None:
            f, sigma2 = self._variances_from
            self._random_effects_cov = _blup_variances(self.model, f, sigma2)
            self._variances_from = None
        return self._random_effects_cov

    @property
    def llf(self):
        """Log-likelihood at the optimum (the REML criterion's for REML fits)."""
        return self._llf

    # ------------------------------------------------------------------ rows
    @property
    def _fitted_sorted(self):
        """X beta + Z b in the design's (sorted) row order, computed on first use."""
        if not self.model.design.has_rows:
            return None
        if "_fitted_cache" not in self.__dict__:
            self._fitted_cache = self.model.design.exog @ self.fe_params.to_numpy() + zb_sorted(
                self.model, self.random_effects)
        return self._fitted_cache

    @property
    def fittedvalues(self):
        """Conditional fitted values X beta + Z b, in the data's row order."""
        return self._original_order(self._fitted_sorted)

    @property
    def resid(self):
        """Conditional residuals y - X beta - Z b, in the data's row order."""
        if self._fitted_sorted is None:
            return self._original_order(None)
        return self._original_order(self.model.design.endog - self._fitted_sorted)

    def predict(self, data=None, which="marginal", exog=None):
        """Predictions for the fitted data or new data.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            New data with the formula's columns; default the fitted rows.
        which : {"marginal", "conditional"}
            ``X beta`` or ``X beta + Z b`` (groups not seen in the fit get b = 0).
        exog : array_like (n, k_fe), optional
            statsmodels style: rows of the fixed-effects design (also accepted as the first
            argument when it is not a DataFrame); the prediction is marginal, ``X beta``.

        Returns
        -------
        pandas.Series (ndarray for ``exog``)
        """
        if which not in ("marginal", "conditional"):
            raise ValueError("which must be 'marginal' or 'conditional', not %r" % (which,))
        from .prediction import exog_argument
        X = exog_argument(self, data, exog, which != "marginal")
        if X is not None:
            return X @ self.fe_params.to_numpy()
        model = self.model
        if data is None:
            if not model.design.has_rows:
                return self._original_order(None)
            if which == "conditional":
                return self.fittedvalues
            return self._original_order(model.design.exog @ self.fe_params.to_numpy())
        if model.frame is None:
            raise ValueError("predict on new data needs a model built from a formula (hlmext.mixedlm)")
        from ..formula import frames
        frame = model.frame
        X = frames.exog_for(frame.fixed_design_info, data)
        out = X @ self.fe_params.to_numpy()
        if which == "conditional":
            for block in frame.random:
                level = block.term.level
                Z = frames.exog_for(block.design_info, data)
                re = self.random_effects[level][block.names]
                keys = _row_keys(data, block.term.group)
                b = re.reindex(keys).fillna(0.0).to_numpy()
                out = out + np.sum(Z * b, axis=1)
        return pd.Series(out, index=data.index)

    # ------------------------------------------------------------------ tests
    def lr_test_vs_regression(self):
        """LR test of all random effects against the model without them (OLS).

        With one variance component the statistic is ``chibar2(01)`` with the halved
        p-value; otherwise ``chi2(k)``, conservative (Stata's rule).
        """
        model = self.model
        no_lr_test(model)
        dev0 = model.deviance(model.theta_null(), self.reml)
        return inference.boundary_lr_test(self.llf, -0.5 * dev0, model.k_re, "linear model")

    @property
    def wald_chi2(self):
        """Wald chi2 of all fixed effects but the intercept: (statistic, df, p-value)."""
        return inference.wald_chi2(self.fe_params.to_numpy(), self.cov_fe.to_numpy(), self.model.exog_names)

    def _icc_variances(self, sds, k):
        """Residual variance and the covariance of the variances (delta method from the sd's)."""
        cov_sd = self.cov_params()[self.k_fe:, self.k_fe:]
        jac = 2 * sds
        return sds[k] ** 2, cov_sd * np.outer(jac, jac)

    # ------------------------------------------------------------------ profile, bootstrap, df
    def conf_int(self, alpha=0.05, cols=None, method="wald", **kwargs):
        """Confidence intervals: Wald (statsmodels' default), profile likelihood or bootstrap.

        Parameters
        ----------
        alpha : float
        cols : list of str or int, optional
            Parameters to compute (names or positions in ``params``); the others are NaN
            (the result always has one row per parameter). Default all.
        method : {"wald", "profile", "bootstrap"}
            ``"wald"``: ``params -+ z se`` (statsmodels). ``"profile"``: ``profile_ci``
            (keyword ``criterion``). ``"bootstrap"``: percentile intervals of
            ``bootstrap(**kwargs)`` (``n``, ``seed``, ``n_jobs``), or of a finished
            ``bootstrap=BootstrapResults``.

        Returns
        -------
        ndarray (k_params, 2); a DataFrame through the results wrapper.
        """
        method = str(method).lower()
        check_keywords(MixedResults.conf_int, kwargs, _CONF_INT_KEYWORDS.get(method, ()), _CONF_INT_HINTS)
        if method == "wald" and cols is None:
            return LikelihoodModelResults.conf_int(self, alpha)
        names = list(self.model.exog_names) + self.model.report_names()
        idx = list(range(len(names))) if cols is None else \
            [c if isinstance(c, (int, np.integer)) else names.index(c) for c in cols]
        out = np.full((len(names), 2), np.nan)
        if method == "wald":
            out[idx] = np.asarray(LikelihoodModelResults.conf_int(self, alpha))[idx]
        elif method == "profile":
            table = self.profile_ci(alpha, cols=cols, criterion=kwargs.get("criterion"))
            out[[names.index(nm) for nm in table.index]] = table.to_numpy()
        elif method == "bootstrap":
            boot = kwargs.pop("bootstrap", None) or self.bootstrap(**kwargs)
            out[idx] = boot.conf_int(alpha).to_numpy()[idx]
        else:
            raise ValueError("method must be 'wald', 'profile' or 'bootstrap', not %r" % (method,))
        return out

    def refit(self, new_endog):
        """The same model (design, method) fitted to a new response, starting from this fit."""
        return self.model.refit(new_endog, reml=self.reml, start=self.theta)

    # ------------------------------------------------------------------ summary
    model_label = property(lambda self: "Mixed-effects %s regression" % self.method)
    integration = None
    endog_name = property(lambda self: self.model.endog_names)

    @property
    def level_info(self):
        return [{"name": lv.name, "n_groups": lv.n_groups, "min": int(lv.sizes.min()),
                 "avg": float(lv.sizes.mean()), "max": int(lv.sizes.max())} for lv in self.model.levels[::-1]]

    @property
    def fe_table(self):
        from scipy import stats
        se = self.bse_fe
        z = self.fe_params / se
        q = stats.norm.ppf(0.975)
        return _named(pd.DataFrame({"coef": self.fe_params, "se": se, "z": z, "pvalue": 2 * stats.norm.sf(np.abs(z)),
                                    "lower": self.fe_params - q * se, "upper": self.fe_params + q * se}), "term")

    @property
    def re_table(self):
        rows, index = [], []
        k = 0
        table = self.re_params
        for lv in self.model.levels[::-1]:
            names = lv.cov.report_names()
            block = table.iloc[k:k + len(names)].copy()
            block.index = [_display_name(nm) for nm in names]
            sd_rows = [i for i, nm in enumerate(names) if not nm.startswith("corr(")]
            cons = [i for i in sd_rows if names[i] == "sd(Intercept)"]
            order = [i for i in sd_rows if i not in cons] + cons + [i for i in range(len(names)) if i not in sd_rows]
            for i in order:
                rows.append(block.iloc[i].to_numpy())
                index.append((lv.name, block.index[i]))
            k += len(names)
        for i, label in self.model.residual_rows():
            rows.append(table.iloc[k + i].to_numpy())
            index.append(("Residual", label))
        return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["level", "parameter"]),
                            columns=table.columns)

    @property
    def re_structure(self):
        out = {lv.name: lv.cov.label for lv in self.model.levels}
        if getattr(getattr(self.model, "residual", None), "label", None):
            out["Residual"] = self.model.residual.label
        return out

    def wcorrelation(self, group=None, covariance=False):
        """Model-implied correlation matrix of one cluster's rows (Stata ``estat wcorrelation``);
        see :func:`hlmext.results.within.wcorrelation`."""
        return wcorrelation(self, group, covariance)

    @property
    def lr_test(self):
        return None if self.model.sampling is not None else self.lr_test_vs_regression()

def _cluster_robust(model, cov_fe, fitted_sorted, sigma2, correction):
    """Sandwich covariance of the fixed effects, clustered at the outermost nested level."""
    d = model.design
    if not d.has_rows:
        raise ModelError("cluster-robust standard errors need the rows; fit from a DataFrame")
    if d.qd:
        raise ModelError("cluster-robust standard errors need nested levels: with crossed factors the "
                         "clusters are not defined")
    top = d.levels[d.n_chain - 1]
    e = d.endog - fitted_sorted
    if getattr(d, "weights", None) is not None:
        e = e * d.weights
    scores = np.zeros((top.n_groups, d.k_fe))
    np.add.at(scores, top.codes, d.exog * e[:, None] / sigma2)
    meat = scores.T @ scores
    if correction == "CR1":
        meat *= top.n_groups / (top.n_groups - 1)
    return cov_fe @ meat @ cov_fe


def _display_name(name):
    """``sd(Intercept)`` -> ``sd(_cons)``; ``corr(Intercept,x)`` -> ``corr(x,_cons)`` (Stata)."""
    if name.startswith("corr(") and "," in name:
        a, b = name[5:-1].split(",", 1)
        if a == "Intercept":
            a, b = b, a
        return "corr(%s,%s)" % (stata_name(a), stata_name(b))
    inner = name[name.index("(") + 1:-1]
    return "%s(%s)" % (name[:name.index("(")], " ".join(stata_name(t) for t in inner.split(" ")))


def _cov_variance(model, theta, sigma, reml, values, is_corr, opt=None, f=None):
    """Covariance of the reported variance parameters (no boundary) from the analytic gradient
    of the deviance in ``(theta, sigma)`` (``inference.cov_from_gradient``).

    When the optimizer ends at ``theta`` with the Hessian ``H_p`` of the profiled deviance,
    the Hessian in ``(theta, sigma)`` follows without further evaluations: with
    ``D(theta, sigma) = c(theta) + dof log sigma^2 + prss(theta) / sigma^2``,
    ``D_ts = -2 dprss / sigma^3``, ``D_ss = 4 dof / sigma^2`` at ``sigma^2 = prss / dof``,
    and ``D_tt = H_p + D_ts D_ts' / D_ss`` (``H_p`` is the Schur complement of ``D_ss``).
    """
    x0 = np.append(theta, sigma)
    floor = np.append(model.theta_scale(), sigma) * 1e-3
    steps = 1e-3 * np.maximum(np.abs(x0), floor)
    to_phi = lambda x: inference.to_phi(model.report_from_theta(x[:-1], x[-1]), is_corr)   # noqa: E731
    if opt is not None and opt.hessian is not None and np.array_equal(opt.end, theta):
        f = model.factorize(theta) if f is None else f
        parts = GradientParts(model, f, reml, traces=False)
        dprss = np.array([parts.dprss(i, E) for i, E in model._lam_derivatives(theta)])
        dof = model.nobs - model.k_fe if reml else model.nobs
        d_ts = -2.0 * dprss / sigma ** 3
        d_ss = 4.0 * dof / sigma ** 2
        k = theta.size
        H = np.empty((k + 1, k + 1))
        H[:k, :k] = opt.hessian + np.outer(d_ts, d_ts) / d_ss
        H[:k, k] = H[k, :k] = d_ts
        H[k, k] = d_ss
        cov_phi = inference.cov_from_hessian(H, x0, to_phi, steps)
    else:
        cov_phi = inference.cov_from_gradient(
            lambda x: model.deviance_at_and_gradient(x[:-1], x[-1], reml)[1], x0, to_phi, steps)
    if not np.all(np.isfinite(cov_phi)) or np.any(np.diag(cov_phi) <= 0):
        cov_phi = np.full((values.size, values.size), np.nan)
    jac = np.where(is_corr, 1 - values ** 2, values)
    return cov_phi * np.outer(jac, jac), cov_phi


def _lower_inverse(L):
    """``linalg.solve_triangular(L, I, lower=True)`` for a lower factor ``L``: the same LAPACK call
    (``dtrtrs``, on ``L`` or its transpose as scipy chooses), without scipy's checks and dispatch,
    which cost a small fit more than the solve; non-finite entries or a failed solve take scipy's
    path and its errors."""
    eye = np.eye(L.shape[0])
    if L.dtype == np.float64 and np.isfinite(L).all():
        if L.flags.f_contiguous:
            x, info = linalg.lapack.dtrtrs(L, eye, lower=1)
        else:
            x, info = linalg.lapack.dtrtrs(L.T, eye, lower=0, trans=1)
        if info == 0:
            return x
    return linalg.solve_triangular(L, eye, lower=True)


def _sd_scale(model, sigma, is_corr):
    """Per reported value, the sd below which it counts as zero (scaled by its design column)."""
    out = []
    for i, lv in enumerate(model.levels):
        cols = model.design.z_rms(i)
        per = []
        k = 0
        for s, names in lv.cov.blocks:
            block_rms = cols[k:k + s.q]
            for nm in s.report_names(names):
                per.append(sigma / max(np.mean(block_rms), 1e-300))
            k += s.q
        out.append(np.array(per))
    tail = len(model.report_names()) - sum(len(o) for o in out)     # residual parameters: never zero
    return np.concatenate(out[::-1] + [np.zeros(max(tail - 1, 0)), [np.inf]])


def _corr_of_boundary_sd(model, fixed):
    """Correlations that involve an sd on the boundary are not estimable either."""
    names = model.report_names()
    zero = {nm[3:nm.index(")")] + nm[nm.index("["):] for nm, b in zip(names, fixed) if b and nm.startswith("sd(")}
    out = np.zeros(len(names), dtype=bool)
    for i, nm in enumerate(names):
        if nm.startswith("corr("):
            pair, lvl = nm[5:nm.index(")")], nm[nm.index("["):]
            out[i] = any((c + lvl) in zero for c in pair.split(","))
    return out


def _blups(model, f):
    """BLUPs b = Lambda u of every level (DataFrames by group label, outermost level first)."""
    d = model.design
    u = f.modes(model)
    modes = {}
    for l, (lv, lam) in enumerate(zip(d.levels, model.lams(f.theta))):
        start = d.u_off[lv.first] if l < d.n_chain else d.n_u + lv.doff
        b = u[start:start + lv.n_groups * lv.q].reshape(lv.n_groups, lv.q) @ lam.T
        modes[lv.name] = _named(pd.DataFrame(b, index=lv.labels, columns=lv.names), lv.name).sort_index()
    return {lv.name: modes[lv.name] for lv in model.levels[::-1]}


def _blup_variances(model, f, sigma2):
    """Conditional (co)variances of the BLUPs (given beta and theta), per level.

    The diagonal blocks of sigma^2 Lambda (Lambda'Z'Z Lambda + I)^{-1} Lambda' (lme4's
    ``condVar``), from the selected inverse of the factor (``gradient.diagonal_blocks``);
    with sampling weights, those of the integrand of each top-level cluster
    (``hlmext.design.sampling_weights.top_weights``).
    """
    d = model.design
    out = {}
    for l, (lv, lam, own) in enumerate(zip(d.levels, model.lams(f.theta), diagonal_blocks(model, f))):
        if l < d.n_chain and getattr(model, "_cweight", None) is not None:    # a_c-scaled blocks
            own = own * top_weights(model, l)[:, None, None]
        out[lv.name] = _variance_frame(lv, sigma2 * lam @ own @ lam.T)
    return {lv.name: out[lv.name] for lv in model.levels[::-1]}


def _variance_frame(lv, var):
    """Conditional (co)variances of one level's BLUPs as a DataFrame sorted by group label."""
    cols, vals = [], []
    for i in range(lv.q):
        for j in range(i + 1):
            cols.append("var(%s)" % lv.names[i] if i == j else "cov(%s,%s)" % (lv.names[j], lv.names[i]))
            vals.append(var[:, i, j])
    return _named(pd.DataFrame(np.column_stack(vals), index=lv.labels, columns=cols), lv.name).sort_index()


def _named(frame, index):
    """``frame`` with its index named (a new Index: one shared with a Series keeps its name):
    every table of the results says what its rows are."""
    if frame.index.nlevels > 1:           # groups by a combination, "school:class": one name per column
        parts = index.split(":")
        index = parts if len(parts) == frame.index.nlevels else [None] * frame.index.nlevels
    return frame.set_axis(frame.index.rename(index), axis=0)


def _notes(res):
    notes = []
    if not res.converged:
        notes.append("Convergence not achieved: max |gradient| %.3g; see results.opt"
                     % res.opt.max_abs_gradient)
    for name in res.on_boundary:
        notes.append("%s is on the boundary of the parameter space (no standard error); consider "
                     "removing that term from the random part" % name)
    return notes


class MixedResultsWrapper(wrap.ResultsWrapper):
    _attrs = {"params": "columns", "bse": "columns", "pvalues": "columns", "tvalues": "columns"}
    _wrap_attrs = _attrs
    _methods = {"cov_params": "cov", "conf_int": "columns"}
    _wrap_methods = _methods

    def __repr__(self):
        return repr(self._results)


wrap.populate_wrapper(MixedResultsWrapper, MixedResults)
