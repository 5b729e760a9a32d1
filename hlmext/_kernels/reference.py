"""Plain-NumPy twins of the compiled kernels: the executable specification.

Each function computes from dense matrices what a kernel in ``_core.pyx`` computes by
blocked elimination; the tests compare the two on random clusters. Only for small data.
"""
import numpy as np


def counting_order(codes):
    """``(order, rank)``: rows stably sorted by ``codes`` and the inverse permutation
    (twin of ``row_order.counting_order``)."""
    order = np.argsort(codes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return order, rank


def scatter_rows(src, rank, W, col0):
    """``W[rank, col0:]`` filled from the rows of ``src``; the count of NaN or inf read
    (twin of ``row_order.scatter_rows``)."""
    W[rank, col0:col0 + src.shape[1]] = src
    return int(np.sum(~np.isfinite(src)))


def cross_products(W, zoff, level_first, row_start, row_end):
    """List over clusters of ``Z_lk' [Z_l ... X y]_k`` (twin of ``_core.cross_products``)."""
    out = []
    for lev in range(len(zoff) - 1):
        z0, z1 = zoff[lev], zoff[lev + 1]
        for k in range(level_first[lev], level_first[lev + 1]):
            rows = W[row_start[k]:row_end[k]]
            out.append(rows[:, z0:z1].T @ rows[:, z0:])
    return out


def crossed_coupling(design):
    """Every chain cluster's coupling to the crossed block from dense matrices: per cluster, the
    columns of ``D`` its rows touch (every column of a touched group) and ``Z_k' D`` on them
    (twin of ``design.sparse_coupling.pattern`` and ``_crossed.add_coupling``)."""
    chain = design.levels[0]
    Zc = design.z_of(0)
    D = np.hstack([design.z_of(design.n_chain + j) * (lv.codes == g)[:, None]
                   for j, lv in enumerate(design.crossed) for g in range(lv.n_groups)])
    out = []
    for k in range(chain.n_groups):
        rows = slice(design.row_start[k], design.row_end[k])
        touched = np.zeros(D.shape[1], dtype=bool)
        for lv in design.crossed:
            for g in np.unique(lv.codes[rows]):
                touched[lv.doff + g * lv.q:lv.doff + (g + 1) * lv.q] = True
        cols = np.flatnonzero(touched)
        out.append((cols, (Zc[rows].T @ D[rows])[:, cols]))
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


def pseudo_deviance_parts(design, lams, row_weights, level_weights):
    """Pseudo-likelihood of a nested chain by elimination with relative weights (sampling weights).

    An independent route to what ``_core.factorize`` computes with ``cweight``: every
    cluster's quadratic form over [own Z Lambda | ancestors' Z Lambda | X | y] is the sum of
    its rows' (``row_weights``: the observation weights) or its children's Schur
    complements, each child's scaled by the child's own weight (``level_weights``, one per
    cluster in core order); the log-determinants add up the same way, and the top
    clusters' ``[X y]`` Schur complements, scaled by their weights, form the global block.
    Returns ``logdet`` (weighted), ``prss``, ``beta`` (centred y) and the effective n.
    """
    d = design
    W = d.W
    cols = [W[:, d.zoff[l]:d.zoff[l + 1]] @ lam for l, lam in enumerate(lams)]
    xy = W[:, d.zoff[-1]:]
    forms, dets = {}, {}
    for l in range(d.n_chain):
        for k in range(d.level_first[l], d.level_first[l + 1]):
            rows = slice(d.row_start[k], d.row_end[k])
            if l == 0:
                r = np.hstack([c[rows] for c in cols[l:]] + [xy[rows]])
                A = r.T @ (row_weights[rows, None] * r)
                inner = 0.0
            else:
                A, inner = forms.pop(k), dets.pop(k)
            q = cols[l].shape[1]
            M = A[:q, :q] + np.eye(q)
            S = A[q:, q:] - A[q:, :q] @ np.linalg.solve(M, A[:q, q:])
            total = inner + np.linalg.slogdet(M)[1]
            parent = d.parent[k] if l + 1 < d.n_chain else -1
            forms[parent] = forms.get(parent, 0.0) + level_weights[k] * S
            dets[parent] = dets.get(parent, 0.0) + level_weights[k] * total
    G = forms[-1]
    p = G.shape[0] - 1
    beta = np.linalg.solve(G[:p, :p], G[:p, p])
    prss = G[p, p] - G[p, :p] @ beta
    n_eff = float(np.sum(row_weights * _row_cluster_product(d, level_weights)))
    return dets[-1], prss, beta, n_eff


def _row_cluster_product(d, level_weights):
    """Product of the weights of every row's clusters (all chain levels)."""
    out = np.ones(d.W.shape[0])
    for l in range(d.n_chain):
        for k in range(d.level_first[l], d.level_first[l + 1]):
            out[d.row_start[k]:d.row_end[k]] *= level_weights[k]
    return out


def _block_diag(blocks):
    n = sum(b.shape[0] for b in blocks)
    out = np.zeros((n, n))
    k = 0
    for b in blocks:
        out[k:k + b.shape[0], k:k + b.shape[0]] = b
        k += b.shape[0]
    return out


# --------------------------------------------------------------------------- GLMM (_glmm.pyx)

def glmm_row_loglik(family, y, ntr, eta):
    """``y eta - b(eta)`` per row: 0 binomial-logit (b = n log(1 + e^eta)), 1 Poisson (b = e^eta)."""
    if family == 0:
        return y * eta - ntr * np.logaddexp(0.0, eta)
    return y * eta - np.exp(eta)


def glmm_mode(family, ZL, y, ntr, eta0, tol=1e-12):
    """Mode of h(u) = sum_i loglik_i(eta0 + ZL u) - |u|^2/2 by plain Newton; (u, h, H)."""
    u = np.zeros(ZL.shape[1])
    for _ in range(200):
        eta = eta0 + ZL @ u
        mu = ntr / (1 + np.exp(-eta)) if family == 0 else np.exp(eta)
        w = mu * (1 - mu / ntr) if family == 0 else mu
        H = ZL.T @ (w[:, None] * ZL) + np.eye(ZL.shape[1])
        step = np.linalg.solve(H, ZL.T @ (y - mu) - u)
        def h(v):
            return glmm_row_loglik(family, y, ntr, eta0 + ZL @ v).sum() - v @ v / 2
        t = 1.0
        while h(u + t * step) < h(u) - 1e-12 and t > 1e-10:
            t /= 2
        u = u + t * step
        if np.max(np.abs(step)) < tol:
            break
    eta = eta0 + ZL @ u
    mu = ntr / (1 + np.exp(-eta)) if family == 0 else np.exp(eta)
    w = mu * (1 - mu / ntr) if family == 0 else mu
    H = ZL.T @ (w[:, None] * ZL) + np.eye(ZL.shape[1])
    return u, glmm_row_loglik(family, y, ntr, eta).sum() - u @ u / 2, H


def glmm_laplace(family, ZL, y, ntr, eta0):
    """Laplace log-likelihood h(u) - 1/2 log det H of one dense system (one cluster, or a
    whole nested model with ZL = Z Lambda), without the data constants."""
    u, h, H = glmm_mode(family, ZL, y, ntr, eta0)
    return h - 0.5 * np.linalg.slogdet(H)[1]


def glmm_aghq(family, ZL, y, ntr, eta0, nagq):
    """Adaptive Gauss-Hermite log-likelihood of one cluster (product rule, nagq per dimension)."""
    u, h, H = glmm_mode(family, ZL, y, ntr, eta0)
    q = ZL.shape[1]
    x, w = np.polynomial.hermite.hermgauss(nagq)
    nodes = np.array(np.meshgrid(*[x] * q, indexing="ij")).reshape(q, -1).T
    weights = np.prod(np.array(np.meshgrid(*[w] * q, indexing="ij")).reshape(q, -1), axis=0)
    Linv_t = np.linalg.inv(np.linalg.cholesky(H)).T
    total = 0.0
    for xk, wk in zip(nodes, weights):
        uk = u + np.sqrt(2) * Linv_t @ xk
        hk = glmm_row_loglik(family, y, ntr, eta0 + ZL @ uk).sum() - uk @ uk / 2
        total += wk * np.exp(xk @ xk + hk - h)
    return h - 0.5 * np.linalg.slogdet(H)[1] + np.log(total / np.pi ** (q / 2))
