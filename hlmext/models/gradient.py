"""Analytic gradient of the linear mixed model's deviance, for any design.

``_gradient`` gives, per level, the traces ``T_l = sum_k [Sigma Lt'W'Z]_kk`` and the
products ``N_l = sum_k (Z_k'r) u_k'`` over its clusters (see that module for the
notation), and ``_gradient.dense_traces`` the traces of the dense tail's own rows (crossed
groups); their ``Z'r`` products are added here with NumPy. With
``E = dLambda_l / dtheta_i``:

- ``d log det = 2 tr(T_l E)``: ``log det A`` for ML, ``log det A + log det RX'RX`` for REML;
- ``d prss = -2 sum(E * N_l)``.

These give the gradient of the profiled deviance (``LinearMixed.deviance_and_gradient``)
and of the deviance at a fixed residual sd (used for the standard errors).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from .._kernels import core as _core, crossed as _crossed, diagonal as _diagonal, gradient as _gradient


class GradientParts:
    """``d log det`` and ``d prss`` with respect to every ``theta`` at one factorization
    (``traces=False``: ``d prss`` only, without the selected inverse).

    With ``consume=True`` the selected inverse overwrites the factor ``f`` (its cluster
    blocks and its tail), which is then unusable: the optimizer's evaluations, whose
    factors are thrown away, need no second copy of either.
    """

    def __init__(self, model, f, reml, traces=True, consume=False):
        d = model.design
        p, qd = d.k_fe, d.qd
        t = qd + p if reml else qd
        lam_flat = f.lam_flat if hasattr(f, "lam_flat") else np.concatenate([lam.ravel() for lam in f.lams])
        u = f.modes(model)                     # before the factor may be overwritten
        u_chain = np.ascontiguousarray(u[:d.n_u])
        # selected_inverse writes every entry of sel read below; without traces it is not read
        sigma_tail = None
        c = getattr(d, "coupling", None)
        diagonal = traces and consume and _diagonal_traces(model, f, t, u_chain)
        if diagonal is not False:                  # the traces from Sigma's diagonal blocks: no selected inverse
            traces = False
        if traces:
            sel = f.work if consume else np.empty(d.stat_size)
            sigma_tail, flat = _tail_inverse(f.L, t, in_place=consume)
            _selected_inverse(model, f.work, flat, t, sigma_tail.strides[0] // 8 if t else 0, sel,
                              _products_buffer(model, t) if c is None else None)
        else:
            sel = model._stats
        trace = np.zeros(lam_flat.size)
        zr = np.zeros(d.n_u)
        zr_dense = np.zeros(qd)
        if c is not None:
            _crossed.gradient_sums(model._stats, sel, lam_flat, model._lam_off, t, c.q, d.m, c.offset, c.ptr,
                                   c.cols, d.dense_q, d.dense_groups, u_chain, np.ascontiguousarray(f._w),
                                   trace, zr, zr_dense, traces)
        else:
            _gradient.gradient_sums(model._stats, sel, lam_flat, model._lam_off, t, d.zoff, d.m, qd,
                                    d.level_first, d.stat_off, d.parent, d.dense_q, d.dense_groups,
                                    u_chain, d.u_off, np.ascontiguousarray(f._w), trace, zr, zr_dense, traces)
        tail = model.__dict__.get("_tail")
        if qd and traces and tail is not None:      # the crossed groups' own rows of the traces
            tail.add_traces(sigma_tail, t, d, f.lams[d.n_chain:], trace, model._lam_off)
        elif qd and traces:
            _gradient.dense_traces(flat, sigma_tail.strides[0] // 8, t, model._G0, qd + p + 1, lam_flat,
                                   model._lam_off, d.n_chain, d.dense_q, d.dense_groups, trace)
        if diagonal is not False:
            trace = diagonal
        self.trace_flat = trace                # every level's T, flat at the offsets of Lambda
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
            self._add_dense_resid(model, f, zr_dense)
        self.levels = d.levels

    def _add_dense_resid(self, model, f, zr_dense):
        """The crossed groups' own rows of ``Z_D'r``, and their products with the modes."""
        d = model.design
        qd, p = d.qd, d.k_fe
        lams = f.lams[d.n_chain:]
        u_d = f._w[:qd]
        tail = model.__dict__.get("_tail")
        if tail is not None:                    # G0 in parts (hlmext.design.tail_gram)
            zr_dense = zr_dense + tail.d_column(p) - tail.border[:p, :qd].T @ f._w[qd:qd + p] \
                - tail.dd @ _lam_times(u_d, d, lams)
        else:
            G0 = model._G0.reshape(qd + p + 1, qd + p + 1)
            zr_dense = zr_dense + G0[:qd, -1] - G0[:qd, qd:qd + p] @ f._w[qd:qd + p] \
                - G0[:qd, :qd] @ _lam_times(u_d, d, lams)
        for lev in d.crossed:
            q, ng = lev.q, lev.n_groups
            seg = slice(lev.doff, lev.doff + ng * q)
            self.resid.append(zr_dense[seg].reshape(ng, q).T @ u_d[seg].reshape(ng, q))

    def resid_flat(self):
        """Every level's ``N`` flat, at the offsets of Lambda (as ``trace_flat``)."""
        return np.concatenate([r.ravel() for r in self.resid])

    def dlogdet(self, i_level, E):
        return 2.0 * (self.trace[i_level].T * E).sum()

    def dprss(self, i_level, E):
        return -2.0 * (E * self.resid[i_level]).sum()


#: The traces from the diagonal blocks of ``Sigma`` (``_diagonal_traces``) only where every level's
#: scaled factor carries at least this much information per group (``s^2 n / G``, ``s`` the least
#: singular value of ``diag(rms) Lambda_l``) and ``I - Sigma_kk`` keeps this fraction of ``I``
#: on average: elsewhere ``(I - Sigma_kk) Lambda^{-1}`` loses digits, and the selected inverse is used.
DIAGONAL_MIN_INFORMATION = 1e-3
DIAGONAL_MIN_FRACTION = 1e-3


def _diagonal_traces(model, f, t, u_chain):
    """Every level's trace ``T_l`` from the diagonal blocks of ``Sigma`` alone, or False.

    ``Sigma M = I`` with ``M = Lt'W'W Lt + diag(I, 0)`` gives ``[Sigma Lt'W'Z]_kk Lambda_k =
    I - Sigma_kk``, so ``T_l = (G_l I - sum_k Sigma_kk) Lambda_l^{-1}`` when ``Lambda_l`` is
    invertible: no entry of ``Sigma`` off the diagonal blocks is needed, and for one chain
    level with a dense coupling to the crossed block these sums cost a triangular solve of
    the clusters' rows and the inverse of the tail's factor (``_diagonal.diagonal_sums``)
    instead of the tail's full inverse and its product with every row; with a sparse coupling
    the selected inverse gives ``Sigma_kk`` and the tail's inverse ``Sigma_gg``, and no trace
    of the pattern's pairs or of ``G0``'s rows is summed. Used for one chain level when every
    ``Lambda_l`` is well away from singular (``DIAGONAL_MIN_INFORMATION``); it consumes the
    factor ``f``.
    Returns False (``f`` intact, or factored again) where it does not apply.
    """
    d = model.design
    if not d.qd or d.n_chain != 1 or not hasattr(f, "work"):
        return False
    inverses = []
    for i, (lev, lam) in enumerate(zip(d.levels, f.lams)):
        smin = np.linalg.svd(d.z_rms(i)[:, None] * lam, compute_uv=False)[-1]
        if not smin ** 2 * d.nobs / max(lev.n_groups, 1) >= DIAGONAL_MIN_INFORMATION:
            return False
        inverses.append(linalg.solve_triangular(lam, np.eye(lev.q), lower=True))
    chain = d.levels[0]
    q, p = chain.q, d.k_fe
    c = getattr(d, "coupling", None)
    if c is None:
        chain_sum = np.zeros(q * q)
        dense_sum = np.zeros(int(np.sum(d.dense_q ** 2)))
        _diagonal.diagonal_sums(f.work, q, d.m + d.qd, chain.n_groups, f.G, d.qd + p + 1, t, d.dense_q,
                               d.dense_groups, chain_sum, dense_sum)
    else:                                       # sparse coupling: Sigma_kk by the selected inverse, in place
        sigma_tail, flat = _tail_inverse(f.L, t, in_place=True)
        _crossed.selected_inverse(f.work, flat, t, sigma_tail.strides[0] // 8, q, d.m, c.offset, d.qd, c.ptr,
                                  c.cols, f.work)
        chain_sum = f.work[:chain.n_groups * q * d.m].reshape(-1, q, d.m)[:, :, :q].sum(axis=0)
        dense_sum = np.concatenate([
            sigma_tail[lv.doff:lv.doff + lv.n_groups * lv.q, lv.doff:lv.doff + lv.n_groups * lv.q]
            .reshape(lv.n_groups, lv.q, lv.n_groups, lv.q)[np.arange(lv.n_groups), :, np.arange(lv.n_groups), :]
            .sum(axis=0).ravel() for lv in d.crossed])
    trace = np.zeros(f.lam_flat.size)
    sums = [chain_sum] + np.split(dense_sum, np.cumsum(d.dense_q ** 2)[:-1])
    for i, (lev, inv, S) in enumerate(zip(d.levels, inverses, sums)):
        own = lev.n_groups * np.eye(lev.q) - S.reshape(lev.q, lev.q)
        if not np.min(np.diag(own)) >= DIAGONAL_MIN_FRACTION * lev.n_groups:
            type(f)(model, f.theta, f.work, f.G)    # digits lost: the factor again (in f's buffers)
            return False
        off = model._lam_off[i]
        trace[off:off + lev.q * lev.q] = (own @ inv).ravel()
    return trace


def _selected_inverse(model, work, flat, t, ldt, sel, scratch=None):
    """The selected inverse of the factor ``work`` into ``sel`` (nested chain and dense coupling:
    ``_gradient.selected_inverse``; sparse crossed coupling: ``_crossed.selected_inverse``)."""
    d = model.design
    c = getattr(d, "coupling", None)
    if c is not None:
        _crossed.selected_inverse(work, flat, t, ldt, c.q, d.m, c.offset, d.qd, c.ptr, c.cols, sel)
    else:
        _gradient.selected_inverse(work, flat, t, ldt, d.zoff, d.m, d.qd, d.level_first, d.stat_off, d.parent,
                                   sel, scratch)


def _products_buffer(model, t):
    """Scratch of ``selected_inverse`` (the products of a run of clusters): a private buffer
    of the model for this thread, reused by its gradients."""
    d = model.design
    need = _gradient.scratch_size(d.zoff, d.level_first, t)
    own = model._buffers.get(model)                   # this thread's
    if own.gradient is None or own.gradient.size < need:
        own.gradient = np.empty(need)
    return own.gradient


def diagonal_blocks(model, f):
    """Every group's diagonal block of ``(Lambda'Z'Z Lambda + I)^{-1}``, per level: (G, q, q) arrays.

    From the selected inverse of the factor ``f`` (ML tail: the crossed block only).
    """
    d = model.design
    qd = d.qd
    sigma_tail, flat = _tail_inverse(f.L, qd, in_place=False)
    sel = np.empty(d.stat_size)
    _selected_inverse(model, f.work, flat, qd, qd, sel)
    out = []
    for l, lv in enumerate(d.levels):
        q, G = lv.q, lv.n_groups
        if l < d.n_chain:
            D = d.m - d.zoff[l] + d.stat_qd
            k0 = d.level_first[l]
            out.append(sel[d.stat_off[k0]:d.stat_off[k0] + G * q * D].reshape(G, q, D)[:, :, :q])
        else:
            seg = sigma_tail[lv.doff:lv.doff + G * q, lv.doff:lv.doff + G * q].reshape(G, q, G, q)
            out.append(seg[np.arange(G), :, np.arange(G), :])
    return out


def _tail_inverse(L, t, in_place):
    """``(L_t L_t')^{-1}`` for the lower Cholesky factor ``L_t = L[:t, :t]`` of the tail.

    Returns the inverse (t x t) and a flat array holding it. ``in_place``: the inverse
    replaces ``L_t`` in ``L`` (C-contiguous), so it is a view with ``L``'s row stride;
    otherwise it is a new contiguous array.
    """
    if t == 0:
        return np.zeros((0, 0)), np.zeros(0)
    if in_place and _core.invert_leading_factor(L, t) == 0:
        return L[:t, :t], L.ravel()
    LT = L[:t, :t]
    inv, info = linalg.lapack.dpotri(LT, lower=1)     # the lower triangle; LT's zeros above
    if info != 0:
        inv = np.linalg.inv(LT @ LT.T)
    else:
        _core.mirror_lower(inv)                       # the whole inverse, in place
    inv = np.ascontiguousarray(inv.T)                 # symmetric: dpotri's Fortran order, viewed
    return inv, inv.ravel()


def _lam_times(u_d, design, lams):
    """``Lambda_D u_D`` group by group."""
    out = np.empty_like(u_d)
    for lev, lam in zip(design.crossed, lams):
        seg = slice(lev.doff, lev.doff + lev.n_groups * lev.q)
        out[seg] = (u_d[seg].reshape(lev.n_groups, lev.q) @ lam.T).ravel()
    return out
