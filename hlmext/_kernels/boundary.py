"""Checks of the compiled kernels' index arguments, run before the kernels touch memory.

The kernels (``_core``, ``_gradient``, ``_glmm``, ``_glmm_nested``) are callable from
Python. Their typed arguments already refuse a wrong dtype or a non-contiguous array;
these checks refuse index arrays that would make them read or write outside the arrays
they are given (row ranges, block offsets, parents, codes), with a ``ValueError`` naming
the function and the argument. Each is a few vectorized passes over the clusters (not
the rows), so the per-evaluation kernels can afford them.
"""
from __future__ import annotations

import numpy as np


def _fail(fn, what):
    raise ValueError("%s: %s" % (fn, what))


def rows(fn, n_rows, row_start, row_end):
    """Every cluster's rows ``row_start[k]:row_end[k]`` inside ``0:n_rows``."""
    start, end = np.asarray(row_start), np.asarray(row_end)
    if start.shape != end.shape:
        _fail(fn, "row_start and row_end must have one entry per cluster (%d and %d)" % (start.size, end.size))
    if start.size and (start.min() < 0 or end.max() > n_rows or np.any(end < start)):
        k = int(np.flatnonzero((start < 0) | (end > n_rows) | (end < start))[0])
        _fail(fn, "cluster %d has rows %d:%d, outside the %d rows (row_start, row_end)"
              % (k, start[k], end[k], n_rows))


def codes(fn, name, values, n_groups):
    """Group codes in ``0:n_groups``."""
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() >= n_groups):
        _fail(fn, "%s must hold codes in 0..%d, found %d" % (name, n_groups - 1,
                                                          values.min() if values.min() < 0 else values.max()))


def tree(fn, zoff, level_first, parent, n_clusters=None):
    """The levels' columns ``zoff``, first clusters ``level_first`` and ``parent`` (an outer cluster or -1)."""
    zoff, level_first = np.asarray(zoff), np.asarray(level_first)
    parent = None if parent is None else np.asarray(parent)        # None: no parents to check
    if level_first.size < 1:
        _fail(fn, "level_first must have one entry per level and the end")
    if zoff.size < 1 or zoff[0] != 0 or np.any(np.diff(zoff) < 1):
        _fail(fn, "zoff must start at 0 and increase (the levels' first columns), got %s" % zoff.tolist())
    if level_first.size != zoff.size or level_first[0] != 0 or np.any(np.diff(level_first) < 0):
        _fail(fn, "level_first must have %d non-decreasing entries from 0 (one per level and the end), got %s"
              % (zoff.size, level_first.tolist()))
    nc = int(level_first[-1])
    if n_clusters is not None and nc != n_clusters:
        _fail(fn, "level_first ends at %d clusters but the cluster arrays have %d" % (nc, n_clusters))
    if parent is None:
        return
    if parent.size != nc:
        _fail(fn, "parent must have one entry per cluster (%d), got %d" % (nc, parent.size))
    if nc:
        level_end = np.repeat(level_first[1:], np.diff(level_first))   # first cluster of the next level out
        bad = (parent != -1) & ((parent < level_end) | (parent >= nc))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            _fail(fn, "parent[%d] = %d is not a cluster of an outer level (or -1)" % (k, parent[k]))


def blocks(fn, name, offsets, level_first, widths, size, buffer="stats"):
    """Cluster k of level l owns ``offsets[k]:offsets[k] + widths[l]`` of a buffer of ``size`` values."""
    offsets, level_first = np.asarray(offsets), np.asarray(level_first)
    nc = int(level_first[-1])
    if offsets.size != nc:
        _fail(fn, "%s must have one entry per cluster (%d), got %d" % (name, nc, offsets.size))
    if nc:
        end = offsets + np.repeat(np.asarray(widths), np.diff(level_first))
        bad = (offsets < 0) | (end > size)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            _fail(fn, "%s[%d] = %d puts cluster %d's block outside %s (%d values)"
                  % (name, k, offsets[k], k, buffer, size))


def chain_widths(zoff, m, qd):
    """Values of a cluster's block row per level: ``q_l (m - zoff[l] + qd)``."""
    zoff = np.asarray(zoff)
    return np.diff(zoff) * (m - zoff[:-1] + qd)


def nested_widths(zoff):
    """Values of a cluster's block row per level in the generalized kernel: ``q_l (Q - zoff[l] + 1)``."""
    zoff = np.asarray(zoff)
    return np.diff(zoff) * (zoff[-1] - zoff[:-1] + 1)


def finite(fn, name, values):
    if not np.all(np.isfinite(values)):
        _fail(fn, "%s contains NaN or inf" % name)


def invalid(fn, names):
    """The typed check of ``_boundary_checks`` refused arguments that the check above let through."""
    _fail(fn, "%s do not describe valid clusters" % names)
