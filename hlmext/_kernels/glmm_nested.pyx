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

from scipy.linalg.cython_lapack cimport dpotrf

from hlmext._kernels.helpers cimport MAXQ, index_t, Family, as_family, row_loglik, chol_ld, lower_ld, upper_ld
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
    cdef index_t l, k, q, D, anc, c0, j, qa, Da, r, c, t, a, x, y, nnz, first
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
            # B[:, q:] <- L^{-1} B[:, q:], noting the columns where k's rows are not zero (a
            # cluster meets few groups of the crossed block): the downdates use only those
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
                # A -= B_k,anc' B_k,anc on the noted columns
                for x in range(first, nnz):
                    r = T.nz[x] - c0
                    if r >= qa:
                        break
                    for t in range(q):
                        wv = B[t * D + c0 + r]
                        if wv == 0.0:
                            continue
                        for y in range(first, nnz):
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


def nested_loglik(family_code, const double[:, ::1] Z, const double[::1] y, const double[::1] ntr,
                  const double[::1] eta0, const index_t[:, ::1] cl, const index_t[::1] zoff,
                  const index_t[::1] level_first, const index_t[::1] parent,
                  const index_t[::1] u_off, const index_t[::1] blk_off, const double[::1] lam,
                  const index_t[::1] lam_off, double[::1] u, double[::1] S, double[:, ::1] zl,
                  double[::1] eta, double[::1] mu, double[::1] w, double[::1] dw,
                  double[::1] step, double[::1] trial, double[::1] e, double[::1] grad_lam,
                  double[::1] chain_work, bint want_grad, double tol=1e-10, int maxit=200,
                  const double[::1] pen=None, double[::1] sel=None, double[::1] sel_scratch=None,
                  const index_t[:, ::1] top=None):
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
    nz_buf = np.empty(Q + 1, dtype=np.intp)
    cdef index_t[::1] nz_view = nz_buf
    T.nz = &nz_view[0]
    T.ntop = ntop
    T.W = width
    T.top = &top[0, 0] if T.ntop else NULL
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
        _gradient.selected_inverse(S, np.zeros(1), 0, 0, zoff, Q + 1, 0, level_first, blk_off, parent,
                                   sel, sel_scratch)
        with nogil:
            for a in range(grad_lam.shape[0]):
                grad_lam[a] = 0.0
            nested_grad(&T, &y[0], &Z[0, 0], &zl[0, 0], &mu[0], &w[0], &dw[0], &u[0], &S[0], &sel[0],
                        &lam_off[0], &step[0], &e[0], &grad_lam[0], &chain_work[0])
    return h - 0.5 * logdet, steps
