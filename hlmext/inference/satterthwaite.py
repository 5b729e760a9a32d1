"""Satterthwaite denominator degrees of freedom for fixed-effect contrasts (lmerTest's method).

For a contrast ``l' beta`` of a linear mixed model, with the variance parameters
``tau = (theta, sigma)`` (lmerTest's parameterization: the relative Cholesky factors and
the residual sd),

    C(tau) = sigma^2 (RX'RX)^{-1},   v(tau) = l' C(tau) l,
    A = Cov(tau_hat) = 2 H^{-1},     H = d^2 D / d tau d tau'  (D: -2 log-likelihood or REML criterion),
    df = 2 v^2 / (g' A g),           g_k = l' (dC / d tau_k) l

(Satterthwaite 1946; Kuznetsova, Brockhoff & Christensen 2017, J. Stat. Softw. 82(13),
sec. 3.2). ``H`` is the Jacobian of the analytic gradient of ``LinearMixed.deviance_at``
(beta profiled out; five-point differences) and ``dC/dtau_k`` central differences of ``C`` evaluated through
``model.factorize``: no n x n matrix is formed, each evaluation costs one factorization of
the small per-cluster blocks. As lmerTest does, ``H`` is inverted through its positive
eigenvalues (a Moore-Penrose inverse), so parameters on the boundary do not break it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import linalg, stats

from ..models.information import derivative_matrix
from ..stacklevel import user_stacklevel

EIGEN_TOL = 1e-8          # lmerTest's tolerance for zero / negative eigenvalues of H


class Satterthwaite:
    """The pieces of the Satterthwaite approximation at the optimum of a fit.

    Parameters
    ----------
    res : MixedResults
        A linear mixed-model fit (ML or REML: the criterion of the fit is used).

    Attributes
    ----------
    varpar : ndarray (k_re + 1,)
        ``(theta, sigma)`` at the optimum.
    cov_varpar : ndarray (k_re + 1, k_re + 1)
        ``2 H^+``: asymptotic covariance of ``varpar``.
    jacobian : ndarray (k_re + 1, p, p)
        ``dC/dtau_k``, ``C = sigma^2 (RX'RX)^{-1}``.
    cov_beta : ndarray (p, p)
        ``C`` at the optimum.
    rel_step : float
        Finite-difference step relative to each parameter (at least ``1e-2`` of its
        natural scale, for parameters at or near 0).

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.satterthwaite import Satterthwaite
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    >>> Satterthwaite(res).df([[0, 1]]).round(2)
    array([17.])
    """

    def __init__(self, res, rel_step=1e-3):
        res = getattr(res, "_results", res)
        model = self.model = res.model
        self.reml = res.reml
        self.varpar = np.concatenate([res.theta, [np.sqrt(res.scale)]])
        steps = rel_step * np.maximum(np.abs(self.varpar), 1e-2 * np.append(model.theta_scale(), self.varpar[-1]))
        hessian = derivative_matrix(self._gradient, self.varpar, steps)
        self.hessian = 0.5 * (hessian + hessian.T)
        w, v = np.linalg.eigh(self.hessian)
        if np.any(w < -EIGEN_TOL):
            warnings.warn("the Hessian of the deviance with respect to (theta, sigma) has %d negative "
                          "eigenvalue(s): the fit may not have converged; Satterthwaite df are unreliable"
                          % int(np.sum(w < -EIGEN_TOL)), stacklevel=user_stacklevel())
        pos = w > EIGEN_TOL
        self.cov_varpar = 2.0 * (v[:, pos] / w[pos]) @ v[:, pos].T
        self.cov_beta = self.cov_beta_at(self.varpar)
        jac = []
        for k, h in enumerate(steps):
            e = np.zeros_like(self.varpar)
            e[k] = h
            jac.append((self.cov_beta_at(self.varpar + e) - self.cov_beta_at(self.varpar - e)) / (2 * h))
        self.jacobian = np.array(jac)

    def _gradient(self, varpar):
        return self.model.deviance_at_and_gradient(varpar[:-1], varpar[-1], self.reml)[1]

    def cov_beta_at(self, varpar):
        """``C(tau) = sigma^2 (RX'RX)^{-1}`` at ``tau = (theta, sigma)``."""
        f = self.model.factorize(varpar[:-1])
        linv = linalg.solve_triangular(f.L_x, np.eye(f.L_x.shape[0]), lower=True)
        return varpar[-1] ** 2 * (linv.T @ linv)

    def df(self, L):
        """Denominator df of each row ``l`` of ``L`` (shape (m, p)): ``2 v^2 / (g' A g)``."""
        L = np.atleast_2d(np.asarray(L, float))
        var = np.einsum("ij,jk,ik->i", L, self.cov_beta, L)
        grad = np.einsum("ij,hjk,ik->ih", L, self.jacobian, L)
        denom = np.einsum("ih,hg,ig->i", grad, self.cov_varpar, grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 * var ** 2 / denom


def contrast_matrix(res, r_matrix):
    """``(L, q)`` of a statsmodels-style hypothesis (string, array or ``(R, q)``) on the fixed effects.

    An array may span all parameters (as ``params``) or the fixed effects only.
    """
    from patsy import DesignInfo
    res = getattr(res, "_results", res)
    names = list(res.model.exog_names) + res.model.report_names()
    p = res.model.k_fe
    if not isinstance(r_matrix, (str, tuple)) and np.ndim(r_matrix) in (1, 2) \
            and np.atleast_2d(r_matrix).shape[1] == p != len(names):
        R = np.atleast_2d(np.asarray(r_matrix, float))       # rows over the fixed effects only
        return R, np.zeros(R.shape[0])
    lc = DesignInfo(names).linear_constraint(r_matrix)       # what statsmodels' t_test does with patsy
    R = np.atleast_2d(np.asarray(lc.coefs, float))
    q = np.asarray(lc.constants, float).ravel()
    if R.shape[1] != len(names):
        raise ValueError("the contrast has %d columns; the model has %d parameters" % (R.shape[1], len(names)))
    if np.any(R[:, p:] != 0):
        raise ValueError("small-sample df (Satterthwaite, Kenward-Roger) are for contrasts of the fixed effects "
                         "only; the hypothesis involves variance parameters")
    return R[:, :p], q


def t_test(res, r_matrix):
    """t tests of fixed-effect contrasts with Satterthwaite df (lmerTest's ``contest1D``).

    Parameters
    ----------
    res : MixedResults
    r_matrix : str, array_like or tuple
        As for statsmodels' ``t_test``: ``"lrt = 0"``, a matrix over ``params``, ``(R, q)``.

    Returns
    -------
    statsmodels.stats.contrast.ContrastResults
        ``df_denom`` holds one df per row.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    >>> tt = res.t_test("Days = 0", df="satterthwaite")
    >>> round(float(tt.df_denom[0]), 2), round(float(tt.tvalue[0, 0]), 3)
    (17.0, 6.771)
    """
    res = getattr(res, "_results", res)
    L, q = contrast_matrix(res, r_matrix)
    sat = Satterthwaite(res)
    return contrast_t_tests(res, L, q, sat.cov_beta, sat.df(L))


def contrast_t_tests(res, L, q, cov_beta, df):
    """statsmodels' ``ContrastResults`` of the t tests ``L beta = q`` with the covariance
    ``cov_beta`` of the fixed effects and one denominator df per row."""
    from statsmodels.stats.contrast import ContrastResults
    effect = L @ np.asarray(res.fe_params, float)
    sd = np.sqrt(np.einsum("ij,jk,ik->i", L, cov_beta, L))
    t = (effect - q) / sd
    if L.shape[0] == 1:                             # statsmodels' shapes for one row: (1, 1)
        return ContrastResults(effect=effect, t=t[:, None], sd=sd[:, None], df_denom=df)
    return ContrastResults(effect=effect, t=t, sd=sd, df_denom=df)


def f_test(res, r_matrix):
    """F test of several fixed-effect contrasts at once with Satterthwaite df (lmerTest's ``contest``).

    With ``V = L C L' = P diag(d) P'`` (eigenvalues in decreasing order, those below
    ``sqrt(eps) d_1`` dropped: ``q`` remain), the rows of ``P'L`` are independent contrasts:
    ``F = sum_m (p_m' L b)^2 / d_m / q`` and each has Satterthwaite df ``nu_m``. The
    denominator df is ``2E / (E - q)`` with ``E = sum_m nu_m / (nu_m - 2)`` (Fai & Cornelius
    1996), 2 if any ``nu_m <= 2``, and ``nu_1`` for one contrast. A hypothesis ``L beta = r``
    is tested at ``b = beta - L^+ r``.

    Parameters
    ----------
    res : MixedResults
    r_matrix : str, array_like or tuple
        As for statsmodels' ``f_test``: ``"lrt = 0, schgend[T.2] = schgend[T.3]"``, a
        matrix over ``params``, or ``(R, q)``.

    Returns
    -------
    statsmodels.stats.contrast.ContrastResults
        ``fvalue``, ``df_num`` (q), ``df_denom`` and ``pvalue``.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    >>> ft = res.f_test("Intercept = 0, Days = 0", df="satterthwaite")
    >>> int(ft.df_num), round(float(ft.df_denom), 2)
    (2, 17.0)
    """
    from statsmodels.stats.contrast import ContrastResults
    res = getattr(res, "_results", res)
    L, r = contrast_matrix(res, r_matrix)
    sat = Satterthwaite(res)
    b = np.asarray(res.fe_params, float)
    if np.any(r != 0):
        b = b - np.linalg.pinv(L) @ r
    d, P = np.linalg.eigh(L @ sat.cov_beta @ L.T)
    d, P = d[::-1], P[:, ::-1]
    keep = d > max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    q = int(keep.sum())
    if q == 0:
        raise ValueError("the contrasts have no variance: nothing to test")
    PL = P[:, keep].T @ L
    fvalue = float(np.sum((PL @ b) ** 2 / d[keep]) / q)
    ddf = _f_denominator_df(sat.df(PL))
    return ContrastResults(F=fvalue, df_num=q, df_denom=ddf)


def _f_denominator_df(nu, tol=1e-8):
    """One df for q contrasts with Satterthwaite df ``nu`` (Fai & Cornelius 1996, as lmerTest)."""
    nu = np.asarray(nu, float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


def fe_table(res, alpha=0.05):
    """Fixed effects with t statistics, Satterthwaite df, p-values and t-based intervals.

    Returns
    -------
    pandas.DataFrame
        Columns ``coef, se, t, df, pvalue, lower, upper`` (what a summary table with
        ``dfmethod="satterthwaite"`` prints: ``t`` and ``P>|t|`` instead of ``z``).
    """
    res = getattr(res, "_results", res)
    sat = Satterthwaite(res)
    return t_table(res.fe_params, np.sqrt(np.diag(sat.cov_beta)), sat.df(np.eye(res.fe_params.size)), alpha)


def t_table(coef, se, df, alpha=0.05):
    """Coefficients with t statistics, p-values and intervals for the df given (a DataFrame)."""
    b = coef.to_numpy()
    t = b / se
    crit = stats.t.ppf(1 - alpha / 2, df)
    return pd.DataFrame({"coef": b, "se": se, "t": t, "df": df, "pvalue": 2 * stats.t.sf(np.abs(t), df),
                         "lower": b - crit * se, "upper": b + crit * se}, index=coef.index)
