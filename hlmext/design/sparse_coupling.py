"""Crossed factors: which factor is eliminated cluster by cluster, and the sparse coupling of
its clusters to the others.

With crossed factors one factor (the chain) is eliminated cluster by cluster and every other
factor's groups form the dense tail ``D`` (``docs/math.md``). A chain cluster meets only the
groups of ``D`` that its rows touch (a student the instructors they rated), so its coupling
``Z_k' D`` is stored on those columns only: the *pattern* (``cols[ptr[k]:ptr[k + 1]]``,
ascending, every column of each touched group), computed once from the group codes, and the
values (``q x nk`` per cluster) in the same order. The compiled kernels are in
``hlmext._kernels.crossed``.
"""
from __future__ import annotations

import numpy as np

from ..exceptions import ModelError

#: A dense tail of more columns than this (crossed groups' random effects, fixed effects and
#: the response) is fitted only when asked (``check_tail``): its Cholesky factor and inverse,
#: ``TAIL_FLOPS_PER_EVALUATION(n)`` floating-point operations, make every evaluation of the
#: likelihood take long. At 6,000 columns a fit of some ``TYPICAL_EVALUATIONS`` evaluations is
#: about 3 minutes at ``ASSUMED_FLOPS``.
TAIL_LIMIT = 6000
TYPICAL_EVALUATIONS = 15
ASSUMED_FLOPS = 2e10           # floating-point operations per second of dense LAPACK on two cores


def tail_flops(n):
    """Operations of one evaluation with its gradient on an ``n``-column dense tail: the
    Cholesky factor (``n^3 / 3``) and the inverse from it (``2 n^3 / 3``)."""
    return float(n) ** 3



class Coupling:
    """The pattern of every chain cluster's coupling to the crossed block.

    Attributes
    ----------
    ptr : ndarray (n_clusters + 1,)
        Cluster ``k``'s columns are ``cols[ptr[k]:ptr[k + 1]]``.
    cols : ndarray (nnz,)
        Columns of the crossed block ``D`` (ascending within a cluster).
    offset : int
        Where the coupling values start in the statistics (after the own blocks).
    q : int
        Random effects per chain cluster (rows of each coupling block).
    """

    def __init__(self, ptr, cols, offset, q):
        self.ptr = np.ascontiguousarray(ptr, dtype=np.intp)
        self.cols = np.ascontiguousarray(cols, dtype=np.intp)
        self.offset = int(offset)
        self.q = int(q)

    @property
    def size(self) -> int:
        """Values of the coupling (``q`` per pattern entry)."""
        return self.q * len(self.cols)

    @property
    def max_columns(self) -> int:
        """The most columns any cluster touches."""
        return int(np.max(np.diff(self.ptr))) if len(self.ptr) > 1 else 0

    def blocks(self, values, level_doff, level_q, level_groups):
        """``(cluster, group, block)`` of every pair of a chain cluster and a touched group of one
        crossed level: the ``q x level_q`` blocks of ``values`` (a coupling laid out as the
        pattern: statistics, factor or selected inverse)."""
        q, cols = self.q, self.cols
        first = cols >= level_doff                        # the first column of each touched group
        first &= cols < level_doff + level_q * level_groups
        first &= (cols - level_doff) % level_q == 0
        at = np.flatnonzero(first)                        # (arrays of the selected entries only:
        del first                                         # the moments' peak memory)
        k = np.searchsorted(self.ptr, at, side="right")
        k -= 1
        group = cols[at]
        group -= level_doff
        group //= level_q
        base = self.ptr[k]                                # value (row 0, first column): q ptr[k] + pos
        base *= q - 1
        base += at
        del at
        if q == 1 and level_q == 1:
            return k, group, values[base][:, None, None]
        rows = np.arange(q)[None, :, None] * np.diff(self.ptr)[k][:, None, None]
        idx = base[:, None, None] + rows + np.arange(level_q)[None, None, :]
        return k, group, values[idx]


def pattern(row_start, row_end, crossed, q, offset):
    """The ``Coupling`` of one chain level's clusters (rows ``row_start[k]:row_end[k]`` in the
    sorted order) to the crossed levels ``crossed`` (their ``codes``, ``q``, ``doff``)."""
    counts = np.asarray(row_end) - np.asarray(row_start)
    nclus = len(counts)
    if nclus and (row_start[0] != 0 or np.any(np.asarray(row_start[1:]) != row_end[:-1])):
        raise ValueError("the chain's clusters must cover the sorted rows in order")
    qd = max(sum(lv.n_groups * lv.q for lv in crossed), 1)
    keys = []
    for lv in crossed:                    # key = cluster * qd + first column of the row's group, in place
        key = np.repeat(np.arange(nclus, dtype=np.int64) * qd + lv.doff, counts)
        key += lv.codes if lv.q == 1 else lv.codes.astype(np.int64) * lv.q
        keys.append(key)
        del key
    first = _distinct(keys[0] if len(keys) == 1 else np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    del keys
    ptr = np.searchsorted(first, np.arange(nclus + 1, dtype=np.int64) * qd).astype(np.intp)
    col = np.remainder(first, qd, out=first)                 # ascending within each cluster
    if all(lv.q == 1 for lv in crossed):
        return Coupling(ptr, col, offset, q)
    doffs = np.array([lv.doff for lv in crossed], dtype=np.int64)
    width = np.array([lv.q for lv in crossed], dtype=np.int64)[np.searchsorted(doffs, col, side="right") - 1]
    cols = np.repeat(col, width) + (np.arange(width.sum()) - np.repeat(np.cumsum(width) - width, width))
    ends = np.concatenate([[0], np.cumsum(width)])
    return Coupling(ends[ptr].astype(np.intp), cols, offset, q)


def touched_columns(codes, qs):
    """For each level as the chain: the columns of the other levels that each of its clusters
    touches (the groups its rows meet, times their ``q``): one array per level of ``codes``."""
    n_groups = [int(c.max()) + 1 if len(c) else 0 for c in codes]
    nk = [np.zeros(g) for g in n_groups]
    for i in range(len(codes)):
        for j in range(i + 1, len(codes)):
            key = codes[i].astype(np.int64)        # one array of keys, sorted in place
            key *= n_groups[j]
            key += codes[j]
            pairs = _distinct(key)
            del key
            nk[i] += qs[j] * np.bincount(pairs // n_groups[j], minlength=n_groups[i])
            nk[j] += qs[i] * np.bincount(pairs % n_groups[j], minlength=n_groups[j])
    return nk


def elimination_cost(codes, qs, k_fe, touched=None):
    """Multiply-adds of one factorization for each choice of the chain (the factor eliminated
    cluster by cluster; every other factor forms the dense tail).

    With ``c`` as the chain, cluster ``k`` couples to ``n_k`` columns of the tail (the groups
    its rows touch, times their ``q``: ``touched_columns``, computed unless given): its
    elimination and scatter downdate cost ``q_c (n_k + p + 1)^2``; the tail's Cholesky
    ``(q_D + p + 1)^3 / 3`` with ``q_D = sum_{j != c} G_j q_j``. Returns one cost per level of
    ``codes``.
    """
    nk = touched_columns(codes, qs) if touched is None else touched
    n_groups = [len(n) for n in nk]
    total = sum(g * q for g, q in zip(n_groups, qs))
    out = []
    for c, (g, q) in enumerate(zip(n_groups, qs)):
        tail = total - g * q + k_fe + 1
        out.append(float(q * np.sum((nk[c] + k_fe + 1.0) ** 2) + tail ** 3 / 3.0))
    return out


def _distinct(keys):
    """The distinct values of an integer array, ascending; ``keys`` is sorted in place (no copy:
    faster than ``np.unique``'s hashing on millions of keys, and no second array of them)."""
    keys.sort()
    if not len(keys):
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def check_tail(crossed, k_fe):
    """Refuse (``ModelError``) crossed factors whose dense tail has more than ``TAIL_LIMIT``
    columns; called before anything of the fit is allocated.

    ``crossed``: ``(name, groups, q)`` of every crossed level (those outside the chain).
    The message names the memory of the tail (held twice: its statistics and its factor) and
    the work of a fit.
    """
    n = sum(g * q for _, g, q in crossed) + k_fe + 1
    if n <= TAIL_LIMIT:
        return
    flops = tail_flops(n)
    minutes = TYPICAL_EVALUATIONS * flops / ASSUMED_FLOPS / 60
    raise ModelError(
        "the crossed random effects of %s form one dense block of %d columns, factored and inverted at every "
        "evaluation of the likelihood: a fit needs %.1f GB for that block and about %.1e floating-point "
        "operations per evaluation, about %.0f minutes for %d evaluations at %.0e operations per second. Fit it "
        "anyway with allow_large_crossed=True, or use fewer groups in the crossed factors (e.g. pool rare "
        "ones; the factor with the most groups is eliminated group by group and costs little)"
        % (", ".join("%r (%d groups)" % (name, g) for name, g, _ in crossed), n, 2 * 8 * n * n / 1e9, flops,
           minutes, TYPICAL_EVALUATIONS, ASSUMED_FLOPS))
