# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernel of the residual covariance structures: prewhitening of a Markov chain.

An AR(1) (integer occasions) or exponential (continuous time) error process within a
cluster is a Markov chain: with the rows in time order and ``phi_k`` the correlation of
row ``k`` with the row before it in its cluster (0 for a cluster's first row),

    w~_k = (w_k - phi_k w_{k-1}) / sqrt(1 - phi_k^2)

is the row of ``C^{-1} W`` for the Cholesky factor ``C`` of the correlation matrix (whose
inverse is tridiagonal), and ``log det R = sum_k log(1 - phi_k^2)``. One pass, ``O(n m)``.
"""
from libc.math cimport log, sqrt

from hlmext._kernels.helpers cimport index_t


def markov_whiten(const double[:, ::1] W, const index_t[::1] rows, const double[::1] phi,
                  const double[::1] scale, double[:, ::1] out):
    """Whiten ``W`` into ``out``: position ``k`` gets row ``rows[k]`` of ``W`` less ``phi[k]`` times
    row ``rows[k - 1]`` (the earlier row of the same cluster), divided by
    ``scale[k] * sqrt(1 - phi[k]^2)`` (``scale`` None: 1). Returns ``log det R``
    (``sum log(1 - phi^2) + 2 sum log scale``). ``rows`` and ``phi`` have one entry per row
    of ``out``; ``phi[k]`` must be 0 where position ``k`` starts a cluster and ``|phi| < 1``.
    """
    cdef index_t n = out.shape[0], m = out.shape[1], k, j, r, prev
    cdef double f, c, logdet = 0.0
    if W.shape[1] != m or rows.shape[0] != n or phi.shape[0] != n or (scale is not None and scale.shape[0] != n):
        raise ValueError("markov_whiten: inconsistent shapes")
    for k in range(n):
        r = rows[k]
        if r < 0 or r >= W.shape[0] or (phi[k] != 0.0 and (k == 0 or rows[k - 1] < 0 or rows[k - 1] >= W.shape[0])):
            raise ValueError("markov_whiten: row index out of range")
    with nogil:
        for k in range(n):
            r = rows[k]
            f = phi[k]
            c = 1.0 if scale is None else 1.0 / scale[k]
            if scale is not None:
                logdet += 2.0 * log(scale[k])
            if f == 0.0:
                for j in range(m):
                    out[k, j] = W[r, j] * c
            else:
                prev = rows[k - 1]
                logdet += log(1.0 - f * f)
                c = c / sqrt(1.0 - f * f)
                for j in range(m):
                    out[k, j] = (W[r, j] - f * W[prev, j]) * c
    return logdet


def pattern_whiten(const double[:, ::1] W, const index_t[::1] rows, const index_t[::1] starts,
                   const index_t[::1] ends, const index_t[::1] pattern, const double[::1] factors,
                   const index_t[::1] factor_off, double[:, ::1] out):
    """Whiten every cluster by the inverse Cholesky factor of its pattern of occasions.

    Cluster ``j`` holds positions ``starts[j] .. ends[j] - 1``, position ``k`` being row
    ``rows[k]`` of ``W``; its pattern's lower-triangular ``C^{-1}`` (``n_j x n_j``, row-major) is
    at ``factors[factor_off[pattern[j]]:]``. Position ``k`` of ``out`` gets
    ``sum_i C^{-1}[k, i] W[rows[i]]`` over the cluster: ``O(n_j^2 m)`` per cluster.
    """
    cdef index_t n = out.shape[0], m = out.shape[1], j, a, nj, i, k, c, r, base
    cdef double f
    if W.shape[1] != m or rows.shape[0] != n or ends.shape[0] != starts.shape[0] \
            or pattern.shape[0] != starts.shape[0]:
        raise ValueError("pattern_whiten: inconsistent shapes")
    for k in range(n):
        if rows[k] < 0 or rows[k] >= W.shape[0]:
            raise ValueError("pattern_whiten: row index out of range")
    for j in range(starts.shape[0]):
        nj = ends[j] - starts[j]
        if starts[j] < 0 or ends[j] > n or nj < 0 or pattern[j] < 0 or pattern[j] >= factor_off.shape[0] \
                or factor_off[pattern[j]] < 0 or factor_off[pattern[j]] + nj * nj > factors.shape[0]:
            raise ValueError("pattern_whiten: cluster or factor index out of range")
    with nogil:
        for j in range(starts.shape[0]):
            a = starts[j]
            nj = ends[j] - a
            base = factor_off[pattern[j]]
            for k in range(nj):
                for c in range(m):
                    out[a + k, c] = 0.0
                for i in range(k + 1):
                    f = factors[base + k * nj + i]
                    r = rows[a + i]
                    for c in range(m):
                        out[a + k, c] += f * W[r, c]
