# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Row layout: the rows of every cluster made contiguous, in one pass (used by ``design.layout``).

``counting_order`` sorts the rows by their cluster code (a stable counting sort) and
``scatter_rows`` writes each source column to the rows' sorted places, counting the
non-finite values on the way. Their plain-NumPy twins are in ``reference``.
"""
from hlmext._kernels.helpers cimport index_t
import numpy as np
from hlmext._kernels import boundary as _bd


def counting_order(const index_t[::1] codes, const index_t[::1] counts, index_t[::1] order,
                   index_t[::1] rank):
    """Stable counting sort of the rows by ``codes``, in one pass.

    Fills ``order`` (sorted row ``i`` is row ``order[i]``, as ``np.argsort(codes,
    kind="stable")``) and its inverse ``rank`` (row ``i`` goes to ``rank[i]``).
    ``counts[c]`` is the number of rows with code ``c``; every code lies in
    ``0 .. len(counts) - 1`` (the caller checks both).
    """
    _bd.codes("counting_order", "codes", codes, counts.shape[0])
    if counts.shape[0] and np.min(counts) < 0:
        raise ValueError("counting_order: counts must not be negative")
    cdef index_t n = codes.shape[0]
    cdef index_t n_codes = counts.shape[0]
    cdef index_t i, c, total = 0
    if order.shape[0] != n or rank.shape[0] != n:
        raise ValueError("order and rank must have one entry per row")
    nxt_buf = np.empty(n_codes, dtype=np.intp)
    cdef index_t[::1] nxt = nxt_buf
    for c in range(n_codes):
        nxt[c] = total
        total += counts[c]
    if total != n:
        raise ValueError("counts do not add up to the number of rows")
    with nogil:
        for i in range(n):
            c = codes[i]
            rank[i] = nxt[c]
            order[nxt[c]] = i
            nxt[c] += 1


def scatter_rows(const double[:, :] src, const index_t[::1] rank, double[:, ::1] W, index_t col0):
    """``W[rank[i], col0 + j] = src[i, j]`` for every row ``i``: rows written to their sorted place.

    ``src`` may have any strides (C or Fortran order, a column view); it is read in row
    order, which is faster than gathering ``src[order]``. Every ``rank[i]`` must be a row
    of ``W`` (the caller checks). Returns the number of values that are NaN or infinite,
    counted in the same pass.
    """
    if rank.shape[0] != src.shape[0] or col0 < 0 or col0 + src.shape[1] > W.shape[1]:
        raise ValueError("scatter_rows: rank must have one entry per row of src and src's columns fit W from col0")
    _bd.codes("scatter_rows", "rank", rank, W.shape[0])
    cdef index_t n = rank.shape[0]
    cdef index_t k = src.shape[1]
    cdef index_t i, j, r
    cdef index_t bad = 0
    cdef double v
    if src.shape[0] != n or col0 < 0 or col0 + k > W.shape[1]:
        raise ValueError("src must have one row per entry of rank, and W its columns")
    with nogil:
        for i in range(n):
            r = rank[i]
            for j in range(k):
                v = src[i, j]
                if v - v != 0.0:        # NaN or +-inf
                    bad += 1
                W[r, col0 + j] = v
    return bad
