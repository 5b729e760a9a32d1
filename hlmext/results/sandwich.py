"""Robust (sandwich) covariance of all parameters, clustered at the top level.

For a (pseudo-)log-likelihood that is a sum over the top-level clusters,
``l(x) = sum_k l_k(x)``, in the parametrization ``x = (beta, phi)`` with
``phi = (log sd, atanh corr)`` (the scale of the Wald intervals of the summary),

    V = H^{-1} B H^{-1},    H = -d2 l / dx dx',    B = c sum_k s_k s_k',   s_k = d l_k / dx,

with ``c = G / (G - 1)`` (``"CR1"``, Stata's ``vce(robust)`` / ``vce(cluster)``) or 1
(``"CR0"``). The scores ``s_k`` and ``H`` are central finite differences of the vector
of cluster contributions, which the linear model computes from its per-cluster
statistics (``lmm_cluster_loglik``) and the generalized models from their per-cluster
integrals (``glmm_cluster_loglik``). With sampling weights ``l_k`` is cluster k's
weighted contribution (Rabe-Hesketh & Skrondal 2006, JRSS-A 169:805).
"""
from __future__ import annotations

import numpy as np

from .._kernels import glmm as _glmm
from ..models import information as inference
from ..exceptions import ModelError
from ..models.factorization import LOG2PI


def robust_cov(contrib, x0, steps, correction="CR1"):
    """Sandwich covariance of ``x`` from the cluster contributions ``contrib(x)`` (a (G,) array).

    Parameters
    ----------
    contrib : callable
        ``x -> ndarray (G,)``: each top-level cluster's log-likelihood contribution.
    x0 : ndarray (k,)
        The estimates.
    steps : ndarray (k,)
        Finite-difference steps.
    correction : {"CR1", "CR0"}

    Returns
    -------
    ndarray (k, k)
        ``H^{-1} B H^{-1}`` (NaN if ``H`` is not positive definite).

    Examples
    --------
    Independent normal observations, one per cluster: the sandwich of the mean is the
    (CR0) robust variance ``sum (y - ybar)^2 / n^2``.

    >>> import numpy as np
    >>> y = np.array([1.0, 2.0, 4.0, 7.0])
    >>> v = robust_cov(lambda x: -0.5 * (y - x[0]) ** 2, np.array([y.mean()]), np.array([1e-3]), "CR0")
    >>> round(float(v[0, 0]), 6), round(float(np.sum((y - y.mean()) ** 2) / 16), 6)
    (1.3125, 1.3125)
    """
    x0 = np.asarray(x0, float)
    k = x0.size
    f0 = np.asarray(contrib(x0), float)
    scores = np.empty((f0.size, k))
    H = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = steps[i]
        fp, fm = np.asarray(contrib(x0 + e)), np.asarray(contrib(x0 - e))
        scores[:, i] = (fp - fm) / (2 * steps[i])
        H[i, i] = -(fp.sum() - 2 * f0.sum() + fm.sum()) / steps[i] ** 2
    for i in range(k):
        for j in range(i):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = steps[i], steps[j]
            d = (np.sum(contrib(x0 + ei + ej)) - np.sum(contrib(x0 + ei - ej)) - np.sum(contrib(x0 - ei + ej))
                 + np.sum(contrib(x0 - ei - ej)))
            H[i, j] = H[j, i] = -d / (4 * steps[i] * steps[j])
    G = f0.size
    if G < 2:
        raise ModelError("robust standard errors need at least two top-level clusters")
    meat = scores.T @ scores * (G / (G - 1) if correction == "CR1" else 1.0)
    try:
        Hinv = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full((k, k), np.nan)
    if not np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) > 0):
        return np.full((k, k), np.nan)
    return Hinv @ meat @ Hinv


def to_report(cov_x, p, values, is_corr, fixed):
    """Covariances of (beta, reported values) and of phi, from the covariance of (beta, phi_free)."""
    k = values.size
    idx = np.concatenate([np.arange(p), p + np.flatnonzero(~fixed)])
    full = np.full((p + k, p + k), np.nan)
    full[np.ix_(idx, idx)] = cov_x
    jac = np.concatenate([np.ones(p), np.where(is_corr, 1 - values ** 2, values)])
    return full * np.outer(jac, jac), full[p:, p:]


def phi_params(p, values, is_corr, fixed, to_model):
    """``x -> model parameters``: (beta, phi_free) mapped by ``to_model(beta, values)``."""
    free = ~fixed

    def of(x):
        v = values.copy()
        v[free] = inference.from_phi(x[p:], is_corr[free])
        return to_model(x[:p], v)
    return of, inference.to_phi(values[free], is_corr[free])


# --------------------------------------------------------------------------- linear model

def _top_index(design):
    """Top-level cluster of every chain cluster (core order)."""
    top = design.levels[design.n_chain - 1]
    return np.concatenate([top.codes[lv._starts] for lv in design.levels[:design.n_chain]])


def _top_raw(model):
    """Per top cluster: the weighted ``[X y]'[X y]`` of its rows and its sum of weights (cached)."""
    d = model.design
    cached = model.__dict__.get("_robust_top_raw")
    if cached is not None and cached[0] is d.W:      # a model refitted to a new response has its own W
        return cached[1:]
    top = d.levels[d.n_chain - 1]
    xy = d.W[:, d.zoff[-1]:]
    w = np.ones(d.nobs) if d.weights is None else d.weights
    starts = top._starts
    m = xy.shape[1]
    raw = np.empty((top.n_groups, m, m))
    for a in range(m):
        wa = w * xy[:, a]
        for b in range(a + 1):
            raw[:, a, b] = raw[:, b, a] = np.add.reduceat(wa * xy[:, b], starts)
    model._robust_top_raw = (d.W, raw, np.add.reduceat(w, starts))
    return model._robust_top_raw[1:]


def lmm_cluster_loglik(model, beta, theta, sigma):
    """Each top-level cluster's (weighted) log-likelihood contribution at (beta, theta, sigma).

    From the factorization at ``theta``: cluster c's log-determinant term ``t_c`` and its
    eliminated rows ``R_c`` in the ``[X y]`` columns give, per top cluster k,
    ``Q_k = [X y]_k' W_k [X y]_k - sum_{c in k} R_c' R_c``, so that

        l_k = -1/2 [ n_k log(2 pi sigma^2) + sum_{c in k} t_c + v' Q_k v / sigma^2 ],  v = (beta, -1)

    with ``n_k`` the sum of the weights of its rows; ``sum_k l_k`` is the log-likelihood.

    Returns
    -------
    ndarray (G,), ``-inf`` everywhere where the system is not positive definite.
    """
    d = model.design
    f = model.factorize(theta)
    top = d.levels[d.n_chain - 1]
    if not f.ok:
        return np.full(top.n_groups, -np.inf)
    raw, n_k = _top_raw(model)
    cw = model._cweight
    tops = _top_index(d)
    logdet = np.zeros(top.n_groups)
    Q = raw.copy()
    m = d.m - d.zoff[-1]
    for l, lv in enumerate(d.levels[:d.n_chain]):
        q, D = lv.q, d.m - d.zoff[l]
        k0 = lv.first
        blk = f.work[d.stat_off[k0]:d.stat_off[k0] + lv.n_groups * q * D].reshape(lv.n_groups, q, D)
        t = 2 * np.log(np.abs(np.diagonal(blk[:, :, :q], axis1=1, axis2=2))).sum(axis=1)
        if cw is not None:
            c = cw[k0:k0 + lv.n_groups]
            t = c * (t - q * np.log(c))
        R = blk[:, :, D - m:]
        np.add.at(logdet, tops[k0:k0 + lv.n_groups], t)
        np.add.at(Q, tops[k0:k0 + lv.n_groups], -np.einsum("gai,gaj->gij", R, R))
    b = np.asarray(beta, float).copy()
    if d.intercept_col >= 0:
        b[d.intercept_col] -= d.y_shift
    v = np.append(b, -1.0)
    pwrss = np.einsum("i,gij,j->g", v, Q, v)
    return -0.5 * (n_k * (LOG2PI + 2 * np.log(sigma)) + logdet + pwrss / sigma ** 2)


def lmm_robust(model, beta, values, is_corr, fixed, cov_fe, correction):
    """Sandwich covariance of (beta, reported values) and of phi for an ML fit of a linear model."""
    d = model.design
    if d.qd:
        raise ModelError("robust standard errors need nested levels: with crossed factors the clusters are "
                         "not defined")
    if not d.has_rows:
        raise ModelError("robust standard errors need the rows; fit from a DataFrame")
    p = beta.size

    def to_model(b, v):
        theta, sigma = model.theta_from_report(v)
        return b, theta, sigma
    of, phi0 = phi_params(p, values, is_corr, fixed, to_model)
    se = np.sqrt(np.abs(np.diag(cov_fe))) if p else np.zeros(0)
    steps = np.concatenate([1e-3 * np.where(se > 0, se, 1.0), np.full(phi0.size, 1e-4)])
    cov_x = robust_cov(lambda x: lmm_cluster_loglik(model, *of(x)), np.concatenate([beta, phi0]), steps,
                       correction)
    return to_report(cov_x, p, values, is_corr, fixed)


# --------------------------------------------------------------------------- generalized models

def glmm_cluster_loglik(model, beta, theta, nagq):
    """Each top-level cluster's (weighted) log-likelihood contribution (Laplace for nested levels).

    One level: the kernel's per-cluster integrals. Nested levels: the Laplace approximation
    ``h(u) - 1/2 log det H`` split by top-level cluster from the kernel's work arrays at the
    mode: every row's log density, every cluster's prior term and its log-determinant term.
    """
    d = model.design
    if d.qd:
        raise ModelError("robust standard errors need nested levels: with crossed factors the clusters are "
                         "not defined")
    ll = model._kernel(np.asarray(beta, float), np.asarray(theta, float), nagq, False)
    if not model.nested:
        if not np.isfinite(ll):
            return np.full(model._ll.size, -np.inf)
        out = model._ll + model._const_by_cluster
        return out * model._cweight if model._cweight is not None else out
    top = d.levels[d.n_chain - 1]
    if not np.isfinite(ll):
        return np.full(top.n_groups, -np.inf)
    eta = model._eta
    rows = _glmm.row_values(model._kernel_family, model._ky, model._kn, eta)[0]
    out = np.bincount(top.codes, weights=rows + model._row_const, minlength=top.n_groups)
    tops = _top_index(d)
    t = model._tree
    pen = np.ones(d.n_u) if model._pen is None else model._pen
    for l, lv in enumerate(d.levels[:d.n_chain]):
        q, D = lv.q, t["zoff"][-1] - t["zoff"][l] + 1
        k0, G = lv.first, lv.n_groups
        start = t["blk_off"][k0]
        blk = model._S[start:start + G * q * D].reshape(G, q, D)
        a = pen[d.u_off[k0]:d.u_off[k0] + G * q].reshape(G, q)
        u = model._u[d.u_off[k0]:d.u_off[k0] + G * q].reshape(G, q)
        diag = np.diagonal(blk[:, :, :q], axis1=1, axis2=2)
        term = -0.5 * np.sum(a * u * u, axis=1) - 0.5 * np.sum(a * (2 * np.log(diag) - np.log(a)), axis=1)
        out += np.bincount(tops[k0:k0 + G], weights=term, minlength=top.n_groups)
    return out


def glmm_robust(model, beta, values, is_corr, fixed, nagq, se_glm, correction):
    """Sandwich covariance of (beta, reported values) and of phi for a generalized mixed fit.

    A family with a dispersion parameter (``MixedFamily``: Gamma, Gaussian, negative
    binomial, ...) has its log dispersion as a further coordinate of ``x``: its scores and
    its rows of ``H`` enter the sandwich (profiling it out would leave its variability
    out). Its robust variance is left in the model's work buffers for the dispersion rows
    (``MixedFamily.dispersion_table``).
    """
    p = beta.size
    of, phi0 = phi_params(p, values, is_corr, fixed, lambda b, v: (b, model.theta_from_report(v)))
    steps = np.concatenate([1e-3 * se_glm, np.full(phi0.size, 1e-4)])
    x0 = np.concatenate([beta, phi0])
    contrib = lambda x: glmm_cluster_loglik(model, *of(x), nagq)      # noqa: E731
    spec = getattr(model, "spec", None)
    if spec is not None and spec.dispersion:
        log_phi = model._fitted_or_profiled(beta, model.theta_from_report(values), nagq)

        def contrib(x):
            model._set_log_phi(x[-1])
            return glmm_cluster_loglik(model, *of(x[:-1]), nagq)
        x0, steps = np.append(x0, log_phi), np.append(steps, 1e-4)
    cov_x = robust_cov(contrib, x0, steps, correction)
    if x0.size > p + phi0.size:
        model._set_log_phi(x0[-1])
        model._buffers.get(model).dispersion_variance = float(cov_x[-1, -1])
        cov_x = cov_x[:-1, :-1]
    return to_report(cov_x, p, values, is_corr, fixed)
