"""Fixed-effects columns far from zero relative to their spread (``1e9 + x``).

With an intercept such a column spans the same space as its centred version, but in
``X'X`` it is almost a multiple of the intercept, and the fit, which works on ``X'X``,
loses digits to the offset (about ``2 log10(mean / sd)`` of 16). A column that the rank
check finds collinear only because of its offset (its centred version is not) is
reported as such, with what to do; one whose offset costs the fit precision, without
making it meaningless, gets a warning.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..exceptions import ModelError
from ..stacklevel import user_stacklevel
from .collinearity import dependent_columns

#: a column whose mean exceeds this many standard deviations is reported (at 1e4 the
#: cross-products lose about 8 of their 16 digits to the offset)
OFFSET_RATIO = 1e4


def centred_gram(exog, intercept_col):
    """``X'X`` with every column but the intercept centred at its mean (same column space)."""
    means = exog.mean(axis=0)
    means[intercept_col] = 0.0
    centred = exog - means
    return centred.T @ centred


def check_offset_columns(gram, names, intercept_col, n, collinear, exog):
    """Raise ``ModelError`` for the columns in ``collinear`` (found dependent in ``gram``) that
    are not dependent once centred; warn about the others whose mean exceeds
    ``OFFSET_RATIO`` standard deviations (``gram``: X'X of ``exog``'s ``n`` rows)."""
    if collinear:
        _, real = dependent_columns(centred_gram(exog, intercept_col))
        shifted = [j for j in collinear if j not in real]
        if shifted:
            raise ModelError(
                "fixed-effects column(s) %s are far from zero relative to their spread (e.g. mean %.3g), so "
                "alongside the intercept they leave too few digits for an accurate fit (they are not "
                "collinear with the other columns); centre them (subtract the mean, or a round number near "
                "it): the coefficients are unchanged and the intercept moves by mean * coefficient"
                % (", ".join(repr(names[j]) for j in shifted), gram[intercept_col, shifted[0]] / n))
        return
    if n < 2:
        return
    sums = gram[intercept_col] / n                      # column means
    squares = np.diag(gram) / n                         # mean squares
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = 1.0 - sums ** 2 / squares              # variance / mean square (imprecise, but its size is enough)
    for j in np.flatnonzero((squares > 0) & (spread < OFFSET_RATIO ** -2)):
        if j == intercept_col:
            continue
        warnings.warn("fixed-effects column %r has a mean (%.3g) over %g times its standard deviation: the "
                      "cross-products lose most of their digits to it and the estimates may be inaccurate; "
                      "centre it (subtract its mean, or a round number near it) before fitting: its "
                      "coefficient is unchanged and the intercept moves by mean * coefficient"
                      % (names[j], sums[j], OFFSET_RATIO), UserWarning, stacklevel=user_stacklevel())

