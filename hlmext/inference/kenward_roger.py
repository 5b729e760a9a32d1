"""Kenward-Roger inference for the fixed effects of a REML fit (pbkrtest's method).

The marginal covariance ``Sigma = sum_r phi_r G_r`` is linear in the variance-covariance
parameters ``phi`` (each level's variances and covariances, then the residual variance;
``Structure.cov_basis``). With ``Phi = (X' Sigma^-1 X)^-1``,

    P_r  = -X' Sigma^-1 G_r Sigma^-1 X,
    Q_rs =  X' Sigma^-1 G_r Sigma^-1 G_s Sigma^-1 X,
    I_rs = tr(Sigma^-1 G_r Sigma^-1 G_s) - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s),
    W = 2 I^-1,   U = sum_rs W_rs (Q_rs - P_r Phi P_s),   Phi_A = Phi + 2 Phi U Phi

(Kenward & Roger 1997, Biometrics 53:983; the second derivatives of ``Sigma`` vanish
because it is linear in ``phi``). ``Phi_A`` is the adjusted covariance of the fixed
effects; a contrast matrix gets the scaled F statistic and denominator df of Kenward &
Roger's approximation as Halekoh & Hojsgaard (2014, J. Stat. Softw. 59(9)) compute it.

Nested models: ``Sigma`` is block diagonal over the groups of the outermost level, so
every sum is taken group by group with dense blocks of that group's rows. Crossed factors
couple all rows: one block of every row (up to ``MAX_BLOCK`` rows).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg, stats

from ..exceptions import ModelError
from .satterthwaite import contrast_matrix, contrast_t_tests, t_table

MAX_BLOCK = 4000          # rows of one dense block of Sigma (memory: several n x n matrices)


class KenwardRoger:
    """The Kenward-Roger pieces at the optimum of a REML fit.

    Parameters
    ----------
    res : MixedResults
        A REML fit of a linear mixed model, in memory, without weights.

    Attributes
    ----------
    cov_beta : ndarray (p, p)
        ``Phi``: the usual covariance of the fixed effects.
    cov_beta_adj : ndarray (p, p)
        ``Phi_A``: the Kenward-Roger adjusted covariance.

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.kenward_roger import KenwardRoger
    >>> df = hlmext.datasets.load("oats")
    >>> res = hlmext.mixedlm("yld ~ nitro + C(Variety) + (1 | Block/Variety)", df).fit()
    >>> KenwardRoger(res).df(np.eye(4)).round(2)
    array([10.11, 10.  , 10.  , 53.  ])
    """

    def __init__(self, res):
        res = getattr(res, "_results", res)
        model = res.model
        d = model.design
        if not res.reml:
            raise ModelError("Kenward-Roger inference needs a REML fit (its information matrix is the REML one); "
                             "refit with reml=True, or use df='satterthwaite'")
        if not getattr(d, "has_rows", True):
            raise ModelError("Kenward-Roger inference needs the rows, and a fit from chunks keeps only their "
                             "statistics; use df='satterthwaite'")
        if d.weights is not None or getattr(model, "sampling", None) is not None:
            raise ModelError("Kenward-Roger inference is not available with weights; use df='satterthwaite' "
                             "(frequency weights) or the robust standard errors (sampling weights)")
        sigma2 = float(res.scale)
        psis = [sigma2 * lam @ lam.T for lam in model.lams(res.theta)]
        basis = []
        for i, lv in enumerate(d.levels):
            off = 0
            for structure, _ in lv.cov.blocks:
                basis += [(i, slice(off, off + structure.q), b) for b in structure.cov_basis()]
                off += structure.q
        k, p = len(basis) + 1, d.k_fe
        self._xsx = np.zeros((p, p))
        self._P = np.zeros((k, p, p))
        self._Q = np.zeros((k, k, p, p))
        self._K = np.zeros((k, k))
        for rows in _blocks(d):
            self._add_block(d, rows, sigma2, psis, basis)
        Phi = np.linalg.inv(self._xsx)
        self.cov_beta = 0.5 * (Phi + Phi.T)
        self.cov_beta_adj, self._W = self._adjusted(self.cov_beta)

    def _add_block(self, d, rows, sigma2, psis, basis):
        """Add one diagonal block of ``Sigma`` (the rows of one outermost group) to the sums."""
        X = d.exog[rows]
        n = X.shape[0]
        Z = [np.asarray(d.z_of(i)[rows]) for i in range(len(d.levels))]
        same = [np.equal.outer(lv.codes[rows], lv.codes[rows]) for lv in d.levels]
        S = sigma2 * np.eye(n)
        for z, psi, mask in zip(Z, psis, same):
            S += (z @ psi @ z.T) * mask
        G = [(Z[i][:, cols] @ b @ Z[i][:, cols].T) * same[i] for i, cols, b in basis] + [np.eye(n)]
        S_inv = linalg.cho_solve(linalg.cho_factor(S, lower=True), np.eye(n))
        T = S_inv @ X
        H = [g @ S_inv for g in G]
        O = [g @ T for g in G]
        SO = [S_inv @ o for o in O]
        self._xsx += X.T @ T
        for r in range(len(G)):
            self._P[r] -= O[r].T @ T
            for s in range(r, len(G)):
                self._Q[r, s] += O[r].T @ SO[s]
                self._K[r, s] += np.sum(H[r].T * H[s])

    def _adjusted(self, Phi):
        """``(Phi_A, W)`` from the sums over the blocks."""
        P, Q, k = self._P, self._Q, self._P.shape[0]
        info = np.empty((k, k))
        for r in range(k):
            phi_p = Phi @ P[r]
            for s in range(r, k):
                info[r, s] = info[s, r] = (self._K[r, s] - 2.0 * np.sum(Phi * Q[r, s])
                                           + np.sum(phi_p * (P[s] @ Phi)))
        if np.min(np.abs(np.linalg.eigvalsh(info))) > 1e-10:
            W = 2.0 * np.linalg.inv(info)
        else:                                  # a parameter on the boundary, as pbkrtest
            W = 2.0 * np.linalg.pinv(info)
        W = 0.5 * (W + W.T)
        U = np.zeros_like(Phi)
        for r in range(k):
            for s in range(r + 1, k):
                U += W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
        U = U + U.T
        for r in range(k):
            U += W[r, r] * (Q[r, r] - P[r] @ Phi @ P[r])
        return Phi + 2.0 * Phi @ U @ Phi, W

    def _moments(self, L, q):
        """``(ddf, F scaling)`` of the contrasts ``L`` (q independent rows)."""
        Phi, P, W = self.cov_beta, self._P, self._W
        theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        u = [theta @ Phi @ P[r] @ Phi for r in range(P.shape[0])]
        a1 = a2 = 0.0
        for r in range(len(u)):
            for s in range(r, len(u)):
                e = 1.0 if r == s else 2.0
                a1 += e * W[r, s] * np.trace(u[r]) * np.trace(u[s])
                a2 += e * W[r, s] * np.sum(u[r] * u[s].T)
        b = (a1 + 6.0 * a2) / (2.0 * q)
        g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
        c1, c2, c3 = g / (3 * q + 2 * (1 - g)), (q - g) / (3 * q + 2 * (1 - g)), (q + 2 - g) / (3 * q + 2 * (1 - g))
        v0, v1, v2 = 1.0 + c1 * b, 1.0 - c2 * b, 1.0 - c3 * b
        v0 = 0.0 if abs(v0) < 1e-10 else v0
        ratio = 1.0 if abs(1.0 - a2 / q) < 1e-14 and abs(v1) < 1e-14 else (1.0 - a2 / q) / v1
        rho = ratio ** 2 * v0 / v2 / q
        ddf = 4.0 + (q + 2) / (q * rho - 1.0)
        scaling = 1.0 if abs(ddf - 2.0) < 1e-2 else ddf * (1.0 - a2 / q) / (ddf - 2.0)
        return ddf, scaling

    def df(self, L):
        """Denominator df of each row ``l`` of ``L`` (shape (m, p)) as a single contrast."""
        L = np.atleast_2d(np.asarray(L, float))
        return np.array([self._moments(row[None, :], 1)[0] for row in L])

    def f_test(self, L, b, r=None):
        """Kenward-Roger F test of ``L beta = r`` at the estimates ``b``: ``(F, q, ddf, p)``.

        ``F`` is the Wald statistic with ``Phi_A``, over q, times the scaling factor.
        """
        L = np.atleast_2d(np.asarray(L, float))
        q = np.linalg.matrix_rank(L)
        if q < L.shape[0]:
            raise ValueError("the %d contrasts are linearly dependent (rank %d); drop the redundant rows"
                             % (L.shape[0], q))
        diff = L @ b - (np.zeros(L.shape[0]) if r is None else np.asarray(r, float))
        wald = float(diff @ np.linalg.solve(L @ self.cov_beta_adj @ L.T, diff))
        ddf, scaling = self._moments(L, q)
        fvalue = scaling * wald / q
        return fvalue, q, ddf, float(stats.f.sf(fvalue, q, ddf))


def df_method(name):
    """``"satterthwaite"`` or ``"kenward-roger"`` from the names users write (Stata's ``kroger``,
    lmerTest's ``"Kenward-Roger"``)."""
    key = str(name).lower().replace("_", "-").replace(" ", "-")
    if key in ("satterthwaite", "satt"):
        return "satterthwaite"
    if key in ("kenward-roger", "kenwardroger", "kroger", "kr"):
        return "kenward-roger"
    raise ValueError("the df method must be 'satterthwaite' or 'kenward-roger', not %r" % (name,))


def t_test(res, r_matrix):
    """t tests of fixed-effect contrasts with Kenward-Roger adjusted SEs and df (lmerTest's
    ``contest1D(ddf = "Kenward-Roger")``).

    Parameters
    ----------
    res : MixedResults
        A REML fit.
    r_matrix : str, array_like or tuple
        As for statsmodels' ``t_test``: ``"lrt = 0"``, a matrix over ``params``, ``(R, q)``.

    Returns
    -------
    statsmodels.stats.contrast.ContrastResults
        ``sd`` from the adjusted covariance, ``df_denom`` one df per row.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("oats")
    >>> res = hlmext.mixedlm("yld ~ nitro + C(Variety) + (1 | Block/Variety)", df).fit()
    >>> tt = res.t_test("nitro = 0", df="kenward-roger")
    >>> round(float(tt.df_denom[0]), 2), round(float(tt.tvalue[0, 0]), 3)
    (53.0, 10.863)
    """
    res = getattr(res, "_results", res)
    L, q = contrast_matrix(res, r_matrix)
    kr = KenwardRoger(res)
    return contrast_t_tests(res, L, q, kr.cov_beta_adj, kr.df(L))


def f_test(res, r_matrix):
    """Kenward-Roger F test of several fixed-effect contrasts at once (pbkrtest's ``KRmodcomp``).

    The Wald statistic with the adjusted covariance, over the number of contrasts ``q``,
    times Kenward and Roger's scaling factor, against F(q, ddf).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("oats")
    >>> res = hlmext.mixedlm("yld ~ nitro + C(Variety) + (1 | Block/Variety)", df).fit()
    >>> ft = res.f_test("C(Variety)[T.Marvellous] = 0, C(Variety)[T.Victory] = 0", df="kenward-roger")
    >>> int(ft.df_num), round(float(ft.df_denom), 2), round(float(ft.fvalue), 4)
    (2, 10.0, 1.4853)
    """
    from statsmodels.stats.contrast import ContrastResults

    res = getattr(res, "_results", res)
    L, r = contrast_matrix(res, r_matrix)
    fvalue, q, ddf, _ = KenwardRoger(res).f_test(L, np.asarray(res.fe_params, float), r)
    return ContrastResults(F=fvalue, df_num=q, df_denom=ddf)


def _blocks(d):
    """Row ranges (sorted rows) of the diagonal blocks of ``Sigma``."""
    if d.qd:
        blocks = [slice(0, d.nobs)]
    else:
        top = d.levels[d.n_chain - 1]
        blocks = [slice(int(s), int(e)) for s, e in zip(top._starts, top._ends)]
    largest = max(b.stop - b.start for b in blocks)
    if largest > MAX_BLOCK:
        what = ("crossed factors couple all %d rows" % d.nobs if d.qd
                else "the largest group of %r has %d rows" % (d.levels[d.n_chain - 1].name, largest))
        raise ModelError("Kenward-Roger inference works with dense blocks of Sigma, and %s (at most %d); "
                         "use df='satterthwaite'" % (what, MAX_BLOCK))
    return blocks


def fe_table(res, alpha=0.05):
    """Fixed effects with Kenward-Roger adjusted SEs, df, t statistics, p-values and intervals.

    Returns
    -------
    pandas.DataFrame
        Columns ``coef, se, t, df, pvalue, lower, upper`` (what a summary table with
        ``dfmethod="kenward-roger"`` prints), as lmerTest's ``summary(ddf = "Kenward-Roger")``.
    """
    res = getattr(res, "_results", res)
    kr = KenwardRoger(res)
    return t_table(res.fe_params, np.sqrt(np.diag(kr.cov_beta_adj)), kr.df(np.eye(res.fe_params.size)), alpha)
