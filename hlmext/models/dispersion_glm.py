"""The negative binomial (NB2, log link) regression without random effects, the start of ``menbreg``.

``glm_start.glm_start`` fits a GLM by Newton-IRLS on the kernel at theta = 0; with a
dispersion every one of its evaluations profiles log alpha (two or three kernel calls).
Here the rows' values are evaluated directly (``_glmm.row_values``, no modes to find) and
Newton steps run in (beta, t = log alpha) jointly, with the NB2 derivatives in closed form
(k = 1/alpha = exp(-t), km = k + mu):

    d2l/dk2 = psi1(y + k) - psi1(k) + 1/k - 1/km - (mu - y)/km^2,
    dl/dt = -k dl/dk,   d2l/dt2 = k dl/dk + k^2 d2l/dk2,

dl/dk and d l'/dk as in ``dispersion_laplace._nb2_derivatives`` (the digamma and trigamma
functions taken once per distinct count). The returned
log-likelihood is the kernel's at the maximum (one call), so it is the same function as the
mixed model's at theta = 0.
"""
from __future__ import annotations

import numpy as np
from scipy.special import digamma, polygamma

from .._kernels import glmm as _glmm
from . import links


def nb2_start(model, log_phi_bounds, maxit=50, tol=1e-10):
    """``glm_start``'s (beta, standard errors, log-likelihood) of an NB2 model, or None when it
    does not apply (another family or link, nested levels, no intercept) or the steps fail.

    Leaves log alpha at its maximum and the curvature of the log-likelihood in it (at fixed
    beta) in the model's buffers, as profiling it would."""
    spec = model.spec
    X = model._X
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    if spec.family != links.NB2 or spec.link != links.LOG or model.nested or not ones.size:
        return None
    y, n, off = model._ky, model._kn, model._koff
    cw = np.ones(y.size) if model._cweight is None else np.repeat(model._cweight, model.levels[0].sizes)
    lo, hi = log_phi_bounds
    p = X.shape[1]
    beta = np.zeros(p)
    beta[ones[0]] = np.log(max(np.sum(n * y), 1e-6) / np.sum(n * np.exp(off)))
    t = float(np.clip(model._log_phi0, lo, hi))
    rms = np.sqrt(np.mean(X ** 2, axis=0))

    def value(b, s):
        eta = X @ b + off
        rows = _glmm.row_values((spec.family, spec.link, float(np.exp(s))), y, n, eta)
        return float(cw @ rows[0]), eta, rows

    f, eta, rows = value(beta, t)
    if not np.isfinite(f):
        return None
    counts, which = np.unique(y, return_inverse=True)     # psi(y + k), psi1(y + k) per distinct count
    for _ in range(maxit):
        mu, k = np.exp(eta), np.exp(-t)
        km = k + mu
        dl_k = (digamma(counts + k) - digamma(k))[which] + np.log(k) + 1.0 - np.log(km) - (y + k) / km
        d2_k = (polygamma(1, counts + k) - polygamma(1, k))[which] + 1.0 / k - 1.0 / km - (mu - y) / km ** 2
        dl_t = -k * n * dl_k
        dscore_t = -k * n * mu * (y - mu) / km ** 2
        d2_t = n * (k * dl_k + k * k * d2_k)
        g = np.append(X.T @ (cw * (y - rows[1])), cw @ dl_t)
        info = np.empty((p + 1, p + 1))
        info[:p, :p] = X.T @ ((cw * rows[2])[:, None] * X)
        info[:p, p] = info[p, :p] = -(X.T @ (cw * dscore_t))
        info[p, p] = -(cw @ d2_t)
        try:
            step = np.linalg.solve(info, g)
            if not g @ step > 0:                  # not uphill (far from the maximum): beta and t apart
                info[:p, p] = info[p, :p] = 0.0
                info[p, p] = max(abs(info[p, p]), 1e-8 * (1.0 + abs(f)))
                step = np.linalg.solve(info, g)
        except np.linalg.LinAlgError:
            return None
        for _ in range(40):
            s_new = float(np.clip(t + step[p], lo, hi))
            f_new, eta_new, rows_new = value(beta + step[:p], s_new)
            if f_new >= f - 1e-12 * abs(f):
                break
            step = step / 2
        else:
            return None
        moved = max(float(np.max(np.abs(step[:p]) * rms)), abs(s_new - t))
        beta, t, f, eta, rows = beta + step[:p], s_new, f_new, eta_new, rows_new
        if moved < tol:
            break
    else:
        return None
    with np.errstate(all="ignore"):
        se = np.sqrt(np.diag(np.linalg.pinv(X.T @ ((cw * rows[2])[:, None] * X))))
    if not np.all(np.isfinite(beta)) or np.max(np.abs(beta) * rms) > 30:
        return None                               # let glm_start check for separation
    model._buffers.get(model).log_phi_curvature = float(cw @ d2_t) if cw @ d2_t < 0 else None
    ll = float(model.loglike_at(beta, np.zeros(model.k_re), t, 1))
    return beta, np.where(np.isfinite(se) & (se > 0), se, 1.0), ll
