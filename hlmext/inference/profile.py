"""Profile-likelihood confidence intervals of linear mixed models (lme4's ``confint(method="profile")``).

For one parameter ``psi`` (an sd, a correlation, ``sd(Residual)`` or a fixed effect) the
profile deviance ``d(psi)`` is the deviance minimized over all other parameters with
``psi`` held fixed, and its signed square root

    zeta(psi) = sign(psi - psi_hat) sqrt(d(psi) - d(psi_hat))

is approximately standard normal. The ``1 - alpha`` interval is
``{psi : |zeta(psi)| <= z_{1-alpha/2}}``, i.e. ``2 (llf_max - llf_profile) <= chi2_1(1-alpha)``
(Bates et al. 2015, J. Stat. Softw. 67(1), sec. 5.1). Its ends are found as roots of
``zeta(psi) = -+z`` by Brent's method on a bracket reached by steps of about one standard
error (lme4 instead interpolates a spline through profile points; the roots here are
exact up to the optimizer's tolerance).

The objectives reuse the cheap profiled deviance of ``LinearMixed``:

- variance parameter ``v_i`` (reporting scale: sd's, correlations, sigma):
  ``d(v_i) = min over v_{-i} of D(theta(v), sigma(v))`` with ``D`` = ``deviance_at``
  (beta profiled out), ``v_{-i}`` constrained to sd >= 0 and -1 <= corr <= 1;
- fixed effect ``beta_j``: with theta fixed, holding ``beta_j = b`` raises the penalized
  residual sum of squares by ``(b - beta_hat_j)^2 / [(RX'RX)^{-1}]_jj`` (a Schur
  complement; the same as the fit of ``y - x_j b`` on ``X`` without column ``j``), so
  ``d(b) = min over theta of logdet + n (1 + log(2 pi (prss + (b - beta_hat_j)^2 / V_jj) / n))``.
  No new design or cross-products are needed.

Conventions (lme4 1.1-31): the profiled criterion is the ML deviance, also for REML fits
(lme4's ``devfun2`` refits a REML fit by ML first), so a REML fit's intervals are those of
its ML refit; ``criterion="reml"`` profiles the REML criterion instead (variance
parameters only: the REML criterion does not depend on the fixed effects). A limit that
the profile does not reach inside the parameter space is the boundary: 0 for an sd, -1 or
1 for a correlation (lme4 does the same).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from .bootstrap import optimize_theta
from ..threads import single_blas_thread
from ..models.factorization import LOG2PI, Factorization, profiled_deviance
from ..models.optimize import minimize
from ..stacklevel import user_stacklevel

SE_FALLBACK = 0.25          # step on the log-sd / atanh-corr scale when no standard error is available


class Profile:
    """Profiled deviance of every parameter of a linear mixed-model fit.

    Parameters
    ----------
    res : MixedResults
    criterion : {None, "ml", "reml"}
        ``None``/``"ml"``: the ML deviance (lme4; a REML fit is first refitted by ML).
        ``"reml"``: the REML criterion of a REML fit (variance parameters only).

    Attributes
    ----------
    names : list of str
        Parameter names, as ``res.params``.
    estimate : ndarray
        Estimates at the optimum of the profiled criterion (the ML refit for a REML fit).
    base : float
        Minimum of the criterion.

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.profile import Profile
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> prof = Profile(res)
    >>> round(prof.zeta("lrt", 0.58), 3)
    1.334
    >>> prof.conf_int(cols=["lrt"]).round(4)
          lower   upper
    lrt  0.5389  0.5878
    """

    def __init__(self, res, criterion=None):
        res = getattr(res, "_results", res)
        model = res.model
        criterion = "ml" if criterion is None else str(criterion).lower()
        if criterion not in ("ml", "reml"):
            raise ValueError("criterion must be 'ml' or 'reml', not %r" % (criterion,))
        if criterion == "reml" and not res.reml:
            raise ValueError("criterion='reml' needs a REML fit; this fit is ML")
        self.model, self.reml = model, criterion == "reml"
        theta = np.asarray(res.theta, float)
        if res.reml and not self.reml:                      # lme4: profile the ML refit
            theta = optimize_theta(model, False, theta).end
        n, p = model.nobs, model.k_fe
        f = model.factorize(theta)
        sigma = np.sqrt(f.prss / (n - p if self.reml else n))
        self.theta, self.k_fe = theta, p
        self.base = profiled_deviance(f, n, p, self.reml)
        values = model.report_from_theta(theta, sigma)
        self.estimate = np.concatenate([f.beta, values])          # a corr of a zero sd is NaN
        self.values = np.nan_to_num(values, nan=0.0)               # start values of the inner fits
        self.names = list(model.exog_names) + model.report_names()
        self.is_corr = np.concatenate([lv.cov.is_corr() for lv in model.levels[::-1]] + [[False]])
        k = self.values.size
        self._bounds = [(-1.0, 1.0) if c else (0.0, None) for c in self.is_corr]
        self._bounds[-1] = (1e-8 * sigma, None)
        rms = _sd_floor(model, sigma)
        self._scale = np.where(self.is_corr, 1.0, np.maximum(np.abs(self.values), rms))
        se_fe = sigma * np.sqrt(np.sum(linalg.solve_triangular(f.L_x, np.eye(p), lower=True) ** 2, axis=0))
        se_phi = np.sqrt(np.diag(res._cov_phi)) if getattr(res, "_cov_phi", None) is not None else np.full(k, np.nan)
        se_phi = np.where(np.isfinite(se_phi) & (se_phi > 0), se_phi, SE_FALLBACK)
        self._step = np.concatenate([se_fe, np.clip(se_phi, 0.02, 1.0)])
        self._floor = rms
        self._cache = {}                                    # parameter index -> [(x, inner optimum)]
        self.n_evals = 0

    # ------------------------------------------------------------------ objectives
    def _index(self, col):
        if isinstance(col, (int, np.integer)):
            return int(col)
        if col not in self.names:
            raise KeyError("no parameter %r; the parameters are %s" % (col, ", ".join(self.names)))
        return self.names.index(col)

    def _vp_objective(self, i, x):
        model, k, reml = self.model, self.values.size, self.reml
        free = np.arange(k) != i

        def fun(z):
            v = np.empty(k)
            v[i], v[free] = x, z
            theta, sigma = model.theta_from_report(v)
            return model.deviance_at(theta, sigma, reml)
        return fun, [b for b, f in zip(self._bounds, free) if f], self._scale[free]

    def _fe_objective(self, j, b):
        model, n = self.model, self.model.nobs
        unit = np.zeros(self.k_fe)
        unit[j] = 1.0

        def fun(theta):
            f = Factorization(model, theta, *model._scratch())
            if not f.ok or not f.prss > 0:
                return np.inf
            e = linalg.solve_triangular(f.L_x, unit, lower=True)
            pwrss = f.prss + (b - f.beta[j]) ** 2 / (e @ e)
            return f.logdet + n * (1 + LOG2PI + np.log(pwrss / n))
        return fun, model.theta_bounds(), model.theta_scale()

    def deviance(self, col, x):
        """Profile deviance ``d(x)``: the criterion minimized with parameter ``col`` held at ``x``."""
        i = self._index(col)
        if i < self.k_fe:
            if self.reml:
                raise ValueError("the REML criterion does not depend on the fixed effects; profile them "
                                 "with criterion='ml'")
            fun, bounds, scale = self._fe_objective(i, x)
            start0 = self.theta
        else:
            fun, bounds, scale = self._vp_objective(i - self.k_fe, x)
            start0 = np.delete(self.values, i - self.k_fe)
        seen = self._cache.setdefault(i, [])
        start = min(seen, key=lambda s: abs(s[0] - x))[1] if seen else start0
        end, value = self._inner(fun, start, bounds, scale)
        seen.append((x, end))
        return value

    def _inner(self, fun, start, bounds, scale):
        """Minimize over the other parameters: L-BFGS-B from the nearest profiled point.

        Only the minimum value matters here (an error ``e`` in the arg-min changes it by
        ``O(e^2)``), so no Newton polish; where a free sd ends at 0 (a possible saddle of
        the sign-symmetric deviance), the package's full ``minimize`` is used instead.
        """
        count = [0]
        lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds]) / scale
        hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds]) / scale

        def f(z):                          # minus the base: L-BFGS-B's stopping rule is relative
            count[0] += 1
            return fun(z * scale) - self.base

        def f_and_g(z):                    # central differences, one-sided at a bound
            fz = f(z)
            g = np.empty_like(z)
            for k in range(z.size):
                h = 1e-5 * max(1.0, abs(z[k]))
                up, down = z.copy(), z.copy()
                up[k] = min(z[k] + h, hi[k])
                down[k] = max(z[k] - h, lo[k])
                f_up = f(up) if up[k] > z[k] else fz
                f_down = f(down) if down[k] < z[k] else fz
                g[k] = (f_up - f_down) / (up[k] - down[k])
            return fz, g

        z0 = np.clip(np.asarray(start, float) / scale, lo, hi)
        res = optimize.minimize(f_and_g, z0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                                options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": 500})
        end, value = res.x * scale, float(res.fun) + self.base
        at_zero = (lo == 0) & (res.x <= 1e-10)
        inside = (res.x > lo + 1e-8) & (res.x < hi - 1e-8)
        if at_zero.any() or not np.isfinite(value) or np.max(np.abs(res.jac[inside]), initial=0) > 1e-3:
            opt = minimize(fun, end, bounds, scale=scale)
            count[0] += opt.n_evals
            if opt.fun < value or not np.isfinite(value):
                end, value = opt.end, opt.fun
        self.n_evals += count[0]
        return end, value

    def zeta(self, col, x):
        """Signed square root of the profile deviance: ``sign(x - est) sqrt(d(x) - d_min)``."""
        i = self._index(col)
        diff = self.deviance(i, x) - self.base
        if diff < -1e-3:
            warnings.warn("the profile of %s found a deviance %.3g below the fit's: the fit had not reached "
                          "the optimum; refit from better start values" % (self.names[i], -diff),
                          stacklevel=user_stacklevel())
        return float(np.sign(x - self.estimate[i]) * np.sqrt(max(diff, 0.0)))

    # ------------------------------------------------------------------ limits
    def _kind(self, i):
        if i < self.k_fe:
            return "fixed"
        return "corr" if self.is_corr[i - self.k_fe] else "sd"

    def _transform(self, i):
        """(to_t, from_t, lower bound, upper bound) of the scale the steps are taken on."""
        kind = self._kind(i)
        if kind == "fixed":
            return (lambda x: x), (lambda t: t), -np.inf, np.inf
        if kind == "corr":
            return (lambda x: np.arctanh(np.clip(x, -1 + 1e-15, 1 - 1e-15))), np.tanh, -1.0, 1.0
        lower = 0.0 if i < len(self.names) - 1 else self._bounds[-1][0]
        return np.log, np.exp, lower, np.inf

    def limit(self, col, side, alpha=0.05):
        """Lower (``side=-1``) or upper (``side=+1``) end of the profile interval of ``col``."""
        i = self._index(col)
        target = side * stats.norm.ppf(1 - alpha / 2)
        est = self.estimate[i]
        if not np.isfinite(est):
            return np.nan
        to_t, from_t, lo, hi = self._transform(i)
        bound = lo if side < 0 else hi
        if self._kind(i) == "sd" and est <= self._floor[i - self.k_fe] * 1e-4:
            if side < 0:
                return 0.0
            to_t, from_t, est = np.log, np.exp, self._floor[i - self.k_fe] * 1e-2     # start just inside
        x0, z0 = est, 0.0
        t0, step = to_t(est), self._step[i]
        for _ in range(60):
            t1 = t0 + side * step
            x1 = float(from_t(t1))
            kind = self._kind(i)
            if ((side < 0 and x1 <= lo) or (side > 0 and x1 >= hi) or not np.isfinite(x1)
                    or (kind == "sd" and side < 0 and x1 < 0.05 * est) or (kind == "corr" and abs(x1) > 0.9999)):
                x1 = bound
            if not np.isfinite(x1):
                break
            z1 = self.zeta(i, x1)
            if side * z1 >= side * target:
                return optimize.brentq(lambda x: self.zeta(i, x) - target, x0, x1,
                                       xtol=1e-9 * max(abs(est), self._step[i]), rtol=1e-10)
            if x1 == bound:
                return float(bound)
            # next step: linear extrapolation of zeta to 1.2 target, between 0.5 and 4 times this one
            slope = (z1 - z0) / (t1 - t0) if t1 != t0 else 0.0
            want = (target * 1.2 - z1) / slope if side * slope > 0 else side * 4 * step
            step = float(np.clip(abs(want), 0.5 * step, 4 * step))
            x0, z0, t0 = x1, z1, t1
        warnings.warn("the profile of %s did not reach zeta = %.2f" % (self.names[i], target),
                      stacklevel=user_stacklevel())
        return np.nan

    def conf_int(self, alpha=0.05, cols=None):
        """Profile-likelihood intervals.

        Parameters
        ----------
        alpha : float
        cols : list of str or int, optional
            Parameters (names or positions in ``params``); default all (with
            ``criterion="reml"``, all variance parameters).

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper``, one row per parameter.
        """
        if cols is None:
            idx = list(range(self.k_fe if self.reml else 0, len(self.names)))
        else:
            idx = [self._index(c) for c in cols]
        with single_blas_thread():
            rows = [(self.limit(i, -1, alpha), self.limit(i, +1, alpha)) for i in idx]
        return pd.DataFrame(rows, index=[self.names[i] for i in idx], columns=["lower", "upper"])


class GLMMProfile(Profile):
    """Profiled deviance of every parameter of a mixed logit or Poisson fit (its own method:
    Laplace or AGHQ).

    ``d(x)`` minimizes ``-2 loglik(beta, theta(v))`` over the other fixed effects and
    reported variance parameters ``v`` (sd >= 0, -1 <= corr <= 1) with one held at ``x``, by
    L-BFGS-B with the analytic gradient (chained through ``d theta / d v``); the limits are
    found as for linear models (``Profile.limit``).

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.profile import GLMMProfile
    >>> df = hlmext.datasets.load("cbpp")
    >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
    >>> GLMMProfile(res).conf_int(cols=["sd(Intercept)[herd]"]).round(3)
                         lower  upper
    sd(Intercept)[herd]  0.346    1.1
    """

    def __init__(self, res, criterion=None):
        res = getattr(res, "_results", res)
        if criterion not in (None, "ml"):
            raise ValueError("a generalized model has no REML criterion; profile its likelihood (criterion=None)")
        model = self.model = res.model
        self.reml, self.nagq, self.k_fe = False, res.nagq, model.k_fe
        self.theta = np.asarray(res.theta, float)
        values = model.report_from_theta(self.theta)
        self.estimate = np.concatenate([np.asarray(res.fe_params, float), values])
        self.values = np.nan_to_num(values, nan=0.0)
        self.base = -2.0 * res.llf
        self.names = list(model.exog_names) + model.report_names()
        self.is_corr = np.concatenate([lv.cov.is_corr() for lv in model.levels[::-1]])
        self._bounds = [(-1.0, 1.0) if c else (0.0, None) for c in self.is_corr]
        self._floor = _sd_floor(model, 1.0)[:-1]
        se = np.asarray(res.re_params["se"], float)
        jac = np.where(self.is_corr, 1 - values ** 2, values)
        with np.errstate(divide="ignore", invalid="ignore"):
            se_phi = se / np.abs(jac)
        se_phi = np.where(np.isfinite(se_phi) & (se_phi > 0), se_phi, SE_FALLBACK)
        se_fe = np.asarray(res.bse_fe, float)
        self._step = np.concatenate([np.where(np.isfinite(se_fe) & (se_fe > 0), se_fe, 1.0), np.clip(se_phi, 0.02, 1.0)])
        self._scale_all = np.concatenate([self._step[:self.k_fe],
                                          np.where(self.is_corr, 1.0, np.maximum(np.abs(self.values), self._floor))])
        self._cache = {}
        self.n_evals = 0

    def _fun_and_grad(self, x):
        """-2 loglik and its gradient at ``x`` = (beta, reported variance parameters)."""
        model, p = self.model, self.k_fe
        v = x[p:]
        theta = model.theta_from_report(v)
        ll, g = model.loglike_theta(x[:p], theta, self.nagq, grad=True)
        self.n_evals += 1
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(x)
        jac = np.empty((theta.size, v.size))
        for k in range(v.size):
            h = 1e-7 * max(1.0, abs(v[k]))
            up, down = v.copy(), v.copy()
            up[k] += h
            down[k] -= h
            if self._bounds[k][0] is not None and down[k] < self._bounds[k][0]:
                down[k] = v[k]
            if self._bounds[k][1] is not None and up[k] > self._bounds[k][1]:
                up[k] = v[k]
            jac[:, k] = (model.theta_from_report(up) - model.theta_from_report(down)) / (up[k] - down[k])
        return -2.0 * ll, -2.0 * np.concatenate([g[:p], jac.T @ g[p:]])

    def _held(self, i):
        """The coordinate that holds parameter ``i`` (the coordinates are the parameters here)."""
        return i

    def _coordinates(self, full, i):
        """The optimizer's coordinates of the parameter vector ``full`` when ``i`` is held."""
        return full

    def _full(self, y, i):
        """The parameter vector of the coordinates ``y``, and d full / d y (None: the identity)."""
        return y, None

    def deviance(self, col, x):
        """Profile deviance: ``-2 loglik`` minimized with parameter ``col`` held at ``x``."""
        i = self._index(col)
        held = self._held(i)
        y0 = self._coordinates(np.concatenate([self.estimate[:self.k_fe], self.values]), i)
        free = np.arange(y0.size) != held
        bounds = [(None, None)] * self.k_fe + self._bounds
        lo = np.array([b[0] if b[0] is not None else -np.inf for b, f in zip(bounds, free) if f])
        hi = np.array([b[1] if b[1] is not None else np.inf for b, f in zip(bounds, free) if f])
        scale = self._scale_all[free]
        seen = self._cache.setdefault(i, [])
        start = min(seen, key=lambda s: abs(s[0] - x))[1] if seen else y0[free]

        def f_and_g(z):
            y = y0.copy()
            y[free], y[held] = z * scale, x
            full, jac = self._full(y, i)
            value, grad = self._fun_and_grad(full)
            if jac is not None:
                grad = jac.T @ grad
            return value - self.base, grad[free] * scale

        z0 = np.clip(start / scale, lo / scale, hi / scale)
        res = optimize.minimize(f_and_g, z0, jac=True, method="L-BFGS-B", bounds=list(zip(lo / scale, hi / scale)),
                                options={"ftol": 1e-13, "gtol": 1e-8, "maxiter": 1000})
        seen.append((x, res.x * scale))
        return float(res.fun) + self.base


def _sd_floor(model, sigma):
    """Per reported value, a natural size: sigma over the rms of the design column (sigma itself last)."""
    out = []
    for i, lv in enumerate(model.levels):
        rms = np.sqrt(np.mean(model.design.z_of(i) ** 2, axis=0)) if getattr(model.design, "has_rows", True) \
            else np.ones(lv.q)
        vals, k = [], 0
        for s, names in lv.cov.blocks:
            size = sigma / max(float(np.mean(rms[k:k + s.q])), 1e-300)
            vals += [size] * len(s.report_names(names))
            k += s.q
        out.append(np.array(vals))
    return np.concatenate(out[::-1] + [[sigma]])


def profile_ci(res, alpha=0.05, cols=None, criterion=None):
    """Profile-likelihood confidence intervals of a linear mixed-model fit.

    Parameters
    ----------
    res : MixedResults
    alpha : float
    cols : list of str or int, optional
        Parameters to profile (default all).
    criterion : {None, "ml", "reml"}
        See ``Profile``: by default the ML profile (lme4's convention, also for REML fits).

    Returns
    -------
    pandas.DataFrame
        ``lower`` and ``upper`` per parameter.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit(reml=False)
    >>> profile_ci(res, cols=["sd(Days)[Subject]", "Days"]).round(3)
                       lower   upper
    sd(Days)[Subject]  3.801   8.753
    Days               7.359  13.576
    """
    return Profile(res, criterion).conf_int(alpha, cols)
