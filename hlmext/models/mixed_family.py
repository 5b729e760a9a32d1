"""The generalized mixed model of any family and link of ``hlmext.models.links`` (Stata's
``meglm``, ``meprobit``, ``mecloglog``, ``menbreg``; lme4's ``glmer(family=...)``, glmmTMB).

The model is ``MixedGLM``'s: the kernels take the family, link and dispersion of every
evaluation (``_kernel_family``). A family with a dispersion parameter phi (Gamma shape,
Gaussian sd, NB alpha or delta, inverse Gaussian lambda) is fitted by maximum likelihood
over (beta, theta, log phi), as glmmTMB does, with log phi profiled out: every evaluation
of the log-likelihood at (beta, theta) maximizes it over log phi first (Newton steps from the
last value), so the optimizer, the boundary checks, the information matrix and the tests of
(beta, theta) work on the profile likelihood, whose maximum and curvature in (beta, theta)
are those of the full likelihood. By the envelope theorem the gradient in (beta, theta) is
the kernel's at the profiled phi. The standard error of log phi comes from the full
information matrix at the optimum (``dispersion_table``). With ``nagq=0`` log phi is a
coordinate of the outer optimizer instead (``nagq0_dispersion``).
"""
from __future__ import annotations

import contextlib

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..keywords import check_keywords
from . import dispersion_glm, dispersion_laplace, links, nagq0_dispersion, nested_aghq
from .glm_start import glm_start
from .glmm import MixedGLM, find_optimum
from .design_input import caller_env

#: log phi is kept in these bounds (NB alpha at exp(-20): the Poisson model up to rounding)
LOG_PHI_BOUNDS = (-20.0, 20.0)


class MixedFamily(MixedGLM):
    """Generalized linear mixed model of a given family and link (Stata ``meglm``).

    Parameters
    ----------
    family : statsmodels family instance, or "nb2" / "nb1"
        ``sm.families.Binomial(link=sm.families.links.Probit())``, ``Poisson()``,
        ``Gamma(link=sm.families.links.Log())``, ...; see ``hlmext.models.links``.
    Other parameters
        As for ``MixedGLM``.

    Examples
    --------
    >>> import hlmext, statsmodels.api as sm
    >>> df = hlmext.datasets.load("cbpp")
    >>> probit = sm.families.Binomial(link=sm.families.links.Probit())
    >>> res = hlmext.meglm("incidence ~ C(period) + (1 | herd)", df, family=probit, trials="size").fit(nagq=7)
    >>> round(res.llf, 3)
    -92.567
    """

    def __init__(self, endog=None, exog=None, groups=None, family=None, **kwargs):
        if family is None:
            raise TypeError("MixedFamily needs family= (a statsmodels family instance, e.g. "
                            "sm.families.Binomial(link=sm.families.links.Probit()))")
        self.spec = family if isinstance(family, links.FamilySpec) else links.resolve(family)
        self._log_phi0 = 0.0
        super().__init__(endog, exog, groups, **kwargs)
        if self.spec.dispersion:
            self._log_phi0 = _log_phi_start(self.spec.family, self._y, self.trials)

    @classmethod
    def from_formula(cls, formula, data, family=None, trials=None, offset=None, exposure=None, cov=None,
                     missing="drop", eval_env=0, **kwargs):
        """Build the model from a formula; see ``hlmext.meglm``."""
        check_keywords(MixedFamily.from_formula, kwargs, extra=("pweights", "pwscale"))
        spec = family if isinstance(family, links.FamilySpec) else links.resolve(family)
        extra = {"offset": offset, "exposure": exposure}
        if trials is not None:
            extra["trials"] = trials
        return cls._from_formula(formula, data, extra, cov=cov, missing=missing,
                                 eval_env=caller_env(eval_env), family=spec, **kwargs)

    # ------------------------------------------------------------------ the family
    @property
    def _family_code(self):
        return self.spec.family

    @property
    def _kernel_family(self):
        """What the kernels take: (family, link, dispersion) at this thread's log phi."""
        return (self.spec.family, self.spec.link, float(np.exp(self._log_phi)))

    def _sm_family(self):
        return self.spec.sm_family(float(np.exp(self._log_phi)))

    @property
    def model_label(self):
        if self.spec.family in (links.NB2, links.NB1):
            return "Mixed-effects nbinomial regression"
        return "Mixed-effects GLM (%s, %s link)" % (self.spec.name, self.spec.link_name)

    @property
    def eform_label(self):
        if self.spec.link == links.LOG:
            return "Risk Ratio" if self.spec.family == links.BINOMIAL else (
                "IRR" if self.spec.family in (links.POISSON, links.NB2, links.NB1) else "exp(b)")
        return "Odds Ratio" if self.spec.link == links.LOGIT else None

    @property
    def versus(self):
        if self.spec.family in (links.NB2, links.NB1):
            return "nbinomial regression"
        if self.spec.family == links.BINOMIAL and self.spec.link in (links.PROBIT, links.CLOGLOG):
            return "%s regression" % self.spec.link_name
        return "GLM"

    @property
    def latent_variance(self):
        return self.spec.latent_variance

    def _row_constant(self, y, ntr):
        return self.spec.row_constant(y, ntr)

    def _check_response(self, y, ntr, name, trials_name):
        self.spec.check_response(y, ntr, name, trials_name, self.has_trials)

    # ------------------------------------------------------------------ the dispersion, profiled
    @property
    def _log_phi(self):
        if "_buffers" not in self.__dict__:       # building the model (its weighted rows): the start
            return self._log_phi0
        b = self._buffers.get(self)
        if not hasattr(b, "log_phi"):
            b.log_phi = self._log_phi0
        return b.log_phi

    def _set_log_phi(self, value):
        self._buffers.get(self).log_phi = float(value)

    def loglike_theta(self, beta, theta, nagq=1, grad=False):
        """Log-likelihood at (beta, theta), the dispersion (if any) at its maximum there (with
        ``nagq=0`` after a ``nagq=0`` fit: at that fit's dispersion); see ``MixedGLM.loglike_theta``."""
        if self.spec.dispersion:
            self._fitted_or_profiled(np.asarray(beta, float), np.asarray(theta, float), nagq)
        return super().loglike_theta(beta, theta, nagq, grad)

    def loglike_at(self, beta, theta, log_phi, nagq=1, grad=False):
        """Log-likelihood at (beta, theta) and the given log dispersion (not profiled)."""
        self._set_log_phi(log_phi)
        return super().loglike_theta(np.asarray(beta, float), np.asarray(theta, float), nagq, grad)

    def _fitted_or_profiled(self, beta, theta, nagq):
        """log phi of the last ``nagq=0`` fit for ``nagq=0`` (a coordinate of its optimizer,
        ``nagq0_dispersion``), else profiled at (beta, theta); leaves log phi there and returns it."""
        t = getattr(self._buffers.get(self), "nagq0_log_phi", None) if nagq == 0 else None
        if t is None:
            return self.profile_dispersion(beta, theta, max(int(nagq), 1))
        self._set_log_phi(t)
        return t

    def profile_dispersion(self, beta, theta, nagq, tol=1e-7, h=1e-4):
        """Maximize the log-likelihood at (beta, theta) over log phi (Newton steps with central
        differences, from this thread's last value); leaves log phi at the maximum and returns it.

        Near the last maximum (the optimizer's next point) one Newton step with the slope from two
        evaluations and the last curvature is taken without more checks (its error is of the
        order of the square of a small step, and enters the value only to second order): two
        kernel calls. Larger steps run the guarded iteration."""
        lo, hi = LOG_PHI_BOUNDS
        buffers = self._buffers.get(self)

        def f(t):
            self._set_log_phi(t)
            if self.nested and nagq > 1:
                return nested_aghq.loglik(self, beta, theta, nagq)
            return self._kernel(beta, theta, nagq, False)

        t = float(np.clip(self._log_phi, lo, hi))
        curvature = getattr(buffers, "log_phi_curvature", None)
        if curvature is not None:
            if dispersion_laplace.available(self, nagq) and np.isfinite(f(t)):
                d1 = self._laplace_dlogphi(beta, theta)      # one kernel call, not two
            else:
                d1 = (f(min(t + h, hi)) - f(max(t - h, lo))) / (min(t + h, hi) - max(t - h, lo))
            step = -d1 / curvature
            if (t <= lo and d1 <= 0) or (t >= hi and d1 >= 0):
                step = 0.0
            if abs(step) < 0.05:
                t = float(np.clip(t + step, lo, hi))
                self._set_log_phi(t)
                exact = getattr(buffers, "profile_tol", None)
                for _ in range(50 if exact else 0):   # exact_profile(): on to the root
                    if abs(step) < exact or not np.isfinite(f(t)):
                        break
                    d1 = (self._laplace_dlogphi(beta, theta) if dispersion_laplace.available(self, nagq)
                          else (f(min(t + h, hi)) - f(max(t - h, lo))) / (min(t + h, hi) - max(t - h, lo)))
                    step = -d1 / curvature
                    t = float(np.clip(t + step, lo, hi))
                    self._set_log_phi(t)
                return t
        f0 = f(t)
        if not np.isfinite(f0):
            t = float(self._log_phi0)
            f0 = f(t)
        for _ in range(100):
            fp, fm = f(min(t + h, hi)), f(max(t - h, lo))
            d1 = (fp - fm) / (min(t + h, hi) - max(t - h, lo))
            d2 = (fp - 2 * f0 + fm) / h ** 2
            if d2 < 0:
                buffers.log_phi_curvature = d2
            step = -d1 / d2 if d2 < 0 else np.sign(d1)
            step = float(np.clip(step, -2.0, 2.0)) if np.isfinite(step) else 0.0
            tn = float(np.clip(t + step, lo, hi))
            if abs(tn - t) < tol:
                break
            fn = f(tn)
            while not fn >= f0 and abs(tn - t) > tol:
                tn = 0.5 * (t + tn)
                fn = f(tn)
            if not fn >= f0:
                break
            t, f0 = tn, fn
        self._set_log_phi(t)
        return t

    def _remeasure_curvature(self, x, nagq):
        """Profile log phi at x = (beta, theta) by the guarded iteration, which measures its curvature."""
        self._buffers.get(self).log_phi_curvature = None
        self.profile_dispersion(np.asarray(x[:self.k_fe], float), np.asarray(x[self.k_fe:], float), nagq)

    def dispersion_table(self, beta, theta, nagq, alpha=0.05, h=1e-4, var=None):
        """``/ln<name>`` and ``<name>`` rows (estimate, se, lower, upper), Stata's layout: the se of
        log phi from the full information in (beta, theta, log phi) at the optimum (central
        differences of the gradient; variances at zero left out), or from ``var``, its variance
        when given (the robust one: ``hlmext.results.sandwich.glmm_robust``); that of phi by the
        delta method and the interval of phi the exponentiated one of log phi."""
        beta, theta = np.asarray(beta, float), np.asarray(theta, float)
        t = self._fitted_or_profiled(beta, theta, nagq)
        if var is None:
            var = self._information_variance(beta, theta, t, max(int(nagq), 1), h)
        se = float(np.sqrt(var)) if var > 0 else np.nan
        z = stats.norm.ppf(1 - alpha / 2)
        name = self.spec.dispersion
        rows = {"/ln%s" % name: (t, se, t - z * se, t + z * se),
                name: (np.exp(t), np.exp(t) * se, np.exp(t - z * se), np.exp(t + z * se))}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "se", "lower", "upper"])

    @contextlib.contextmanager
    def exact_profile(self, tol=1e-12):
        """Within: the profile of log phi near its last maximum iterates to ``tol`` instead of
        taking one step (the information matrix's differences of the profiled gradient divide
        that step's error by their own small steps). This thread only."""
        buffers = self._buffers.get(self)
        before = getattr(buffers, "profile_tol", None)
        buffers.profile_tol = tol
        try:
            yield
        finally:
            buffers.profile_tol = before

    def _laplace_dlogphi(self, beta, theta):
        """d loglik / d log phi of the Laplace approximation after a kernel call at (beta, theta)."""
        return dispersion_laplace.laplace_dlogphi(self, beta, theta)

    def _information_variance(self, beta, theta, t, nagq, h):
        """The variance of log phi (at its profiled value t): the last diagonal element of the
        inverse information in (beta, theta, log phi)."""
        p, free = beta.size, np.flatnonzero(theta != 0)
        x0 = np.concatenate([beta, theta[free], [t]])

        def grad(x):
            th = theta.copy()
            th[free] = x[p:-1]
            _, g = self.loglike_at(x[:p], th, x[-1], nagq, grad=True)
            if dispersion_laplace.available(self, nagq):
                return np.concatenate([g[:p], g[p:][free], [self._laplace_dlogphi(x[:p], th)]])
            fp = self.loglike_at(x[:p], th, x[-1] + h, nagq)
            fm = self.loglike_at(x[:p], th, x[-1] - h, nagq)
            return np.concatenate([g[:p], g[p:][free], [(fp - fm) / (2 * h)]])

        H = np.empty((x0.size, x0.size))
        for i in range(x0.size):
            e = np.zeros(x0.size)
            e[i] = h * max(1.0, abs(x0[i]))
            H[:, i] = (grad(x0 + e) - grad(x0 - e)) / (2 * e[i])
        self._set_log_phi(t)
        with np.errstate(all="ignore"):
            try:
                return float(np.linalg.inv(-(H + H.T) / 2)[-1, -1])
            except np.linalg.LinAlgError:
                return np.nan

    def draw_response(self, eta, rng):
        """A response drawn from the family at linear predictor ``eta`` (the fitted dispersion)."""
        fam, mu = self.spec.family, self._sm_family().link.inverse(eta)
        phi = float(np.exp(getattr(self, "fitted_log_phi", self._log_phi0)))
        if fam == links.BINOMIAL:
            return rng.binomial(self.trials.astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)
        if fam == links.POISSON:
            return rng.poisson(mu).astype(float)
        if fam == links.NB2:
            return rng.negative_binomial(1.0 / phi, 1.0 / (1.0 + phi * mu)).astype(float)
        if fam == links.NB1:
            return rng.negative_binomial(mu / phi, 1.0 / (1.0 + phi)).astype(float)
        if fam == links.GAMMA:
            return rng.gamma(phi, mu / phi)
        if fam == links.GAUSSIAN:
            return rng.normal(mu, phi)
        return rng.wald(mu, phi)

    def _check_nagq(self, nagq):
        return super()._check_nagq(nagq)

    def _fit(self, nagq, start, maxiter, disp, robust=None):
        self._set_log_phi(self._log_phi0)
        self._buffers.get(self).dispersion_variance = self._buffers.get(self).nagq0_log_phi = None
        nagq = self._check_nagq(nagq)
        if nagq == 0 and self.spec.dispersion:         # log phi a coordinate of the outer optimizer
            opt, null_llf, se_glm = nagq0_dispersion.fit(self, start, maxiter, disp, LOG_PHI_BOUNDS)
            self._remeasure_curvature(opt.end, 1)       # of the profile in the Laplace information
            res = self._finish(opt, 0, null_llf, se_glm, disp, robust)
        elif not dispersion_laplace.available(self, 1):
            res = super()._fit(nagq, start, maxiter, disp, robust)
        else:
            # the GLM start, then the Laplace optimum over (beta, theta, log phi) jointly with the
            # analytic derivative in log phi; the profiled stages polish it (``dispersion_laplace``).
            # The profile's Newton steps use the last measured curvature in log phi: measured again
            # at the joint optimum and at the end, where the information matrix is computed
            glm = dispersion_glm.nb2_start(self, LOG_PHI_BOUNDS) or glm_start(self)
            if start is None:
                start, _ = dispersion_laplace.joint_laplace(self, glm[0], glm[1], LOG_PHI_BOUNDS, maxiter, disp)
                self._remeasure_curvature(start, 1)
            opt, null_llf, se_glm = find_optimum(self, nagq, start, maxiter, disp, start_values=lambda model: glm)
            self._remeasure_curvature(opt.end, nagq)
            res = self._finish(opt, nagq, null_llf, se_glm, False, robust)
        if self.spec.dispersion:
            beta, theta = np.asarray(res.fe_params, float), np.asarray(res.theta, float)
            inner = res._results                  # the dispersion is a parameter: AIC, BIC and LR df count it
            inner.k_params += 1
            inner.aic = inner.deviance + 2 * inner.k_params
            inner.bic = inner.deviance + np.log(inner.nobs) * inner.k_params
            inner.dispersion = self.dispersion_table(beta, theta, res.nagq,
                                                     var=self._buffers.get(self).dispersion_variance)
            self.fitted_log_phi = self._fitted_or_profiled(beta, theta, res.nagq)
            inner.dispersion_lr = _dispersion_lr(self, res)
        return res


def _dispersion_lr(model, res):
    """The LR test of alpha = 0 (NB against Poisson, the same random part: chibar2(01), the
    value on the boundary of its space); None for the other families."""
    if model.spec.family not in (links.NB2, links.NB1):
        return None
    poisson = type(model)(design=model.design, family=links.FamilySpec(links.POISSON, links.LOG),
                          **_same_rows(model))
    start = np.concatenate([res.fe_params, res.theta])            # from the NB fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # the Poisson fit's own notes are not this fit's
        if res.nagq == 0:
            ll0 = poisson.fit(nagq=0, start=start).llf
        else:                                         # its maximum only: no standard errors
            opt = find_optimum(poisson, res.nagq, start, 1000, False)[0]
            ll0 = float(poisson.loglike_theta(opt.end[:poisson.k_fe], opt.end[poisson.k_fe:], res.nagq))
    stat = max(0.0, 2 * (res.llf - ll0))
    return {"parameter": model.spec.dispersion, "chibar2": stat,
            "pvalue": float(0.5 * stats.chi2.sf(stat, 1)) if stat > 0 else 1.0, "llf_poisson": ll0}


def _same_rows(model):
    """The keyword arguments that rebuild ``model``'s rows for another family (sorted design)."""
    order = np.argsort(model.design.order)
    out = {"offset": model.offset[order], "frame": model.frame, "formula": model.formula,
           "columns": model.columns, "sampling": model.sampling}
    return out


def _log_phi_start(family, y, ntr):
    """A moment estimate of log phi to start the profile from."""
    return log_phi_from_moments(family, float(np.mean(y)), float(np.var(y)))


def log_phi_from_moments(family, m, v):
    """``_log_phi_start`` from the response's mean ``m`` and variance ``v`` (also summed over partitions)."""
    with np.errstate(all="ignore"):
        phi = {links.GAMMA: m * m / v, links.GAUSSIAN: np.sqrt(v), links.NB2: (v - m) / (m * m),
               links.NB1: v / m - 1.0, links.INVGAUSS: m ** 3 / v}[family]
    return float(np.clip(np.log(phi), -5.0, 5.0)) if np.isfinite(phi) and phi > 0 else -2.0
