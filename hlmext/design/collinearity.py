"""Which columns of a Gram matrix are zero, and which are combinations of earlier ones."""
from __future__ import annotations

import numpy as np


def dependent_columns(gram, tol=1e-11):
    """Columns of a Gram matrix that are zero, and those (numerically) combinations of earlier ones.

    Works on the Gram matrix scaled to unit diagonal (one BLAS pass over the rows to form it): the
    part of column j not explained by the earlier independent columns must keep ``tol`` of
    its sum of squares.
    """
    norm = np.sqrt(np.diag(gram))
    zero = [int(j) for j in np.flatnonzero(norm == 0)]
    if zero:
        return zero, []
    gram = gram / np.outer(norm, norm)
    kept, bad = [], []
    for j in range(gram.shape[0]):
        if kept:
            c = gram[np.ix_(kept, kept)]
            b = gram[kept, j]
            resid = gram[j, j] - b @ np.linalg.solve(c, b)
        else:
            resid = gram[j, j]
        (kept if resid > tol else bad).append(j)
    return [], bad
