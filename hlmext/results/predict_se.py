"""Predictions with standard errors and intervals: ``results.get_prediction`` (statsmodels'
``PredictionResults`` conventions: ``predicted_mean``, ``se_mean``, ``conf_int``, ``summary_frame``).

What the standard errors include (``which=``):

- ``"marginal"``: the fixed effects' uncertainty, ``x'V x`` with ``V = cov_fe``. For a
  generalized model the population-averaged mean (``hlmext.results.marginal_means``) depends
  on the variance parameters as well: its variance is ``J C J'`` with ``C`` the covariance of
  all parameters (``cov_params()``) and ``J`` the mean's numerical derivative in them.
- ``"conditional"`` / ``"linear"``: the prediction error of ``x'beta-hat + z'b-hat`` as a
  prediction of ``x'beta + z'b`` for a group of the fit (Henderson's prediction error
  variance, as lme4's ``predict(se.fit = TRUE)`` and Stata's ``reses``): with ``C_g`` the
  conditional covariance of the group's effects given beta (``random_effects_cov``) and
  ``E_g = C_g Z_g' W_g X_g / s2`` (``s2 = sigma^2`` for a linear model, 1 otherwise; ``W`` the
  GLM weights at the conditional modes, 1 for a linear model), the variance is

      (x - E_g' z)' V (x - E_g' z) + z' C_g z,

  that is ``x'Vx + z'(C_g + E_g V E_g')z - 2 z'E_g V x``: the fixed effects' variance, the
  effects' conditional variance, the effects' extra variance from estimating beta and the
  covariance between beta-hat and b-hat. The variance parameters are taken as known.
  With several levels (nested or crossed) the same variance comes from the whole
  penalized system, covariances between the levels' effects included
  (``hlmext.results.predict_levels``).
  A group the fit did not see (``new_groups="population"``) is predicted at ``b = 0`` with
  variance ``x'Vx + z' Sigma z``: the random-effect variance is added to the interval.

A generalized model's ``"conditional"`` mean ``g^{-1}(eta)`` gets the delta-method standard
error ``|d mu / d eta| se(eta)`` and the interval ``g^{-1}`` of the linear predictor's; a
``"marginal"`` mean gets its interval on the link scale, transformed back. A linear model's
``summary_frame`` adds prediction intervals for a new observation (``obs_ci_*``), whose
variance adds ``sigma^2`` (and ``z' Sigma z`` for ``"marginal"``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import FormulaError
from .marginal_means import level_covariances, population_mean, random_variance
from .predict_levels import levels_eta
from .rowsets import rows_for

__all__ = ["PredictionResults", "get_prediction"]

WHICH = ("conditional", "marginal", "linear")
NEW_GROUPS = ("error", "population")


class PredictionResults:
    """Predicted means with standard errors (statsmodels' ``PredictionResults`` conventions).

    Attributes
    ----------
    predicted_mean, se_mean : pandas.Series
        The predictions and their standard errors.
    se_obs : pandas.Series or None
        Linear models: the standard error of a new observation.
    which : str
    """

    def __init__(self, mean, se, index, which, link=None, link_mean=None, link_se=None, se_obs=None):
        self.which = which
        self.predicted_mean = pd.Series(mean, index=index, name="mean")
        self.se_mean = pd.Series(se, index=index, name="mean_se")
        self.se_obs = None if se_obs is None else pd.Series(se_obs, index=index, name="obs_se")
        self._link, self._link_mean, self._link_se = link, link_mean, link_se
        self.dist = stats.norm

    @property
    def var_pred_mean(self):
        return self.se_mean ** 2

    def conf_int(self, alpha=0.05, obs=False):
        """``(n, 2)`` array of intervals of the mean (``obs=True``: of a new observation, linear models)."""
        q = stats.norm.ppf(1 - alpha / 2)
        if obs:
            if self.se_obs is None:
                raise ValueError("prediction intervals for a new observation (obs=True) are for linear models; "
                                 "a generalized model's response is discrete")
            m, s = self.predicted_mean.to_numpy(), self.se_obs.to_numpy()
            return np.column_stack([m - q * s, m + q * s])
        if self._link is None:
            m, s = self.predicted_mean.to_numpy(), self.se_mean.to_numpy()
            return np.column_stack([m - q * s, m + q * s])
        lo = self._link.inverse(self._link_mean - q * self._link_se)
        hi = self._link.inverse(self._link_mean + q * self._link_se)
        return np.column_stack([np.minimum(lo, hi), np.maximum(lo, hi)])

    def summary_frame(self, alpha=0.05):
        """DataFrame with ``mean``, ``mean_se``, ``mean_ci_lower``, ``mean_ci_upper`` (and
        ``obs_ci_lower``, ``obs_ci_upper`` for linear models), one row per prediction."""
        ci = self.conf_int(alpha)
        out = pd.DataFrame({"mean": self.predicted_mean, "mean_se": self.se_mean,
                            "mean_ci_lower": ci[:, 0], "mean_ci_upper": ci[:, 1]})
        if self.se_obs is not None:
            obs = self.conf_int(alpha, obs=True)
            out["obs_ci_lower"], out["obs_ci_upper"] = obs[:, 0], obs[:, 1]
        return out


def get_prediction(res, exog=None, which="conditional", new_groups="error", offset=None):
    """Predictions with standard errors; see the module docstring and ``results.get_prediction``."""
    if which not in WHICH:
        raise ValueError("which must be one of %s, not %r" % (", ".join(map(repr, WHICH)), which))
    if new_groups not in NEW_GROUPS:
        raise ValueError("new_groups must be 'error' or 'population', not %r" % (new_groups,))
    rows = rows_for(res, exog, offset)
    link = None if _is_linear(res) else res.model._sm_family().link
    if which == "marginal":
        return _marginal(res, rows, link)
    new = rows.new_group_rows()
    if rows.missing_groups and new_groups == "error":
        raise FormulaError("conditional predictions need the grouping column(s) %s in the new data; add them, or "
                           "use which='marginal' (or new_groups='population')"
                           % ", ".join(map(repr, rows.missing_groups)))
    if new.any() and new_groups == "error":
        raise ValueError("%d row(s) belong to groups the fit did not see: pass new_groups='population' to "
                         "predict them at b = 0 with the random-effect variance added, or use which='marginal'"
                         % int(new.sum()))
    eta, var = _conditional_eta(res, rows)
    se = np.sqrt(var)
    if link is None:
        return PredictionResults(eta, se, rows.index, which, se_obs=np.sqrt(var + res.scale))
    if which == "linear":
        return PredictionResults(eta, se, rows.index, which)
    mu = link.inverse(eta)
    return PredictionResults(mu, np.abs(link.inverse_deriv(eta)) * se, rows.index, which, link, eta, se)


def _is_linear(res):
    return not hasattr(res.model, "_sm_family")


def _marginal(res, rows, link):
    V = res.cov_fe.to_numpy()
    beta = res.fe_params.to_numpy()
    eta0 = rows.X @ beta + rows.offset
    if link is None:
        var = np.einsum("ij,jk,ik->i", rows.X, V, rows.X)
        v_re = random_variance(rows, {k: np.asarray(c) for k, c in _covs(res).items()})
        return PredictionResults(eta0, np.sqrt(var), rows.index, "marginal",
                                 se_obs=np.sqrt(var + v_re + res.scale))
    p = np.asarray(res.params, float)

    def mean_at(params):
        covs = level_covariances(res.model, params[res.k_fe:])
        return population_mean(link, rows.X @ params[:res.k_fe] + rows.offset, random_variance(rows, covs))

    mu = mean_at(p)
    if np.isnan(mu).any():
        raise ValueError("the population-averaged mean needs each row's random-effects design, and rows given as "
                         "exog carry none for the random slopes: pass a DataFrame with the formula's columns")
    J, C = delta_jacobian(mean_at, p, np.asarray(res.cov_params(), float))
    se = np.sqrt(np.einsum("ij,jk,ik->i", J, C, J))
    link_se = se * np.abs(link.deriv(mu))
    return PredictionResults(mu, se, rows.index, "marginal", link, link(mu), link_se)


def delta_jacobian(fun, params, cov, rel_step=1e-6):
    """Central-difference Jacobian of ``fun`` in the parameters that have a variance, and the
    covariance with the others (boundary parameters: NaN) held fixed (zeros)."""
    cov = np.where(np.isfinite(cov), cov, 0.0)
    f0 = np.asarray(fun(params), float)
    J = np.zeros(f0.shape + (params.size,))
    for j in np.flatnonzero(np.diag(cov) > 0):
        h = rel_step * max(1.0, abs(params[j]))
        up, down = params.copy(), params.copy()
        up[j] += h
        down[j] -= h
        J[..., j] = (np.asarray(fun(up)) - np.asarray(fun(down))) / (2 * h)
    return J, cov


def _covs(res):
    return {lv.name: res.cov_re[lv.name].to_numpy() for lv in res.model.levels}


def conditional_blocks(res):
    """Per group of the (single) level: ``b-hat`` (G, q), ``C_g`` (G, q, q) and ``E_g`` (G, q, p),
    in the level's cluster order (computed once per fit)."""
    cache = res.__dict__.get("_conditional_blocks")
    if cache is not None:
        return cache
    model = res.model
    d = model.design
    if len(d.levels) != 1:
        raise ValueError("standard errors of conditional predictions are available for models with one level "
                         "of random effects; use which='marginal', or predict() for the values alone")
    if not d.has_rows:
        raise ValueError("standard errors of conditional predictions need the fitted rows; this model was "
                         "fitted from statistics accumulated over chunks")
    lv = d.levels[0]
    q, p = lv.q, d.k_fe
    b = res.random_effects[lv.name][lv.names].reindex(lv.labels).to_numpy()
    table = res.random_effects_cov[lv.name].reindex(lv.labels)
    C = np.empty((lv.n_groups, q, q))
    for i in range(q):
        for j in range(i + 1):
            col = "var(%s)" % lv.names[i] if i == j else "cov(%s,%s)" % (lv.names[j], lv.names[i])
            C[:, i, j] = C[:, j, i] = table[col].to_numpy()
    Z, X = np.asarray(d.z_of(0)), np.asarray(d.exog)
    if _is_linear(res):
        w, s2 = d.weights, res.scale
    else:
        fam = model._sm_family()
        mu = fam.link.inverse(res._eta_cond_sorted)
        w, s2 = model.trials * fam.variance(mu), 1.0
    WX = X if w is None else X * w[:, None]
    starts = np.concatenate([[0], np.cumsum(lv.sizes)[:-1]])
    ZtWX = np.add.reduceat((Z[:, :, None] * WX[:, None, :]).reshape(len(X), q * p), starts, axis=0)
    E = C @ ZtWX.reshape(-1, q, p) / s2
    res._conditional_blocks = (b, C, E)
    return res._conditional_blocks


def _conditional_eta(res, rows):
    """Conditional linear predictor and its prediction-error variance (module docstring)."""
    beta, V = res.fe_params.to_numpy(), res.cov_fe.to_numpy()
    eta = rows.X @ beta + rows.offset
    new = rows.new_group_rows()
    if all((lr.group < 0).all() for lr in rows.levels):     # no group of the fit: no b-hat, no C_g
        var = np.einsum("ij,jk,ik->i", rows.X, V, rows.X)
    elif len(res.model.design.levels) > 1:                   # the whole penalized system
        if not res.model.design.has_rows:
            raise ValueError("standard errors of conditional predictions need the fitted rows; this model was "
                             "fitted from statistics accumulated over chunks")
        eta, var = levels_eta(res, rows, _is_linear(res))
    else:
        b, C, E = conditional_blocks(res)
        lr = rows.levels[0]
        g, z = np.where(new, 0, lr.group), lr.Z
        eta = eta + np.where(new, 0.0, np.einsum("ij,ij->i", z, b[g]))
        a = rows.X - np.einsum("ijk,ij->ik", E[g], z)
        var = np.einsum("ij,jk,ik->i", a, V, a) + np.einsum("ij,ijk,ik->i", z, C[g], z)
        if new.any():
            Xn = rows.X[new]
            var[new] = np.einsum("ij,jk,ik->i", Xn, V, Xn)
    covs = _covs(res)
    for lr in rows.levels:
        unseen = lr.group < 0
        if unseen.any():
            var[unseen] += np.einsum("ij,jk,ik->i", lr.Z[unseen], covs[lr.level.name], lr.Z[unseen])
    return eta, var
