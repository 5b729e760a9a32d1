"""The fixed part alone: the GLM that starts a mixed logit or Poisson fit, and the check that
its maximum-likelihood estimates exist (no separation)."""
from __future__ import annotations

import numpy as np
from scipy import optimize as sopt

from .._kernels import glmm as _glmm
from ..exceptions import ModelError

#: the families whose responses can be separated: binomial, Poisson, negative binomial
SEPARABLE = (0, 1, 4, 5)


def glm_start(model):
    """The model's GLM without random effects by Newton-IRLS (its kernel at theta = 0), with step halving.

    Returns the estimates, their standard errors (the scale of beta for the optimizer)
    and the log-likelihood; a fit that diverges is checked for separation. The iteration
    runs on the fixed effects of the centred offset (``offset_shift``), so that a constant
    added to the offset changes nothing but the intercept.
    """
    p, theta0, X = model.k_fe, np.zeros(model.k_re), model._X
    shift = offset_shift(model)
    beta = np.zeros(p)                            # beta + shift: the fixed effects of the centred offset
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    if ones.size:
        binomial = model._family_code == _glmm.BINOMIAL
        off = model.offset - _offset_centre(model)
        rate = model._y.sum() / (model.trials.sum() if binomial else np.exp(off).sum())
        rate = np.clip(rate, 1e-6, 1 - 1e-6) if binomial else max(rate, 1e-6)
        beta[ones[0]] = model._sm_family().link(rate)
    beta = beta - shift
    rms = np.sqrt(np.mean(X ** 2, axis=0))
    ll, g = model.loglike_theta(beta, theta0, 1, grad=True)
    converged, info = False, None
    row_cw = 1.0 if model._cweight is None else np.repeat(model._cweight, model.levels[0].sizes)
    for _ in range(100):
        info = X.T @ ((row_cw * model._w)[:, None] * X)
        try:
            step = np.linalg.solve(info, g[:p])
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-8:
            ll_new, g_new = model.loglike_theta(beta + t * step, theta0, 1, grad=True)
            if ll_new >= ll - 1e-12 * abs(ll):
                break
            t /= 2
        if not ll_new >= ll - 1e-12 * abs(ll):       # no step keeps the likelihood: the edge of a link's domain
            model.loglike_theta(beta, theta0, 1, grad=True)       # the work arrays at beta again
            break
        beta, ll, g = beta + t * step, ll_new, g_new
        if np.max(np.abs(t * step) * rms) < 1e-10:
            converged = True
            break
        if np.max(np.abs(beta + shift) * rms) > 30:
            break
    info = X.T @ ((row_cw * model._w)[:, None] * X)
    with np.errstate(all="ignore"):
        se = np.sqrt(np.diag(np.linalg.pinv(info)))
    if not converged or not np.all(np.isfinite(se)) or np.max(np.abs(beta + shift) * rms) > 15 or np.max(se * rms) > 50:
        check_separation(X, model._y, model.trials, model.exog_names, model.endog_names, model._family_code)
    se = np.where(np.isfinite(se) & (se > 0), se, 1.0)
    return np.where(np.isfinite(beta), beta, 0.0), se, ll


def _offset_centre(model):
    """The mean of the model's offset (0 without one)."""
    off = model.offset
    return float(np.mean(off)) if off.size and np.any(off != 0) else 0.0


def offset_shift(model):
    """``c v``: what a constant offset ``c`` (the offset's mean) adds to the fixed effects.

    ``X beta + offset = X (beta + c v) + (offset - c)`` when ``X v = 1``: ``v`` is the
    intercept's unit vector, or the combination of columns that spans the constant (e.g.
    a dummy per category without an intercept). The optimizer works on ``beta + c v``
    with the centred offset, so a constant added to the offset (``offset = 50 + ...``,
    ``exposure = 1e130``) leaves every other estimate and the log-likelihood as they are.
    Without a constant in the column space the offset's level is part of the model and
    nothing is shifted (zeros).
    """
    p, X = model.k_fe, model._X
    c = _offset_centre(model)
    if c == 0.0 or p == 0:
        return np.zeros(p)
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    if ones.size:
        v = np.zeros(p)
        v[ones[0]] = 1.0
        return c * v
    v = np.linalg.lstsq(X, np.ones(X.shape[0]), rcond=None)[0]
    if not np.max(np.abs(X @ v - 1.0)) < 1e-8:
        return np.zeros(p)
    return c * v


def check_separation(X, y, ntr, names, endog_name, family_code):
    """Raise ModelError if some direction of the fixed effects separates the outcomes (an LP check).

    Logit: d with x_i'd >= 0 where y_i = n_i, <= 0 where y_i = 0, = 0 elsewhere and > 0 somewhere
    means the likelihood keeps increasing along d. Poisson: x_i'd <= 0 where y_i = 0, = 0 elsewhere.
    """
    if family_code not in SEPARABLE:
        return                                    # a continuous response: no separation
    scale = np.sqrt(np.mean(X ** 2, axis=0))
    scale[scale == 0] = 1.0
    Xs = X / scale
    low = y <= 0
    high = (y >= ntr) & ~low if family_code == _glmm.BINOMIAL else np.zeros_like(low)
    edge, mid = low | high, ~(low | high)
    sign = np.where(high, 1.0, -1.0)[edge]
    A = sign[:, None] * Xs[edge]
    res = sopt.linprog(-A.sum(axis=0), A_ub=-A if A.size else None, b_ub=np.zeros(len(A)) if A.size else None,
                       A_eq=Xs[mid] if mid.any() else None, b_eq=np.zeros(mid.sum()) if mid.any() else None,
                       bounds=[(-1, 1)] * X.shape[1], method="highs")
    if res.status != 0 or not -res.fun > 1e-6:
        return
    d = res.x
    margins = A @ d
    if margins.min() < -1e-7 or (mid.any() and np.abs(Xs[mid] @ d).max() > 1e-7) or margins.max() < 1e-6:
        return
    involved = [names[j] for j in np.flatnonzero(np.abs(d) > 1e-6 * np.abs(d).max())]
    slopes = [nm for nm in involved if nm not in ("Intercept", "const")]
    if not slopes:
        what = "0" if np.all(low) else ("its maximum (= trials)" if family_code == _glmm.BINOMIAL else "0")
        raise ModelError("the response %r is %s in every row, so the fixed effects are not identified"
                         % (endog_name, what))
    raise ModelError("complete or quasi-complete separation: %s perfectly predict%s some outcomes of %r (a "
                     "combination of %s is never on the wrong side of the 0/1 or zero-count rows), so the "
                     "maximum-likelihood estimates do not exist; drop or recode %s (e.g. merge categories "
                     "that have only 0s or only 1s)"
                     % (", ".join(repr(s) for s in slopes), "s" if len(slopes) == 1 else "",
                        endog_name, " and ".join(repr(s) for s in involved), ", ".join(repr(s) for s in slopes)))
