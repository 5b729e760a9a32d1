# cython: language_level=3
"""Typed versions of the index checks in ``hlmext._kernels.boundary``, for the kernels that run at
every likelihood evaluation: one loop over the levels and clusters, no temporaries. Each
returns whether its arguments are valid; on False the caller runs the ``boundary`` check
of the same name, which says what is wrong."""
from hlmext._kernels.helpers cimport index_t


cdef inline bint tree_ok(const index_t[::1] zoff, const index_t[::1] level_first,
                         const index_t[::1] parent) noexcept:
    """As ``boundary.tree``: increasing ``zoff`` from 0, non-decreasing ``level_first`` from
    0 of the same length, every ``parent`` -1 or a cluster of an outer level."""
    cdef Py_ssize_t nl = zoff.shape[0], l, k, lev = 0, nc
    cdef index_t p
    if nl < 1 or zoff[0] != 0 or level_first.shape[0] != nl or level_first[0] != 0:
        return False
    for l in range(1, nl):
        if zoff[l] <= zoff[l - 1] or level_first[l] < level_first[l - 1]:
            return False
    if parent is None:
        return True
    nc = level_first[nl - 1]
    if parent.shape[0] != nc:
        return False
    for k in range(nc):
        while k >= level_first[lev + 1]:
            lev += 1
        p = parent[k]
        if p != -1 and (p < level_first[lev + 1] or p >= nc):
            return False
    return True


cdef inline bint blocks_ok(const index_t[::1] offsets, const index_t[::1] level_first,
                           const index_t[::1] zoff, index_t m, index_t extra, int kind,
                           Py_ssize_t size) noexcept:
    """As ``boundary.blocks``: cluster k of level l owns ``offsets[k]`` to ``offsets[k] + w_l``
    inside ``size`` values, with ``w_l = q_l`` (kind 0), the chain's block row
    ``q_l (m - zoff[l] + extra)`` (kind 1) or the generalized kernel's ``q_l (Q - zoff[l] + 1)``
    (kind 2). ``tree_ok`` must hold."""
    cdef Py_ssize_t nl = zoff.shape[0] - 1, l, k
    cdef index_t q, w, Q = zoff[nl]
    if offsets.shape[0] != level_first[nl]:
        return False
    for l in range(nl):
        q = zoff[l + 1] - zoff[l]
        if kind == 0:
            w = q
        elif kind == 1:
            w = q * (m - zoff[l] + extra)
        else:
            w = q * (Q - zoff[l] + 1)
        for k in range(level_first[l], level_first[l + 1]):
            if offsets[k] < 0 or offsets[k] + w > size:
                return False
    return True
