"""The Laplace log-likelihood's derivative in the log dispersion, and the fit that uses it.

For cluster j (one level of random effects, u ~ N(0, I), rows i with
``eta_i = eta0_i + zl_i' u``, ``zl = Z Lambda``) the Laplace approximation is
``L_j(t) = h(u_j, t) - 1/2 log det H_j``, ``h = sum_i l_i - |u|^2 / 2``,
``H_j = I + sum_i w_i zl_i zl_i'``, with t = log phi. At the mode (dh/du = 0)

    dL_j/dt = sum_i dl_i/dt - 1/2 sum_i s_i (dw_i/dt + w'_i zl_i' du_j/dt),
    du_j/dt = H_j^{-1} sum_i zl_i dl'_i/dt,      s_i = zl_i' H_j^{-1} zl_i,

with ``w' = dw/deta`` (the kernel's ``dw``). The partial derivatives of every row's
``l``, ``l'`` and ``w`` in t are central differences of the rows' values
(``_glmm.row_values``), O(n) beside the kernel's Newton iterations per cluster: the
derivative costs no kernel call.

``joint_laplace`` maximizes the Laplace log-likelihood over (beta, theta, log phi) jointly
with this gradient (one kernel call per evaluation, where profiling log phi out takes
three); ``MixedFamily`` then polishes the optimum on the profile likelihood.
"""
from __future__ import annotations

import numpy as np
from scipy.special import digamma

from .._kernels import glmm as _glmm
from . import links
from .glm_start import offset_shift
from .glmm import MixedGLM, _Objective
from .glmm_optimize import diagonal_theta, minimize_laplace


def available(model, nagq):
    """Whether the derivative applies: one level of random effects, Laplace, no level weights."""
    return bool(model.spec.dispersion) and not model.nested and nagq == 1 and model._pen is None


def laplace_dlogphi(model, beta, theta, h=1e-5):
    """d loglik / d log phi of the Laplace approximation at (beta, theta) and this thread's
    log phi, from the work arrays of the last kernel call there (Z Lambda, eta at the modes and
    H_j's factor)."""
    q = model.levels[0].q
    cl = _row_cluster(model)
    zl, eta = model._zl, model._eta            # Z Lambda and eta at the modes (the kernel's work arrays)
    t = model._log_phi
    spec = model.spec

    dl, dscore, dwt, dw = row_derivatives(spec, model._ky, model._kn, eta, t, h)
    chol = np.tril(model._chol)
    if q == 1:
        hinv = 1.0 / chol[:, 0, 0] ** 2
        du = hinv * np.bincount(cl, weights=zl[:, 0] * dscore, minlength=hinv.size)
        s = zl[:, 0] ** 2 * hinv[cl]
        deta = zl[:, 0] * du[cl]
    else:
        Hinv = np.linalg.inv(chol @ np.swapaxes(chol, 1, 2))
        r = np.column_stack([np.bincount(cl, weights=zl[:, a] * dscore, minlength=Hinv.shape[0]) for a in range(q)])
        du = np.einsum("gab,gb->ga", Hinv, r)
        s = np.einsum("ia,iab,ib->i", zl, Hinv[cl], zl)
        deta = np.einsum("ia,ia->i", zl, du[cl])
    per_row = dl - 0.5 * s * (dwt + dw * deta)
    if model._cweight is not None:
        per_row = per_row * model._cweight[cl]
    return float(per_row.sum())


def row_derivatives(spec, y, n, eta, t, h=1e-5):
    """Every row's dl/dt, dl'/dt, dw/dt and dw/deta (l the row's log-likelihood in eta,
    w = -l'', t = log phi; rows counted ``n`` times): in closed form for NB2, else central
    differences of ``_glmm.row_values`` in t."""
    if spec.family == links.NB2:
        return _nb2_derivatives(y, n, np.exp(eta), np.exp(-t))

    def rows(log_phi):
        return _glmm.row_values((spec.family, spec.link, float(np.exp(log_phi))), y, n, eta)
    ll_p, mu_p, w_p, dw_p = rows(t + h)
    ll_m, mu_m, w_m, dw_m = rows(t - h)
    return ((ll_p - ll_m) / (2 * h), -(mu_p - mu_m) / (2 * h), (w_p - w_m) / (2 * h),
            0.5 * (dw_p + dw_m))                # dw/deta at t, to O(h^2)


def _nb2_derivatives(y, n, mu, k):
    """``row_derivatives`` of NB2 (log link) with k = 1/alpha = exp(-t):
    l = lgamma(y + k) - lgamma(k) + k log k - (y + k) log(k + mu) + y eta, so that
    dl/dk = psi(y + k) - psi(k) + log k + 1 - log(k + mu) - (y + k) / (k + mu),
    l' = y - (y + k) mu / (k + mu), w = (y + k) k mu / (k + mu)^2, and d/dt = -k d/dk."""
    km = k + mu
    dl = digamma(y + k) - digamma(k) + np.log(k) + 1.0 - np.log(km) - (y + k) / km
    dscore = mu * (y - mu) / km ** 2
    dw_dk = mu * (2 * k * mu - k * y + y * mu) / km ** 3
    dw = (y + k) * k * mu * (k - mu) / km ** 3
    return -k * n * dl, -k * n * dscore, -k * n * dw_dk, n * dw


def _row_cluster(model):
    """The cluster of every row (the kernel's sorted order; cached)."""
    cached = model.__dict__.get("_row_cluster_index")
    if cached is None:
        start, end = model._rows
        cached = model._row_cluster_index = np.repeat(np.arange(start.size), end - start)
    return cached


def joint_laplace(model, beta0, se_glm, log_phi_bounds, maxiter, disp):
    """The Laplace optimum over (beta, theta, log phi) from the GLM fit ``beta0`` (its standard
    errors ``se_glm`` scale beta) and this thread's log phi; returns ((beta, theta), log phi)
    and leaves log phi there."""
    p = model.k_fe
    tscale = model.theta_scale()
    shift = offset_shift(model)
    x0 = np.concatenate([beta0 + shift, model.theta_start() * tscale, [model._log_phi]])
    curvature = getattr(model._buffers.get(model), "log_phi_curvature", None)    # of the GLM's profile
    scale = np.concatenate([se_glm, tscale, [1.0 / np.sqrt(-curvature) if curvature else 1.0]])
    bounds = [(None, None)] * p + model.theta_bounds() + [tuple(log_phi_bounds)]
    theta_mask = np.append(diagonal_theta(model), False)
    opt, _ = minimize_laplace(_Objective(_Joint(model), 1, shift), x0, bounds, scale, maxiter, theta_mask, disp=disp)
    x = opt.end
    model._set_log_phi(x[-1])
    return np.concatenate([x[:p] - shift, x[p:-1]]), float(x[-1])


class _Joint:
    """(beta, theta + [log phi]) as the objective's (beta, theta): the Laplace log-likelihood
    and its gradient with log phi as one more parameter."""

    def __init__(self, model):
        self.model, self.k_fe = model, model.k_fe

    def loglike_theta(self, beta, x, nagq, grad=True):
        model, theta = self.model, x[:-1]
        model._set_log_phi(x[-1])
        ll, g = MixedGLM.loglike_theta(model, beta, theta, 1, True)
        if not np.isfinite(ll):
            return ll, np.full(beta.size + x.size, np.nan)
        return ll, np.append(g, laplace_dlogphi(model, beta, theta))
