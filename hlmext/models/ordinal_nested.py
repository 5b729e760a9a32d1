"""Ordinal (cumulative logit / probit) models with nested levels of random effects.

Stata's ``meologit y x || school: || class:``, R's ``clmm(y ~ x + (1 | school) + (1 | school:class))``.
With the cut points fixed, a row's log-likelihood ``log(F(c_k - eta) - F(c_{k-1} - eta))`` is a
function of eta alone: the kernels' family ``F_ORDINAL`` (``_kernels/ordinal_row.pxd``) takes
the row's category as its response and the cut points with the family, so the nested Laplace
kernel (``_kernels/glmm_nested``) and the two-level adaptive quadrature (``nested_aghq``)
integrate it as they do the other families. Crossed factors are refused.

Gradient of the Laplace log-likelihood: the kernel gives d log L / d eta_i (``e``, hence the
fixed effects) and d log L / d Lambda (theta). A cut point moves A_i = c_k - eta_i or
B_i = c_{k-1} - eta_i of the rows beside it, not eta, and by the formula of ``ordinal.pyx``

    d log L / d A_i = dl_i/dA - 1/2 s_i dw_i/dA + dscore_i/dA zeta_i' t        (B likewise),

at the joint mode, with s_i = zeta_i' H^{-1} zeta_i (read from the kernel's selected inverse of
H) and t = H^{-1} sum_i (-1/2 dw_i s_i) zeta_i (solved here with the kernel's factor), zeta_i
the row's Lambda' z over its clusters. Summed per cut point, these give the cut points'
gradient analytically. Two-level adaptive quadrature takes central differences of its
log-likelihood in every parameter (as for the other families).
"""
from __future__ import annotations

import numpy as np

from .._kernels import ordinal as _ordinal
from ..exceptions import ModelError
from . import nested_aghq

#: the kernels' family and link codes (``_kernels/helpers.pxd``)
F_ORDINAL = 7
KERNEL_LINKS = {"logit": 0, "probit": 2}


def check(model):
    """Refuse (ModelError) what the nested ordinal model does not cover: crossed factors, sampling weights."""
    d = model.design
    if model.sampling is not None:
        raise ModelError("meologit/meoprobit with nested levels (%s) take no sampling weights: fit without "
                         "pweights= or with one level" % ", ".join(lv.name for lv in model.levels[::-1]))
    if d.n_chain != d.n_levels:
        raise ModelError("meologit/meoprobit fit nested levels of random effects, not crossed factors; the model "
                         "has %s: keep one grouping level or nested ones (school/class)"
                         % ", ".join(lv.name for lv in model.levels[::-1]))


def kernel(model, fe, theta, grad):
    """The nested Laplace kernel at (beta and cuts, theta): loglik (-inf if the cuts do not increase)."""
    beta, cuts = model.split(fe)
    if not np.all(np.diff(cuts) > 0):
        return -np.inf
    model._buffers.get(model).family = (F_ORDINAL, KERNEL_LINKS[model.link], 1.0, np.ascontiguousarray(cuts))
    return model._glmm_kernel(fe, theta, 1, grad)


def loglike_theta(model, fe, theta, nagq=1, grad=False):
    """``MixedOrdinal.loglike_theta`` with nested levels: Laplace with its analytic gradient, or
    two-level adaptive quadrature (central differences)."""
    if nagq > 1:
        model._check_nagq(nagq)
        return nested_aghq.loglike_theta(model, fe, theta, nagq, grad)
    ll = kernel(model, fe, theta, grad)
    if not grad:
        return ll
    if not np.isfinite(ll):
        return ll, np.full(fe.size + theta.size, np.nan)
    g_theta = [float(np.sum(glam * dl)) for glam, jac in zip(model._glam_levels(), model._dlam_dtheta(theta))
               for dl in jac]
    gA, gB = row_gradients(model, model.split(fe)[1])
    return ll, np.concatenate([model._fe_gradient(gA, gB), g_theta])


def row_gradients(model, cuts):
    """d log L / d A_i and d log L / d B_i of every row at the kernel's last (gradient) call."""
    d = _ordinal.row_loglik(model._link_code, model._yk, np.ascontiguousarray(cuts), model._eta)[1]
    s = row_variances(model)
    c = -0.5 * d[:, 2] * s
    t = solve(model, scatter(model, c))
    zt = gather(model, t)
    gA = d[:, 3] - 0.5 * s * d[:, 4] + d[:, 6] * zt
    gB = -d[:, 0] - d[:, 3] - 0.5 * s * d[:, 5] + d[:, 7] * zt
    return gA, gB


def _levels(model):
    """Per kernel level: (q, its columns of zl, D = the block row's width)."""
    zoff = model._tree["zoff"]
    Q = int(zoff[-1])
    return [(int(zoff[l + 1] - zoff[l]), slice(zoff[l], zoff[l + 1]), Q - int(zoff[l]) + 1)
            for l in range(len(zoff) - 1)]


def _mode_index(model, l, q):
    """(n, q): where every row's modes of level l lie in u."""
    return model._tree["u_off"][model._cl[:, l]][:, None] + np.arange(q)


def row_variances(model):
    """s_i = zeta_i' H^{-1} zeta_i from the selected inverse of H the gradient call left in ``_sel``."""
    t, zl, sel, cl = model._tree, model._zl, model._sel, model._cl
    zoff, levels = t["zoff"], _levels(model)
    s = np.zeros(model.nobs)
    for l, (q, cols, D) in enumerate(levels):
        base = t["blk_off"][cl[:, l]]
        for l2 in range(l, len(levels)):
            q2, cols2 = levels[l2][:2]
            idx = (base[:, None, None] + D * np.arange(q)[None, :, None] + (zoff[l2] - zoff[l])
                   + np.arange(q2)[None, None, :])
            v = np.einsum("na,nab,nb->n", zl[:, cols], sel[idx], zl[:, cols2])
            s += v if l2 == l else 2.0 * v
    return s


def scatter(model, c):
    """sum_i c_i zeta_i as a vector of the modes."""
    r = np.zeros(model._u.size)
    for l, (q, cols, _) in enumerate(_levels(model)):
        idx = _mode_index(model, l, q)
        r += np.bincount(idx.ravel(), weights=(c[:, None] * model._zl[:, cols]).ravel(), minlength=r.size)
    return r


def gather(model, t):
    """zeta_i' t of every row."""
    out = np.zeros(model.nobs)
    for l, (q, cols, _) in enumerate(_levels(model)):
        out += np.sum(model._zl[:, cols] * t[_mode_index(model, l, q)], axis=1)
    return out


def solve(model, r):
    """H^{-1} r with the kernel's factor (block rows L_k and M_k in ``_S``): forward elimination
    innermost level first, then back substitution outermost first (as ``glmm_nested``)."""
    tr, S = model._tree, model._S
    zoff, lf, blk_off, parent, u_off = (tr[k] for k in ("zoff", "level_first", "blk_off", "parent", "u_off"))
    levels = _levels(model)
    x = np.array(r, float)
    parts = []
    for l, (q, _, D) in enumerate(levels):
        ks = np.arange(lf[l], lf[l + 1])
        B = S[blk_off[lf[l]]:blk_off[lf[l]] + ks.size * q * D].reshape(ks.size, q, D)
        L = np.tril(B[:, :, :q])
        own = u_off[ks][:, None] + np.arange(q)
        ancestors, anc = [], parent[ks]
        for j in range(l + 1, len(levels)):
            qj, c0 = levels[j][0], int(zoff[j] - zoff[l])
            ancestors.append((B[:, :, c0:c0 + qj], u_off[anc][:, None] + np.arange(qj)))
            anc = parent[anc]
        parts.append((L, own, ancestors))
    for L, own, ancestors in parts:
        xk = np.linalg.solve(L, x[own][:, :, None])[:, :, 0]
        x[own] = xk
        for M, idx in ancestors:
            np.subtract.at(x, idx, np.einsum("gab,ga->gb", M, xk))
    for L, own, ancestors in parts[::-1]:
        v = x[own]
        for M, idx in ancestors:
            v = v - np.einsum("gab,gb->ga", M, x[idx])
        x[own] = np.linalg.solve(np.transpose(L, (0, 2, 1)), v[:, :, None])[:, :, 0]
    return x
