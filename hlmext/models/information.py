"""Standard errors of variance parameters, Wald and likelihood-ratio tests, ICC.

Variance parameters are reported as standard deviations and correlations. Their
standard errors come from the observed information of the (profiled) log-likelihood
on the scale ``phi`` = (log sd, atanh corr): for linear models, from differences of
the analytic gradient in ``(theta, sigma)`` carried to ``phi`` by the delta method
(``cov_from_gradient``); otherwise (GLMMs, boundary fits) from central second
differences of the cheap objective. They are carried back to sd's by the delta method; 95% intervals are
computed on the ``phi`` scale and transformed back, as Stata does. Parameters on the
boundary (an sd at zero, a correlation at +-1) get no standard error: the usual
asymptotics do not hold there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

BOUNDARY_TOL = 1e-4


def to_phi(values, is_corr):
    """(log sd, atanh corr) of reported values."""
    values = np.asarray(values, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(is_corr, np.arctanh(values), np.log(values))


def from_phi(phi, is_corr):
    phi = np.asarray(phi, float)
    return np.where(is_corr, np.tanh(phi), np.exp(phi))


def hessian(fun, x, step=1e-4):
    """Central finite-difference Hessian of a scalar function."""
    x = np.asarray(x, float)
    k = x.size
    h = np.full(k, step)
    f0 = fun(x)
    H = np.zeros((k, k))
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = h[i]
        H[i, i] = (fun(x + ei) - 2 * f0 + fun(x - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(k)
            ej[j] = h[j]
            H[i, j] = H[j, i] = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej)
                                 + fun(x - ei - ej)) / (4 * h[i] * h[j])
    return H


def derivative_matrix(fun, x, steps):
    """Jacobian of a vector function by the five-point central stencil (error O(h^4)).

    Used on analytic gradients (giving a Hessian) and on smooth reparametrizations, where
    it is accurate to about 1e-10 relative, far beyond second differences of a deviance.
    """
    x = np.asarray(x, float)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = steps[i]
        cols.append((fun(x - 2 * e) - 8 * fun(x - e) + 8 * fun(x + e) - fun(x + 2 * e)) / (12 * steps[i]))
    return np.column_stack(cols) if cols else np.zeros((0, 0))


def cov_from_gradient(gradient, x, to_phi_of_x, steps):
    """``cov_phi`` of the reported parameters from the analytic gradient of a deviance in ``x``.

    ``H`` is the Jacobian of ``gradient`` at the optimum ``x``, ``cov_x = 2 H^{-1}``, and
    ``cov_phi = J cov_x J'`` with ``J`` the Jacobian of the map from ``x`` to ``phi``
    (exact at an optimum, where the gradient vanishes). NaN where ``H`` is not positive
    definite.
    """
    return cov_from_hessian(derivative_matrix(gradient, x, steps), x, to_phi_of_x, steps)


def cov_from_hessian(H, x, to_phi_of_x, steps):
    """``cov_phi = J (2 H^{-1}) J'`` for the Hessian ``H`` of a deviance in ``x`` (see ``cov_from_gradient``)."""
    H = 0.5 * (H + H.T)
    try:
        np.linalg.cholesky(H)
        cov_x = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full(H.shape, np.nan)
    J = derivative_matrix(to_phi_of_x, x, steps)
    return J @ cov_x @ J.T


def boundary_mask(values, is_corr, scale):
    """True where a reported parameter is on the boundary of its space.

    ``scale`` gives, per reported sd, the size below which it counts as zero (the
    residual sd over the root mean square of its design column times ``BOUNDARY_TOL``).
    """
    values = np.asarray(values, float)
    out = np.zeros(values.shape, dtype=bool)
    sd = ~is_corr
    out[sd] = values[sd] < scale[sd] * BOUNDARY_TOL
    out[is_corr] = ~np.isfinite(values[is_corr]) | (np.abs(values[is_corr]) > 1 - 1e-6)
    return out


def delta_cov(objective, values, is_corr, fixed):
    """Covariance of the reported parameters from the Hessian of ``objective`` (a deviance).

    Parameters
    ----------
    objective : callable
        -2 log-likelihood as a function of the full vector of reported values.
    values : ndarray
        Reported values at the optimum.
    is_corr : bool ndarray
    fixed : bool ndarray
        Parameters held at their value (boundary): rows and columns of NaN.

    Returns
    -------
    cov_report, cov_phi : ndarray (k, k)
    """
    k = values.size
    free = ~fixed
    phi0 = to_phi(values[free], is_corr[free])

    def f(phi):
        v = values.copy()
        v[free] = from_phi(phi, is_corr[free])
        return objective(v)

    cov_phi = np.full((k, k), np.nan)
    cov_rep = np.full((k, k), np.nan)
    if free.any():
        H = hessian(f, phi0)
        try:
            c = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            c = np.full(H.shape, np.nan)
        if not np.all(np.isfinite(c)) or np.any(np.diag(c) <= 0):
            c = np.full(H.shape, np.nan)
        jac = np.where(is_corr[free], 1 - values[free] ** 2, values[free])
        idx = np.flatnonzero(free)
        cov_phi[np.ix_(idx, idx)] = c
        cov_rep[np.ix_(idx, idx)] = c * np.outer(jac, jac)
    return cov_rep, cov_phi


def re_table(names, values, cov_phi, is_corr, alpha=0.05):
    """Estimate, SE and CI (on the log-sd / atanh-corr scale) of reported parameters."""
    z = stats.norm.ppf(1 - alpha / 2)
    se_phi = np.sqrt(np.diag(cov_phi))
    phi = to_phi(values, is_corr)
    jac = np.where(is_corr, 1 - values ** 2, values)
    return pd.DataFrame({"estimate": values, "se": se_phi * np.abs(jac),
                         "lower": from_phi(phi - z * se_phi, is_corr),
                         "upper": from_phi(phi + z * se_phi, is_corr)}, index=pd.Index(names, name="parameter"))


def wald_chi2(beta, cov, names):
    """Wald chi2 that all fixed effects but the intercept are zero: (stat, df, p)."""
    keep = [i for i, n in enumerate(names) if n not in ("Intercept", "_cons", "const")]
    if not keep:
        return None
    b = beta[keep]
    c = cov[np.ix_(keep, keep)]
    stat = float(b @ np.linalg.solve(c, b))
    return stat, len(keep), float(stats.chi2.sf(stat, len(keep)))


@dataclass
class LRTest:
    """A likelihood-ratio test, printed the way Stata prints it."""

    statistic: float
    df: int
    pvalue: float
    kind: str                 # "chibar2(01)", "chi2(k)"
    conservative: bool
    versus: str = ""

    def __post_init__(self):          # plain Python numbers: a readable repr
        self.statistic, self.df, self.pvalue = float(self.statistic), int(self.df), float(self.pvalue)
        self.conservative = bool(self.conservative)

    def __str__(self):
        if self.kind.startswith("chibar2"):
            return "LR test vs. %s: %s = %.2f   Prob >= chibar2 = %.4f" % (
                self.versus, self.kind, self.statistic, self.pvalue)
        text = "LR test vs. %s: chi2(%d) = %.2f   Prob > chi2 = %.4f" % (
            self.versus, self.df, self.statistic, self.pvalue)
        if self.conservative:
            text += "\nNote: LR test is conservative and provided only for reference."
        return text


def boundary_lr_test(llf_big, llf_small, df, versus, n_boundary=None):
    """LR test of variance components whose null value is on the boundary.

    One variance component (``df == 1``): the statistic is a 50:50 mixture of chi2(0)
    and chi2(1) (Self & Liang 1987), so the p-value is half the chi2(1) tail (Stata's
    ``chibar2(01)``). Several: chi2(df), conservative.
    """
    stat = max(2.0 * (llf_big - llf_small), 0.0)
    if df == 1:
        return LRTest(stat, 1, 0.5 * float(stats.chi2.sf(stat, 1)) if stat > 0 else 1.0,
                      "chibar2(01)", False, versus)
    return LRTest(stat, df, float(stats.chi2.sf(stat, df)), "chi2(%d)" % df, True, versus)


def icc_table(var_levels, var_resid, cov_var, level_names, alpha=0.05):
    """Level-specific intraclass correlations with delta-method CIs on the logit scale.

    Parameters
    ----------
    var_levels : ndarray (L,)
        Random-intercept variances, outermost level first.
    var_resid : float
    cov_var : ndarray (L+1, L+1)
        Covariance of (var_levels..., var_resid).
    level_names : list of str
        Outermost first. The ICC of level l is the correlation of two observations in
        the same cluster of level l (and so of every outer level): the sum of the
        variances from the outermost level down to l over the total (Stata ``estat icc``).
    """
    z = stats.norm.ppf(1 - alpha / 2)
    total = var_levels.sum() + var_resid
    rows, labels = [], []
    for l in range(len(var_levels)):
        num = var_levels[:l + 1].sum()
        icc = num / total
        grad = np.full(len(var_levels) + 1, -num / total ** 2)
        grad[:l + 1] += 1.0 / total
        se = float(np.sqrt(grad @ cov_var @ grad)) if np.all(np.isfinite(cov_var)) else np.nan
        lg = np.log(icc / (1 - icc))
        se_lg = se / (icc * (1 - icc))
        lo, hi = 1 / (1 + np.exp(-(lg - z * se_lg))), 1 / (1 + np.exp(-(lg + z * se_lg)))
        rows.append((icc, se, lo, hi))
        labels.append("|".join(level_names[:l + 1][::-1]))
    return pd.DataFrame(rows, index=pd.Index(labels, name="level"), columns=["icc", "se", "lower", "upper"])
