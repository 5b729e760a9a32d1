"""Grouping columns as integer codes: the groups of a level numbered in the sorted order of
their labels, and those labels (one or several columns; integer ids without hashing).
Labels of types that do not sort together (``1`` and ``"a"``) are grouped as strings."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError


def group_codes(groups: np.ndarray, name: str):
    """Integer codes (in sorted label order) and the labels of a grouping of one or more columns."""
    groups = np.asarray(groups)
    if groups.ndim == 1:
        groups = groups[:, None]
    per_column = [_column_codes(groups[:, j], name) for j in range(groups.shape[1])]
    if len(per_column) == 1:
        return per_column[0]
    return _combination_codes(groups, per_column)


def _column_codes(values, name):
    """Codes (in sorted label order) and labels of one grouping column."""
    if values.dtype.kind in "iu" and len(values):
        dense = _dense_integer_codes(values)
        if dense is not None:
            return dense
    codes, uniq = pd.factorize(values, sort=True)
    if uniq.dtype == object and not _sortable(uniq):     # labels such as 1 and "a": grouped as strings
        codes, uniq = pd.factorize(_as_strings(values), sort=True)
    if len(codes) and codes.min() < 0:
        raise DataError("the grouping of level %r has missing values; drop those rows" % name)
    return codes.astype(np.intp, copy=False), pd.Index(uniq)


def _sortable(labels):
    try:
        pd.Index(labels).sort_values()
    except TypeError:
        return False
    return True


def _as_strings(values):
    """Labels of mixed types as strings (missing ones stay missing), so that they sort."""
    values = np.asarray(values, dtype=object)
    missing = pd.isna(values)
    out = values.astype(str).astype(object)
    out[missing] = None
    return out


def _combination_codes(groups, per_column):
    """Codes of the combinations of several grouping columns, in sorted order of the
    combinations, and their labels (a MultiIndex with the columns' own values).

    The columns' codes are combined as the digits of one integer, which is coded again:
    the result of ``groupby(sort=True).ngroup()``, without a frame of the columns.
    """
    sizes = [len(u) for _, u in per_column]
    if np.prod([float(s) for s in sizes]) >= 2.0 ** 62:
        frame = pd.DataFrame({j: groups[:, j] for j in range(groups.shape[1])})
        codes = frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()
        first = np.unique(codes, return_index=True)[1]
        return codes.astype(np.intp), pd.MultiIndex.from_frame(frame.iloc[first])
    key = per_column[0][0].astype(np.int64)
    for c, size in zip([c for c, _ in per_column[1:]], sizes[1:]):
        key *= size
        key += c
    codes, uniq = _column_codes(key, None)
    del key
    digits, rest = [], uniq.to_numpy()
    for size in sizes[:0:-1]:
        rest, digit = np.divmod(rest, size)
        digits.append(digit)
    digits.append(rest)
    arrays = [u.take(d) for (_, u), d in zip(per_column, digits[::-1])]
    return codes, pd.MultiIndex.from_arrays(arrays, names=list(range(len(arrays))))


def _dense_integer_codes(g):
    """Codes and labels of integer groups whose range is at most a few times the rows
    (the usual 0..G-1 or 1..G ids): one count over the range, no hashing or sorting."""
    lo, hi = int(g.min()), int(g.max())
    if hi - lo > 4 * len(g) + 1024 or not -2 ** 62 < lo <= hi < 2 ** 62:
        return None
    shifted = g.astype(np.intp, copy=False)
    if lo != 0:
        shifted = shifted - lo
    present = np.bincount(shifted) > 0
    labels = (np.flatnonzero(present) + lo).astype(g.dtype)
    remap = np.cumsum(present, dtype=np.intp) - 1
    return remap[shifted], pd.Index(labels)
