"""Per-row quantities of a fitted model: the random part ``Z b`` in the design's sorted row
order, and sorted values put back in the data's order (linear and generalized results)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import FormulaError


def zb_sorted(model, random_effects) -> np.ndarray:
    """``Z b`` of every row in sorted order, from the predicted effects (a DataFrame per level)."""
    d = model.design
    out = np.zeros(d.nobs)
    for i, lv in enumerate(d.levels):
        b = random_effects[lv.name].reindex(lv.labels).to_numpy()
        out += np.sum(d.z_of(i) * b[lv.codes], axis=1)
    return out


def original_order(model, sorted_values) -> pd.Series:
    """Values in the design's sorted order as a Series in the data's row order and labels."""
    out = np.empty_like(sorted_values)
    out[model.design.order] = sorted_values
    labels = model.frame.row_labels if model.frame is not None else None
    return pd.Series(out, index=labels)


def row_keys(data, group_cols):
    """Group labels of the rows of new data (for conditional predictions)."""
    missing = [c for c in group_cols if c not in data.columns]
    if missing:
        raise FormulaError("conditional predictions need the grouping column(s) %s in the new data; "
                           "add them, or use which='marginal'" % ", ".join(repr(c) for c in missing))
    if len(group_cols) == 1:
        return pd.Index(data[group_cols[0]].to_numpy())
    return pd.MultiIndex.from_arrays([data[c].to_numpy() for c in group_cols])
