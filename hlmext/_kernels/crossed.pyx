# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of crossed factors with a sparse coupling (one chain level, a dense tail).

Layout (built by ``design.sparse_coupling``; every index is checked there):

- One chain level of ``nclus`` clusters with ``q`` random effects each. Cluster ``k``'s
  own block ``Z_k' [Z_k | X_k | y_k]`` (``q x m``, ``m = q + p + 1``) is at
  ``stats[k * q * m:]``, row-major: the layout of ``_core`` without crossed columns.
- The crossed block ``D`` (``qd`` columns: every group of every crossed level,
  ``dense_q``/``dense_groups``) meets cluster ``k`` only in the columns
  ``cols[ptr[k]:ptr[k + 1]]`` (``nk`` of them, ascending, whole groups): the groups its
  rows touch. Its coupling ``Z_k' D[:, those columns]`` (``q x nk``, row-major) is at
  ``coupling[q * ptr[k]:]``. So a cluster costs its nonzeros, not ``qd``.
- The tail ``[D X y]`` is dense, ``(qd + p + 1)^2``, row-major; its lower triangle is
  what the kernels read and write.

The elimination of a cluster is the one of ``_core`` (Bates et al. 2015); its Schur
complement goes into the tail by a scatter over the cluster's columns and ``[X y]``,
``q (nk + p + 1)^2 / 2`` multiply-adds, instead of a rank-``q`` update of the whole tail.
"""
from libc.math cimport log
from scipy.linalg.cython_blas cimport dgemm, dsyrk
from scipy.linalg.cython_lapack cimport dpotrf
import numpy as np

from hlmext._kernels.helpers cimport index_t, chol_ld, lower_solve, lower_t_solve
from hlmext._kernels.pairs cimport trace_pair, subtract_lam_u, subtract_lam_u_t
from libc.stdint cimport int32_t, int64_t

cdef enum:
    BLAS_WIDTH = 48          # clusters touching this many columns use BLAS for their products
    DENSER = 3               # clusters touching over 1/DENSER of the tail are handled as dense rows

ctypedef fused code_t:      # group codes of a crossed level (int32 when the groups allow)
    int32_t
    int64_t


def check(index_t nclus, index_t q, index_t m, const index_t[::1] ptr, const index_t[::1] cols, index_t qd,
          index_t n_stats, index_t n_coupling):
    """Raise ``ValueError`` unless the layout above fits arrays of the given sizes."""
    if q < 1 or m <= q or ptr.shape[0] != nclus + 1 or ptr[0] != 0 or ptr[nclus] != cols.shape[0]:
        raise ValueError("crossed layout: ptr must have one entry per cluster and one more, from 0 to len(cols)")
    if np.any(np.diff(np.asarray(ptr)) < 0):
        raise ValueError("crossed layout: ptr must not decrease")
    if cols.shape[0] and (np.min(cols) < 0 or np.max(cols) >= qd):
        raise ValueError("crossed layout: cols must be columns of the crossed block (0 to %d)" % (qd - 1))
    if n_stats < nclus * q * m or n_coupling < q * cols.shape[0]:
        raise ValueError("crossed layout: the statistics must hold %d own and %d coupling values"
                         % (nclus * q * m, q * cols.shape[0]))


cdef inline index_t level_of(index_t c, index_t ndense, const index_t* dense_q, const index_t* dense_groups,
                             index_t* start) noexcept nogil:
    """The crossed level of column ``c`` of ``D``; ``start[0]`` its first column."""
    cdef index_t j, off = 0
    for j in range(ndense):
        if c < off + dense_q[j] * dense_groups[j]:
            start[0] = off
            return j
        off += dense_q[j] * dense_groups[j]
    start[0] = off
    return ndense - 1


cdef void scale_coupling(double* C, index_t q, index_t nk, const index_t* cols, const double* lam,
                         const index_t* lam_off, const index_t* dense_q, const index_t* dense_groups,
                         index_t ndense, const double* lam_k, double* tmp) noexcept nogil:
    """C <- Lambda_k' C Lambda_D[cols, cols] for one cluster's q x nk coupling (in place)."""
    cdef index_t a, b, c, pos, j, qj, start
    cdef double s
    cdef const double* lj
    for c in range(nk):                  # Lambda_k' C, column by column
        for a in range(q):
            s = 0.0
            for b in range(a, q):
                s += lam_k[b * q + a] * C[b * nk + c]
            tmp[a] = s
        for a in range(q):
            C[a * nk + c] = tmp[a]
    pos = 0
    while pos < nk:                      # right: each touched group's Lambda_j
        j = level_of(cols[pos], ndense, dense_q, dense_groups, &start)
        qj = dense_q[j]
        lj = lam + lam_off[1 + j]
        for a in range(q):
            for c in range(qj):
                s = 0.0
                for b in range(c, qj):
                    s += C[a * nk + pos + b] * lj[b * qj + c]
                C[a * nk + pos + c] = s
        pos += qj


cdef void scale_own(const double* B, double* S, index_t q, index_t m, const double* lam_k) noexcept nogil:
    """S = Lambda_k' B diag(Lambda_k, I) + [I 0] for one cluster's q x m own block."""
    cdef index_t a, b, c
    cdef double s
    for a in range(q):
        for c in range(m):
            s = 0.0
            for b in range(a, q):
                s += lam_k[b * q + a] * B[b * m + c]
            S[a * m + c] = s
    for a in range(q):                   # in place, ascending c: column c reads columns >= c
        for c in range(q):
            s = 0.0
            for b in range(c, q):
                s += S[a * m + b] * lam_k[b * q + c]
            S[a * m + c] = s
    for a in range(q):
        S[a * m + a] += 1.0


def add_coupling(const double[:, ::1] W, index_t q, const index_t[::1] row_start, const index_t[::1] row_end,
                 const index_t[::1] ptr, const index_t[::1] cols, index_t col0, const code_t[::1] codes,
                 const double[:, :] z, double[::1] coupling, const double[::1] weights=None):
    """Add one crossed level's part of every cluster's coupling ``Z_k' D`` (compressed layout).

    Row ``i`` of cluster ``k`` adds ``W[i, a] z[i, b]`` (times its weight) at the position of
    column ``col0 + codes[i] * qz + b`` in the cluster's ``cols``, ``qz = z.shape[1]``; the
    chain's random-effects columns are ``W[:, :q]``. Every such column must be in the
    pattern (``design.sparse_coupling.pattern`` makes it so).
    """
    cdef index_t nclus = row_start.shape[0]
    cdef index_t qz = z.shape[1]
    cdef index_t k, i, a, b, c, lo, hi, mid, nk, pos
    cdef double v
    cdef double* out
    cdef bint weighted = weights is not None and weights.shape[0] > 0
    cdef bint missing = False
    if codes.shape[0] != W.shape[0] or z.shape[0] != W.shape[0] or (weighted and weights.shape[0] != W.shape[0]):
        raise ValueError("add_coupling: codes, z and weights must have one entry per row")
    if ptr.shape[0] != nclus + 1 or row_end.shape[0] != nclus or q > W.shape[1] \
            or coupling.shape[0] < q * ptr[nclus] or ptr[nclus] > cols.shape[0]:
        raise ValueError("add_coupling: ptr, row ranges and coupling do not fit together")
    if nclus and (np.min(row_start) < 0 or np.max(row_end) > W.shape[0]):
        raise ValueError("add_coupling: cluster rows fall outside W")
    with nogil:
        for k in range(nclus):
            nk = ptr[k + 1] - ptr[k]
            out = &coupling[q * ptr[k]]
            for i in range(row_start[k], row_end[k]):
                c = col0 + codes[i] * qz
                lo = ptr[k]
                hi = ptr[k + 1]
                while lo < hi:                    # first position with cols >= c
                    mid = (lo + hi) // 2
                    if cols[mid] < c:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo + qz > ptr[k + 1] or cols[lo] != c:
                    missing = True
                    continue
                pos = lo - ptr[k]
                for a in range(q):
                    v = W[i, a] * weights[i] if weighted else W[i, a]
                    for b in range(qz):
                        out[a * nk + pos + b] += v * z[i, b]
    if missing:
        raise ValueError("add_coupling: a row's crossed column is not in its cluster's pattern")


def factorize(const double[::1] stats, const double[::1] G0, const double[::1] lam,
              const index_t[::1] lam_off, index_t q, index_t m, index_t coff,
              const index_t[::1] ptr, const index_t[::1] cols,
              const index_t[::1] dense_q, const index_t[::1] dense_groups,
              double[::1] work, double[::1] G):
    """Blocked Cholesky of the penalized system with a sparse crossed coupling.

    ``stats`` holds the own blocks and, from ``coff``, the coupling (layout above); ``G0`` the
    tail ``[D X y]'[D X y]`` already scaled by ``Lambda_D`` with the identity added on ``D``.
    ``lam``/``lam_off``: the chain level's factor at ``lam_off[0]``, crossed level ``j``'s at
    ``lam_off[1 + j]``. On return ``work`` (same layout as ``stats``) holds every cluster's
    factor row (``L_k`` and ``L_k^{-1}`` times its own ``[X y]`` columns and its coupling),
    and ``G`` the lower Cholesky factor of the reduced tail, row-major.

    Returns ``(logdet, info)`` as ``_core.factorize``: ``logdet`` of the clusters only,
    ``info`` 0, ``-(k+1)`` (cluster k not positive definite) or the failed minor of the tail.
    """
    cdef index_t nclus = ptr.shape[0] - 1
    cdef index_t ndense = dense_q.shape[0]
    cdef index_t qd = 0, j
    for j in range(ndense):
        qd += dense_q[j] * dense_groups[j]
    cdef index_t p1 = m - q                      # X and y
    cdef index_t pp1 = qd + p1
    check(nclus, q, m, ptr, cols, qd, min(stats.shape[0], work.shape[0], coff),
          min(stats.shape[0], work.shape[0]) - coff)
    if G0.shape[0] != pp1 * pp1 or G.shape[0] != pp1 * pp1 or lam_off.shape[0] < 1 + ndense \
            or np.max(lam_off) >= lam.shape[0]:
        raise ValueError("factorize: the tail must be (qd + p + 1)^2 and lam_off index every level's factor")
    cdef index_t maxnk = int(np.max(np.diff(np.asarray(ptr)))) if nclus else 0
    rbuf = np.empty(q * (maxnk + p1) + q + 1)
    ibuf = np.empty(maxnk + p1, dtype=np.intp)
    tbuf = np.empty((maxnk + p1) ** 2 if maxnk + p1 >= BLAS_WIDTH else 1)
    cdef index_t batch = max(q, min(512, (1 << 22) // pp1))
    dbuf = np.zeros(batch * pp1 if DENSER * (maxnk + p1) >= pp1 else 1)
    cdef double[::1] rv = rbuf
    cdef index_t[::1] iv = ibuf
    cdef double[::1] tv = tbuf
    cdef double[::1] dv = dbuf
    cdef index_t nrows = 0
    cdef int bw, bq
    cdef char no = b'N'
    cdef double one = 1.0, zero = 0.0
    cdef index_t k, a, b, t, nk, w, ga
    cdef double logdet = 0.0, s
    cdef double* S
    cdef double* C
    cdef double* R
    cdef double* row
    cdef const double* lam_k = &lam[lam_off[0]]
    cdef int info = 0, n = <int> pp1
    cdef char uplo = b'U'
    if &G[0] != &G0[0]:
        for j in range(pp1 * pp1):
            G[j] = G0[j]
    with nogil:
        for k in range(nclus):
            nk = ptr[k + 1] - ptr[k]
            S = &work[k * q * m]
            C = &work[coff + q * ptr[k]]
            scale_own(&stats[k * q * m], S, q, m, lam_k)
            for a in range(q * nk):
                C[a] = stats[coff + q * ptr[k] + a]
            if nk:
                scale_coupling(C, q, nk, &cols[ptr[k]], &lam[0], &lam_off[0], &dense_q[0], &dense_groups[0],
                               ndense, lam_k, &rv[0])
            info = chol_ld(S, q, m)
            if info != 0:
                info = -(k + 1)
                break
            lower_solve(S, m, q, S + q, p1, m)
            if nk:
                lower_solve(S, m, q, C, nk, nk)
            for a in range(q):
                logdet += 2.0 * log(S[a * m + a])
            # scatter the Schur complement into the tail: G[i_a, i_b] -= sum_t R[t, a] R[t, b]
            w = nk + p1
            R = &rv[0]
            for a in range(nk):
                iv[a] = cols[ptr[k] + a]
            for a in range(p1):
                iv[nk + a] = qd + a
            for t in range(q):
                for a in range(nk):
                    R[t * w + a] = C[t * nk + a]
                for a in range(p1):
                    R[t * w + nk + a] = S[t * m + q + a]
            if DENSER * w >= pp1:        # touches much of the tail: its rows, dense, join a BLAS batch
                if nrows + q > batch:
                    _flush_rows(&dv[0], nrows, pp1, &G[0])
                    nrows = 0
                for t in range(q):
                    for a in range(w):
                        dv[(nrows + t) * pp1 + iv[a]] = R[t * w + a]
                nrows += q
                continue
            if w >= BLAS_WIDTH and q >= 2:   # a wide cluster: T = R'R by BLAS, then scattered
                bw = <int> w
                bq = <int> q
                dsyrk(&uplo, &no, &bw, &bq, &one, R, &bw, &zero, &tv[0], &bw)   # row-major lower of T
                for a in range(w):
                    row = &G[iv[a] * pp1]
                    for b in range(a + 1):
                        row[iv[b]] -= tv[a * w + b]
                continue
            for t in range(q):
                for a in range(w):
                    s = R[t * w + a]
                    if s == 0.0:
                        continue
                    ga = iv[a]
                    row = &G[ga * pp1]
                    for b in range(a + 1):
                        row[iv[b]] -= s * R[t * w + b]
        if info == 0 and nrows:
            _flush_rows(&dv[0], nrows, pp1, &G[0])
        if info == 0:
            dpotrf(&uplo, &n, &G[0], &n, &info)     # row-major lower == column-major upper
    return logdet, info


cdef void _flush_rows(double* rows, index_t nrows, index_t n, double* G) noexcept nogil:
    """G -= rows' rows (lower triangle, row-major) by one BLAS rank-k update; rows zeroed."""
    cdef int nn = <int> n, kk = <int> nrows
    cdef char uplo = b'U', no = b'N'
    cdef double minus_one = -1.0, one = 1.0
    cdef index_t a
    dsyrk(&uplo, &no, &nn, &kk, &minus_one, rows, &nn, &one, G, &nn)
    for a in range(nrows * n):
        rows[a] = 0.0


def solve_modes(const double[::1] work, const double[::1] tail_sol, index_t q, index_t m, index_t coff,
                const index_t[::1] ptr, const index_t[::1] cols, double[::1] u):
    """Conditional modes of the chain: ``L_k' u_k = r_k - R_k,X beta - C_k u_D[cols_k]``.

    ``tail_sol`` is ``[u_D; beta]`` (``qd + p`` values); ``u`` receives ``q`` modes per cluster.
    """
    cdef index_t nclus = ptr.shape[0] - 1
    cdef index_t p = m - q - 1
    cdef index_t qd = tail_sol.shape[0] - p
    check(nclus, q, m, ptr, cols, qd, min(work.shape[0], coff), work.shape[0] - coff)
    if u.shape[0] < nclus * q or qd < 0:
        raise ValueError("solve_modes: u must hold q modes per cluster and tail_sol the fixed effects")
    cdef index_t k, a, t, nk
    cdef double s
    cdef const double* S
    cdef const double* C
    with nogil:
        for k in range(nclus):
            nk = ptr[k + 1] - ptr[k]
            S = &work[k * q * m]
            C = &work[coff + q * ptr[k]]
            for a in range(q):
                s = S[a * m + m - 1]
                for t in range(p):
                    s -= S[a * m + q + t] * tail_sol[qd + t]
                for t in range(nk):
                    s -= C[a * nk + t] * tail_sol[cols[ptr[k] + t]]
                u[k * q + a] = s
            for a in range(q - 1, -1, -1):
                s = u[k * q + a]
                for t in range(a + 1, q):
                    s -= S[t * m + a] * u[k * q + t]
                u[k * q + a] = s / S[a * m + a]


def selected_inverse(const double[::1] work, const double[::1] sigma_tail, index_t t, index_t ldt,
                     index_t q, index_t m, index_t coff, index_t qd, const index_t[::1] ptr,
                     const index_t[::1] cols, double[::1] sel):
    """``Sigma`` on the nonzero pattern of the factor, in ``work``'s layout, into ``sel``.

    ``sigma_tail`` is the ``t x t`` inverse of the tail's leading part (``t = qd``: ML,
    ``t = qd + p``: REML), row stride ``ldt``. Cluster k's own block of ``sel`` receives
    ``Sigma_kk`` in its first ``q`` columns and, for REML, ``Sigma_k,X`` in the next ``p``;
    its coupling block ``Sigma_k,D`` on the cluster's columns. Takahashi's recurrence with
    ``S`` the cluster's columns (and ``X``): ``Y = U_k,S Sigma_SS``,
    ``Sigma_k,S = -L_k^{-T} Y``, ``Sigma_kk = L_k^{-T} (I + U_k,S Y') L_k^{-1}``, each cluster
    costing ``q (nk + p)^2`` (clusters touching much of the tail: their rows of ``U Sigma``
    by one BLAS product per batch). ``sel`` may be ``work`` itself.
    """
    cdef index_t nclus = ptr.shape[0] - 1
    cdef index_t p = m - q - 1
    check(nclus, q, m, ptr, cols, qd, min(work.shape[0], sel.shape[0], coff),
          min(work.shape[0], sel.shape[0]) - coff)
    if (t != qd and t != qd + p) or (t and (ldt < t or sigma_tail.shape[0] < (t - 1) * ldt + t)):
        raise ValueError("selected_inverse: sigma_tail must hold the t x t tail (t = qd or qd + p), row stride ldt")
    cdef index_t px = t - qd
    cdef index_t maxnk = int(np.max(np.diff(np.asarray(ptr)))) if nclus else 0
    cdef index_t smax = maxnk + px
    cdef bint any_dense = DENSER * smax >= t and t > 0
    cdef index_t batch = max(1, min(512 // q, (1 << 21) // max(t * q, 1))) if any_dense else 1
    ubuf = np.empty(q * smax + 1)
    ybuf = np.empty(q * smax + 1)
    gbuf = np.empty(smax * smax if smax >= BLAS_WIDTH else 1)
    udbuf = np.zeros(batch * q * t if any_dense else 1)
    ydbuf = np.empty(batch * q * t if any_dense else 1)
    kbuf = np.empty(batch, dtype=np.intp)
    pbuf = np.empty(2 * q * q)
    ibuf = np.empty(smax + 1, dtype=np.intp)
    cdef double[::1] U = ubuf
    cdef double[::1] Y = ybuf
    cdef double[::1] Sg = gbuf
    cdef double[::1] Ud = udbuf
    cdef double[::1] Yd = ydbuf
    cdef index_t[::1] kb = kbuf
    cdef double[::1] P = pbuf
    cdef index_t[::1] iv = ibuf
    cdef int bs, bq, bt, bn
    cdef char no = b'N'
    cdef double one = 1.0, zero = 0.0
    cdef index_t k, a, b, c, nk, s, x, nb = 0, r
    cdef double acc
    cdef const double* S
    cdef const double* C
    cdef const double* srow
    with nogil:
        for k in range(nclus):
            nk = ptr[k + 1] - ptr[k]
            s = nk + px
            if DENSER * s >= t and t > 0:      # dense: its rows of U, expanded, join a batch
                S = &work[k * q * m]
                C = &work[coff + q * ptr[k]]
                for a in range(q):
                    for b in range(nk):
                        Ud[(nb * q + a) * t + cols[ptr[k] + b]] = C[a * nk + b]
                    for b in range(px):
                        Ud[(nb * q + a) * t + qd + b] = S[a * m + q + b]
                kb[nb] = k
                nb += 1
                if nb == batch:
                    _dense_batch(work, sigma_tail, t, ldt, q, m, coff, qd, px, ptr, cols, sel,
                                 &Ud[0], &Yd[0], &kb[0], nb, &U[0], &Y[0], &P[0], &iv[0])
                    nb = 0
                continue
            _fill_u(work, q, m, coff, qd, px, ptr, cols, k, &U[0], &iv[0])
            # Y = U Sigma_SS (gathered)
            if s >= BLAS_WIDTH:          # gathered into a block, then one BLAS product
                for b in range(s):
                    srow = &sigma_tail[iv[b] * ldt]
                    for c in range(s):
                        Sg[b * s + c] = srow[iv[c]]
                bs = <int> s
                bq = <int> q
                dgemm(&no, &no, &bs, &bq, &bs, &one, &Sg[0], &bs, &U[0], &bs, &zero, &Y[0], &bs)
            else:
                for a in range(q * s):
                    Y[a] = 0.0
                for b in range(s):
                    srow = &sigma_tail[iv[b] * ldt]
                    for a in range(q):
                        acc = U[a * s + b]
                        if acc == 0.0:
                            continue
                        for c in range(s):
                            Y[a * s + c] += acc * srow[iv[c]]
            _finish(work, q, m, coff, nk, px, k, ptr, &U[0], &Y[0], sel, &P[0])
        if nb:
            _dense_batch(work, sigma_tail, t, ldt, q, m, coff, qd, px, ptr, cols, sel,
                         &Ud[0], &Yd[0], &kb[0], nb, &U[0], &Y[0], &P[0], &iv[0])
    return None


cdef void _fill_u(const double[::1] work, index_t q, index_t m, index_t coff, index_t qd, index_t px,
                  const index_t[::1] ptr, const index_t[::1] cols, index_t k, double* U,
                  index_t* iv) noexcept nogil:
    """Cluster k's ``U_k,S`` (q x s, s = nk + px) and its columns ``iv`` in the tail."""
    cdef index_t nk = ptr[k + 1] - ptr[k], s = nk + px, a, b
    cdef const double* S = &work[k * q * m]
    cdef const double* C = &work[coff + q * ptr[k]]
    for b in range(nk):
        iv[b] = cols[ptr[k] + b]
    for b in range(px):
        iv[nk + b] = qd + b
    for a in range(q):
        for b in range(nk):
            U[a * s + b] = C[a * nk + b]
        for b in range(px):
            U[a * s + nk + b] = S[a * m + q + b]


cdef void _dense_batch(const double[::1] work, const double[::1] sigma_tail, index_t t, index_t ldt,
                       index_t q, index_t m, index_t coff, index_t qd, index_t px,
                       const index_t[::1] ptr, const index_t[::1] cols, double[::1] sel,
                       double* Ud, double* Yd, const index_t* kb, index_t nb, double* U, double* Y,
                       double* P, index_t* iv) noexcept nogil:
    """``Yd = Ud Sigma_TT`` for a batch of clusters' dense rows (one BLAS product), then each
    cluster's blocks of ``sel`` from its columns of ``Yd``; ``Ud`` is zeroed for the next batch."""
    cdef int bt = <int> t, bn = <int> (nb * q), lds = <int> ldt
    cdef char no = b'N'
    cdef double one = 1.0, zero = 0.0
    cdef index_t x, k, a, b, nk, s
    # row-major Yd (nb q x t) = Ud (nb q x t) Sigma (t x t, symmetric): column-major Yd' = Sigma Ud'
    dgemm(&no, &no, &bt, &bn, &bt, &one, <double*> &sigma_tail[0], &lds, Ud, &bt, &zero, Yd, &bt)
    for x in range(nb):
        k = kb[x]
        nk = ptr[k + 1] - ptr[k]
        s = nk + px
        _fill_u(work, q, m, coff, qd, px, ptr, cols, k, U, iv)
        for a in range(q):
            for b in range(s):
                Y[a * s + b] = Yd[(x * q + a) * t + iv[b]]
        _finish(work, q, m, coff, nk, px, k, ptr, U, Y, sel, P)
    for a in range(nb * q * t):
        Ud[a] = 0.0


cdef void _finish(const double[::1] work, index_t q, index_t m, index_t coff, index_t nk, index_t px,
                  index_t k, const index_t[::1] ptr, const double* U, const double* Y, double[::1] sel,
                  double* P) noexcept nogil:
    """Cluster k's blocks of ``sel`` from ``U = U_k,S`` and ``Y = U_k,S Sigma_SS`` (q x s each):
    ``Sigma_k,S = -L_k^{-T} Y`` and ``Sigma_kk = L_k^{-T} (I + U Y') L_k^{-1}``."""
    cdef index_t s = nk + px, a, b, c
    cdef double acc
    cdef const double* S = &work[k * q * m]
    cdef double* Lk = P + q * q
    cdef double* Sk = &sel[k * q * m]
    cdef double* Ck = &sel[coff + q * ptr[k]]
    for a in range(q):                  # P = I + U Y' ; L_k copied (sel may be work)
        for c in range(q):
            acc = 1.0 if a == c else 0.0
            for b in range(s):
                acc += U[a * s + b] * Y[c * s + b]
            P[a * q + c] = acc
            Lk[a * q + c] = S[a * m + c]
    for a in range(q):
        for b in range(nk):
            Ck[a * nk + b] = -Y[a * s + b]
        for b in range(px):
            Sk[a * m + q + b] = -Y[a * s + nk + b]
    if nk:
        lower_t_solve(Lk, q, q, Ck, nk, nk)
    if px:
        lower_t_solve(Lk, q, q, Sk + q, px, m)
    lower_t_solve(Lk, q, q, P, q, q)              # P <- L^{-T} P
    for a in range(q):                            # Sigma_kk <- (L^{-T} P)'
        for c in range(q):
            Sk[a * m + c] = P[c * q + a]
    lower_t_solve(Lk, q, q, Sk, q, m)             # Sigma_kk <- L^{-T} (L^{-T} P)'


def gradient_sums(const double[::1] stats, const double[::1] sel, const double[::1] lam,
                  const index_t[::1] lam_off, index_t t, index_t q, index_t m, index_t coff,
                  const index_t[::1] ptr, const index_t[::1] cols,
                  const index_t[::1] dense_q, const index_t[::1] dense_groups,
                  const double[::1] u, const double[::1] tail_sol,
                  double[::1] trace, double[::1] zr, double[::1] zr_dense, bint want_trace=True):
    """The clusters' part of the gradient sums (as ``_gradient.gradient_sums``, sparse coupling).

    ``trace`` (laid out as ``lam``) receives ``sum_k [Sigma Lt'W'Z]_kk`` over the pairs
    (cluster, own / touched crossed group / X for REML), ``zr`` ``Z_k'r`` of every cluster
    and ``zr_dense`` the clusters' part of ``Z_D'r``; all must be zero on entry.
    ``tail_sol`` is ``[u_D; beta]``. Without ``want_trace``, ``sel`` is not read.
    """
    cdef index_t nclus = ptr.shape[0] - 1
    cdef index_t ndense = dense_q.shape[0]
    cdef index_t p = m - q - 1
    cdef index_t qd = 0, j
    for j in range(ndense):
        qd += dense_q[j] * dense_groups[j]
    check(nclus, q, m, ptr, cols, qd, min(stats.shape[0], sel.shape[0], coff),
          min(stats.shape[0], sel.shape[0]) - coff)
    if q > 16 or np.any(np.asarray(dense_q) > 16):
        raise ValueError("the analytic gradient supports up to 16 random effects per level")
    if u.shape[0] < nclus * q or zr.shape[0] < nclus * q or zr_dense.shape[0] < qd \
            or tail_sol.shape[0] < qd + p or lam_off.shape[0] < 1 + ndense \
            or np.max(lam_off) >= min(lam.shape[0], trace.shape[0]):
        raise ValueError("gradient_sums: u, zr, zr_dense, tail_sol, lam and trace do not fit the layout")
    cdef bint reml = t > qd
    cdef index_t k, a, b, c, x, nk, pos, jj, qc, start
    cdef const double* B
    cdef const double* Sg
    cdef const double* Bc
    cdef const double* Sc
    cdef const double* lam_l = &lam[lam_off[0]]
    cdef double* zk
    cdef double s
    cdef double tmp[256]
    with nogil:
        for k in range(nclus):
            nk = ptr[k + 1] - ptr[k]
            B = &stats[k * q * m]
            Sg = &sel[k * q * m]
            Bc = &stats[coff + q * ptr[k]]
            Sc = &sel[coff + q * ptr[k]]
            zk = &zr[k * q]
            if want_trace:               # own block: trace += Sigma_kk Lambda' B_kk
                for b in range(q):
                    for c in range(q):
                        s = 0.0
                        for a in range(b, q):
                            s += lam_l[a * q + b] * B[c * m + a]
                        tmp[b * q + c] = s
                for a in range(q):
                    for c in range(q):
                        s = 0.0
                        for b in range(q):
                            s += Sg[a * m + b] * tmp[b * q + c]
                        trace[lam_off[0] + a * q + c] += s
            for a in range(q):           # Z_k'r: y, X and own
                s = B[a * m + m - 1]
                for x in range(p):
                    s -= B[a * m + q + x] * tail_sol[qd + x]
                zk[a] += s
            subtract_lam_u(B, m, q, q, lam_l, &u[k * q], zk)
            pos = 0
            while pos < nk:              # the crossed groups the cluster touches
                c = cols[ptr[k] + pos]
                jj = level_of(c, ndense, &dense_q[0], &dense_groups[0], &start)
                qc = dense_q[jj]
                if want_trace:
                    trace_pair(Sc + pos, nk, Bc + pos, nk, &lam[lam_off[1 + jj]], q, qc,
                               &trace[lam_off[0]], lam_l, &trace[lam_off[1 + jj]], tmp)
                subtract_lam_u(Bc + pos, nk, q, qc, &lam[lam_off[1 + jj]], &tail_sol[c], zk)
                subtract_lam_u_t(Bc + pos, nk, q, qc, lam_l, &u[k * q], &zr_dense[c])
                pos += qc
            if reml and want_trace:      # X: trace += Sigma_k,X B_k,X'
                for a in range(q):
                    for c in range(q):
                        s = 0.0
                        for x in range(p):
                            s += Sg[a * m + q + x] * B[c * m + q + x]
                        trace[lam_off[0] + a * q + c] += s
    return None
