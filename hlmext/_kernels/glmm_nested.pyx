# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled Laplace kernel of generalized linear mixed models with nested levels (a crossed
block joins as one outermost cluster). The one-level kernels, and the notation, are in
``_glmm.pyx``.

With L nested levels (0 innermost), row i lies in one cluster k_l(i) per level and
eta_i = eta0_i + sum_l zl_il' u_{k_l(i)}. H = Lambda'Z'WZ Lambda + I has the sparsity of
the linear model's system, so it is factored as in ``_core.factorize``: the block row of
cluster k at level l is q_l x D_l (D_l = Q - zoff[l] + 1 columns: its own effects, those
of its ancestors, and one right-hand side), stored row-major at S[blk_off[k]:]. The
innermost clusters are eliminated first, each downdating its ancestors' block rows. After
the elimination a block row holds L_k (lower triangle of its first q_l columns) and
M_k = L_k^{-1} H_{k, ancestors} to the right.

Crossed factors are one more, outermost cluster holding every group of every crossed
factor (the dense block of the linear model). A row then costs only its own columns: the
chain's, and its groups' columns of that block (``top``), and ``Z`` and ``zl`` store just
those values. The block is factored by LAPACK, a cluster's downdate touches only the
columns it meets, and the gradient reads H^{-1} on the factor's pattern (the selected
inverse of ``_gradient``, whose block rows have this layout) instead of solving with the
factor for every row.
"""
from libc.math cimport log, fabs, INFINITY, isfinite

import numpy as np

from scipy.linalg.cython_lapack cimport dpotrf, dpotri

from hlmext._kernels.helpers cimport (MAXQ, index_t, Family, as_family, row_loglik, chol_ld, lower_ld, upper_ld,
                                     lower_t_solve)
from hlmext._kernels import boundary as _bd
from hlmext._kernels.boundary_checks cimport tree_ok, blocks_ok


cdef struct Tree:
    # the nested layout, all arrays owned by the caller
    index_t n, Q, nlev
    const index_t* zoff
    const index_t* level_first
    const index_t* parent
    const index_t* u_off
    const index_t* blk_off
    const index_t* cl          # (n, nlev) global cluster of every row at every level
    const double* pen          # NULL, or the prior precision of every mode (sampling weights)
    index_t ntop               # 0, or the crossed block's columns of every row (its last level)
    index_t* nz                # scratch of Q + 1 indices (the nonzero columns of one block row)
    index_t W                  # values stored per row in Z and zl: Q, or the chain's and ntop
    const index_t* top         # (n, ntop): those columns, within the crossed block
    const index_t* pptr        # NULL, or the chain clusters' pattern of the crossed block (one chain
    const index_t* pcols       # level): cluster k meets its columns pcols[pptr[k]:pptr[k + 1]]


cdef inline index_t n_cols(const Tree* T, index_t i, index_t l) noexcept nogil:
    """How many of level l's columns row i can have nonzero: all of a chain level's, or the
    row's own columns of the crossed block."""
    if T.ntop and l == T.nlev - 1:
        return T.ntop
    return T.zoff[l + 1] - T.zoff[l]


cdef inline index_t col(const Tree* T, index_t i, index_t l, index_t j) noexcept nogil:
    """The j-th of those columns (within the level)."""
    if T.ntop and l == T.nlev - 1:
        return T.top[i * T.ntop + j]
    return j


cdef inline index_t pos(const Tree* T, index_t i, index_t l, index_t j) noexcept nogil:
    """Where row i's value of that column is stored in its row of Z and zl (``W`` values):
    the chain's columns at their own places, then the row's crossed columns in order."""
    return T.zoff[l] + j


cdef double nested_assemble(Family family, const Tree* T, const double* y, const double* ntr,
                            const double* eta0, const double* zl, const double* u, double* S,
                            double* eta, double* mu, double* w, double* dw) noexcept nogil:
    """h(u), and every block row of H with the gradient of h as right-hand side."""
    cdef index_t i, l, a, c, k, q, D, k0, j, j2, qc
    cdef double h = 0.0, et, r, za, pa
    cdef double* B
    for l in range(T.nlev):
        q = T.zoff[l + 1] - T.zoff[l]
        D = T.Q - T.zoff[l] + 1
        for k in range(T.level_first[l], T.level_first[l + 1]):
            B = &S[T.blk_off[k]]
            for a in range(q * D):
                B[a] = 0.0
            for a in range(q):
                pa = T.pen[T.u_off[k] + a] if T.pen != NULL else 1.0
                B[a * D + a] = pa
                B[a * D + D - 1] = -pa * u[T.u_off[k] + a]
                h -= 0.5 * pa * u[T.u_off[k] + a] * u[T.u_off[k] + a]
    qc = T.zoff[T.nlev - 1] if T.ntop else T.Q       # first column of the crossed block
    for i in range(T.n):
        et = eta0[i]
        for l in range(T.nlev):
            k = T.cl[i * T.nlev + l]
            for j in range(n_cols(T, i, l)):
                a = col(T, i, l, j)
                et += zl[i * T.W + pos(T, i, l, j)] * u[T.u_off[k] + a]
        h += row_loglik(family, y[i], ntr[i], et, &mu[i], &w[i], &dw[i])
        eta[i] = et
        r = y[i] - mu[i]
        for l in range(T.nlev):
            k = T.cl[i * T.nlev + l]
            D = T.Q - T.zoff[l] + 1
            B = &S[T.blk_off[k]]
            k0 = i * T.W
            for j in range(n_cols(T, i, l)):
                a = col(T, i, l, j)
                za = zl[k0 + pos(T, i, l, j)]
                if za == 0.0:
                    continue
                for c in range(qc - T.zoff[l]):           # the chain's columns of the block row
                    B[a * D + c] += w[i] * za * zl[k0 + T.zoff[l] + c]
                for j2 in range(T.ntop):                  # the row's columns of the crossed block
                    c = qc - T.zoff[l] + T.top[i * T.ntop + j2]
                    B[a * D + c] += w[i] * za * zl[k0 + qc + j2]
                B[a * D + D - 1] += r * za
    return h


cdef double shift_diagonal(const Tree* T, double* S, double c) noexcept nogil:
    """Add c to the diagonal of every cluster's block of H (a damped Newton step); returns the
    largest |diagonal| before."""
    cdef index_t l, k, a, q, D
    cdef double top = 0.0
    for l in range(T.nlev):
        q = T.zoff[l + 1] - T.zoff[l]
        D = T.Q - T.zoff[l] + 1
        for k in range(T.level_first[l], T.level_first[l + 1]):
            for a in range(q):
                if fabs(S[T.blk_off[k] + a * D + a]) > top:
                    top = fabs(S[T.blk_off[k] + a * D + a])
                S[T.blk_off[k] + a * D + a] += c
    return top


cdef int nested_factor(const Tree* T, double* S, double* logdet) noexcept nogil:
    """Eliminate the clusters innermost first (block Cholesky); 0 or -(k+1) on failure.

    With ``T.pen`` (sampling weights: cluster k's modes have prior precision a_k, its
    block row is a_k times its relative one) ``logdet`` is sum_k a_k log det(H_kk / a_k),
    each cluster's relative log-determinant counted a_k times (``hlmext.design.sampling_weights``).
    """
    cdef index_t l, k, q, D, anc, c0, j, qa, Da, r, c, t, a, x, y, nnz, first, after
    cdef bint nonzero
    cdef double* B
    cdef double* A
    cdef double wv
    cdef int nq, ld, info = 0
    cdef char uplo = b'U'
    logdet[0] = 0.0
    for l in range(T.nlev):
        q = T.zoff[l + 1] - T.zoff[l]
        D = T.Q - T.zoff[l] + 1
        for k in range(T.level_first[l], T.level_first[l + 1]):
            B = &S[T.blk_off[k]]
            if q > 32:                     # the crossed block: LAPACK (row-major lower == column-major upper)
                nq = <int> q
                ld = <int> D
                dpotrf(&uplo, &nq, B, &ld, &info)
                if info != 0:
                    return -(k + 1)
            elif chol_ld(B, q, D) != 0:
                return -(k + 1)
            for a in range(q):
                if T.pen != NULL:
                    wv = T.pen[T.u_off[k] + a]
                    logdet[0] += wv * (2.0 * log(B[a * D + a]) - log(wv))
                else:
                    logdet[0] += 2.0 * log(B[a * D + a])
            # B[:, q:] <- L^{-1} B[:, q:] on the columns where k's rows are not zero (a cluster
            # meets few groups of the crossed block): the pattern computed once from the data, or
            # else noted here; the downdates use only those
            if T.pptr != NULL and l == 0:
                nnz = 0
                for x in range(T.pptr[k], T.pptr[k + 1]):
                    T.nz[nnz] = q + T.pcols[x]
                    nnz += 1
                T.nz[nnz] = D - 1               # the right-hand side
                nnz += 1
                for x in range(nnz):
                    c = T.nz[x]
                    for r in range(q):
                        wv = B[r * D + c]
                        for t in range(r):
                            wv -= B[r * D + t] * B[t * D + c]
                        B[r * D + c] = wv / B[r * D + r] if wv != 0.0 else 0.0
            else:
                nnz = 0
                for c in range(q, D):
                    nonzero = False
                    for r in range(q):
                        wv = B[r * D + c]
                        for t in range(r):
                            wv -= B[r * D + t] * B[t * D + c]
                        if wv != 0.0:
                            B[r * D + c] = wv / B[r * D + r]
                            nonzero = True
                        else:
                            B[r * D + c] = 0.0
                    if nonzero:
                        T.nz[nnz] = c
                        nnz += 1
            anc = T.parent[k]
            c0 = q
            j = l + 1
            first = 0                      # the first noted column at or after c0
            while anc >= 0:
                qa = T.zoff[j + 1] - T.zoff[j]
                Da = T.Q - T.zoff[j] + 1
                A = &S[T.blk_off[anc]]
                while first < nnz and T.nz[first] < c0:
                    first += 1
                after = first                  # the first noted column past the ancestor's own block
                while after < nnz and T.nz[after] < c0 + qa:
                    after += 1
                # A -= B_k,anc' B_k,anc on the noted columns: the lower triangle of the ancestor's
                # own block (all its factorization reads) and the columns right of it
                for x in range(first, after):
                    r = T.nz[x] - c0
                    for t in range(q):
                        wv = B[t * D + c0 + r]
                        if wv == 0.0:
                            continue
                        for y in range(first, x + 1):
                            c = T.nz[y] - c0
                            A[r * Da + c] -= wv * B[t * D + c0 + c]
                        for y in range(after, nnz):
                            c = T.nz[y] - c0
                            A[r * Da + c] -= wv * B[t * D + c0 + c]
                c0 += qa
                anc = T.parent[anc]
                j += 1
    return 0


cdef void nested_back(const Tree* T, const double* S, double* x) noexcept nogil:
    """x <- the solution from the eliminated right-hand side column, outermost first."""
    cdef index_t l, k, q, D, a, anc, c0, j, qa, t
    cdef double s
    cdef const double* B
    for l in range(T.nlev - 1, -1, -1):
        q = T.zoff[l + 1] - T.zoff[l]
        D = T.Q - T.zoff[l] + 1
        for k in range(T.level_first[l], T.level_first[l + 1]):
            B = &S[T.blk_off[k]]
            for a in range(q):
                s = B[a * D + D - 1]
                anc = T.parent[k]
                c0 = q
                j = l + 1
                while anc >= 0:
                    qa = T.zoff[j + 1] - T.zoff[j]
                    for t in range(qa):
                        s -= B[a * D + c0 + t] * x[T.u_off[anc] + t]
                    c0 += qa
                    anc = T.parent[anc]
                    j += 1
                x[T.u_off[k] + a] = s
            upper_ld(B, q, D, &x[T.u_off[k]])


cdef void nested_solve(const Tree* T, const double* S, double* x) noexcept nogil:
    """x <- H^{-1} x with the factored block rows (forward innermost first, then back)."""
    cdef index_t l, k, q, D, a, anc, c0, j, qa, t
    cdef double s
    cdef const double* B
    for l in range(T.nlev):
        q = T.zoff[l + 1] - T.zoff[l]
        D = T.Q - T.zoff[l] + 1
        for k in range(T.level_first[l], T.level_first[l + 1]):
            B = &S[T.blk_off[k]]
            lower_ld(B, q, D, &x[T.u_off[k]])
            anc = T.parent[k]
            c0 = q
            j = l + 1
            while anc >= 0:
                qa = T.zoff[j + 1] - T.zoff[j]
                for a in range(qa):
                    s = 0.0
                    for t in range(q):
                        s += B[t * D + c0 + a] * x[T.u_off[k] + t]
                    x[T.u_off[anc] + a] -= s
                c0 += qa
                anc = T.parent[anc]
                j += 1
    for l in range(T.nlev - 1, -1, -1):
        q = T.zoff[l + 1] - T.zoff[l]
        D = T.Q - T.zoff[l] + 1
        for k in range(T.level_first[l], T.level_first[l + 1]):
            B = &S[T.blk_off[k]]
            for a in range(q):
                s = x[T.u_off[k] + a]
                anc = T.parent[k]
                c0 = q
                j = l + 1
                while anc >= 0:
                    qa = T.zoff[j + 1] - T.zoff[j]
                    for t in range(qa):
                        s -= B[a * D + c0 + t] * x[T.u_off[anc] + t]
                    c0 += qa
                    anc = T.parent[anc]
                    j += 1
                x[T.u_off[k] + a] = s
            upper_ld(B, q, D, &x[T.u_off[k]])


cdef void nested_grad(const Tree* T, const double* y, const double* Z, const double* zl,
                      const double* mu, const double* w, const double* dw, const double* u,
                      const double* S, const double* sel, const index_t* lam_off, double* r, double* e,
                      double* grad_lam, double* xr) noexcept nogil:
    """Laplace gradient pieces: per-row e_i and d log L / d Lambda_l (see the module notes).

    ``sel`` holds H^{-1} on the nonzero pattern of the factor (every cluster with itself and
    its ancestors, in the block-row layout of ``S``; ``_gradient.selected_inverse``). For
    every row, x = H^{-1} zeta_i restricted to the row's clusters is read from it (``xr``:
    scratch of Q values), s_i = zeta_i' x, and - sum_i w_i z_il x_il' is the term of each
    level. A row costs its nonzeros times the columns of its clusters, not a triangular
    solve through every block (the crossed block is one cluster of all crossed groups).
    """
    cdef index_t i, l, l2, a, b, k, k2, q, D, D2, ja, jb, n_u
    cdef double s, res, zt, x, z
    cdef const double* Sg
    n_u = T.u_off[T.level_first[T.nlev] - 1] + T.zoff[T.nlev] - T.zoff[T.nlev - 1]
    for a in range(n_u):
        r[a] = 0.0
    for i in range(T.n):
        s = 0.0
        for l in range(T.nlev):                      # x_l = sum_l2 Sigma_{k_l, k_l2} zeta_l2
            k = T.cl[i * T.nlev + l]
            D = T.Q - T.zoff[l] + 1
            for ja in range(n_cols(T, i, l)):
                a = col(T, i, l, ja)
                x = 0.0
                for l2 in range(T.nlev):
                    k2 = T.cl[i * T.nlev + l2]
                    if l2 >= l:                      # own block, or an ancestor's columns of k's row
                        Sg = &sel[T.blk_off[k] + a * D + T.zoff[l2] - T.zoff[l]]
                        for jb in range(n_cols(T, i, l2)):
                            b = col(T, i, l2, jb)
                            x += Sg[b] * zl[i * T.W + pos(T, i, l2, jb)]
                    else:                            # k is an ancestor of k2: k2's row, transposed
                        D2 = T.Q - T.zoff[l2] + 1
                        Sg = &sel[T.blk_off[k2] + T.zoff[l] - T.zoff[l2] + a]
                        for jb in range(n_cols(T, i, l2)):
                            b = col(T, i, l2, jb)
                            x += Sg[b * D2] * zl[i * T.W + pos(T, i, l2, jb)]
                xr[T.zoff[l] + a] = x
                s += zl[i * T.W + pos(T, i, l, ja)] * x
        e[i] = -0.5 * dw[i] * s                       # c_i for now
        for l in range(T.nlev):
            k = T.cl[i * T.nlev + l]
            q = T.zoff[l + 1] - T.zoff[l]
            for ja in range(n_cols(T, i, l)):
                a = col(T, i, l, ja)
                r[T.u_off[k] + a] += e[i] * zl[i * T.W + pos(T, i, l, ja)]
                z = Z[i * T.W + pos(T, i, l, ja)]
                if z == 0.0:
                    continue
                for jb in range(n_cols(T, i, l)):    # the crossed block: its diagonal blocks only
                    b = col(T, i, l, jb)
                    grad_lam[lam_off[l] + a * q + b] -= w[i] * z * xr[T.zoff[l] + b]
    nested_solve(T, S, r)                            # t = H^{-1} sum_i c_i zeta_i
    for i in range(T.n):
        res = y[i] - mu[i]
        zt = 0.0
        for l in range(T.nlev):
            k = T.cl[i * T.nlev + l]
            for ja in range(n_cols(T, i, l)):
                a = col(T, i, l, ja)
                zt += zl[i * T.W + pos(T, i, l, ja)] * r[T.u_off[k] + a]
        e[i] = res + e[i] - w[i] * zt
        for l in range(T.nlev):
            k = T.cl[i * T.nlev + l]
            q = T.zoff[l + 1] - T.zoff[l]
            for ja in range(n_cols(T, i, l)):
                a = col(T, i, l, ja)
                z = Z[i * T.W + pos(T, i, l, ja)]
                if z == 0.0:
                    continue
                for jb in range(n_cols(T, i, l)):
                    b = col(T, i, l, jb)
                    grad_lam[lam_off[l] + a * q + b] += z * (
                        e[i] * u[T.u_off[k] + b] + res * r[T.u_off[k] + b])


cdef int pattern_inverse(const Tree* T, const double* S, double* sel, double* Y, double* P) noexcept nogil:
    """H^{-1} on the pattern of the factor with one chain level and the crossed block (``T.pptr``)
    into ``sel`` (the layout of ``S``): the crossed block's Sigma_DD whole (LAPACK), and for
    every chain cluster Sigma_kk and Sigma_k,D on its pattern's columns only, by Takahashi's
    recurrence with M_k = L_k^{-1} H_k,D on those columns: Y = M_k Sigma_PP,
    Sigma_k,P = -L_k^{-T} Y, Sigma_kk = L_k^{-T} (I + M_k Y') L_k^{-1}. A cluster costs
    q n_k^2 instead of q qd^2. ``Y`` and ``P`` are scratch of q max(n_k) and 2 q^2 values.
    Returns LAPACK's info of the crossed block's inverse."""
    cdef index_t q = T.zoff[1], qd = T.Q - T.zoff[1], D = T.Q + 1, Dd = qd + 1
    cdef index_t k, a, b, c, x, nk
    cdef const double* B
    cdef double* Sd = &sel[T.blk_off[T.level_first[1]]]
    cdef double* Sk
    cdef const double* Sr
    cdef double* Lk = P + q * q
    cdef const double* Ld = &S[T.blk_off[T.level_first[1]]]
    cdef double v
    cdef int n = <int> qd, lda = <int> Dd, info = 0
    cdef char uplo = b'U'                 # row-major lower == column-major upper
    for a in range(qd):
        for c in range(a + 1):
            Sd[a * Dd + c] = Ld[a * Dd + c]
    dpotri(&uplo, &n, Sd, &lda, &info)
    if info != 0:
        return info
    for a in range(qd):
        for c in range(a + 1, qd):
            Sd[a * Dd + c] = Sd[c * Dd + a]
    for k in range(T.level_first[0], T.level_first[1]):
        B = &S[T.blk_off[k]]
        Sk = &sel[T.blk_off[k]]
        nk = T.pptr[k + 1] - T.pptr[k]
        for a in range(q * nk):
            Y[a] = 0.0
        for a in range(q):                # Y = M_P Sigma_PP
            for x in range(nk):
                v = B[a * D + q + T.pcols[T.pptr[k] + x]]
                if v == 0.0:
                    continue
                Sr = &Sd[T.pcols[T.pptr[k] + x] * Dd]
                for b in range(nk):
                    Y[a * nk + b] += v * Sr[T.pcols[T.pptr[k] + b]]
        for a in range(q):                # P = I + M_P Y' ; L_k copied
            for c in range(q):
                v = 1.0 if a == c else 0.0
                for x in range(nk):
                    v += B[a * D + q + T.pcols[T.pptr[k] + x]] * Y[c * nk + x]
                P[a * q + c] = v
                Lk[a * q + c] = B[a * D + c]
        for a in range(q * nk):
            Y[a] = -Y[a]
        lower_t_solve(Lk, q, q, Y, nk, nk)       # Sigma_k,P = -L^{-T} Y
        for a in range(q):
            for x in range(nk):
                Sk[a * D + q + T.pcols[T.pptr[k] + x]] = Y[a * nk + x]
        lower_t_solve(Lk, q, q, P, q, q)         # P <- L^{-T} P
        for a in range(q):                       # Sigma_kk <- (L^{-T} P)'
            for c in range(q):
                Sk[a * D + c] = P[c * q + a]
        lower_t_solve(Lk, q, q, Sk, q, D)        # Sigma_kk <- L^{-T} (L^{-T} P)'
    return 0


def nested_loglik(family_code, const double[:, ::1] Z, const double[::1] y, const double[::1] ntr,
                  const double[::1] eta0, const index_t[:, ::1] cl, const index_t[::1] zoff,
                  const index_t[::1] level_first, const index_t[::1] parent,
                  const index_t[::1] u_off, const index_t[::1] blk_off, const double[::1] lam,
                  const index_t[::1] lam_off, double[::1] u, double[::1] S, double[:, ::1] zl,
                  double[::1] eta, double[::1] mu, double[::1] w, double[::1] dw,
                  double[::1] step, double[::1] trial, double[::1] e, double[::1] grad_lam,
                  double[::1] chain_work, bint want_grad, double tol=1e-10, int maxit=200,
                  const double[::1] pen=None, double[::1] sel=None, double[::1] sel_scratch=None,
                  const index_t[:, ::1] top=None, const index_t[::1] pptr=None,
                  const index_t[::1] pcols=None):
    """Laplace log-likelihood (without the data constants) of a model with nested levels.

    Newton iterations with step halving on all modes jointly: each step assembles the
    block rows of H and the gradient of h (one pass over the rows), eliminates them level
    by level and back-substitutes. At the mode, log L ~ h(u) - 1/2 log det H.

    Parameters
    ----------
    Z : (n, W)
        Random-effects columns of every level (innermost first, at ``zoff``; see ``top``).
    cl : (n, L)
        Global cluster number of every row at every level.
    zoff, level_first, parent, u_off : as in ``design.MixedDesign``.
    blk_off : (n_clusters,)
        Offset of every cluster's block row in ``S`` (q_l x (Q - zoff[l] + 1)).
    lam : flat Lambda of every level at ``lam_off`` (row-major q_l x q_l).
    u : (n_u,)
        IN: starting modes; OUT: the modes.
    S, zl, eta, mu, w, dw, step, trial, e, grad_lam, chain_work
        Work arrays; on return S holds the factor at the mode and, if ``want_grad``,
        e (n,) and grad_lam (flat like ``lam``) the gradient pieces; ``step`` is used
        for sum_i c_i zeta_i and then t; ``chain_work`` has at least 2 Q values.
    top : (n, ntop), optional
        With crossed factors (the last level): every row's columns of that block (those of
        its groups, within the block), so that a row costs its own columns, not the
        block's. ``Z`` and ``zl`` then hold per row the chain's columns followed by the
        values of these ``ntop`` columns (``W = zoff[-2] + ntop`` values; without ``top``,
        all ``W = Q`` columns), and the block's ``Lambda`` must be block diagonal by group.
    pptr, pcols : optional
        With one chain level and ``top``: the pattern of every chain cluster's coupling to the
        crossed block, computed once from the data (``design.sparse_coupling.pattern``:
        cluster k meets the block's columns ``pcols[pptr[k]:pptr[k + 1]]``, ascending, every
        row's ``top`` among them: ``check_pattern``, which costs a pass over the rows, is for
        the caller to run once; here only the bounds are checked). The factor then reads only
        those columns of a cluster's block row, and the gradient's selected inverse fills only
        them (``pattern_inverse``).
    sel, sel_scratch : optional
        With ``want_grad``: room for H^{-1} on the factor's pattern (as long as ``S``) and
        the scratch of ``_gradient.selected_inverse``; made here when not given.

    Crossed factors enter as one more, outermost level with a single cluster whose q
    columns are every group of every crossed factor (the caller builds them).

    pen : (n_u,), optional
        Sampling weights: the prior precision of every mode, a_k for the modes of cluster
        k (the product of its and its ancestors' weights), with the rows weighted by the
        caller; h and H then carry a_k |u_k|^2 / 2 and a_k I, and the log-determinant
        counts each cluster's relative term a_k times. No analytic gradient then.

    Returns
    -------
    loglik : float
        ``-inf`` if the mode was not found.
    steps : int
    """
    cdef Family family = as_family(family_code)
    if not tree_ok(zoff, level_first, parent):
        _bd.tree("nested_loglik", zoff, level_first, parent)
        _bd.invalid("nested_loglik", "zoff, level_first and parent")
    if cl.shape[0] != Z.shape[0] or cl.shape[1] != zoff.shape[0] - 1:
        raise ValueError("nested_loglik: cl must have one row per row of Z and one column per level")
    for _l in range(cl.shape[1]):
        _bd.codes("nested_loglik", "cl[:, %d]" % _l, np.asarray(cl[:, _l]), level_first[_l + 1])
        if cl.shape[0] and np.min(cl[:, _l]) < level_first[_l]:
            raise ValueError("nested_loglik: cl[:, %d] must hold clusters of level %d" % (_l, _l))
    if not blocks_ok(u_off, level_first, zoff, 0, 0, 0, u.shape[0]):
        _bd.blocks("nested_loglik", "u_off", u_off, level_first, np.diff(zoff), u.shape[0], "u")
        _bd.invalid("nested_loglik", "u_off")
    if not blocks_ok(blk_off, level_first, zoff, 0, 0, 2, S.shape[0]):
        _bd.blocks("nested_loglik", "blk_off", blk_off, level_first, _bd.nested_widths(zoff), S.shape[0], "S")
        _bd.invalid("nested_loglik", "blk_off")
    cdef Tree T
    cdef index_t n = Z.shape[0], nlev = zoff.shape[0] - 1
    cdef index_t Q = zoff[nlev] if nlev >= 1 else 0
    cdef index_t ntop = top.shape[1] if top is not None else 0
    cdef index_t width = zoff[nlev - 1] + ntop if ntop else Q
    cdef index_t i, l, a, b, k, q, ja, jb, n_u = u.shape[0]
    cdef double h, ht, logdet = 0.0, smax, tt, s
    cdef int it, halvings, info, steps = -1, k_shift
    cdef double shift
    cdef bint damped
    cdef double[::1] yv, pv
    if nlev < 1 or cl.shape[1] != nlev or cl.shape[0] != n or chain_work.shape[0] < 2 * Q:
        raise ValueError("bad nested layout")
    if (step.shape[0] != n_u or trial.shape[0] != n_u or zl.shape[0] != n or zl.shape[1] != width
            or Z.shape[1] != width or e.shape[0] != n or eta.shape[0] != n):
        raise ValueError("inconsistent work arrays")
    if pen is not None and (pen.shape[0] != n_u or want_grad):
        raise ValueError("pen needs one value per mode and no analytic gradient")
    if top is not None and (top.shape[0] != n or (top.shape[1] and (
            np.min(top) < 0 or np.max(top) >= zoff[nlev] - zoff[nlev - 1]))):
        raise ValueError("top must give every row's columns within the last level")
    if pptr is not None or pcols is not None:
        _pattern_bounds(pptr, pcols, top, level_first, zoff)
    nz_buf = np.empty(Q + 1, dtype=np.intp)
    cdef index_t[::1] nz_view = nz_buf
    T.nz = &nz_view[0]
    T.ntop = ntop
    T.W = width
    T.top = &top[0, 0] if T.ntop else NULL
    T.pptr = &pptr[0] if pptr is not None else NULL
    T.pcols = &pcols[0] if pcols is not None and pcols.shape[0] else NULL
    if pptr is not None and T.pcols == NULL:
        T.pptr = NULL                        # no chain cluster meets the crossed block
    T.pen = &pen[0] if pen is not None else NULL
    T.n = n
    T.Q = Q
    T.nlev = nlev
    T.zoff = &zoff[0]
    T.level_first = &level_first[0]
    T.parent = &parent[0]
    T.u_off = &u_off[0]
    T.blk_off = &blk_off[0]
    T.cl = &cl[0, 0]
    with nogil:
        for i in range(n):                   # zl_i = Lambda' z_i on the row's columns
            for l in range(nlev):
                q = zoff[l + 1] - zoff[l]
                for ja in range(n_cols(&T, i, l)):
                    a = col(&T, i, l, ja)
                    s = 0.0
                    for jb in range(n_cols(&T, i, l)):
                        b = col(&T, i, l, jb)
                        if b >= a:           # Lambda is lower triangular
                            s += lam[lam_off[l] + b * q + a] * Z[i, pos(&T, i, l, jb)]
                    zl[i, pos(&T, i, l, ja)] = s
        h = nested_assemble(family, &T, &y[0], &ntr[0], &eta0[0], &zl[0, 0], &u[0], &S[0],
                            &eta[0], &mu[0], &w[0], &dw[0])
        for it in range(maxit):
            info = nested_factor(&T, &S[0], &logdet)
            damped = info != 0
            if damped:                       # H not positive definite here (rows not log-concave in
                shift = 0.0                  # eta): a damped step, H + c I (Levenberg-Marquardt)
                for k_shift in range(30):
                    nested_assemble(family, &T, &y[0], &ntr[0], &eta0[0], &zl[0, 0], &u[0], &S[0],
                                    &eta[0], &mu[0], &w[0], &dw[0])
                    shift = (1e-3 * (1.0 + shift_diagonal(&T, &S[0], 0.0))) if k_shift == 0 else 10.0 * shift
                    shift_diagonal(&T, &S[0], shift)
                    info = nested_factor(&T, &S[0], &logdet)
                    if info == 0:
                        break
                if info != 0:
                    break
            nested_back(&T, &S[0], &step[0])
            smax = 0.0
            for a in range(n_u):
                if fabs(step[a]) > smax:
                    smax = fabs(step[a])
            if smax < tol and not damped:
                for a in range(n_u):
                    u[a] += step[a]
                h = nested_assemble(family, &T, &y[0], &ntr[0], &eta0[0], &zl[0, 0], &u[0], &S[0],
                                    &eta[0], &mu[0], &w[0], &dw[0])
                info = nested_factor(&T, &S[0], &logdet)
                if info == 0:
                    steps = it + 1
                break
            # step halving; each trial is assembled at once (h and H in one pass over the rows),
            # so the accepted one needs no second pass
            tt = 1.0
            for halvings in range(60):
                for a in range(n_u):
                    trial[a] = u[a] + tt * step[a]
                ht = nested_assemble(family, &T, &y[0], &ntr[0], &eta0[0], &zl[0, 0], &trial[0], &S[0],
                                     &eta[0], &mu[0], &w[0], &dw[0])
                if isfinite(ht) and ht >= h - 1e-13 * (1.0 + fabs(h)):
                    break
                tt *= 0.5
            else:
                break
            for a in range(n_u):
                u[a] = trial[a]
            h = ht
    if steps < 0:
        return -INFINITY, steps
    if want_grad:
        from hlmext._kernels import gradient as _gradient
        if sel is None or sel.shape[0] != S.shape[0]:
            sel = np.empty(S.shape[0])
        if T.pptr != NULL:
            yv = np.empty(zoff[1] * max(int(np.max(np.diff(pptr))), 1))
            pv = np.empty(2 * zoff[1] * zoff[1])
            with nogil:
                info = pattern_inverse(&T, &S[0], &sel[0], &yv[0], &pv[0])
            if info != 0:
                return -INFINITY, steps
        else:
            _gradient.selected_inverse(S, np.zeros(1), 0, 0, zoff, Q + 1, 0, level_first, blk_off, parent,
                                       sel, sel_scratch)
        with nogil:
            for a in range(grad_lam.shape[0]):
                grad_lam[a] = 0.0
            nested_grad(&T, &y[0], &Z[0, 0], &zl[0, 0], &mu[0], &w[0], &dw[0], &u[0], &S[0], &sel[0],
                        &lam_off[0], &step[0], &e[0], &grad_lam[0], &chain_work[0])
    return h - 0.5 * logdet, steps


def _pattern_bounds(const index_t[::1] pptr, const index_t[::1] pcols, const index_t[:, ::1] top,
                    const index_t[::1] level_first, const index_t[::1] zoff):
    """Raise ``ValueError`` unless every index of (pptr, pcols) stays inside the layout."""
    if pptr is None or pcols is None or top is None or zoff.shape[0] != 3:
        raise ValueError("nested_loglik: pptr and pcols go together, with top and one chain level")
    cdef index_t nc = level_first[1] - level_first[0], qd = zoff[2] - zoff[1]
    if level_first[0] != 0 or pptr.shape[0] != nc + 1 or pptr[0] != 0 or pptr[nc] != pcols.shape[0] \
            or np.any(np.diff(np.asarray(pptr)) < 0) or np.any(np.diff(np.asarray(pptr)) > qd):
        raise ValueError("nested_loglik: pptr must have one entry per chain cluster and one more, from 0 "
                         "to len(pcols), each cluster's at most the crossed block's columns")
    if pcols.shape[0] and (np.min(pcols) < 0 or np.max(pcols) >= qd):
        raise ValueError("nested_loglik: pcols must be columns of the crossed block (0 to %d)" % (qd - 1))


def check_pattern(const index_t[::1] pptr, const index_t[::1] pcols, const index_t[:, ::1] top,
                  const index_t[:, ::1] cl, const index_t[::1] level_first, const index_t[::1] zoff):
    """Raise ``ValueError`` unless (pptr, pcols) is a pattern of the chain clusters' coupling to the
    crossed block that lists, ascending, every column of every row's ``top`` (see
    ``nested_loglik``); a pass over the rows, made once per model."""
    _pattern_bounds(pptr, pcols, top, level_first, zoff)
    if cl.shape[0] != top.shape[0] or cl.shape[1] != 2:
        raise ValueError("check_pattern: cl must have one row per row of top and two levels")
    cdef index_t i, j, k, x, lo, hi, mid, c
    cdef bint bad = False
    with nogil:
        for k in range(pptr.shape[0] - 1):
            for x in range(pptr[k] + 1, pptr[k + 1]):
                if pcols[x] <= pcols[x - 1]:
                    bad = True
        for i in range(top.shape[0]):
            k = cl[i, 0]
            if k < 0 or k >= pptr.shape[0] - 1:
                bad = True
                break
            for j in range(top.shape[1]):
                c = top[i, j]
                lo = pptr[k]
                hi = pptr[k + 1]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if pcols[mid] < c:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo >= pptr[k + 1] or pcols[lo] != c:
                    bad = True
    if bad:
        raise ValueError("check_pattern: pcols must list, ascending within each chain cluster, every "
                         "crossed column of the cluster's rows (top)")
