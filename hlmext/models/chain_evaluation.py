"""The profiled deviance and its gradient for nested levels only, without per-evaluation objects.

``LinearMixed.deviance_and_gradient`` builds a ``Factorization`` and ``GradientParts`` for any
design. Where there are no crossed levels (every level is in the nesting chain, no dense block)
and every ``dLambda/dtheta_i`` is one entry equal to 1 (``LinearMixed._unit_derivatives``),
``deviance_and_gradient`` here makes the same kernel calls on the same arrays in the same
order, and only those: no factor object, no modes of the crossed block, no per-level lists.
The value and gradient are the same numbers, bit for bit (``tests/test_fit_overhead.py``);
a small fit spends a good part of each evaluation on that Python.
"""
from __future__ import annotations

import numpy as np

from .._kernels import core as _core, gradient as _gradient
from .factorization import LOG2PI
from .gradient import _products_buffer, _tail_inverse


def applies(model) -> bool:
    """Nested levels only, one factor of the global block, unit derivatives, no pseudo-likelihood."""
    d = model.design
    return (not d.qd and getattr(d, "coupling", None) is None and "_tail" not in model.__dict__
            and getattr(model, "sampling", None) is None and model._unit_derivatives() is not None)


def deviance_and_gradient(model, theta, reml):
    """``(deviance, gradient)`` at ``theta`` as ``LinearMixed.deviance_and_gradient`` gives them
    (``inf`` and zeros where the system is not positive definite)."""
    d = model.design
    theta = np.asarray(theta, float)
    lams = model.lams(theta)
    lam_flat = np.concatenate([lam.ravel() for lam in lams])
    if not np.isfinite(lam_flat).all():
        return np.inf, np.zeros_like(theta)
    work, G = model._scratch()
    p = d.k_fe
    logdet, info = _core.factorize(model._stats, model._G0, lam_flat, model._lam_off, d.zoff, d.m,
                                   d.level_first, d.stat_off, d.parent, d.dense_q, d.dense_groups, work, G,
                                   model._cweight)
    L = G.reshape(p + 1, p + 1)
    _core.zero_above_diagonal(L)
    diag = L.diagonal()
    if not (info == 0 and np.isfinite(logdet) and bool(np.isfinite(diag).all())):
        return np.inf, np.zeros_like(theta)
    logdet_rx = 2.0 * np.log(diag[:p]).sum()
    prss = L[-1, -1] ** 2
    if not prss > 0:
        return np.inf, np.zeros_like(theta)
    w = L[-1, :p].copy()
    _core.solve_leading_factor_t(L, p, w)
    u = np.empty(d.n_u)
    _core.solve_modes(work, G, w, d.zoff, d.m, d.level_first, d.stat_off, d.parent, d.u_off, u)
    t = p if reml else 0
    sigma_tail, flat = _tail_inverse(L, t, in_place=True)
    _gradient.selected_inverse(work, flat, t, sigma_tail.strides[0] // 8 if t else 0, d.zoff, d.m, 0,
                               d.level_first, d.stat_off, d.parent, work, _products_buffer(model, t))
    trace = np.zeros(lam_flat.size)
    zr = np.zeros(d.n_u)
    _gradient.gradient_sums(model._stats, work, lam_flat, model._lam_off, t, d.zoff, d.m, 0, d.level_first,
                            d.stat_off, d.parent, d.dense_q, d.dense_groups, u, d.u_off, w, trace, zr,
                            np.zeros(0), True)
    resid = []
    for i, lev in enumerate(d.levels):
        q = lev.q
        start = d.u_off[d.level_first[i]] if lev.n_groups else 0
        resid.append((zr[start:start + lev.n_groups * q].reshape(-1, q).T
                      @ u[start:start + lev.n_groups * q].reshape(-1, q)).ravel())
    n = model.nobs
    dof = n - p if reml else n
    trace_at, resid_at = model._unit_derivatives()
    grad = 2.0 * trace[trace_at] + dof * (-2.0 * np.concatenate(resid)[resid_at]) / prss
    if reml:
        value = logdet + logdet_rx + dof * (1 + LOG2PI + np.log(prss / dof))
    else:
        value = logdet + n * (1 + LOG2PI + np.log(prss / n))
    return value, grad
