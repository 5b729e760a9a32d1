"""Checks of the array interface (``LinearMixed(endog, exog, groups, exog_re=...)`` and the
GLMM classes): each argument as a float array of the expected shape, or an error that names
the argument, the shape or type it has and the one expected.

Lists, pandas Series and DataFrames, integer, boolean and float32 arrays and any memory
order are accepted; an ``(n, 1)`` response is taken as ``(n,)``.
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from ..exceptions import DataError


def checked_arrays(endog, exog, groups, exog_re):
    """``(endog, exog, groups, exog_re)`` as arrays: endog float (n,), exog float (n, p),
    groups (n,) or (n, k) labels, exog_re None or float (n, q) with q >= 1."""
    endog = as_float_array(endog, "endog")
    if endog.ndim == 2 and endog.shape[1] == 1:
        endog = endog.ravel()
    if endog.ndim != 1:
        raise DataError("endog must be one response value per row, shape (n,) or (n, 1); got %s"
                        % _shape_text(endog))
    n = endog.shape[0]
    exog = _matrix(as_float_array(exog, "exog"), "exog", "(n, p): one row per observation, one column per fixed effect")
    groups = _labels(groups)
    for name, arr in (("exog", exog), ("groups", groups)):
        if arr.shape[0] != n:
            raise DataError("%s has %d rows but endog has %d: give one row per observation"
                            % (name, arr.shape[0], n))
    if exog_re is not None:
        exog_re = _matrix(as_float_array(exog_re, "exog_re"), "exog_re",
                          "(n, q): one row per observation, one column per random effect")
        if exog_re.shape[1] == 0:
            raise DataError("exog_re has no columns; give at least one (a column of ones for a random "
                            "intercept), or pass exog_re=None for a random intercept alone")
        if exog_re.shape[0] != n:
            raise DataError("exog_re has %d rows but endog has %d: give one row per observation"
                            % (exog_re.shape[0], n))
    return endog, exog, groups, exog_re


def as_float_array(value, name):
    """``value`` as a float64 array, or a ``DataError`` naming ``name`` and the bad entry."""
    if isinstance(value, (pd.Series, pd.DataFrame)):
        value = value.to_numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:       # ragged lists
        raise DataError("%s must be an array of numbers with one row per observation; %s"
                        % (name, err)) from err
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64, copy=False)
    if kind == "O":
        for i, v in enumerate(arr.ravel()):
            if not isinstance(v, (numbers.Real, np.bool_)):
                raise DataError("%s must hold numbers; entry %d is %r (%s): convert or encode it first (a "
                                "categorical variable as dummy columns)" % (name, i, v, type(v).__name__))
        return arr.astype(np.float64)
    what = {"c": "complex numbers", "U": "strings", "S": "bytes", "M": "dates", "m": "time differences"}
    raise DataError("%s must hold real numbers, got an array of %s (dtype %s)"
                    % (name, what.get(kind, "dtype %s" % arr.dtype), arr.dtype))


def _matrix(arr, name, expected):
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim != 2:
        raise DataError("%s must have shape %s; got %s" % (name, expected, _shape_text(arr)))
    return arr


def _labels(groups):
    """Group labels, shape (n,) or (n, k) (k columns combine into one grouping)."""
    if isinstance(groups, (pd.Series, pd.DataFrame)):
        groups = groups.to_numpy()
    arr = np.asarray(groups)
    if arr.ndim not in (1, 2):
        raise DataError("groups must have shape (n,): one group label per observation (or (n, k) for k "
                        "columns that together define the groups); got %s" % _shape_text(arr))
    missing = pd.isna(arr) if arr.dtype.kind in "fOcmM" else np.zeros(arr.shape, bool)
    if missing.any():
        rows = int(missing.reshape(len(arr), -1).any(axis=1).sum())
        raise DataError("groups has missing labels (NaN or None) in %d row%s; drop those rows or give them "
                        "a group" % (rows, "s" * (rows > 1)))
    return arr


def _shape_text(arr):
    return "a single value" if arr.ndim == 0 else "shape %s" % (tuple(arr.shape),)
