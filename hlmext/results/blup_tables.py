"""Group-level coefficients with standard errors: lme4's ``coef()`` as a long table.

The coefficient of term ``j`` in group ``g`` is ``beta_j + b_gj`` (``beta_j = 0`` for a random
term without a fixed one). Its standard error is the prediction error of ``beta-hat_j +
b-hat_gj`` (``hlmext.results.predict_se``): with ``x = e_j`` and ``z = e_j``,
``(x - E_g'z)' V (x - E_g'z) + z' C_g z``, which includes the fixed effect's variance, the
effect's conditional variance and their covariance. A term without a random effect has the
fixed effect's standard error in every group. With several levels each level's table adds
that level's effects only (as lme4's ``coef()``), and the variances come from the whole
penalized system (``hlmext.results.predict_levels``). The BLUPs alone with their conditional
standard errors are ``ranef(condvar=True)`` (Stata's ``reses``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .predict_levels import levels_eta
from .predict_se import _conditional_eta
from .rowsets import LevelRows, RowSet

__all__ = ["coef_table"]


def coef_table(res, alpha=0.05):
    """Group-level coefficients with standard errors: a long table per level (index (group, term);
    estimate, se, lower, upper), a dict keyed by level (outermost first) with several levels."""
    d = res.model.design
    linear = not hasattr(res.model, "_sm_family")
    if not d.has_rows:
        raise ValueError("standard errors of group-level coefficients need the fitted rows; this model was fitted "
                         "from statistics accumulated over chunks")
    out = {}
    for lv in res.model.levels[::-1]:
        rows, terms, labels = _rows_of_level(res, lv)
        if len(d.levels) == 1:
            eta, var = _conditional_eta(res, rows)
        else:                                # this level's effects only, as lme4's coef()
            eta, var = levels_eta(res, rows, linear)
        rank = pd.Index(labels).argsort()                # groups sorted by label, as ranef() and coef()
        est = eta.reshape(len(labels), len(terms))[rank].ravel()
        se = np.sqrt(var.reshape(len(labels), len(terms))[rank]).ravel()
        q = stats.norm.ppf(1 - alpha / 2)
        groups = [":".join(map(str, g)) if isinstance(g, tuple) else g for g in pd.Index(labels)[rank]]
        index = pd.MultiIndex.from_product([pd.Index(groups), terms], names=[lv.name, "term"])
        out[lv.name] = pd.DataFrame({"estimate": est, "se": se, "lower": est - q * se, "upper": est + q * se},
                                    index=index)
    return next(iter(out.values())) if len(out) == 1 else out


def _rows_of_level(res, level):
    """A RowSet with one row per (group, term) of ``level``: x = e_j (the fixed effect, if any),
    z = e_j at this level (the random effect, if any), no other level."""
    fe = list(res.fe_params.index)
    terms = fe + [t for t in level.names if t not in fe]
    G, T = level.n_groups, len(terms)
    X = np.zeros((G * T, len(fe)))
    levels = []
    for lv in res.model.design.levels:
        Z = np.zeros((G * T, lv.q))
        group = np.full(G * T, -1, dtype=np.intp)
        if lv is level:
            group = np.repeat(np.arange(G), T)
        levels.append(LevelRows(lv, Z, group))
    for t, term in enumerate(terms):
        if term in fe:
            X[t::T, fe.index(term)] = 1.0
        if term in level.names:
            next(lr for lr in levels if lr.level is level).Z[t::T, level.names.index(term)] = 1.0
    return RowSet(X, np.zeros(G * T), levels, pd.RangeIndex(G * T)), terms, level.labels
