"""Plain-NumPy twins of the compiled kernels: the executable specification.

Each function computes from dense matrices what a kernel in ``_core.pyx`` computes by
blocked elimination; the tests compare the two on random clusters. Only for small data.
"""
import numpy as np


def cross_products(W, zoff, level_first, row_start, row_end):
    """List over clusters of ``Z_lk' [Z_l ... X y]_k`` (twin of ``_core.cross_products``)."""
    out = []
    for lev in range(len(zoff) - 1):
        z0, z1 = zoff[lev], zoff[lev + 1]
        for k in range(level_first[lev], level_first[lev + 1]):
            rows = W[row_start[k]:row_end[k]]
            out.append(rows[:, z0:z1].T @ rows[:, z0:])
    return out


def dense_z(design):
    """The full random-effects design: one column block per group, levels in core order."""
    blocks = []
    for i, lev in enumerate(design.levels):
        z = design.z_of(i)
        for g in range(lev.n_groups):
            blocks.append(z * (lev.codes == g)[:, None])
    return np.hstack(blocks)


def deviance_parts(design, lams):
    """Dense penalized least squares for given per-level factors ``lams`` (core order).

    Returns ``logdet`` = log det(Lambda'Z'Z Lambda + I), ``logdet_rx`` = log det(RX'RX),
    ``prss`` (penalized residual sum of squares), ``beta`` and the spherical modes ``u``
    (group by group, levels in core order).
    """
    Q = design.zoff[-1]
    W = design.W
    X, y = W[:, Q:-1], W[:, -1]
    Z = dense_z(design)
    lam_blocks = []
    for lev, lam in zip(design.levels, lams):
        lam_blocks += [lam] * lev.n_groups
    lam = _block_diag(lam_blocks)
    ZL = Z @ lam
    A = ZL.T @ ZL + np.eye(ZL.shape[1])
    logdet = np.linalg.slogdet(A)[1]
    Ainv_ZLX = np.linalg.solve(A, ZL.T @ X)
    rx = X.T @ X - (ZL.T @ X).T @ Ainv_ZLX
    logdet_rx = np.linalg.slogdet(rx)[1]
    full = np.block([[A, ZL.T @ X], [X.T @ ZL, X.T @ X]])
    rhs = np.concatenate([ZL.T @ y, X.T @ y])
    sol = np.linalg.solve(full, rhs)
    u, beta = sol[:ZL.shape[1]], sol[ZL.shape[1]:]
    resid = y - X @ beta - ZL @ u
    prss = resid @ resid + u @ u
    return logdet, logdet_rx, prss, beta, u


def _block_diag(blocks):
    n = sum(b.shape[0] for b in blocks)
    out = np.zeros((n, n))
    k = 0
    for b in blocks:
        out[k:k + b.shape[0], k:k + b.shape[0]] = b
        k += b.shape[0]
    return out
