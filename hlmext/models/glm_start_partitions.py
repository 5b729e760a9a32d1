"""The GLM that starts a generalized model fitted on partitions (``hlmext.models.glmm_distributed``).

``hlmext.models.glm_start`` on the partitions: the same Newton-IRLS with step halving
from the same start, its log-likelihood, gradient and ``X'WX`` summed over the partitions,
and the offset's shift (``offset_shift``) from the partitions' sums.
"""
from __future__ import annotations

import warnings

import numpy as np

from .._kernels import glmm as _glmm
from ..exceptions import ConvergenceWarning
from ..threads import single_blas_thread
from ..stacklevel import user_stacklevel


def part_glm_step(part, beta, log_phi=None):
    """The GLM (theta = 0): log-likelihood, gradient and ``X'WX`` at ``beta`` (and the driver's
    ``log_phi``, for a family with a dispersion parameter)."""
    m = part.model
    with part.lock, single_blas_thread():
        theta0 = np.zeros(m.k_re)
        if log_phi is None:
            ll, g = m.loglike_theta(beta, theta0, 1, grad=True)
        else:
            ll, g = m.loglike_at(beta, theta0, log_phi, 1, grad=True)
        return ll, g, m._X.T @ (m._w[:, None] * m._X)


def part_exp_offset(part, centre):
    with part.lock:                     # the offset exists during a call (part_memory.RowStore)
        return float(np.exp(part.model.offset - centre).sum())


def part_max_misfit(part, v):
    """max |X v - 1| (does ``X v`` give the constant column?)."""
    return float(np.max(np.abs(part.model._X @ v - 1.0)))


def glm_start(model):
    """``hlmext.models.glm_start.glm_start`` on the partitions: the same Newton-IRLS with step
    halving (a dispersion profiled at every step, as in memory), its ``X'WX`` summed over the
    partitions. Separation cannot be checked without the rows: a GLM that does not converge is
    reported, with the in-memory check to run."""
    p, theta0 = model.k_fe, np.zeros(model.k_re)
    shift = offset_shift(model)
    beta = np.zeros(p)
    ones = model._ones
    if ones.size:
        binomial = model._family_code == _glmm.BINOMIAL
        if binomial:
            total = model._trials_sum
        elif model._offset_given:
            total = sum(model.parts.map(part_exp_offset, _offset_centre_of(model)))
        else:
            total = float(model.nobs)
        rate = model._y_sum / total
        rate = np.clip(rate, 1e-6, 1 - 1e-6) if binomial else max(rate, 1e-6)
        beta[ones[0]] = model._sm_family().link(rate)
    beta = beta - shift
    rms = np.sqrt(np.diag(model._G0)[:p] / model.nobs)

    def step_at(b):
        out = model.parts.map(part_glm_step, b, model._profiled(b, theta0, 1))
        ll = sum(o[0] for o in out)
        model._report([ll], False)
        return ll, sum(o[1] for o in out), sum(o[2] for o in out)
    ll, g, info = step_at(beta)
    converged = False
    for _ in range(100):
        try:
            step = np.linalg.solve(info, g[:p])
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-8:
            ll_new, g_new, info_new = step_at(beta + t * step)
            if ll_new >= ll - 1e-12 * abs(ll):
                break
            t /= 2
        if not ll_new >= ll - 1e-12 * abs(ll):       # no step keeps the likelihood: the edge of a link's domain
            step_at(beta)                            # the modes and the profile at beta again, as in memory
            break
        beta, ll, g, info = beta + t * step, ll_new, g_new, info_new
        if np.max(np.abs(t * step) * rms) < 1e-10:
            converged = True
            break
        if np.max(np.abs(beta + shift) * rms) > 30:
            break
    with np.errstate(all="ignore"):
        se = np.sqrt(np.diag(np.linalg.pinv(info)))
    if not converged or not np.all(np.isfinite(se)) or np.max(np.abs(beta + shift) * rms) > 15 or np.max(se * rms) > 50:
        warnings.warn("the model without random effects (the start of the fit) did not converge, a sign of "
                      "complete or quasi-complete separation, which cannot be checked without the rows: fit "
                      "the model in memory on the clusters concerned (or a sample) to find the separating "
                      "covariates", ConvergenceWarning, stacklevel=user_stacklevel())
    se = np.where(np.isfinite(se) & (se > 0), se, 1.0)
    return np.where(np.isfinite(beta), beta, 0.0), se, ll


def _offset_centre_of(model):
    """``glm_start._offset_centre`` from the partitions' sums."""
    return model._offset_mean


def offset_shift(model):
    """``hlmext.models.glm_start.offset_shift`` from the partitions' sums: ``c v`` with ``X v = 1``."""
    p, c = model.k_fe, _offset_centre_of(model)
    if c == 0.0 or p == 0:
        return np.zeros(p)
    if model._ones.size:
        v = np.zeros(p)
        v[model._ones[0]] = 1.0
        return c * v
    v = np.linalg.lstsq(model._G0[:p, :p], model._x_sum, rcond=None)[0]
    if not max(model.parts.map(part_max_misfit, v)) < 1e-8:
        return np.zeros(p)
    return c * v
