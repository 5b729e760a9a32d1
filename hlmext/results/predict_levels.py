"""Prediction-error variances of conditional predictions when the model has several levels
of random effects (nested or crossed): ``hlmext.results.predict_se`` with the whole
penalized system instead of one group's block.

With ``s = Lambda' z`` (every level's part of a row, in the columns of its groups),
``H = Lambda' Z' W Z Lambda + I`` and ``B = Lambda' Z' W X`` (formed sparse from the fitted
rows; ``W`` the GLM weights at the conditional modes, 1 for a linear model) and
``y = H^{-1} s``, the variance of ``x'beta-hat + z'b-hat - (x'beta + z'b)`` is

    (x - B'y)' V (x - B'y) + s2 s'y,

the same as one level's ``(x - E_g'z)' V (x - E_g'z) + z' C_g z`` (``s2 = sigma^2`` for a
linear model, 1 otherwise), now with the covariances between the levels' effects.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from .rowsets import fitted_rows

__all__ = ["levels_eta"]

CHUNK = 2048


def _columns(res):
    """First column of every level in the stacked effects, and the total."""
    offsets, k = {}, 0
    for lv in res.model.design.levels:
        offsets[lv.name] = k
        k += lv.n_groups * lv.q
    return offsets, k


def _s_matrix(rows, lams, offsets, Q):
    """Sparse (n, Q): each row's ``z_l' Lambda_l`` in the columns of its group at every level
    (nothing for a group the fit did not see)."""
    r, c, v = [], [], []
    for lr in rows.levels:
        lv = lr.level
        known = np.flatnonzero(lr.group >= 0)
        zl = lr.Z[known] @ lams[lv.name]
        r.append(np.repeat(known, lv.q))
        c.append((offsets[lv.name] + lr.group[known][:, None] * lv.q + np.arange(lv.q)).ravel())
        v.append(zl.ravel())
    return sparse.csr_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))), shape=(rows.n, Q))


def _system(res, lams, offsets, Q, linear):
    """(H, B) from the fitted rows (cached on the results; H sparse, so that the results pickle)."""
    cache = res.__dict__.get("_levels_system")
    if cache is not None:
        return cache
    fit = fitted_rows(res)
    S = _s_matrix(fit, lams, offsets, Q)
    model = res.model
    if linear:
        w = model.design.weights
        w = np.ones(fit.n) if w is None else res._original_order(w).to_numpy()
    else:
        fam = model._sm_family()
        mu = fam.link.inverse(res.predict(which="eta", conditional=True).to_numpy())
        w = res._original_order(model.trials).to_numpy() * fam.variance(mu)
    H = (S.T @ sparse.diags(w) @ S + sparse.identity(Q)).tocsc()
    B = np.asarray(S.T @ (fit.X * w[:, None]))
    res._levels_system = (H, B)
    return res._levels_system


def levels_eta(res, rows, linear):
    """Conditional linear predictor (with every seen group's effects) and the variance of its
    prediction error, before the variance of unseen groups' effects is added."""
    d = res.model.design
    lams = {lv.name: lam for lv, lam in zip(d.levels, res.model.lams(res.theta))}
    offsets, Q = _columns(res)
    H, B = _system(res, lams, offsets, Q, linear)
    lu = splu(H)
    s2 = res.scale if linear else 1.0
    V = res.cov_fe.to_numpy()
    eta = rows.X @ res.fe_params.to_numpy() + rows.offset
    for lr in rows.levels:
        lv = lr.level
        b = res.random_effects[lv.name][lv.names].reindex(lv.labels).to_numpy()
        known = lr.group >= 0
        eta[known] += np.einsum("ij,ij->i", lr.Z[known], b[lr.group[known]])
    S = _s_matrix(rows, lams, offsets, Q)
    var = np.empty(rows.n)
    for a in range(0, rows.n, CHUNK):
        Sc = S[a:a + CHUNK].toarray()
        Y = lu.solve(Sc.T.copy())                       # H^{-1} s of every row, (Q, chunk)
        A = rows.X[a:a + CHUNK] - (B.T @ Y).T
        var[a:a + CHUNK] = np.einsum("ij,jk,ik->i", A, V, A) + s2 * np.einsum("ij,ji->i", Sc, Y)
    return eta, var
