"""The rows a prediction is for: fixed-effects rows, offsets and, per level of random
effects, the design rows and the group of every row (the fitted rows or new data).

A ``RowSet`` is what ``get_prediction``, the population-averaged means and ``margins``
compute from, whichever way the rows were given: the fitted rows (in the data's order),
a DataFrame with the formula's columns, or statsmodels-style fixed-effects rows ``exog``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .rows import row_keys


@dataclass
class LevelRows:
    """One level's part of the rows: ``Z`` (n, q) in the level's column order and the group of
    every row as a position in ``level.labels`` (-1 for a group the fit did not see)."""

    level: object
    Z: np.ndarray
    group: np.ndarray


@dataclass
class RowSet:
    X: np.ndarray
    offset: np.ndarray
    levels: list = field(default_factory=list)
    index: pd.Index = None
    missing_groups: list = field(default_factory=list)   # grouping columns new data lacks

    @property
    def n(self):
        return self.X.shape[0]

    def new_group_rows(self):
        """True for the rows that belong to a group the fit did not see, at any level."""
        out = np.zeros(self.n, dtype=bool)
        for lr in self.levels:
            out |= lr.group < 0
        return out


def fitted_rows(res) -> RowSet:
    """The fitted rows in the data's order."""
    model = res.model
    d = model.design
    if not d.has_rows:
        raise ValueError("this model was fitted from statistics accumulated over chunks, without keeping the "
                         "rows: give the rows to predict as a DataFrame (exog=chunk)")
    back = np.empty(d.nobs, dtype=np.intp)
    back[np.asarray(d.order)] = np.arange(d.nobs)
    offset = getattr(model, "offset", None)
    offset = np.zeros(d.nobs) if offset is None else np.asarray(offset, float)[back]
    levels = [LevelRows(lv, np.asarray(d.z_of(i))[back], np.asarray(lv.codes)[back]) for i, lv in
              enumerate(d.levels)]
    index = model.frame.row_labels if model.frame is not None else pd.RangeIndex(d.nobs)
    return RowSet(np.asarray(d.exog)[back], offset, levels, index)


def new_rows(res, data, offset=None) -> RowSet:
    """The rows of a DataFrame with the formula's columns (groups matched by label)."""
    from ..formula import frames
    model = res.model
    if model.frame is None:
        raise ValueError("predictions on new data need a model built from a formula (hlmext.mixedlm, melogit, "
                         "mepoisson); with arrays give exog=<rows of the fixed-effects design>")
    X = frames.exog_for(model.frame.fixed_design_info, data)
    off = np.zeros(len(X))
    if hasattr(res, "_new_offset"):
        off = res._new_offset(data, offset)
    elif offset is not None:
        raise TypeError("offset= applies to generalized models (melogit, mepoisson) only")
    by_level = {lv.name: lv for lv in model.levels}
    levels, missing = {}, []
    for block in model.frame.random:
        lv = by_level[block.term.level]
        if lv.name not in levels:
            lacking = [c for c in block.term.group if c not in data.columns]
            if lacking:                          # fine for marginal predictions (groups unseen)
                missing += lacking
                group = np.full(len(X), -1)
            else:
                group = pd.Index(lv.labels).get_indexer(row_keys(data, block.term.group))
            levels[lv.name] = LevelRows(lv, np.zeros((len(X), lv.q)), np.asarray(group, dtype=np.intp))
        Zb = frames.exog_for(block.design_info, data)
        cols = [lv.names.index(nm) for nm in block.names]
        levels[lv.name].Z[:, cols] = Zb
    return RowSet(X, off, [levels[lv.name] for lv in model.levels if lv.name in levels], data.index,
                  sorted(set(missing)))


def exog_rows(res, exog, offset=None) -> RowSet:
    """statsmodels-style rows of the fixed-effects design, in groups the fit did not see: a random
    intercept's column is 1, a random slope's unknown (NaN: what needs it is NaN or refused)."""
    X = np.asarray(exog, dtype=float)
    k = res.k_fe
    if X.ndim == 1:
        X = X[:, None] if k == 1 else X[None, :]
    if X.ndim != 2 or X.shape[1] != k:
        raise ValueError("exog must have %d columns (%s), got shape %s"
                         % (k, ", ".join(res.model.exog_names), np.shape(exog)))
    off = np.zeros(len(X)) if offset is None else np.broadcast_to(np.asarray(offset, float), (len(X),)).copy()
    levels = []
    for lv in res.model.levels:         # a random slope's column is unknown here: NaN
        Z = np.where(np.array(lv.names) == "Intercept", 1.0, np.nan) * np.ones((len(X), 1))
        levels.append(LevelRows(lv, Z, np.full(len(X), -1, dtype=np.intp)))
    return RowSet(X, off, levels, pd.RangeIndex(len(X)))


def rows_for(res, exog=None, offset=None) -> RowSet:
    """Dispatch: None -> the fitted rows; DataFrame -> new data; array -> fixed-effects rows."""
    if exog is None:
        if offset is not None:
            raise TypeError("offset= applies to new rows; the fitted rows have their own offset")
        return fitted_rows(res)
    if isinstance(exog, pd.DataFrame):
        return new_rows(res, exog, offset)
    return exog_rows(res, exog, offset)
