# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled gradient of the profiled deviance, for any nested chain and crossed block.

The layout is the one of ``_core`` (see its docstring). Write the penalized system of
``(u, beta)`` as ``M = Lt' W'W Lt + diag(I, 0)`` with ``W = [Z X]`` and
``Lt = diag(Lambda, I)``; ``_core.factorize`` leaves its upper Cholesky factor ``U``
(``M = U'U``) in ``work`` (block row of cluster ``k``: ``U_kk = L_k'`` in the lower
triangle of the first ``q`` columns, ``U_k,S = L_k^{-1} M_k,S`` to the right) and in
``G`` (the tail ``T = [D X]``). With ``Sigma`` the inverse of the leading part of
``M`` (``A = Lambda'Z'Z Lambda + I`` for ML: tail ``D``; all of ``M`` for REML: tail
``[D X]``), and ``E = dLambda/dtheta`` on the diagonal blocks of one level,

    d log det = 2 sum_k tr([Sigma Lt' W' Z]_kk E),     d prss = -2 sum_k (Z_k'r)' E u_k

(the second by the envelope theorem: ``prss`` is minimal in ``u`` and ``beta``).

``selected_inverse`` computes ``Sigma`` only where ``U`` is not zero (every cluster with
itself, its ancestors and the tail) by the recurrence of Takahashi et al. (1973), from
the outermost level inwards:

    Sigma_k,S = -L_k^{-T} U_k,S Sigma_S,S,   Sigma_kk = L_k^{-T} (I + U_k,S Y_k') L_k^{-1}

with ``S`` the ancestors and the tail and ``Y_k = U_k,S Sigma_S,S``. ``gradient_sums``
then adds the per-level traces and the ``Z'r`` products; the tail's own rows are
dense and summed in NumPy (``hlmext.models.gradient``).
"""
from scipy.linalg.cython_blas cimport dgemm
from scipy.linalg.cython_lapack cimport dpotri
import numpy as np
from hlmext._kernels import boundary as _bd
from hlmext._kernels.boundary_checks cimport tree_ok, blocks_ok

from hlmext._kernels.helpers cimport index_t, lower_t_solve
from hlmext._kernels.pairs cimport trace_pair, subtract_lam_u, subtract_lam_u_t


cdef bint offsets_within(const index_t[::1] off, index_t hi) noexcept:
    """Every entry of ``off`` in ``[0, hi)`` (a check of every evaluation: no NumPy call)."""
    cdef index_t i
    for i in range(off.shape[0]):
        if off[i] < 0 or off[i] >= hi:
            return False
    return True


cdef inline void add_product(const double* R, index_t ldr, const double* S, index_t lds, bint s_transposed,
                             double* Y, index_t ldy, index_t q, index_t nk, index_t nc) noexcept nogil:
    """Y[:q, :nc] += R[:q, :nk] S[:nk, :nc] (or S' when ``s_transposed``: S stored nc x nk)."""
    cdef index_t a, b, c
    cdef double w
    for a in range(q):
        for b in range(nk):
            w = R[a * ldr + b]
            if w == 0.0:
                continue
            if s_transposed:
                for c in range(nc):
                    Y[a * ldy + c] += w * S[c * lds + b]
            else:
                for c in range(nc):
                    Y[a * ldy + c] += w * S[b * lds + c]


def scratch_size(const index_t[::1] zoff, const index_t[::1] level_first, index_t t):
    """Length of ``selected_inverse``'s scratch: the products of one run of clusters
    (at most about 2^16 doubles, or one cluster's if that is more)."""
    if not tree_ok(zoff, level_first, None):
        _bd.tree("scratch_size", zoff, level_first, None)
        _bd.invalid("scratch_size", "zoff and level_first")
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t l, row_len, size = 1
    for l in range(nlev):
        row_len = (zoff[l + 1] - zoff[l]) * (zoff[nlev] - zoff[l + 1] + t)
        size = max(size, min(level_first[l + 1] - level_first[l], _chunk(row_len)) * row_len)
    return size


def selected_inverse(const double[::1] work, const double[::1] sigma_tail, index_t t, index_t ldt,
                     const index_t[::1] zoff, index_t m, index_t qd, const index_t[::1] level_first,
                     const index_t[::1] stat_off, const index_t[::1] parent, double[::1] sel,
                     double[::1] scratch=None):
    """``Sigma`` on the nonzero pattern of the factor, in ``work``'s layout, into ``sel``.

    ``sigma_tail`` is the dense ``t x t`` inverse of the tail, row-major with leading
    dimension ``ldt`` (its entry (i, j) at ``i * ldt + j``). In cluster k's block of
    ``sel`` (level l, ``na`` ancestor columns): columns ``[0, q)`` hold ``Sigma_kk``,
    ``[q, q + na)`` ``Sigma_k,ancestors``, ``[q + na, q + na + t)`` ``Sigma_k,T``; the
    rest is left untouched. ``sel`` may be ``work`` itself: each block of the factor is
    read before it is overwritten by the inverse (the factor is then lost). ``scratch``
    (optional, reused between calls) holds the products of a run of clusters,
    ``scratch_size(zoff, level_first, t)`` long.
    """
    if not tree_ok(zoff, level_first, parent):
        _bd.tree("selected_inverse", zoff, level_first, parent)
        _bd.invalid("selected_inverse", "zoff, level_first and parent")
    if not blocks_ok(stat_off, level_first, zoff, m, qd, 1, min(work.shape[0], sel.shape[0])):
        _bd.blocks("selected_inverse", "stat_off", stat_off, level_first, _bd.chain_widths(zoff, m, qd),
                   min(work.shape[0], sel.shape[0]), "work or sel")
        _bd.invalid("selected_inverse", "stat_off")
    if t < 0 or t > qd + m or (t and (ldt < t or sigma_tail.shape[0] < (t - 1) * ldt + t)):
        raise ValueError("selected_inverse: sigma_tail must hold a t x t block with row stride ldt")
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t Q = zoff[nlev]
    cdef index_t l, k, q, D, na, s, a, c, nrow, first, last, chunk
    cdef const double* R
    cdef int dm, dn, dk, lda, ldb, ldc
    cdef char no = b'N'
    cdef double one = 1.0, zero = 0.0
    import numpy as np
    if nlev > 64:
        raise ValueError("at most 64 levels are supported")
    if t and (ldt < t or sigma_tail.shape[0] < (t - 1) * ldt + t):
        raise ValueError("sigma_tail must hold a t x t matrix with leading dimension ldt")
    ymax = scratch_size(zoff, level_first, t)
    # the level's products U_k,S Sigma_S,S; every entry is written before it is read
    ybuf = scratch if scratch is not None and scratch.shape[0] >= ymax else np.empty(ymax)
    # P of one cluster, then a copy of its L_k (the block may be overwritten in place)
    pbuf = np.zeros(max(64, 2 * max([zoff[l + 1] - zoff[l] for l in range(nlev)] + [1]) ** 2))
    cdef double[::1] yv = ybuf
    cdef double[::1] pv = pbuf
    with nogil:
        for l in range(nlev - 1, -1, -1):
            q = zoff[l + 1] - zoff[l]
            D = m - zoff[l] + qd
            na = Q - zoff[l + 1]
            s = na + t
            chunk = _chunk(q * s)
            first = level_first[l]
            while first < level_first[l + 1]:
                last = min(first + chunk, level_first[l + 1])
                nrow = (last - first) * q
                # Y[:, na:] = U_T Sigma_TT for a run of the level's clusters at once
                R = &work[stat_off[first] + q + na]
                if t > 32:
                    dm = <int> t
                    dn = <int> nrow
                    dk = <int> t
                    lda = <int> ldt
                    ldb = <int> D
                    ldc = <int> s
                    dgemm(&no, &no, &dm, &dn, &dk, &one, <double*> &sigma_tail[0], &lda, <double*> R, &ldb,
                          &zero, &yv[na], &ldc)
                else:
                    for a in range(nrow * s):
                        yv[a] = 0.0
                    add_product(R, D, &sigma_tail[0], ldt, False, &yv[na], s, nrow, t, t)
                if na:
                    for a in range(nrow):
                        for c in range(na):
                            yv[a * s + c] = 0.0
                for k in range(first, last):
                    _selected_block(k, first, l, q, D, na, s, t, Q, m, qd, work, zoff, stat_off, parent,
                                    sel, yv, pv)
                first = last
    return None


cdef inline index_t _chunk(index_t row_len) noexcept nogil:
    """Clusters per product of ``selected_inverse``: their rows of Y fill about 2^16 doubles."""
    return max(1, (1 << 16) // max(row_len, 1))


cdef void _selected_block(index_t k, index_t first, index_t l, index_t q, index_t D, index_t na, index_t s,
                          index_t t, index_t Q, index_t m, index_t qd, const double[::1] work,
                          const index_t[::1] zoff, const index_t[::1] stat_off, const index_t[::1] parent,
                          double[::1] sel, double[::1] yv, double[::1] pv) noexcept nogil:
    """Cluster k's block of the selected inverse, given its rows of ``U_T Sigma_TT`` in ``yv``
    (the run of clusters starting at ``first``)."""
    cdef index_t a, c, j, b_lev, off_b, off_a, qb, qa, x, row0, Da, anc_b
    cdef const double* R
    cdef double* Y
    cdef double* Sk
    cdef double* P
    cdef double* Lk
    cdef const double* Sb
    cdef index_t anc[64]
    cdef index_t anc_lev[64]
    cdef index_t anc_off[64]
    R = &work[stat_off[k]]
    row0 = (k - first) * q
    Y = &yv[row0 * s]
    if s == 0 and q > 32:
        # a large block with no ancestors and no tail (the crossed block of a generalized
        # model): Sigma_kk = (L_k L_k')^{-1} by LAPACK, in place of the factor's triangle
        _large_own_inverse(R, &sel[stat_off[k]], q, D)
        return
    # the chain of ancestors: cluster, level, first column in k's block
    j = 0
    anc_b = parent[k]
    off_b = q
    b_lev = l + 1
    while anc_b >= 0:
        anc[j] = anc_b
        anc_lev[j] = b_lev
        anc_off[j] = off_b
        off_b += zoff[b_lev + 1] - zoff[b_lev]
        anc_b = parent[anc_b]
        b_lev += 1
        j += 1
    for x in range(j):               # column block of S: ancestor anc[x]
        qa = zoff[anc_lev[x] + 1] - zoff[anc_lev[x]]
        off_a = anc_off[x] - q
        Sb = &sel[stat_off[anc[x]]]
        # U_k,T Sigma_T,a  (Sigma_T,a = Sigma_a,T')
        Da = m - zoff[anc_lev[x]] + qd
        add_product(R + q + na, D, Sb + qa + (Q - zoff[anc_lev[x] + 1]), Da, True,
                    Y + off_a, s, q, t, qa)
        for c in range(j):           # U_k,b Sigma_b,a over ancestors b
            qb = zoff[anc_lev[c] + 1] - zoff[anc_lev[c]]
            if c == x:
                add_product(R + anc_off[c], D, Sb, Da, False, Y + off_a, s, q, qb, qa)
            elif c < x:              # a is an ancestor of b: Sigma_b,a in b's block
                add_product(R + anc_off[c], D, &sel[stat_off[anc[c]]] + (anc_off[x] - anc_off[c]),
                            m - zoff[anc_lev[c]] + qd, False, Y + off_a, s, q, qb, qa)
            else:                    # b is an ancestor of a: Sigma_a,b' from a's block
                add_product(R + anc_off[c], D, Sb + (anc_off[c] - anc_off[x]), Da, True,
                            Y + off_a, s, q, qb, qa)
        # U_k,a Sigma_a,T
        add_product(R + anc_off[x], D, Sb + qa + (Q - zoff[anc_lev[x] + 1]), Da, False,
                    Y + na, s, q, qa, t)
    # Sigma_k,S = -L_k^{-T} Y ;  Sigma_kk = L_k^{-T} (I + U_k,S Y') L_k^{-1}
    # (U_k,S is read before Sk is written, and L_k is copied: Sk may be R itself)
    Sk = &sel[stat_off[k]]
    P = &pv[0]
    Lk = &pv[q * q]
    for a in range(q):
        for c in range(q):
            P[a * q + c] = 1.0 if a == c else 0.0
            Lk[a * q + c] = R[a * D + c]
    add_product(R + q, D, Y, s, True, P, q, q, s, q)
    for a in range(q):
        for c in range(s):
            Sk[a * D + q + c] = -Y[a * s + c]
    lower_t_solve(Lk, q, q, Sk + q, s, D)
    lower_t_solve(Lk, q, q, P, q, q)          # P <- L^{-T} P
    for a in range(q):                        # Sigma_kk <- (L^{-T} P)'
        for c in range(q):
            Sk[a * D + c] = P[c * q + a]
    lower_t_solve(Lk, q, q, Sk, q, D)         # Sigma_kk <- L^{-T} (L^{-T} P)'


cdef void _large_own_inverse(const double* R, double* Sk, index_t q, index_t D) noexcept nogil:
    """Sk[:q, :q] = (L L')^{-1} for the lower triangular L = R[:q, :q] (leading dimension D)."""
    cdef index_t a, c
    cdef int n = <int> q, lda = <int> D, info = 0
    cdef char uplo = b'U'                 # row-major lower == column-major upper
    if Sk != R:
        for a in range(q):
            for c in range(a + 1):
                Sk[a * D + c] = R[a * D + c]
    dpotri(&uplo, &n, Sk, &lda, &info)
    for a in range(q):
        for c in range(a + 1, q):
            Sk[a * D + c] = Sk[c * D + a]


def gradient_sums(const double[::1] stats, const double[::1] sel, const double[::1] lam,
                  const index_t[::1] lam_off, index_t t, const index_t[::1] zoff, index_t m, index_t qd,
                  const index_t[::1] level_first, const index_t[::1] stat_off, const index_t[::1] parent,
                  const index_t[::1] dense_q, const index_t[::1] dense_groups,
                  const double[::1] u, const index_t[::1] u_off, const double[::1] tail_sol,
                  double[::1] trace, double[::1] zr, double[::1] zr_dense, bint want_trace=True):
    """Per-level sums of the gradient from the clusters' rows (the tail's rows are added outside).

    ``trace`` (laid out as ``lam``: every level's q x q, chain levels then crossed levels)
    receives ``sum_k [Sigma Lt'W'Z]_kk`` over the pairs (cluster, own/ancestor/crossed/X
    column block); ``zr`` (as ``u``) receives ``Z_k'r`` of every chain cluster and
    ``zr_dense`` the clusters' part of ``Z_D'r``. ``tail_sol`` is ``[u_D; beta]``.
    ``trace``, ``zr`` and ``zr_dense`` must be zero on entry. The ``X`` block enters the
    traces only when ``t > qd`` (REML). Without ``want_trace`` only ``zr`` and ``zr_dense``
    are formed and ``sel`` is not read.
    """
    if not tree_ok(zoff, level_first, parent):
        _bd.tree("gradient_sums", zoff, level_first, parent)
        _bd.invalid("gradient_sums", "zoff, level_first and parent")
    if not blocks_ok(stat_off, level_first, zoff, m, qd, 1, min(stats.shape[0], sel.shape[0])):
        _bd.blocks("gradient_sums", "stat_off", stat_off, level_first, _bd.chain_widths(zoff, m, qd),
                   min(stats.shape[0], sel.shape[0]), "stats or sel")
        _bd.invalid("gradient_sums", "stat_off")
    if not blocks_ok(u_off, level_first, zoff, m, 0, 0, min(u.shape[0], zr.shape[0])):
        _bd.blocks("gradient_sums", "u_off", u_off, level_first, np.diff(zoff), min(u.shape[0], zr.shape[0]),
                   "u or zr")
        _bd.invalid("gradient_sums", "u_off")
    if not offsets_within(lam_off, max(lam.shape[0], 1)) or (lam_off.shape[0] and lam.shape[0] > trace.shape[0]):
        raise ValueError("gradient_sums: lam_off must index into lam, and trace be as long as lam")
    cdef index_t nlev = zoff.shape[0] - 1
    cdef index_t ndense = dense_q.shape[0]
    cdef index_t Q = zoff[nlev]
    cdef index_t p = m - Q - 1
    cdef index_t l, k, q, D, na, a, b, c, j, anc_k, off, qa, lev, d, g, cg, qc, x
    cdef const double* B
    cdef const double* Sg
    cdef const double* lam_l
    cdef double* zk
    cdef double s
    cdef double tmp[256]
    cdef bint reml = t > qd
    cdef bint nonzero
    cdef double lc, bkg
    for l in range(nlev):
        if zoff[l + 1] - zoff[l] > 16:
            raise ValueError("the analytic gradient supports up to 16 random effects per level")
    for d in range(ndense):
        if dense_q[d] > 16:
            raise ValueError("the analytic gradient supports up to 16 random effects per level")
    with nogil:
        for l in range(nlev):
            q = zoff[l + 1] - zoff[l]
            D = m - zoff[l] + qd
            na = Q - zoff[l + 1]
            lam_l = &lam[lam_off[l]]
            for k in range(level_first[l], level_first[l + 1]):
                B = &stats[stat_off[k]]
                Sg = &sel[stat_off[k]]
                zk = &zr[u_off[k]]
                # own block: the pair (k, k) counts once: trace += Sigma_kk Lambda' B_kk
                for b in range(q if want_trace else 0):
                    for c in range(q):
                        s = 0.0
                        for a in range(b, q):
                            s += lam_l[a * q + b] * B[c * D + a]
                        tmp[b * q + c] = s
                for a in range(q if want_trace else 0):
                    for c in range(q):
                        s = 0.0
                        for b in range(q):
                            s += Sg[a * D + b] * tmp[b * q + c]
                        trace[lam_off[l] + a * q + c] += s
                # Z_k'r: own, then y and X
                for a in range(q):
                    s = B[a * D + D - 1]
                    for x in range(p):
                        s -= B[a * D + q + na + qd + x] * tail_sol[qd + x]
                    zk[a] += s
                subtract_lam_u(B, D, q, q, lam_l, &u[u_off[k]], zk)
                # ancestors
                anc_k = parent[k]
                off = q
                lev = l + 1
                while anc_k >= 0:
                    qa = zoff[lev + 1] - zoff[lev]
                    if want_trace:
                        trace_pair(Sg + off, D, B + off, D, &lam[lam_off[lev]], q, qa,
                                   &trace[lam_off[l]], lam_l, &trace[lam_off[lev]], tmp)
                    subtract_lam_u(B + off, D, q, qa, &lam[lam_off[lev]], &u[u_off[anc_k]], zk)
                    subtract_lam_u_t(B + off, D, q, qa, lam_l, &u[u_off[k]], &zr[u_off[anc_k]])
                    off += qa
                    anc_k = parent[anc_k]
                    lev += 1
                # crossed groups
                cg = 0
                for d in range(ndense):
                    qc = dense_q[d]
                    if q == 1 and qc == 1:       # intercepts on both sides: scalars
                        lc = lam[lam_off[nlev + d]]
                        for g in range(dense_groups[d]):
                            bkg = B[off + cg + g]
                            if bkg == 0.0:
                                continue
                            if want_trace:
                                s = Sg[off + cg + g] * bkg
                                trace[lam_off[l]] += s * lc
                                trace[lam_off[nlev + d]] += s * lam_l[0]
                            zk[0] -= bkg * lc * tail_sol[cg + g]
                            zr_dense[cg + g] -= bkg * lam_l[0] * u[u_off[k]]
                        cg += dense_groups[d]
                        continue
                    for g in range(dense_groups[d]):
                        nonzero = False
                        for a in range(q):
                            for c in range(qc):
                                if B[a * D + off + cg + c] != 0.0:
                                    nonzero = True
                        if not nonzero:
                            cg += qc
                            continue
                        if want_trace:
                            trace_pair(Sg + off + cg, D, B + off + cg, D, &lam[lam_off[nlev + d]], q, qc,
                                       &trace[lam_off[l]], lam_l, &trace[lam_off[nlev + d]], tmp)
                        subtract_lam_u(B + off + cg, D, q, qc, &lam[lam_off[nlev + d]], &tail_sol[cg], zk)
                        subtract_lam_u_t(B + off + cg, D, q, qc, lam_l, &u[u_off[k]], &zr_dense[cg])
                        cg += qc
                # X (REML): trace += Sigma_k,X B_k,X'
                if reml and want_trace:
                    for a in range(q):
                        for c in range(q):
                            s = 0.0
                            for x in range(p):
                                s += Sg[a * D + off + qd + x] * B[c * D + off + qd + x]
                            trace[lam_off[l] + a * q + c] += s
    return None


def dense_traces(const double[::1] sigma, index_t lds, index_t t, const double[::1] G0, index_t ldg,
                 const double[::1] lam, const index_t[::1] lam_off, index_t nlev,
                 const index_t[::1] dense_q, const index_t[::1] dense_groups, double[::1] trace):
    """The crossed groups' own rows of the traces: ``trace_j += sum_g [Sigma_T,g' H_T,g]`` per
    crossed level ``j``, with ``H = diag(Lambda_D, I)' G0[:t, D]``.

    ``sigma`` is the ``t x t`` tail inverse (leading dimension ``lds``), ``G0`` the unscaled
    symmetric global block (leading dimension ``ldg``), ``lam``/``lam_off`` as in
    ``gradient_sums`` (crossed level ``j`` at ``lam_off[nlev + j]``); ``trace`` is laid out
    as ``lam``. Per row of ``Sigma``, its product with ``diag(Lambda_D, I)`` is formed in a
    ``t``-vector; nothing of size ``t x qd`` is made.
    """
    import numpy as np
    cdef index_t ndense = dense_q.shape[0]
    cdef index_t j, jj, g, h, a, b, c, c2, q, q2, doff, off2, r
    cdef double s
    cdef const double* row
    cdef const double* lam2
    cdef const double* grow
    wbuf = np.empty(max(t, 1))
    cdef double[::1] w = wbuf
    cdef index_t qd = 0
    for j in range(ndense):
        qd += dense_q[j] * dense_groups[j]
    if t < qd or lds < t or sigma.shape[0] < (t - 1) * lds + t or G0.shape[0] < (t - 1) * ldg + t:
        raise ValueError("sigma and G0 must hold t x t blocks (t >= qd) with their leading dimensions")
    if lam_off.shape[0] < nlev + ndense:
        raise ValueError("lam_off must give every chain and crossed level")
    for j in range(ndense):
        if lam_off[nlev + j] < 0 or lam_off[nlev + j] + dense_q[j] ** 2 > min(lam.shape[0], trace.shape[0]):
            raise ValueError("lam and trace must hold every crossed level's q x q block")
    with nogil:
        doff = 0
        for j in range(ndense):
            q = dense_q[j]
            for g in range(dense_groups[j]):
                for a in range(q):
                    row = &sigma[(doff + g * q + a) * lds]
                    # w = diag(Lambda_D, I) row'
                    off2 = 0
                    for jj in range(ndense):
                        q2 = dense_q[jj]
                        lam2 = &lam[lam_off[nlev + jj]]
                        for h in range(dense_groups[jj]):
                            for c2 in range(q2):
                                s = 0.0
                                for c in range(q2):
                                    s += lam2[c2 * q2 + c] * row[off2 + h * q2 + c]
                                w[off2 + h * q2 + c2] = s
                        off2 += q2 * dense_groups[jj]
                    for r in range(qd, t):
                        w[r] = row[r]
                    for b in range(q):
                        grow = &G0[(doff + g * q + b) * ldg]
                        s = 0.0
                        for r in range(t):
                            s += w[r] * grow[r]
                        trace[lam_off[nlev + j] + a * q + b] += s
            doff += q * dense_groups[j]
    return None
