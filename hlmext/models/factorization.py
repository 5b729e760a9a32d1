"""The penalized least-squares system of a linear mixed model, factored at one ``theta``.

Model: ``y = X beta + Z b + e``, ``b = Lambda u``, ``u ~ N(0, sigma^2 I)``,
``e ~ N(0, sigma^2 I)``. For given ``theta`` (hence Lambda) the penalized least squares
problem ``min_{u, beta} |y - X beta - Z Lambda u|^2 + |u|^2`` is solved by the blocked
Cholesky factorization in ``_core.factorize`` (or ``_crossed.factorize`` for crossed factors
with sparse coupling), which gives

- ``logdet`` = log det(Lambda' Z'Z Lambda + I),
- ``logdet_rx`` = log det(RX'RX) and the penalized residual sum of squares ``prss``,

and the profiled deviance (-2 log-likelihood maximized over beta and sigma) is

- ML:   ``logdet + n (1 + log(2 pi prss / n))``
- REML: ``logdet + logdet_rx + (n - p)(1 + log(2 pi prss / (n - p)))``

(Bates, Maechler, Bolker & Walker 2015, J. Stat. Softw. 67(1), eqs. 34 and 41).
"""
from __future__ import annotations

import numpy as np

from .._kernels import core as _core, crossed as _crossed

__all__ = ["LOG2PI", "Factorization", "profiled_deviance", "scale_dense"]

LOG2PI = np.log(2 * np.pi)


class Factorization:
    """The penalized system factored at one ``theta`` (private cache of a fit)."""

    def __init__(self, model, theta, work=None, G=None):
        d = model.design
        self.theta = np.asarray(theta, float)
        self.lams = model.lams(theta)
        self.lam_flat = lam_flat = np.concatenate([lam.ravel() for lam in self.lams])
        self.ok = bool(np.isfinite(lam_flat).all())
        if not self.ok:
            self.info = -1
            return
        # the optimizer's evaluations reuse the thread's buffers of the model (``model._scratch()``)
        self.work = np.empty(d.stat_size) if work is None else work
        self.G = np.empty(model._g0_size()) if G is None else G
        tail = model.__dict__.get("_tail")
        if tail is not None:                  # crossed levels' G0 in parts (hlmext.design.tail_gram)
            G0 = tail.scale_into(self.G, d, self.lams[d.n_chain:])
        else:
            G0 = model._G0 if not d.qd else scale_dense(model._G0, d, self.lams[d.n_chain:], out=self.G)
        c = getattr(d, "coupling", None)
        if c is not None:                     # crossed factors, sparse coupling (hlmext.design.sparse_coupling)
            self.logdet, info = _crossed.factorize(model._stats, G0, lam_flat, model._lam_off, c.q, d.m, c.offset,
                                                   c.ptr, c.cols, d.dense_q, d.dense_groups, self.work, self.G)
        else:
            self.logdet, info = _core.factorize(model._stats, G0, lam_flat, model._lam_off, d.zoff, d.m,
                                                d.level_first, d.stat_off, d.parent, d.dense_q, d.dense_groups,
                                                self.work, self.G, model._cweight)
        p, qd = d.k_fe, d.qd
        L = self.G.reshape(qd + p + 1, qd + p + 1)
        _core.zero_above_diagonal(L)          # the lower factor, in place
        diag = L.diagonal()
        self.ok = info == 0 and np.isfinite(self.logdet) and bool(np.isfinite(diag).all())
        self.info = info
        if not self.ok:
            return
        if qd:
            self.logdet += 2.0 * np.log(diag[:qd]).sum()
        self.L = L                            # lower factor of the reduced [D X y] block
        self.L_dense = L[:qd, :qd]
        self.L_x = L[qd:qd + p, qd:qd + p]
        self.logdet_rx = 2.0 * np.log(diag[qd:qd + p]).sum()
        self.prss = L[-1, -1] ** 2
        top = qd + p
        self._w = L[-1, :top].copy()
        _core.solve_leading_factor_t(L, top, self._w)
        self.beta = self._w[qd:].copy()
        if d.intercept_col >= 0:
            self.beta[d.intercept_col] += d.y_shift

    def modes(self, model):
        """Spherical conditional modes u: chain clusters (core order), then the crossed block."""
        d = model.design
        u = np.empty(d.n_u)
        c = getattr(d, "coupling", None)
        if c is not None:
            _crossed.solve_modes(self.work, self._w, c.q, d.m, c.offset, c.ptr, c.cols, u)
        else:
            _core.solve_modes(self.work, self.G, self._w, d.zoff, d.m, d.level_first, d.stat_off,
                              d.parent, d.u_off, u)
        return np.concatenate([u, self._w[:d.qd]])


def scale_dense(G0, design, lams, out):
    """``M' G0 M`` with ``M = diag(Lambda_D, I)``, plus the identity on the ``D`` block, in ``out``
    (which the core then factors in place)."""
    qd = design.qd
    G = out.reshape(qd + design.k_fe + 1, -1)
    G[...] = G0.reshape(G.shape)
    for lev, lam in zip(design.crossed, lams):
        seg = slice(lev.doff, lev.doff + lev.n_groups * lev.q)
        if lev.q == 1:
            G[:, seg] *= lam[0, 0]
            G[seg, :] *= lam[0, 0]
        else:
            G[:, seg] = (G[:, seg].reshape(-1, lev.n_groups, lev.q) @ lam).reshape(G.shape[0], -1)
            G[seg, :] = (lam.T @ G[seg, :].reshape(lev.n_groups, lev.q, -1)).reshape(-1, G.shape[1])
    G[np.arange(qd), np.arange(qd)] += 1.0
    return out


def profiled_deviance(f, n, p, reml):
    """The profiled deviance (ML) or REML criterion of the ``Factorization`` ``f`` of ``n`` rows and
    ``p`` fixed effects (the module docstring's formulas)."""
    if reml:
        r = n - p
        return f.logdet + f.logdet_rx + r * (1 + LOG2PI + np.log(f.prss / r))
    return f.logdet + n * (1 + LOG2PI + np.log(f.prss / n))
