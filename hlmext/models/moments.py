"""Moment estimates of every level's random-effects covariance: the optimizer's start.

With the OLS residuals ``e`` and, for a cluster ``k`` and any cluster ``g`` that shares rows
with it (itself, its ancestors and descendants, the crossed groups it meets),
``B_kg = Z_k'Z_g``,

    E[Z_k'e e'Z_k] ~ sum_g B_kg Sigma_g B_kg' + sigma^2 Z_k'Z_k,
    E[e'e]         ~ sum_k tr(Z_k'Z_k Sigma_k) + n sigma^2.

Summed over the clusters of each level these are linear equations in the levels'
covariances and ``sigma^2``, solved by least squares; every ``B_kg`` is already among the
per-cluster statistics (``_core``'s layout) or in the global block. The OLS residuals stand
in for the errors (their leverage is ignored), so the estimate is a start for Newton steps,
not a result.
"""
from __future__ import annotations

import numpy as np


def _pair(B):
    """Coefficients of the pairs (k, g) with blocks ``B`` (pairs x qk x qg): the equation of
    k's level gains ``sum B Sigma_g B'``, the equation of g's level ``sum B' Sigma_k B``."""
    qk, qg = B.shape[1], B.shape[2]
    on_k = np.einsum("naj,nbk->abjk", B, B).reshape(qk * qk, qg * qg)
    on_g = np.einsum("nja,nkb->abjk", B, B).reshape(qg * qg, qk * qk)
    return on_k, on_g


def moment_theta(model):
    """Moment estimate of ``theta`` from the model's statistics, or None (then the full search).

    One level of random effects: with OLS residuals e and ``A_k = Z_k'Z_k``,
    ``E[Z_k'e e'Z_k] ~ A_k Sigma A_k + sigma^2 A_k``; summed over clusters this is linear in
    ``Sigma`` (solved with ``sigma^2`` from ``E[e'e] ~ sum_k tr(A_k Sigma) + n sigma^2``,
    alternating three times). The relative covariance ``Sigma / sigma^2`` gives ``theta``.
    Nested or crossed levels: the same equations for every level (``multilevel_moments``).
    None if the estimate is near the boundary: an eigenvalue of the relative covariance of
    the columns scaled to unit root mean square below 1e-4 of the largest.
    """
    d = model.design
    if d.n_chain != 1 or d.qd:
        return multilevel_moments(model)
    if d.k_fe == 0:
        return None
    lev, p = d.levels[0], d.k_fe
    q = lev.q
    S = model._stats.reshape(lev.n_groups, q, q + p + 1)
    A = S[:, :, :q]
    G0 = model._G0.reshape(p + 1, p + 1)
    beta = np.linalg.solve(G0[:p, :p], G0[:p, p])
    rss = G0[p, p] - beta @ G0[:p, p]
    r = S[:, :, -1] - S[:, :, q:q + p] @ beta               # Z_k' e_k
    M, A_sum = r.T @ r, A.sum(axis=0)
    K = np.einsum("gij,gkl->ikjl", A, A).reshape(q * q, q * q)
    sigma2 = rss / model.nobs
    for _ in range(3):                       # least squares: K is singular where every A_k is
        cov = np.linalg.lstsq(K, (M - sigma2 * A_sum).ravel(), rcond=None)[0].reshape(q, q)
        cov = 0.5 * (cov + cov.T)
        sigma2 = max((rss - np.einsum("gij,ji->", A, cov)) / model.nobs, 1e-3 * rss / model.nobs)
    rms = d.z_rms(0)
    w = np.linalg.eigvalsh(cov / sigma2 * np.outer(rms, rms))
    if not (np.all(np.isfinite(w)) and w.min() > 1e-4 * w.max() > 0):
        return None
    theta = lev.cov.theta_from_cov(cov / sigma2)
    return theta if np.all(np.isfinite(theta)) else None


def multilevel_moments(model):
    """``theta`` (core order) from the moment equations, or None.

    None when the model has no fixed effects, when the equations are singular, or when a
    level's estimate is near the boundary (an eigenvalue of its relative covariance, columns
    scaled to unit root mean square, below 1e-4 of the largest): the full search is the
    safer start there.
    """
    d = model.design
    p, qd = d.k_fe, d.qd
    if p == 0:
        return None
    size = qd + p + 1
    tail = model.__dict__.get("_tail")          # crossed levels' G0 in parts (hlmext.design.tail_gram)
    G0 = None if tail is not None else model._G0.reshape(size, size)
    border = tail.border if tail is not None else G0[qd:, :]          # the rows of [X y]
    XX, Xy = border[:p, qd:qd + p], border[:p, -1]
    beta = np.linalg.lstsq(XX, Xy, rcond=None)[0]
    rss = border[-1, -1] - beta @ Xy
    qs = [lv.q for lv in d.levels]
    off = np.concatenate([[0], np.cumsum([q * q for q in qs])])
    n_unknown = off[-1] + 1
    K = np.zeros((n_unknown, n_unknown))
    rhs = np.zeros(n_unknown)

    def add_pair(l, g, B):
        on_l, on_g = _pair(B)
        K[off[l]:off[l + 1], off[g]:off[g + 1]] += on_l
        K[off[g]:off[g + 1], off[l]:off[l + 1]] += on_g

    def add_own(l, A, r):
        q = qs[l]
        rhs[off[l]:off[l + 1]] += np.einsum("na,nb->ab", r, r).ravel()
        K[off[l]:off[l + 1], off[l]:off[l + 1]] += np.einsum("naj,nbk->abjk", A, A).reshape(q * q, q * q)
        K[off[l]:off[l + 1], -1] += A.sum(axis=0).ravel()
        K[-1, off[l]:off[l + 1]] += A.sum(axis=0).T.ravel()

    for l in range(d.n_chain):
        lv, q = d.levels[l], qs[l]
        D = d.m - d.zoff[l] + d.stat_qd
        k0 = d.stat_off[d.level_first[l]]
        S = model._stats[k0:k0 + lv.n_groups * q * D].reshape(lv.n_groups, q, D)
        add_own(l, S[:, :, :q], S[:, :, -1] - S[:, :, D - 1 - p:D - 1] @ beta)
        col = q
        for j in range(l + 1, d.n_chain):                  # ancestors
            add_pair(l, j, S[:, :, col:col + qs[j]])
            col += qs[j]
        for c, cl in enumerate(d.crossed):                 # crossed groups met by the cluster
            g = d.n_chain + c
            if d.coupling is not None:                     # only the groups it touches
                add_pair(l, g, d.coupling.blocks(model._stats[d.coupling.offset:], cl.doff, cl.q, cl.n_groups)[2])
                continue
            B = S[:, :, col + cl.doff:col + cl.doff + cl.n_groups * cl.q].reshape(lv.n_groups, q, cl.n_groups, cl.q)
            add_pair(l, g, B.transpose(0, 2, 1, 3).reshape(-1, q, cl.q))
    for c, cl in enumerate(d.crossed):
        l, q, ng = d.n_chain + c, cl.q, cl.n_groups
        seg = slice(cl.doff, cl.doff + ng * q)
        if tail is not None:
            A = tail.diagonal_blocks(cl)
        else:
            A = G0[seg, seg].reshape(ng, q, ng, q)[np.arange(ng), :, np.arange(ng), :]
        r = (border[-1, seg] - beta @ border[:p, seg]).reshape(ng, q)
        add_own(l, A, r)
        for c2, cl2 in enumerate(d.crossed[c + 1:], start=c + 1):
            seg2 = slice(cl2.doff, cl2.doff + cl2.n_groups * cl2.q)
            B = (tail.block(seg, seg2) if tail is not None else G0[seg, seg2]).reshape(ng, q, cl2.n_groups, cl2.q)
            add_pair(l, d.n_chain + c2, B.transpose(0, 2, 1, 3).reshape(-1, q, cl2.q))
    K[-1, -1] = model.nobs
    rhs[-1] = rss
    sol, _, rank, _ = np.linalg.lstsq(K, rhs, rcond=None)
    sigma2 = sol[-1]
    if rank < n_unknown or not sigma2 > 0:
        return None
    theta = []
    for l, lv in enumerate(d.levels):
        cov = sol[off[l]:off[l + 1]].reshape(qs[l], qs[l])
        cov = 0.5 * (cov + cov.T) / sigma2
        rms = d.z_rms(l)
        w = np.linalg.eigvalsh(cov * np.outer(rms, rms))
        if not (np.all(np.isfinite(w)) and w.min() > 1e-4 * w.max() > 0):
            return None
        theta.append(lv.cov.theta_from_cov(cov))
    theta = np.concatenate(theta)
    return theta if np.all(np.isfinite(theta)) else None
