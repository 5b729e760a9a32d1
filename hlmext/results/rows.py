"""Per-row quantities of a fitted model: the random part ``Z b`` in the design's sorted row
order, and sorted values put back in the data's order (linear and generalized results)."""
from __future__ import annotations

import numpy as np
import pandas as pd


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
