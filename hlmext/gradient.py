"""Analytic gradient of the linear mixed model's deviance, for any design.

``_gradient`` gives, per level, the traces ``T_l = sum_k [Sigma Lt'W'Z]_kk`` and the
products ``N_l = sum_k (Z_k'r) u_k'`` over its clusters (see that module for the
notation); here the rows of the dense tail (crossed groups) are added with NumPy. With
``E = dLambda_l / dtheta_i``:

- ``d log det = 2 tr(T_l E)``: ``log det A`` for ML, ``log det A + log det RX'RX`` for REML;
- ``d prss = -2 sum(E * N_l)``.

These give the gradient of the profiled deviance (``LinearMixed.deviance_and_gradient``)
and of the deviance at a fixed residual sd (used for the standard errors).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from . import _core, _gradient


class GradientParts:
    """``d log det`` and ``d prss`` with respect to every ``theta`` at one factorization
    (``traces=False``: ``d prss`` only, without the selected inverse)."""

    def __init__(self, model, f, reml, traces=True):
        d = model.design
        p, qd = d.k_fe, d.qd
        t = qd + p if reml else qd
        lam_flat = np.concatenate([lam.ravel() for lam in f.lams])
        # selected_inverse writes every entry of sel read below; without traces it is not read
        sel, ybuf = _buffers(model, t) if traces else (model._stats, None)
        sigma_tail = _tail_inverse(f.L[:t, :t]) if traces else None
        if traces:
            _gradient.selected_inverse(f.work, sigma_tail.ravel(), t, d.zoff, d.m, qd, d.level_first,
                                       d.stat_off, d.parent, sel, ybuf)
        u = f.modes(model)
        u_chain = np.ascontiguousarray(u[:d.n_u])
        trace = np.zeros(lam_flat.size)
        zr = np.zeros(d.n_u)
        zr_dense = np.zeros(qd)
        _gradient.gradient_sums(model._stats, sel, lam_flat, model._lam_off, t, d.zoff, d.m, qd,
                                d.level_first, d.stat_off, d.parent, d.dense_q, d.dense_groups,
                                u_chain, d.u_off, np.ascontiguousarray(f._w), trace, zr, zr_dense, traces)
        self.trace, self.resid = [], []
        for i, lev in enumerate(d.levels):
            q = lev.q
            off = model._lam_off[i]
            self.trace.append(trace[off:off + q * q].reshape(q, q))
            if i < d.n_chain:
                start = d.u_off[d.level_first[i]] if lev.n_groups else 0
                zr_l = zr[start:start + lev.n_groups * q].reshape(-1, q)
                u_l = u_chain[start:start + lev.n_groups * q].reshape(-1, q)
                self.resid.append(zr_l.T @ u_l)
        if qd:
            self._add_dense_rows(model, f, sigma_tail, t, zr_dense)
        self.levels = d.levels

    def _add_dense_rows(self, model, f, sigma_tail, t, zr_dense):
        """The crossed groups' own rows: traces from the dense tail (if ``sigma_tail``), and ``Z_D'r``."""
        d = model.design
        qd, p = d.qd, d.k_fe
        G0 = model._G0.reshape(qd + p + 1, qd + p + 1)
        lams = f.lams[d.n_chain:]
        u_d = f._w[:qd]
        zr_dense = zr_dense + G0[:qd, -1] - G0[:qd, qd:qd + p] @ f._w[qd:qd + p] \
            - G0[:qd, :qd] @ _lam_times(u_d, d, lams)
        for j, lev in enumerate(d.crossed):
            q, ng = lev.q, lev.n_groups
            seg = slice(lev.doff, lev.doff + ng * q)
            if sigma_tail is not None:
                # sum over groups g of Sigma_g,T H_T,g, with H = diag(Lambda_D, I)' G0[:t, D]; a run of
                # groups at a time, so that no t x qd temporary is made
                step = max(1, (1 << 16) // (q * t))
                for g0 in range(0, ng, step):
                    cols = slice(lev.doff + g0 * q, lev.doff + min(ng, g0 + step) * q)
                    H = _lam_rows(G0[:t, cols], d, lams)
                    self.trace[d.n_chain + j] = self.trace[d.n_chain + j] + np.einsum(
                        "gat,gbt->ab", sigma_tail[cols, :].reshape(-1, q, t), H.T.reshape(-1, q, t))
            self.resid.append(zr_dense[seg].reshape(ng, q).T @ u_d[seg].reshape(ng, q))

    def dlogdet(self, i_level, E):
        return 2.0 * np.sum(self.trace[i_level].T * E)

    def dprss(self, i_level, E):
        return -2.0 * np.sum(E * self.resid[i_level])


def _buffers(model, t):
    """The selected inverse and the products of one level: private buffers of the model,
    reused by every gradient (allocating megabytes per evaluation costs as much as the
    arithmetic on large crossed designs)."""
    d = model.design
    need = _gradient.scratch_size(d.zoff, d.level_first, t)
    cache = getattr(model, "_gradient_buffers", None)
    if cache is None or cache[0].size != d.stat_size or cache[1].size < need:
        cache = (np.empty(d.stat_size), np.empty(need))
        model._gradient_buffers = cache
    return cache


def diagonal_blocks(model, f):
    """Every group's diagonal block of ``(Lambda'Z'Z Lambda + I)^{-1}``, per level: (G, q, q) arrays.

    From the selected inverse of the factor ``f`` (ML tail: the crossed block only).
    """
    d = model.design
    qd = d.qd
    sigma_tail = _tail_inverse(f.L[:qd, :qd])
    sel = np.empty(d.stat_size)
    _gradient.selected_inverse(f.work, sigma_tail.ravel(), qd, d.zoff, d.m, qd, d.level_first,
                               d.stat_off, d.parent, sel)
    out = []
    for l, lv in enumerate(d.levels):
        q, G = lv.q, lv.n_groups
        if l < d.n_chain:
            D = d.m - d.zoff[l] + qd
            k0 = d.level_first[l]
            out.append(sel[d.stat_off[k0]:d.stat_off[k0] + G * q * D].reshape(G, q, D)[:, :, :q])
        else:
            seg = sigma_tail[lv.doff:lv.doff + G * q, lv.doff:lv.doff + G * q].reshape(G, q, G, q)
            out.append(seg[np.arange(G), :, np.arange(G), :])
    return out


def _tail_inverse(LT):
    """``(LT LT')^{-1}`` for the lower Cholesky factor of the tail (empty for t = 0)."""
    t = LT.shape[0]
    if t == 0:
        return np.zeros((0, 0))
    inv, info = linalg.lapack.dpotri(LT, lower=1)     # the lower triangle; LT's zeros above
    if info != 0:
        return np.linalg.inv(LT @ LT.T)
    _core.mirror_lower(inv)                           # the whole inverse, in place
    return inv


def _lam_rows(M, design, lams):
    """``diag(Lambda_D, I)' M``: each crossed group's rows multiplied by its factor's transpose."""
    out = np.array(M, float, copy=True)
    for lev, lam in zip(design.crossed, lams):
        seg = slice(lev.doff, lev.doff + lev.n_groups * lev.q)
        block = out[seg, :].reshape(lev.n_groups, lev.q, -1)
        out[seg, :] = (lam.T @ block).reshape(-1, out.shape[1])
    return out


def _lam_times(u_d, design, lams):
    """``Lambda_D u_D`` group by group."""
    out = np.empty_like(u_d)
    for lev, lam in zip(design.crossed, lams):
        seg = slice(lev.doff, lev.doff + lev.n_groups * lev.q)
        out[seg] = (u_d[seg].reshape(lev.n_groups, lev.q) @ lam.T).ravel()
    return out
