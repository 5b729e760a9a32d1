"""The statsmodels-style ``exog`` argument of ``predict``: rows of the fixed-effects design."""
from __future__ import annotations

import numpy as np
import pandas as pd


def exog_argument(results, data, exog, conditional):
    """The design rows of ``predict(exog=...)`` (or of a first argument that is an array),
    checked against the fixed effects; None when the prediction is for a DataFrame or the
    fitted rows."""
    if exog is None and (data is None or isinstance(data, pd.DataFrame)):
        return None
    if exog is not None and data is not None:
        raise TypeError("predict takes new data as a DataFrame (data=) or fixed-effects design rows (exog=), "
                        "not both")
    X = np.asarray(data if exog is None else exog, dtype=float)
    k = results.k_fe
    if X.ndim == 1:
        X = X[:, None] if k == 1 else X[None, :]
    if X.ndim != 2 or X.shape[1] != k:
        raise ValueError("exog must have %d columns (%s), got shape %s"
                         % (k, ", ".join(results.model.exog_names), np.shape(X)))
    if conditional:
        raise ValueError("predictions from exog are marginal (X beta): conditional ones need the grouping "
                         "columns; pass a DataFrame as data")
    return X
