"""Residuals, leverage and influence of a fit (lme4's ``residuals``, ``hatvalues``,
``cooks.distance``, ``influence``; Stata's ``predict, residuals``/``rstandard``).

Residuals (``kind`` x ``which``):

- ``"raw"``: ``y - y-hat``; conditional ``y-hat = x'beta + z'b`` (generalized models: the
  conditional mean, trials x probability), marginal ``y-hat = x'beta`` (generalized: the
  population-averaged mean).
- ``"pearson"``: raw over the standard deviation of ``y`` given that prediction: ``sigma``
  (conditional, linear), ``sqrt(z' Sigma z + sigma^2)`` (marginal, linear), ``sqrt(V(mu))``
  of the family at the predicted mean (generalized).
- ``"deviance"``: the signed root of the row's deviance contribution (a linear model's is
  the raw residual).
- ``"standardized"``: raw over its own standard deviation, ``sigma sqrt(1 - h)``
  (conditional, ``h`` the hat value) or ``sqrt(z' Sigma z + sigma^2 - x'V x)`` (marginal);
  a generalized model's (conditional) is Pearson over ``sqrt(phi (1 - leverage))``.

A generalized model's residuals, hat values and Cook's distance (lme4's definitions for
``glmer`` fits, every family and link) are in ``hlmext.results.glmm_leverage``.

Hat values are the diagonal of the matrix that maps ``y`` to the conditional fitted values
``X beta-hat + Z b-hat`` (lme4's ``hatvalues``): ``h = Var(prediction error) / sigma^2`` of
``hlmext.results.predict_se``. Cook's distance by observation is lme4's:
``(r / (1 - h))^2 h / (sigma^2 p)`` with ``r`` the raw conditional residual.

Influence of each group (``group_influence``): the fit without the group, refitted from the
full fit's estimates with the same criterion (ML or REML; a generalized model's quadrature).
A linear model's comes from the fitted statistics minus the group's (its per-cluster block
zeroed, its rows' cross-products taken from the global block: no pass over the other rows),
for all groups at once where ``hlmext.results.deletion`` applies; a generalized model is
refitted on the design's rows without the group's. Cook's distance by group is lme4's
``cooks.distance(influence(fit, groups = ...))``: ``(n - p) / (n p) d' V^{-1} d`` with ``d``
the change in the fixed effects, ``V`` their full-data covariance and ``n`` the number of groups.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from scipy import optimize

from ..exceptions import ModelError
from .marginal_means import random_variance
from . import deletion_levels, glmm_leverage
from .deletion import fast_deletions
from .predict_se import _covs, get_prediction
from .rowsets import fitted_rows

__all__ = ["residuals", "hatvalues", "cooks_distance", "group_influence"]

KINDS = ("raw", "pearson", "deviance", "standardized")
FAST_FROM = 200      # groups: below, refitting each deletion costs less than solving all at once


def _linear(res):
    return not hasattr(res.model, "_sm_family")


def _ordinal(res):
    return hasattr(res.model, "_sm_family") and res.model._sm_family is None


def _not_ordinal(res):
    if _ordinal(res):
        raise ValueError("residuals, hat values and Cook's distance are not defined for an ordinal model (its "
                         "response is a category); compare results.predict(which='prob') with the observed "
                         "categories, or use results.influence() for the influence of each group")


def residuals(res, kind="raw", which="conditional"):
    _not_ordinal(res)
    if kind not in KINDS:
        raise ValueError("kind must be 'raw', 'pearson', 'deviance' or 'standardized', not %r" % (kind,))
    if which not in ("conditional", "marginal"):
        raise ValueError("which must be 'conditional' or 'marginal', not %r" % (which,))
    if not _linear(res):
        return res._original_order(glmm_leverage.residuals(res, kind, which))
    y = res._original_order(res.model.design.endog)
    return _linear_residuals(res, y, "raw" if kind == "deviance" else kind, which)


def _linear_residuals(res, y, kind, which):
    if which == "conditional":
        raw = y - res.fittedvalues
        if kind == "raw":
            return raw
        if kind == "pearson":
            return raw / np.sqrt(res.scale)
        return raw / np.sqrt(res.scale * (1 - hatvalues(res)))
    rows = fitted_rows(res)
    raw = y - rows.X @ res.fe_params.to_numpy()
    if kind == "raw":
        return raw
    var_y = random_variance(rows, _covs(res)) + res.scale
    if kind == "pearson":
        return raw / np.sqrt(var_y)
    V = res.cov_fe.to_numpy()
    return raw / np.sqrt(var_y - np.einsum("ij,jk,ik->i", rows.X, V, rows.X))


def hatvalues(res):
    _not_ordinal(res)
    if not _linear(res):
        return res._original_order(glmm_leverage.hatvalues(res))
    se = get_prediction(res, which="conditional").se_mean
    return (se ** 2 / res.scale).rename(None)


def cooks_distance(res):
    _not_ordinal(res)
    if not _linear(res):
        return res._original_order(glmm_leverage.cooks_distance(res))
    h = hatvalues(res)
    r = res.resid
    return (r / (1 - h)) ** 2 * h / (res.scale * res.k_fe)


def _fast_level(d, li):
    """Whether the one-level route (deletions from the clusters' statistics) applies."""
    return len(d.levels) == 1 and d.n_chain == 1 and not d.qd and d.weights is None


def group_influence(res, groups=None, exact=False, level=None):
    """Refits without each group of ``level`` (all groups, or the labels in ``groups``): a DataFrame.

    A linear model with one level: ``exact=False`` (with at least ``FAST_FROM`` groups)
    settles every group it can by ``hlmext.results.deletion`` (all groups at once) and refits
    the others one by one from the downdated statistics; ``exact=True`` refits every group
    that way. Other models (several levels, weights, generalized): each group's deletion is
    refitted on the design's rows without it (``hlmext.results.deletion_levels``)."""
    model = res.model
    d = model.design
    if getattr(model, "sampling", None) is not None:
        raise ModelError("influence by group deletion is not available with sampling weights; refit without a "
                         "group with results.update(data=...)")
    if not d.has_rows:
        raise ModelError("influence by group deletion needs the fitted rows; this model was fitted from "
                         "statistics accumulated over chunks: refit without a group with results.update(data=...)")
    if _ordinal(res):
        raise ModelError("influence by group deletion is not available for ordinal models yet; refit without a "
                         "group with results.update(data=...)")
    li = deletion_levels.level_index(d, level)
    labels, pos = deletion_levels.group_positions(d, li, groups)
    if not _linear(res):
        return _frame(res, li, labels, pos, _glmm_deleted_fits(res, li, pos))
    reml = res.reml
    scale = model.theta_scale()
    H0 = res.opt.hessian if getattr(res.opt, "hessian", None) is not None else _hessian(model, res.theta, scale, reml)
    if not _fast_level(d, li):
        return _frame(res, li, labels, pos, _linear_deleted_fits(res, li, pos, H0))
    lv = d.levels[0]
    q, p = lv.q, d.k_fe
    G0 = model._G0.reshape(p + 1, p + 1)
    beta = np.full((len(pos), p), np.nan)
    if not exact and not res.on_boundary and lv.n_groups >= FAST_FROM:
        with np.errstate(all="ignore"):      # a group whose steps fail is marked unsettled, and refitted
            fast = fast_deletions(model, np.asarray(res.theta, float), H0, reml)
        if fast is not None:
            beta_all, _, settled = fast
            beta[settled[pos]] = beta_all[pos[settled[pos]]]
            if d.intercept_col >= 0:
                beta[settled[pos], d.intercept_col] += d.y_shift
    todo = np.flatnonzero(np.isnan(beta[:, 0]))
    if len(todo):
        xy = d.W[:, d.zoff[-1]:]
        starts = np.concatenate([[0], np.cumsum(lv.sizes)[:-1]])
        width = q + p + 1
        sub = copy.copy(model)
        bounds = model.theta_bounds()
        for r in todo:
            g = pos[r]
            block = xy[starts[g]:starts[g] + lv.sizes[g]]
            sub._stats = model._stats.copy()
            sub._stats.reshape(lv.n_groups, q, width)[g] = 0.0
            sub._G0 = (G0 - block.T @ block).ravel()
            sub.nobs = model.nobs - int(lv.sizes[g])
            theta = _refit_theta(sub, res.theta, H0, bounds, scale, reml)
            beta[r] = sub.factorize(theta).beta
    return _frame(res, li, labels, pos, beta)


def _frame(res, li, labels, pos, beta):
    """The influence table: dfbeta, rows of each group, Cook's distance (lme4's)."""
    lv = res.model.design.levels[li]
    p = res.k_fe
    dfbeta = res.fe_params.to_numpy() - beta
    n = len(labels)
    Vinv = np.linalg.inv(res.cov_fe.to_numpy())
    cooks = (n - p) / (n * p) * np.einsum("ij,jk,ik->i", dfbeta, Vinv, dfbeta)
    frame = pd.DataFrame(dfbeta, index=pd.Index(labels[pos], name=lv.name),
                         columns=["dfbeta[%s]" % nm for nm in res.model.exog_names])
    frame["nobs"] = lv.sizes[pos].astype(int)
    frame["cooks_distance"] = cooks
    return frame.sort_index()


def _linear_deleted_fits(res, li, pos, H0):
    """Fixed effects of a linear model refitted without each group of level ``li``: the model
    on the design's rows without the group, its theta by Newton steps from the full fit's."""
    model = res.model
    out = np.empty((len(pos), model.design.k_fe))
    for r, g in enumerate(pos):
        sub, same = deletion_levels.downdated_model(model, li, g), True
        if sub is None:
            sub, same = deletion_levels.deleted_model(model, li, g)
        if not same:                # a crossed level became the chain: theta in another order
            out[r] = sub.fit(reml=res.reml).fe_params.to_numpy()
            continue
        theta = _refit_theta(sub, res.theta, H0, sub.theta_bounds(), sub.theta_scale(), res.reml)
        out[r] = sub.factorize(theta).beta
    return out


def _glmm_deleted_fits(res, li, pos):
    """Fixed effects of a generalized model refitted without each group of level ``li`` (from
    the full fit's estimates, with its quadrature)."""
    model = res.model
    start = np.concatenate([res.fe_params.to_numpy(), res.theta])
    out = np.empty((len(pos), model.design.k_fe))
    for r, g in enumerate(pos):
        sub, same = deletion_levels.deleted_model(model, li, g)
        out[r] = np.asarray(sub.fit(nagq=res.nagq, start=start if same else None).params)[:model.design.k_fe]
    return out


def _refit_theta(sub, start, H0, bounds, scale, reml):
    """The downdated model's optimum over theta: Newton steps from the full fit's optimum with
    the full fit's Hessian ``H0`` (a group's deletion moves the Hessian little), refreshed by
    differences of the analytic gradient when the steps converge slowly; L-BFGS-B when a
    step would leave the box."""
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    theta = np.array(start, float)
    H = H0
    for it in range(30):
        _, g = sub.deviance_and_gradient(theta, reml)
        step = np.linalg.solve(H, g)
        theta_new = theta - step
        if np.any(theta_new < lo) or np.any(theta_new > hi) or not np.all(np.isfinite(theta_new)):
            break
        theta = theta_new
        if np.all(np.abs(step) <= 1e-11 * np.maximum(scale, np.abs(theta))):
            return theta
        if it == 4:                            # slow: the Hessian at the current point
            H = _hessian(sub, theta, scale, reml)
    z = optimize.minimize(lambda z: _scaled(sub, z, scale, reml), theta / scale, jac=True, method="L-BFGS-B",
                          bounds=list(zip(lo / scale, hi / scale)),
                          options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 1000}).x
    return z * scale


def _scaled(sub, z, scale, reml):
    f, g = sub.deviance_and_gradient(z * scale, reml)
    return f, g * scale


def _hessian(sub, theta, scale, reml):
    h = 1e-6 * np.maximum(scale, np.abs(theta))
    cols = []
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = h[i]
        cols.append((sub.deviance_and_gradient(theta + e, reml)[1] - sub.deviance_and_gradient(theta - e, reml)[1])
                    / (2 * h[i]))
    H = np.array(cols)
    return 0.5 * (H + H.T)
