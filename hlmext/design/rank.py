"""Rank of the fixed-effects design: zero columns, collinear columns, columns far from zero."""
from __future__ import annotations

from . import offsets
from .collinearity import dependent_columns
from ..exceptions import ModelError


def check_fixed_rank(gram, names, exog=None, intercept_col=-1):
    """Raise if a fixed-effects column is zero or (numerically) a combination of earlier ones
    (``gram``: X'X; with ``exog`` and an intercept, a column far from zero relative to its
    spread is judged centred, and reported as needing centring: see ``hlmext.design.offsets``)."""
    if gram.shape[1] == 0:
        return
    zero, bad = dependent_columns(gram)
    if exog is not None and intercept_col >= 0 and not zero:
        offsets.check_offset_columns(gram, names, intercept_col, len(exog), bad, exog)
    if zero:
        raise ModelError("the fixed-effects column(s) %s are zero in every row; drop them from the formula"
                         % ", ".join(repr(names[j]) for j in zero))
    if bad:
        cols = ", ".join(repr(names[j]) for j in bad)
        raise ModelError("the fixed-effects design is rank deficient: %s %s a linear combination of "
                         "earlier columns (perfect collinearity); drop %s from the formula"
                         % (cols, "is" if len(bad) == 1 else "are", "it" if len(bad) == 1 else "them"))
