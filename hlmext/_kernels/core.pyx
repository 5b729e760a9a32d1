# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the linear mixed model: cross-products and nested elimination
(the rows' sorted order is ``row_order``).

Data layout (built by ``design.py``; every index here has been checked there):

- ``W`` (n x m, C order): the rows sorted so that every cluster at every level is a
  contiguous run, with columns ``[Z_0 | Z_1 | ... | Z_{L-1} | X | y]``; level 0 is the
  innermost level. ``zoff[l]`` is the first column of ``Z_l``; ``zoff[L] = Q`` is the first
  column of ``X``; ``m = Q + p + 1``.
- Clusters are numbered level by level, innermost level first: clusters of level ``l``
  are ``level_first[l] .. level_first[l+1]-1``; ``row_start[k] .. row_end[k]`` are the
  rows of cluster ``k``, and ``parent[k]`` its cluster one level out (-1 at the top).
- Levels that do not nest in this chain (crossed factors) are not eliminated cluster by
  cluster: their random effects form the dense block ``D`` (``qd`` columns: every group
  of every crossed level) that is factored with ``X`` and ``y`` at the end.
- The statistics of cluster ``k`` at level ``l`` are the ``q_l x (m - zoff[l] + qd)``
  block ``Z_lk' [Z_l | Z_{l+1} | ... | D | X | y]_k``, row-major, at
  ``stats[stat_off[k]:]``: the cluster's rows of the cross-product matrix from its own
  columns to the right. The ``D`` columns and the global block ``[D X y]'[D X y]`` are
  filled by NumPy outside (they are sparse scatters and one BLAS product).

Three layers, as in scikit-learn's kernels: small ``cdef ... noexcept nogil`` helpers for
one cluster; ``def`` loops over clusters writing into caller-allocated arrays; the
Python facade in ``linear.py`` validates and allocates. The per-cluster blocks are
tiny (q is 1 to a few), where LAPACK's call overhead exceeds the arithmetic, so their
Cholesky and triangular solves are the short loops below; the global block goes to
LAPACK (``scipy.linalg.cython_lapack``).

The elimination is the penalized least squares of Bates et al. (2015), J. Stat.
Softw. 67(1), applied level by level from the innermost outwards (see
``docs/math.md``).
"""
from libc.math cimport log, sqrt
from scipy.linalg.cython_blas cimport dsyrk, dtrsv
from scipy.linalg.cython_lapack cimport dpotrf, dpotri

from libc.stdint cimport int32_t, int64_t

from hlmext._kernels.helpers cimport index_t, chol_ld, lower_solve
import numpy as np
from hlmext._kernels import boundary as _bd
from hlmext._kernels.boundary_checks cimport tree_ok, blocks_ok

ctypedef fused code_t:      # group codes of a crossed level (int32 when the groups allow)
    int32_t
    int64_t


# ---------------------------------------------------------------------------------
# Layer 1: one cluster
# ---------------------------------------------------------------------------------

cdef bint offsets_within(const index_t[::1] off, index_t hi) noexcept:
    """Every entry of ``off`` in ``[0, hi)`` (a check of every evaluation: no NumPy call)."""
    cdef index_t i
    for i in range(off.shape[0]):
        if off[i] < 0 or off[i] >= hi:
            return False
    return True


cdef inline void scale_columns(double* S, index_t q, index_t D, index_t col0, index_t qj,
                               const double* lj) noexcept nogil:
    """S[:, col0:col0+qj] <- S[:, col0:col0+qj] Lambda_j (Lambda_j lower triangular, in place)."""
    cdef index_t a, b, cj
    cdef double s
    for a in range(q):
        for cj in range(qj):
            s = 0.0
            for b in range(cj, qj):
                s += S[a * D + col0 + b] * lj[b * qj + cj]
            S[a * D + col0 + cj] = s


cdef void scale_block(const double* B, double* S, index_t q, index_t D, const double* lam,
                      index_t level, index_t nlev, const index_t* qlev, const index_t* lam_off,
                      index_t ndense, const index_t* dense_q, const index_t* dense_groups,
                      double penalty) noexcept nogil:
    """S = Lambda_l' B diag(Lambda_l, ..., Lambda_{L-1}, Lambda_D, I) + [c I 0] for one cluster.

    ``B`` and ``S`` are q x D row-major; ``c = penalty`` (1, or the cluster's weight). ``Lambda_D`` repeats each crossed level's factor
    (``lam_off[nlev + d]``) over its groups.
    """
    cdef const double* lamq = lam + lam_off[level]
    cdef index_t a, b, c, j, g, col0
    cdef double s
    # S = Lambda_l' B (Lambda lower triangular: Lambda'[a, b] = lam[b, a], b >= a)
    for a in range(q):
        for c in range(D):
            s = 0.0
            for b in range(a, q):
                s += lamq[b * q + a] * B[b * D + c]
            S[a * D + c] = s
    # right-multiply each level's column block by its Lambda (in place, ascending cj)
    col0 = 0
    for j in range(level, nlev):
        scale_columns(S, q, D, col0, qlev[j], lam + lam_off[j])
        col0 += qlev[j]
    for j in range(ndense):
        if dense_q[j] == 1:                   # random intercepts: one scalar for all groups
            s = lam[lam_off[nlev + j]]
            for a in range(q):
                for g in range(dense_groups[j]):
                    S[a * D + col0 + g] *= s
            col0 += dense_groups[j]
            continue
        for g in range(dense_groups[j]):
            scale_columns(S, q, D, col0, dense_q[j], lam + lam_off[nlev + j])
            col0 += dense_q[j]
    for a in range(q):
        S[a * D + a] += penalty


cdef double eliminate_cluster(double* S, index_t q, index_t D, int* info) noexcept nogil:
    """Factor one cluster's block row: L = chol(S[:, :q]), S[:, q:] <- L^{-1} S[:, q:].

    Returns the cluster's log-determinant contribution 2 * sum(log diag L).
    """
    cdef index_t a
    cdef double logdet = 0.0
    info[0] = chol_ld(S, q, D)
    if info[0] != 0:
        return 0.0
    lower_solve(S, D, q, S + q, D - q, D)
    for a in range(q):
        logdet += 2.0 * log(S[a * D + a])
    return logdet


cdef void downdate(const double* R, index_t q, index_t ldr, index_t c0, double* T,
                   index_t qt, index_t Dt) noexcept nogil:
    """T[r, c] -= sum_t R[t, c0 + r] R[t, c0 + c] for r < qt, c < Dt (the Schur complement).

    ``R`` is the q-row off-diagonal block of an eliminated cluster (leading dim ldr);
    ``T`` the qt x Dt block row of an ancestor cluster.
    """
    cdef index_t r, c, t
    cdef double w
    for r in range(qt):
        for t in range(q):
            w = R[t * ldr + c0 + r]
            if w == 0.0:
                continue
            for c in range(Dt):
                T[r * Dt + c] -= w * R[t * ldr + c0 + c]


cdef void rank_downdate_lower(const double* R, index_t nrow, index_t ldr, double* G,
                              index_t n) noexcept nogil:
    """G[a, b] -= sum_r R[r, a] R[r, b] for b <= a (row-major lower triangle of n x n)."""
    cdef index_t r, a, b
    cdef double w
    cdef const double* row
    for r in range(nrow):
        row = R + r * ldr
        for a in range(n):
            w = row[a]
            if w == 0.0:
                continue
            for b in range(a + 1):
                G[a * n + b] -= w * row[b]


# ---------------------------------------------------------------------------------
# Layer 2: loops over clusters
# ---------------------------------------------------------------------------------

def cross_products(const double[:, ::1] W, const index_t[::1] zoff, const index_t[::1] level_first,
                   const index_t[::1] row_start, const index_t[::1] row_end,
                   const index_t[::1] stat_off, index_t qd, double[::1] stats,
                   const double[::1] weights=None):
    """One pass over the rows: every cluster's block ``Z_lk' [Z_l ... X y]_k`` into ``stats``.

    With ``weights`` (frequency weights, one per row) the blocks are ``Z_lk' W_k [...]_k``.
    The ``qd`` columns of the crossed block ``D`` are skipped (left for the caller).
    ``stats`` must be zero on entry. Cost: n * sum_l q_l * (m - zoff[l]) multiply-adds.
    """
    _bd.tree("cross_products", zoff, level_first, None)
    _bd.rows("cross_products", W.shape[0], row_start, row_end)
    _bd.blocks("cross_products", "row_start", row_start, level_first, np.zeros(zoff.shape[0] - 1), W.shape[0], "W")
    _bd.blocks("cross_products", "stat_off", stat_off, level_first, _bd.chain_widths(zoff, W.shape[1], qd),
               stats.shape[0])
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t m = W.shape[1]
    cdef index_t Q = zoff[nlev]
    cdef index_t l, k, i, a, c, q, D, z0, nz
    cdef double w
    cdef double* out
    cdef bint weighted = weights is not None and weights.shape[0] > 0
    if weighted and weights.shape[0] != W.shape[0]:
        raise ValueError("weights must have one value per row")
    with nogil:
        for l in range(nlev):
            z0 = zoff[l]
            q = zoff[l + 1] - z0
            D = m - z0 + qd
            nz = Q - z0
            for k in range(level_first[l], level_first[l + 1]):
                out = &stats[stat_off[k]]
                for i in range(row_start[k], row_end[k]):
                    for a in range(q):
                        w = W[i, z0 + a] * weights[i] if weighted else W[i, z0 + a]
                        if w == 0.0:
                            continue
                        for c in range(nz):
                            out[a * D + c] += w * W[i, z0 + c]
                        for c in range(nz, m - z0):
                            out[a * D + c + qd] += w * W[i, z0 + c]


def add_crossed_coupling(const double[:, ::1] W, index_t q, const index_t[::1] row_start,
                         const index_t[::1] row_end, const index_t[::1] stat_off, index_t D, index_t col0,
                         const code_t[::1] codes, const double[:, :] z, double[::1] stats,
                         const double[::1] weights=None):
    """Add one crossed level's columns of ``D`` to the blocks of the (single) chain level.

    Cluster k's block (``q`` rows of width ``D``, at ``stats[stat_off[k]:]``) gets
    ``sum_i w_i W[i, a] z[i, b]`` at column ``col0 + codes[i] * qz + b`` for its rows ``i``,
    where the chain's random-effects columns are ``W[:, :q]`` and ``qz = z.shape[1]``.
    ``z`` may have any strides (a random intercept is a broadcast column of ones).
    """
    _bd.rows("add_crossed_coupling", W.shape[0], row_start, row_end)
    if q > W.shape[1] or q < 0 or col0 < 0 or col0 + (np.max(codes) + 1 if codes.shape[0] else 0) * z.shape[1] > D - 0:
        raise ValueError("add_crossed_coupling: q, col0, codes and z must fit the blocks' %d columns (D)" % D)
    _bd.codes("add_crossed_coupling", "codes", codes, (D - col0) // max(1, z.shape[1]) + 1)
    if row_start.shape[0] and (np.min(stat_off) < 0 or np.max(stat_off) + q * D > stats.shape[0]
                               or stat_off.shape[0] != row_start.shape[0]):
        raise ValueError("add_crossed_coupling: stat_off must place one block of q x D per cluster inside stats")
    cdef index_t nclus = row_start.shape[0]
    cdef index_t qz = z.shape[1]
    cdef index_t k, i, a, b, c
    cdef double v
    cdef double* out
    cdef bint weighted = weights is not None and weights.shape[0] > 0
    if codes.shape[0] != W.shape[0] or z.shape[0] != W.shape[0] or (weighted and weights.shape[0] != W.shape[0]):
        raise ValueError("codes, z and weights must have one entry per row")
    with nogil:
        for k in range(nclus):
            out = &stats[stat_off[k]]
            for i in range(row_start[k], row_end[k]):
                c = col0 + codes[i] * qz
                for a in range(q):
                    v = W[i, a] * weights[i] if weighted else W[i, a]
                    for b in range(qz):
                        out[a * D + c + b] += v * z[i, b]


def add_crossed_gram(const code_t[::1] codes1, const double[:, :] z1, index_t off1,
                     const code_t[::1] codes2, const double[:, :] z2, index_t off2,
                     const double[:, :] xy, double[:, ::1] G, const double[::1] weights=None):
    """Add ``D_1' D_2`` (and ``D_1' xy`` if ``xy`` has columns) to the global block ``G``.

    ``D_l`` has, in row ``i``, ``z_l[i, :]`` at columns ``off_l + codes_l[i] * q_l``; the
    products go to ``G[off1 + .., off2 + ..]`` and ``D_1' xy`` to ``G[off1 + .., n_G - k ..]``
    (the last ``k = xy.shape[1]`` columns). Only these entries are written: the caller
    mirrors the lower part. Frequency weights multiply every row.
    """
    _bd.codes("add_crossed_gram", "codes1", codes1, max(0, (G.shape[0] - off1) // max(1, z1.shape[1])))
    _bd.codes("add_crossed_gram", "codes2", codes2, max(0, (G.shape[1] - off2) // max(1, z2.shape[1])))
    if off1 < 0 or off2 < 0 or xy.shape[1] > G.shape[1]:
        raise ValueError("add_crossed_gram: off1, off2 and xy must fit inside G")
    cdef index_t n = codes1.shape[0]
    cdef index_t q1 = z1.shape[1], q2 = z2.shape[1], kxy = xy.shape[1]
    cdef index_t last = G.shape[1] - kxy
    cdef index_t i, a, b, r, c
    cdef double v
    cdef bint weighted = weights is not None and weights.shape[0] > 0
    if codes2.shape[0] != n or z1.shape[0] != n or z2.shape[0] != n or (kxy and xy.shape[0] != n) \
            or (weighted and weights.shape[0] != n):
        raise ValueError("codes, z, xy and weights must have one entry per row")
    with nogil:
        for i in range(n):
            r = off1 + codes1[i] * q1
            c = off2 + codes2[i] * q2
            for a in range(q1):
                v = z1[i, a] * weights[i] if weighted else z1[i, a]
                for b in range(q2):
                    G[r + a, c + b] += v * z2[i, b]
                for b in range(kxy):
                    G[r + a, last + b] += v * xy[i, b]


def factorize(const double[::1] stats, const double[::1] G0, const double[::1] lam,
              const index_t[::1] lam_off, const index_t[::1] zoff, index_t m,
              const index_t[::1] level_first, const index_t[::1] stat_off,
              const index_t[::1] parent, const index_t[::1] dense_q, const index_t[::1] dense_groups,
              double[::1] work, double[::1] G, const double[::1] cweight=None):
    """Blocked Cholesky of the penalized system for one value of Lambda.

    ``G0`` is the global block ``[D X y]'[D X y]`` already scaled by ``Lambda_D`` with the
    identity added to its ``D`` block (size ``(qd + p + 1)^2``); ``dense_q`` and
    ``dense_groups`` give each crossed level's columns and groups (empty without them).
    On return ``work`` holds every cluster's factor block row (``L_k`` in its lower
    triangle, ``L_k^{-1}`` times its off-diagonal blocks to the right) and ``G`` the lower
    Cholesky factor of the reduced ``[D X y]`` block, row-major.

    With ``cweight`` (sampling weights, one per cluster, no crossed levels) cluster k's
    penalty is ``c_k I`` instead of ``I``, where ``c_k`` is the product of the level
    weights of k and of its ancestors, and its log-determinant term is
    ``c_k (2 sum log diag L_k - q log c_k)``. With statistics accumulated under the row
    weights ``w_i c_(innermost cluster of i)`` this is the Cholesky of the pseudo-likelihood
    of Rabe-Hesketh & Skrondal (2006), JRSS-A 169:805, with every cluster's weighted
    statistics scaled by ``c_k`` (so the downdates need no weights; ``docs/math.md``).

    Returns
    -------
    logdet : float
        sum over clusters of 2 sum log diag L_k (the ``D`` block's part is in ``G``).
    info : int
        0 on success; -(k+1) if cluster k's block was not positive definite; j if the
        j-th leading minor of the reduced [D X y] block was not (1 <= j <= qd+p+1).
    """
    if not tree_ok(zoff, level_first, parent):
        _bd.tree("factorize", zoff, level_first, parent)
        _bd.invalid("factorize", "zoff, level_first and parent")
    if zoff[zoff.shape[0] - 1] >= m or lam_off.shape[0] < zoff.shape[0] - 1 + dense_q.shape[0] \
            or dense_groups.shape[0] != dense_q.shape[0]:
        raise ValueError("factorize: m must exceed zoff's last entry and lam_off have one entry per level")
    cdef index_t qd_all = 0, dl
    for dl in range(dense_q.shape[0]):
        qd_all += dense_q[dl] * dense_groups[dl]
    if not blocks_ok(stat_off, level_first, zoff, m, qd_all, 1, min(stats.shape[0], work.shape[0])):
        _bd.blocks("factorize", "stat_off", stat_off, level_first, _bd.chain_widths(zoff, m, qd_all),
                   min(stats.shape[0], work.shape[0]), "stats or work")
        _bd.invalid("factorize", "stat_off")
    if not offsets_within(lam_off, lam.shape[0] + (lam.shape[0] == 0)):
        raise ValueError("factorize: lam_off must index into lam (%d values)" % lam.shape[0])
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t ndense = dense_q.shape[0]
    cdef index_t Q = zoff[nlev]
    cdef index_t qd = 0
    cdef index_t l, j, k, q, D, anc, c0, qa, Da, nrow
    cdef index_t pp1
    cdef double logdet = 0.0, ck = 1.0
    cdef int info = 0
    cdef int n, kk, lda
    cdef bint weighted = cweight is not None
    cdef char uplo = b'U'
    cdef char trans = b'N'
    cdef double minus_one = -1.0, one = 1.0
    cdef index_t qlev[64]
    if nlev > 64:
        raise ValueError("at most 64 levels are supported")
    for j in range(ndense):
        qd += dense_q[j] * dense_groups[j]
    pp1 = m - Q + qd
    if G0.shape[0] != pp1 * pp1 or G.shape[0] != pp1 * pp1:
        raise ValueError("global block has the wrong size")
    n = <int> pp1
    if weighted and (cweight.shape[0] != parent.shape[0] or ndense):
        raise ValueError("cweight needs one weight per cluster and no crossed levels")
    for l in range(nlev):
        qlev[l] = zoff[l + 1] - zoff[l]
    with nogil:
        for l in range(nlev):
            q = qlev[l]
            D = m - zoff[l] + qd
            for k in range(level_first[l], level_first[l + 1]):
                scale_block(&stats[stat_off[k]], &work[stat_off[k]], q, D, &lam[0], l, nlev,
                            qlev, &lam_off[0], ndense, &dense_q[0] if ndense else NULL,
                            &dense_groups[0] if ndense else NULL, cweight[k] if weighted else 1.0)
        for j in range(pp1 * pp1):
            G[j] = G0[j]
        for l in range(nlev):
            q = qlev[l]
            D = m - zoff[l] + qd
            for k in range(level_first[l], level_first[l + 1]):
                if weighted:
                    ck = cweight[k]
                    logdet += ck * (eliminate_cluster(&work[stat_off[k]], q, D, &info) - q * log(ck))
                else:
                    logdet += eliminate_cluster(&work[stat_off[k]], q, D, &info)
                if info != 0:
                    info = -(k + 1)
                    break
                # Schur complement into every ancestor's block row, then the global block
                anc = parent[k]
                c0 = q
                j = l + 1
                while anc >= 0:
                    qa = qlev[j]
                    Da = m - zoff[j] + qd
                    downdate(&work[stat_off[k]], q, D, c0, &work[stat_off[anc]], qa, Da)
                    c0 += qa
                    anc = parent[anc]
                    j += 1
            if info != 0:
                break
            # the level's clusters' rows form one (G_l q) x D row-major matrix: one BLAS
            # rank-k downdate of the global block, G -= R_g' R_g (row-major lower = col-major upper)
            nrow = (level_first[l + 1] - level_first[l]) * q
            if nrow > 0 and pp1 > 32:
                kk = <int> nrow
                lda = <int> D
                dsyrk(&uplo, &trans, &n, &kk, &minus_one, &work[stat_off[level_first[l]] + Q - zoff[l]],
                      &lda, &one, &G[0], &n)
            elif nrow > 0:      # small block: a plain loop beats BLAS's call and threading overhead
                rank_downdate_lower(&work[stat_off[level_first[l]] + Q - zoff[l]], nrow, D, &G[0], pp1)
        if info == 0:
            # row-major lower == column-major upper
            dpotrf(&uplo, &n, &G[0], &n, &info)
    return logdet, info


def solve_modes(const double[::1] work, const double[::1] G, const double[::1] beta,
                const index_t[::1] zoff, index_t m, const index_t[::1] level_first,
                const index_t[::1] stat_off, const index_t[::1] parent,
                const index_t[::1] u_off, double[::1] u):
    """Back-substitution for the spherical random effects u (conditional modes).

    For cluster k at level l, from the outermost level inwards:
    ``L_k' u_k = r_k - R_k,anc u_anc - R_k,DX [u_D; beta]`` where ``[R_k | r_k]`` is the
    off-diagonal part of the factor block row in ``work``; ``beta`` holds the crossed
    modes ``u_D`` (if any) followed by the fixed effects. ``u_off[k]`` is the first
    entry of cluster k's ``q_l`` modes in ``u``.
    """
    if not tree_ok(zoff, level_first, parent):
        _bd.tree("solve_modes", zoff, level_first, parent)
        _bd.invalid("solve_modes", "zoff, level_first and parent")
    if zoff[zoff.shape[0] - 1] >= m or beta.shape[0] < m - zoff[zoff.shape[0] - 1] - 1:
        raise ValueError("solve_modes: m must exceed zoff's last entry and beta hold the fixed effects")
    cdef index_t qd_modes = beta.shape[0] - (m - zoff[zoff.shape[0] - 1] - 1)
    if not blocks_ok(stat_off, level_first, zoff, m, qd_modes, 1, work.shape[0]):
        _bd.blocks("solve_modes", "stat_off", stat_off, level_first, _bd.chain_widths(zoff, m, qd_modes),
                   work.shape[0], "work")
        _bd.invalid("solve_modes", "stat_off")
    if not blocks_ok(u_off, level_first, zoff, m, 0, 0, u.shape[0]):
        _bd.blocks("solve_modes", "u_off", u_off, level_first, np.diff(zoff), u.shape[0], "u")
        _bd.invalid("solve_modes", "u_off")
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t Q = zoff[nlev]
    cdef index_t p = beta.shape[0]           # crossed modes u_D then the fixed effects
    cdef index_t qd = p - (m - Q - 1)
    cdef index_t l, k, a, t, j, q, D, anc, c0, qa, lev
    cdef double s
    cdef const double* S
    with nogil:
        for l in range(nlev - 1, -1, -1):
            q = zoff[l + 1] - zoff[l]
            D = m - zoff[l] + qd
            for k in range(level_first[l], level_first[l + 1]):
                S = &work[stat_off[k]]
                for a in range(q):
                    s = S[a * D + D - 1]
                    c0 = q
                    anc = parent[k]
                    lev = l + 1
                    while anc >= 0:
                        qa = zoff[lev + 1] - zoff[lev]
                        for t in range(qa):
                            s -= S[a * D + c0 + t] * u[u_off[anc] + t]
                        c0 += qa
                        anc = parent[anc]
                        lev += 1
                    for t in range(p):
                        s -= S[a * D + c0 + t] * beta[t]
                    u[u_off[k] + a] = s
                # solve L_k' x = s (L_k lower, stored in the first q columns)
                for a in range(q - 1, -1, -1):
                    s = u[u_off[k] + a]
                    for t in range(a + 1, q):
                        s -= S[t * D + a] * u[u_off[k] + t]
                    u[u_off[k] + a] = s / S[a * D + a]


# ---------------------------------------------------------------------------------
# Cross-products of rows in any order (chunked and distributed data)
# ---------------------------------------------------------------------------------

def scatter_cross_products(const double[:, ::1] W, const index_t[::1] zoff, const index_t[:, ::1] cluster,
                           const index_t[::1] stat_off, index_t qd, double[::1] stats):
    """Add every row's ``Z_l,i' [Z_l,i ... X_i y_i]`` into the block of its cluster, level by level.

    The scatter twin of ``cross_products`` for rows that are neither sorted nor complete:
    ``cluster[i, l]`` is the cluster of row ``i`` at chain level ``l``, an index into
    ``stat_off`` (the block layout is the one described at the top of this file, the ``qd``
    columns skipped). Called chunk by chunk on the same ``stats`` (zero at the start), it
    adds up to ``cross_products`` on all the rows; every block receives its rows in the
    order they come. The caller (``hlmext.design.chunked``) checks every index.
    """
    if zoff.shape[0] < 1 or zoff[zoff.shape[0] - 1] > W.shape[1] or np.any(np.diff(zoff) < 1) or zoff[0] != 0:
        raise ValueError("scatter_cross_products: zoff must increase from 0 to at most W's %d columns" % W.shape[1])
    if cluster.shape[0] != W.shape[0] or cluster.shape[1] != zoff.shape[0] - 1:
        raise ValueError("scatter_cross_products: cluster must have one row per row of W and one column per level")
    _bd.codes("scatter_cross_products", "cluster", cluster, stat_off.shape[0])
    for _l, _w in enumerate(_bd.chain_widths(zoff, W.shape[1], qd)):
        _used = np.asarray(stat_off)[np.asarray(cluster[:, _l])]
        if _used.size and (_used.min() < 0 or _used.max() + _w > stats.shape[0]):
            raise ValueError("scatter_cross_products: stat_off puts a level-%d block outside stats (%d values)"
                             % (_l, stats.shape[0]))
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t m = W.shape[1]
    cdef index_t n = W.shape[0]
    cdef index_t Q = zoff[nlev]
    cdef index_t l, i, a, c, q, D, z0, nz
    cdef double w
    cdef double* out
    if cluster.shape[0] != n or cluster.shape[1] != nlev:
        raise ValueError("cluster must have one row per row of W and one column per level")
    with nogil:
        for i in range(n):
            for l in range(nlev):
                z0 = zoff[l]
                q = zoff[l + 1] - z0
                D = m - z0 + qd
                nz = Q - z0
                out = &stats[stat_off[cluster[i, l]]]
                for a in range(q):
                    w = W[i, z0 + a]
                    if w == 0.0:
                        continue
                    for c in range(nz):
                        out[a * D + c] += w * W[i, z0 + c]
                    for c in range(nz, m - z0):
                        out[a * D + c + qd] += w * W[i, z0 + c]


# ---------------------------------------------------------------------------------
# Dense blocks: the global factor in place
# ---------------------------------------------------------------------------------

def zero_above_diagonal(double[:, ::1] A):
    """``A[i, j] = 0`` for ``j > i``, in place (the lower factor of a square block)."""
    cdef index_t i, j, n = A.shape[0]
    with nogil:
        for i in range(n):
            for j in range(i + 1, A.shape[1]):
                A[i, j] = 0.0


def mirror_lower(double[:, :] A):
    """``A[i, j] = A[j, i]`` for ``j > i``, in place: a symmetric matrix from its lower triangle."""
    cdef index_t i, j, n = A.shape[0]
    with nogil:
        for i in range(n):
            for j in range(i + 1, n):
                A[i, j] = A[j, i]


def invert_leading_factor(double[:, ::1] L, index_t t):
    """``(L_t L_t')^{-1}`` in place of ``L_t = L[:t, :t]``, lower triangular (LAPACK ``dpotri``).

    The whole symmetric inverse replaces ``L[:t, :t]``; the rest of ``L`` is untouched.
    Returns LAPACK's info (0 on success; then ``L[:t, :t]`` holds the inverse).
    """
    cdef int n = <int> t
    cdef int lda = <int> L.shape[1]
    cdef int info = 0
    cdef char uplo = b'U'           # row-major lower == column-major upper
    if t < 0 or t > L.shape[0] or t > L.shape[1]:
        raise ValueError("t must be at most the size of L")
    if t == 0:
        return 0
    with nogil:
        dpotri(&uplo, &n, &L[0, 0], &lda, &info)
    if info == 0:
        mirror_lower(L[:t, :t])
    return info


def solve_leading_factor_t(const double[:, ::1] L, index_t t, double[::1] b):
    """``b <- L_t^{-T} b`` in place, for the lower triangular ``L_t = L[:t, :t]`` (BLAS ``dtrsv``,
    on ``L``'s own rows: no copy of the block)."""
    cdef int n = <int> t
    cdef int lda = <int> L.shape[1]
    cdef int inc = 1
    cdef char uplo = b'U', trans = b'N', diag = b'N'   # row-major lower' == column-major upper
    if t < 0 or t > L.shape[0] or t > L.shape[1] or b.shape[0] != t:
        raise ValueError("b must have t entries and t be at most the size of L")
    if t == 0:
        return
    with nogil:
        dtrsv(&uplo, &trans, &diag, &n, <double*> &L[0, 0], &lda, &b[0], &inc)
