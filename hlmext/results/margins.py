"""Marginal means, average marginal effects and their contrasts (Stata's ``margins``,
``margins, dydx(x)``, ``at()``; ``emmeans``' pairwise contrasts).

A margin is the mean, over the rows of the estimation sample (or of a subgroup, ``over=``),
of the predicted mean with some columns set to given values (``at=``): Stata's
``margins`` with its default ``asobserved``. An average marginal effect (``dydx=``) is the
mean over the rows of the derivative of the predicted mean in a numeric column (central
differences through the formula, so transformations and interactions are followed); for
a column the formula uses as a factor it is, as Stata's ``margins, dydx(factor)``, the
discrete change from the base level (the first, treatment coding's reference) to each
other level: the mean over the rows of the predicted mean with the column set to the level
minus that with it set to the base.

The predicted mean is ``x'beta`` for a linear model; for a generalized model it is the
mean at ``b = 0`` (``population_averaged=False``, the default: lme4's ``re.form = NA``,
``emmeans``' ``type = "response"``) or the population-averaged mean, the inverse link
integrated over the random effects (``population_averaged=True``; Stata's ``predict(mu
marginal)``, ``hlmext.results.marginal_means``). Standard errors are by the delta method
(numerical derivatives in all parameters: the variance parameters enter only the
population-averaged means) with ``cov_params()``; tests and intervals are normal (z).
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .marginal_means import level_covariances, population_mean, random_variance
from .predict_se import delta_jacobian
from .rowsets import new_rows

__all__ = ["margins", "ADJUST"]

ADJUST = ("holm", "bonferroni", "sidak", "fdr_bh", "tukey", "none")


def margins(res, data, at=None, dydx=None, over=None, population_averaged=False, contrast=None, adjust="holm",
            alpha=0.05):
    """Margins of a fit; see ``results.margins`` (``hlmext.results.after_fit``)."""
    data = _sample(res, data)
    at = _at_grid(at, data)
    dydx = [dydx] if isinstance(dydx, str) else list(dydx or [])
    changes = []                      # (term label, column, None for a derivative or (base, level))
    for var in dydx:
        if var not in data.columns:
            raise ValueError("dydx: %r is not a column of data" % (var,))
        levels = factor_levels(res, var)
        if levels is not None:
            changes += [("%s[%s vs %s]" % (var, lev, levels[0]), var, (levels[0], lev)) for lev in levels[1:]]
            continue
        if not pd.api.types.is_numeric_dtype(data[var]) or pd.api.types.is_bool_dtype(data[var]):
            raise ValueError("dydx=%r: the column is not numeric and the formula does not use it as a factor; "
                             "compare its values with at={%r: [...]}, contrast='pairwise'" % (var, var))
        changes.append((var, var, None))
    if over is not None and over not in data.columns:
        raise ValueError("over: %r is not a column of data" % (over,))
    if contrast not in (None, "pairwise"):
        raise ValueError("contrast must be None or 'pairwise', not %r" % (contrast,))
    if adjust not in ADJUST:
        raise ValueError("adjust must be one of %s, not %r" % (", ".join(map(repr, ADJUST)), adjust))
    link = None if not hasattr(res.model, "_sm_family") else res.model._sm_family().link
    if population_averaged and link is None:
        population_averaged = False            # a linear model's marginal mean is x'beta either way

    groups = [(None, data)] if over is None else [(g, data[data[over] == g]) for g in pd.unique(data[over])]
    labels, pieces = [], []
    for g, rows in groups:
        for combo in at:
            for term, var, change in changes or [(None, None, None)]:
                labels.append(((g,) if over is not None else ()) + tuple(combo.values()) + ((term,) if dydx else ()))
                pieces.append(_piece(res, rows, combo, var, change))
    names = ([over] if over is not None else []) + (list(at[0]) if at[0] else []) + (["term"] if dydx else [])
    index = _index(labels, names)
    fun = _margin_function(res, pieces, link, population_averaged)
    params = np.asarray(res.params, float)
    est = fun(params)
    J, C = delta_jacobian(fun, params, np.asarray(res.cov_params(), float))
    what = "dydx" if dydx else "margin"
    if contrast is None:
        return _table(est, J @ C @ J.T, index, what, alpha)
    return _pairwise(est, J @ C @ J.T, index, adjust, alpha)


def _sample(res, data):
    if not isinstance(data, pd.DataFrame):
        raise TypeError("margins needs data: the DataFrame the model was fitted on (its rows are averaged over)")
    labels = getattr(res.model.frame, "row_labels", None)
    if labels is not None and labels.isin(data.index).all():
        data = data.loc[labels]                 # the estimation sample (rows with missing values dropped)
    return data


def _at_grid(at, data):
    """The list of column settings: every combination of the values given for each column."""
    if at is None:
        return [{}]
    if not isinstance(at, dict):
        raise TypeError("at must be a dict column -> value or list of values, e.g. at={'period': [1, 2, 3, 4]}")
    for var in at:
        if var not in data.columns:
            raise ValueError("at: %r is not a column of data" % (var,))
    values = [v if isinstance(v, (list, tuple, np.ndarray, pd.Index)) else [v] for v in at.values()]
    return [dict(zip(at, combo)) for combo in itertools.product(*values)]


def _index(labels, names):
    if not names:
        return pd.Index(["margin"] * len(labels)) if len(labels) == 1 else pd.RangeIndex(len(labels))
    if len(names) == 1:
        return pd.Index([lab[0] for lab in labels], name=names[0])
    return pd.MultiIndex.from_tuples(labels, names=names)


def factor_levels(res, var):
    """The levels of ``var`` when the formula's fixed part uses it as a factor (its base, the
    reference of treatment coding, first), else None."""
    info = getattr(getattr(res.model, "frame", None), "fixed_design_info", None)
    if info is None:
        return None
    pattern = re.compile(r"(?<![\w.])%s(?![\w.])" % re.escape(var))
    for factor, finfo in info.factor_infos.items():
        if finfo.type == "categorical" and pattern.search(factor.name()):
            return list(finfo.categories)
    return None


def _piece(res, rows, combo, var, change=None):
    """The RowSets of one margin: the rows as set (and the rows with var moved by -h and +h, or
    set to a factor's base and to one of its levels)."""
    frame = rows.copy() if combo else rows
    for col, value in combo.items():
        frame[col] = value
    if var is None:
        return (new_rows(res, frame),)
    if change is not None:
        base, level = frame.copy(), frame.copy()
        base[var], level[var] = change
        return new_rows(res, base), new_rows(res, level), 1.0
    x = frame[var].to_numpy(float)
    h = 1e-5 * max(1.0, float(np.std(x)))
    lo, hi = frame.copy(), frame.copy()
    lo[var], hi[var] = x - h, x + h
    return new_rows(res, lo), new_rows(res, hi), 2 * h


def _margin_function(res, pieces, link, population_averaged):
    k = res.k_fe

    def mean_of(rows, params):
        eta = rows.X @ params[:k] + rows.offset
        if link is None:
            return eta
        if not population_averaged:
            return link.inverse(eta)
        return population_mean(link, eta, random_variance(rows, level_covariances(res.model, params[k:])))

    def fun(params):
        out = np.empty(len(pieces))
        for i, piece in enumerate(pieces):
            if len(piece) == 1:
                out[i] = np.mean(mean_of(piece[0], params))
            else:
                out[i] = np.mean(mean_of(piece[1], params) - mean_of(piece[0], params)) / piece[2]
        return out

    return fun


def _table(est, cov, index, what, alpha):
    se = np.sqrt(np.diag(cov))
    z = est / se
    q = stats.norm.ppf(1 - alpha / 2)
    return pd.DataFrame({what: est, "se": se, "z": z, "pvalue": 2 * stats.norm.sf(np.abs(z)),
                         "lower": est - q * se, "upper": est + q * se}, index=index)


def _pairwise(est, cov, index, adjust, alpha):
    """Differences of every pair of margins (first minus second, emmeans' order)."""
    n = len(est)
    if n < 2:
        raise ValueError("contrast='pairwise' needs at least two margins: give several values in at=")
    pairs = list(itertools.combinations(range(n), 2))
    L = np.zeros((len(pairs), n))
    for r, (i, j) in enumerate(pairs):
        L[r, i], L[r, j] = 1.0, -1.0
    diff, se = L @ est, np.sqrt(np.diag(L @ cov @ L.T))
    z = diff / se
    raw = 2 * stats.norm.sf(np.abs(z))
    if adjust == "none":
        p = raw
    elif adjust == "tukey":          # studentized range of n means, infinite df (emmeans' asymptotic Tukey)
        p = stats.studentized_range.sf(np.abs(z) * np.sqrt(2), n, 1e6)
    else:
        p = multipletests(raw, method=adjust)[1]
    q = stats.norm.ppf(1 - alpha / 2)
    names = [" - ".join(str(index[i]) for i in pair) for pair in pairs]
    return pd.DataFrame({"contrast": diff, "se": se, "z": z, "pvalue": p, "pvalue_unadjusted": raw,
                         "lower": diff - q * se, "upper": diff + q * se},
                        index=pd.Index(names, name="contrast"))
