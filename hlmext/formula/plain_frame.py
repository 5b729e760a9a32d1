"""The model frame of a formula of numeric columns, formed without patsy's evaluation.

When the response is a numeric column, every term of the fixed and random parts is the
intercept or one numeric column (``Reaction ~ Days + (Days | Subject)``), patsy's design
infos of those parts are already known (``frames._PLAIN_INFOS``: a formula fitted before to
columns of the same types) and no value the formula uses is missing, the frame is the
columns themselves: each column is read from the DataFrame once, and nothing else is
copied or converted. Anything else (a first fit, factors, expressions, missing values,
weights or offsets) goes through ``frames.model_frame_with_columns``, which gives the same
frame.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from . import frames

__all__ = ["model_frame_with_columns"]


def model_frame_with_columns(parsed, data, extra, missing="drop", eval_env=0, infos=None):
    """``frames.model_frame_with_columns``, through ``plain_frame`` where it applies.

    Examples
    --------
    >>> import pandas as pd
    >>> from hlmext.formula.grammar import parse
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4], "x": [0, 1, 2, 3], "g": list("aabb")})
    >>> first = model_frame_with_columns(parse("y ~ x + (1 | g)"), df, {})[0]     # patsy: the design infos
    >>> again = model_frame_with_columns(parse("y ~ x + (1 | g)"), df, {})[0]     # the columns themselves
    >>> again.exog.tolist(), again.exog_names == first.exog_names
    ([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]], True)
    """
    if infos is None and isinstance(data, pd.DataFrame) and all(v is None for v in extra.values()):
        frame = plain_frame(parsed, data)
        if frame is not None:
            return frame, {}, {}
    return frames.model_frame_with_columns(parsed, data, extra, missing, _deeper(eval_env), infos)


def _deeper(eval_env):
    return eval_env + 1 if isinstance(eval_env, int) else eval_env


def plain_frame(parsed, data):
    """The ``ModelFrame`` of ``parsed`` on ``data`` when its parts are known plain designs and no
    value it uses is missing; None otherwise."""
    if len(data) == 0:
        return None
    columns = data.columns
    frames.check_column_names(parsed, columns)
    response = parsed.response
    if response not in columns or any(name not in columns for t in parsed.random for name in t.group):
        return None
    values = {}

    def numeric(name):
        if name not in values:
            col = data[name]
            dt = col.dtype
            values[name] = col.to_numpy() if isinstance(dt, np.dtype) and dt.kind in "iuf" else None
        return values[name]

    y = numeric(response)
    if y is None:
        return None
    fixed = _known_info(parsed.fixed, columns, numeric)
    randoms = [_known_info(t.formula, columns, numeric) for t in parsed.random]
    if fixed is None or any(info is None for info in randoms):
        return None
    arrays = [v for v in values.values() if v is not None and v.dtype.kind == "f"]
    if any(not np.isfinite(v.sum()) for v in arrays):
        return None                                   # missing or non-finite values: rows to drop
    group_columns = list(dict.fromkeys(name for t in parsed.random for name in t.group))
    if any(frames._bad_values(data[c]).any() for c in group_columns):
        return None
    n = len(data)
    exog = _matrix(fixed, values, n)
    blocks = []
    for term, info in zip(parsed.random, randoms):
        names = list(info.column_names)
        cov = "identity" if len(names) == 1 else (term.cov_if_several_columns or term.cov)
        z = np.broadcast_to(np.ones((1, 1)), (n, 1)) if names == ["Intercept"] else _matrix(info, values, n)
        blocks.append(frames.RandomBlock(
            term=dataclasses.replace(term, cov=cov) if cov != term.cov else term, exog_re=z, names=names,
            design_info=info, groups=frames._group_values(data, list(term.group), None, True)))
    return frames.ModelFrame(endog=np.array(y, dtype=np.float64), endog_name=response, exog=exog,
                             exog_names=list(fixed.column_names), fixed_design_info=fixed, random=blocks,
                             row_labels=data.index[np.arange(n)], n_dropped=0)


def _known_info(formula, columns, numeric):
    """The cached design info of a right-hand side whose terms are the intercept or one numeric
    column (the key ``frames._design`` files it under), or None."""
    formula = frames._quote_keywords(formula, columns)
    words = frames._words(formula, columns)
    if any(numeric(c) is None for c in words):
        return None
    info = frames._PLAIN_INFOS.get((formula, tuple((c, str(numeric(c).dtype)) for c in words)))
    if info is None:
        return None
    for term in info.terms:
        if term.factors and (len(term.factors) != 1 or term.factors[0].code not in columns):
            return None
    return info


def _matrix(info, values, n):
    """The design of ``info`` (terms: the intercept or one column of ``values``), float64, ``n`` rows."""
    out = np.empty((n, len(info.terms)))
    for j, term in enumerate(info.terms):
        out[:, j] = values[term.factors[0].code] if term.factors else 1.0
    return out
