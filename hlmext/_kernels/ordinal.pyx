# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the ordinal (cumulative logit / probit) mixed model, one level.

Rows i with category k_i in 0..K-1, cut points c_0 < ... < c_{K-2}, and as in ``glmm.pyx``
``eta_i = eta0_i + zl_i' u`` (``zl_i = Lambda' z_i``, u ~ N(0, I)). With F the logistic or
normal CDF, A_i = c_{k_i} - eta_i (+inf for the top category) and B_i = c_{k_i - 1} - eta_i
(-inf for the bottom one), a row's log-likelihood is

    l_i = log(F(A_i) - F(B_i)),

concave in eta for both links. In terms of eta it plays the part of ``y eta - b(eta)`` in
``glmm.pyx``: its score ``dl/deta``, weight ``w = -d2l/deta2`` and ``dw/deta`` give the
mode, the Laplace and AGHQ log-likelihoods and the gradient in Lambda by the same formulas.
The cut points enter the rows through A and B, not eta only, so the gradient is returned
per row as ``d log L / d A_i`` and ``d log L / d B_i``; for a parameter p that moves A_i
(or B_i), by the envelope theorem and the dependence of the mode on p,

    d log L / d p = E_pi[dl_i/dp] - 1/2 s_i dw_i/dp + (d score_i / dp) zl_i' t,

with the posterior mean E_pi over the nodes (the mode under Laplace), s_i = zl_i' Omega zl_i
and t as in ``glmm.pyx`` (Omega = H^{-1} under Laplace). The caller forms the gradient in
beta (``-X'(gA + gB)``) and in the cut points (sums of gA and gB by category).

With D = F(A) - F(B), a = f(A)/D, a1 = f'(A)/D, a2 = f''(A)/D (b, b1, b2 likewise at B)
and s = a - b:

    score = -s,       w = s^2 - a1 + b1,
    dw/dA = 2 s (a1 - a s) - a2 + a (a1 - b1),   dw/dB = 2 s (b s - b1) + b2 - b (a1 - b1),
    dscore/dA = a s - a1,                         dscore/dB = b1 - b s.

F(A) - F(B) is formed from F or its complement 1 - F, whichever is accurate where A and B
lie; rows so far in a tail that it underflows take the logs first.

Sampling weights (``hlmext.design.sampling_weights``): a row with observation weight
w_i contributes w_i l_i, so its value and all NRD derivatives are scaled by w_i
(``row_w``) and the formulas above hold as they stand; a cluster's weight multiplies its
log integral's gradient pieces (``gab``, d/d Lambda), its ``ll`` stays unweighted.
Without weights (NULL pointers) nothing is scaled.
"""
from cython.parallel cimport prange, threadid
from libc.math cimport exp, log, log1p, expm1, sqrt, fabs, erfc, INFINITY, isfinite

from hlmext._kernels.helpers cimport MAXQ, index_t, chol_ld, lower_ld, upper_ld
from hlmext._kernels.ordinal_row cimport NRD, row_ord
from hlmext._kernels.cluster_integral cimport (prior_part, mirror_lower, newton_direction, node_offsets,
                                               log_weighted_sum, node_weights, inverse_from_factor,
                                               aghq_omega, omega_row)
import numpy as np
from hlmext._kernels import boundary as _bd

LOGIT = 0
PROBIT = 1

cdef inline double row_w(int link, int k, int K, const double* cuts, double eta, double* d,
                         const double* w, index_t i) noexcept nogil:
    """``row_ord`` times the observation weight ``w[i]`` (value and derivatives; none if ``w`` is NULL)."""
    cdef double l = row_ord(link, k, K, cuts, eta, d)
    cdef int a
    if w == NULL:
        return l
    if d != NULL:
        for a in range(NRD):
            d[a] *= w[i]
    return w[i] * l


# ---------------------------------------------------------------------------------
# Layer 1: one cluster
# ---------------------------------------------------------------------------------

cdef double cluster_eval(int link, const int* yk, int K, const double* cuts, const double* eta0,
                         const double* zl, index_t nj, index_t q, const double* u, double* g, double* H,
                         double* eta, double* rd, const double* wt) noexcept nogil:
    """h(u); with ``g`` also its gradient and H; with ``eta`` the rows' eta and derivatives ``rd``.

    ``wt``: the rows' observation weights, or NULL."""
    cdef index_t i, a, b
    cdef double h = prior_part(u, q, g, H), et
    cdef double dd[NRD]
    for i in range(nj):
        et = eta0[i]
        for a in range(q):
            et += zl[i * q + a] * u[a]
        if g == NULL:
            h += row_w(link, yk[i], K, cuts, et, NULL, wt, i)
            continue
        h += row_w(link, yk[i], K, cuts, et, dd, wt, i)
        for a in range(q):
            g[a] += dd[0] * zl[i * q + a]
            for b in range(a + 1):
                H[a * q + b] += dd[1] * zl[i * q + a] * zl[i * q + b]
        if eta != NULL:
            eta[i] = et
            for a in range(NRD):
                rd[i * NRD + a] = dd[a]
    if g != NULL:
        mirror_lower(H, q)
    return h


cdef int cluster_mode(int link, const int* yk, int K, const double* cuts, const double* eta0,
                      const double* zl, index_t nj, index_t q, double* u, double* L, double* eta,
                      double* rd, double tol, int maxit, double* h_out, const double* wt) noexcept nogil:
    """Newton iterations with step halving for the mode of h from ``u`` (as ``glmm.cluster_mode``)."""
    cdef double g[MAXQ]
    cdef double step[MAXQ]
    cdef double trial[MAXQ]
    cdef double h, ht, smax, t
    cdef index_t a
    cdef int it, halvings
    h = cluster_eval(link, yk, K, cuts, eta0, zl, nj, q, u, g, L, NULL, NULL, wt)
    for it in range(maxit):
        if not isfinite(h) or chol_ld(L, q, q) != 0:
            return -1
        smax = newton_direction(L, g, q, step)
        if smax < tol:
            for a in range(q):
                u[a] += step[a]
            h_out[0] = cluster_eval(link, yk, K, cuts, eta0, zl, nj, q, u, g, L, eta, rd, wt)
            if not isfinite(h_out[0]) or chol_ld(L, q, q) != 0:
                return -1
            return it + 1
        t = 1.0
        for halvings in range(60):
            for a in range(q):
                trial[a] = u[a] + t * step[a]
            ht = cluster_eval(link, yk, K, cuts, eta0, zl, nj, q, trial, NULL, NULL, NULL, NULL, wt)
            if isfinite(ht) and ht >= h - 1e-13 * (1.0 + fabs(h)):
                break
            t *= 0.5
        else:
            return -1
        for a in range(q):
            u[a] = trial[a]
        h = cluster_eval(link, yk, K, cuts, eta0, zl, nj, q, u, g, L, NULL, NULL, wt)
    return -1


cdef double aghq_term(int link, const int* yk, int K, const double* cuts, const double* eta,
                      const double* zl, index_t nj, index_t q, const double* u, const double* L,
                      const double* nodes, const double* logw, index_t Kn, double* d, double* hk,
                      double h, double* node_rows, const double* wt) noexcept nogil:
    """log sum_k exp(logw_k + h(u_k) - h(u)), u_k = u + sqrt(2) L^{-T} x_k (``eta`` at u).

    With ``node_rows`` (nj x Kn x 2, or NULL) also every row's score and dl/dA at every node,
    for the gradient (``cluster_grad``), which then need not evaluate the rows again.
    """
    cdef index_t k, i, a
    cdef double et
    cdef double dd[NRD]
    node_offsets(L, u, nodes, q, Kn, d, hk)
    for i in range(nj):
        for k in range(Kn):
            et = eta[i]
            for a in range(q):
                et += zl[i * q + a] * d[k * q + a]
            if node_rows == NULL:
                hk[k] += row_w(link, yk[i], K, cuts, et, NULL, wt, i)
            else:
                hk[k] += row_w(link, yk[i], K, cuts, et, dd, wt, i)
                node_rows[2 * (i * Kn + k)] = dd[0]
                node_rows[2 * (i * Kn + k) + 1] = dd[3]
    return log_weighted_sum(hk, logw, h, Kn)


cdef void cluster_grad(int link, const int* yk, int K, const double* cuts, const double* z,
                       const double* zl, const double* eta, const double* rd, index_t nj, index_t q,
                       const double* u, const double* L, const double* d, double* pk, index_t Kn,
                       double* Gk, double* ubar, double* gab, double* grad_lam,
                       const double* node_rows, const double* wt) noexcept nogil:
    """Gradient pieces of one cluster: per row d log L / dA, dB (``gab``) and the sum into d/d Lambda.

    Laplace when ``Kn == 1`` (``d``, ``pk`` unused); else ``pk`` holds logw_k + h(u_k) - h(u)
    on entry and ``d`` the node offsets (``aghq_term``), and the posterior means over the
    nodes are formed here (from ``node_rows``, or by evaluating the rows again at every node).
    """
    cdef double Om[MAXQ * MAXQ]
    cdef double r[MAXQ]
    cdef double oz[MAXQ]
    cdef double dd[NRD]
    cdef index_t i, k, a, b
    cdef double et, res, ci, zt, so, escore, elA
    if Kn > 1:
        node_weights(pk, u, d, q, Kn, Gk)
    for a in range(q):
        r[a] = 0.0
    for i in range(nj):                      # posterior means of the score, dl/dA and score x u
        if Kn == 1:
            gab[2 * i] = rd[i * NRD + 3]
            gab[2 * i + 1] = rd[i * NRD + 0]
            for a in range(q):
                ubar[i * q + a] = rd[i * NRD + 0] * u[a]
            continue
        escore = 0.0
        elA = 0.0
        for a in range(q):
            ubar[i * q + a] = 0.0
        for k in range(Kn):
            if node_rows != NULL:
                dd[0] = node_rows[2 * (i * Kn + k)]
                dd[3] = node_rows[2 * (i * Kn + k) + 1]
            else:
                et = eta[i]
                for a in range(q):
                    et += zl[i * q + a] * d[k * q + a]
                row_w(link, yk[i], K, cuts, et, dd, wt, i)
            escore += pk[k] * dd[0]
            elA += pk[k] * dd[3]
            for a in range(q):
                ubar[i * q + a] += pk[k] * dd[0] * (u[a] + d[k * q + a])
                Gk[k * q + a] += dd[0] * zl[i * q + a]
        gab[2 * i] = elA
        gab[2 * i + 1] = escore
    if Kn == 1:                              # Omega = H^{-1}
        inverse_from_factor(L, q, Om)
    else:                                    # gbar and Omega
        aghq_omega(L, pk, d, Gk, q, Kn, r, Om)
    for i in range(nj):                      # r = gbar + sum_i c_i zl_i
        so = omega_row(Om, &zl[i * q], q, NULL)
        ci = -0.5 * rd[i * NRD + 2] * so
        for a in range(q):
            r[a] += ci * zl[i * q + a]
    lower_ld(L, q, q, r)                     # t = H^{-1} r
    upper_ld(L, q, q, r)
    for i in range(nj):
        so = omega_row(Om, &zl[i * q], q, oz)
        zt = 0.0
        for a in range(q):
            zt += zl[i * q + a] * r[a]
        escore = gab[2 * i + 1]
        elA = gab[2 * i]
        # d/dA and d/dB (E[dl/dB] = -E[score] - E[dl/dA])
        gab[2 * i] = elA - 0.5 * so * rd[i * NRD + 4] + rd[i * NRD + 6] * zt
        gab[2 * i + 1] = -escore - elA - 0.5 * so * rd[i * NRD + 5] + rd[i * NRD + 7] * zt
        ci = -0.5 * rd[i * NRD + 2] * so - rd[i * NRD + 1] * zt
        res = rd[i * NRD + 0]
        for a in range(q):
            for b in range(q):
                grad_lam[a * q + b] += z[i * q + a] * (ubar[i * q + b] + ci * u[b] + res * r[b]
                                                       - rd[i * NRD + 1] * oz[b])


cdef int one_cluster(int link, const double* Z, const int* yk, int K, const double* cuts, const double* eta0,
                     index_t r0, index_t r1, index_t q, const double* nodes, const double* logw, index_t Kn,
                     double* u, double* ll, double* chol, double* zl, double* eta, double* rd, double* node_d,
                     double* node_h, double* node_g, double* ubar, double* gab, bint want_grad,
                     double* grad_sum, double tol, int maxit, double* rows_buf, index_t buf_rows,
                     const double* wobs, double cw) noexcept nogil:
    """Mode, log L_j and (with ``want_grad``) the gradient pieces of the rows r0..r1-1.

    ``wobs``: every row's observation weight (or NULL); ``cw``: the cluster's weight, which
    multiplies its ``gab`` rows and its d log L / d Lambda (``ll`` stays unweighted).
    """
    cdef index_t nj = r1 - r0, a, i
    cdef const double* wt = &wobs[r0] if wobs != NULL else NULL
    cdef int steps
    cdef double h, ldet
    cdef double contrib[MAXQ * MAXQ]
    cdef double* node_rows = rows_buf if want_grad and rows_buf != NULL and nj <= buf_rows else NULL
    steps = cluster_mode(link, &yk[r0], K, cuts, &eta0[r0], &zl[r0 * q], nj, q, u, chol, &eta[r0],
                         &rd[r0 * NRD], tol, maxit, &h, wt)
    if steps < 0:
        ll[0] = -INFINITY
        return -1
    ldet = 0.0
    for a in range(q):
        ldet += log(chol[a * q + a])
    ll[0] = h - ldet
    if Kn > 1:
        ll[0] += aghq_term(link, &yk[r0], K, cuts, &eta[r0], &zl[r0 * q], nj, q, u, chol, nodes, logw, Kn,
                           node_d, node_h, h, node_rows, wt)
    if not want_grad:
        return steps
    for a in range(q * q):
        contrib[a] = 0.0
    cluster_grad(link, &yk[r0], K, cuts, &Z[r0 * q], &zl[r0 * q], &eta[r0], &rd[r0 * NRD], nj, q, u, chol,
                 node_d, node_h, Kn, node_g, &ubar[r0 * q], &gab[2 * r0], contrib, node_rows, wt)
    if cw == 1.0:
        for a in range(q * q):
            grad_sum[a] += contrib[a]
        return steps
    for a in range(q * q):                   # this cluster's terms count cw times
        grad_sum[a] += cw * contrib[a]
    for i in range(2 * r0, 2 * r1):
        gab[i] *= cw
    return steps


# ---------------------------------------------------------------------------------
# Layer 2: the loop over clusters
# ---------------------------------------------------------------------------------

def cluster_loglik(int link, const double[:, ::1] Z, const int[::1] yk, const double[::1] cuts,
                   const double[::1] eta0, const index_t[::1] row_start, const index_t[::1] row_end,
                   const double[:, ::1] lam, const double[:, ::1] nodes, const double[::1] logw,
                   double[:, ::1] u, double[::1] ll, double[:, :, ::1] chol_out, double[:, ::1] zl,
                   double[::1] eta, double[:, ::1] rd, double[:, ::1] ubar, double[:, ::1] gab,
                   double[:, ::1] grad_lam, bint want_grad, double tol=1e-10, int maxit=200, int n_threads=1,
                   const double[::1] wobs=None, const double[::1] cweight=None):
    """Per-cluster log-likelihoods of the ordinal model (they have no data constants).

    Parameters
    ----------
    link : int
        0 logit, 1 probit.
    Z : (n, q)
        Random-effects design, rows sorted by cluster.
    yk : (n,) int32
        Category of every row, 0 .. K-1 with K = len(cuts) + 1.
    cuts : (K-1,)
        Increasing cut points.
    eta0 : (n,)
        Fixed part of eta (x'beta).
    row_start, row_end : (G,)
    lam : (q, q)
        Lower-triangular relative factor Lambda.
    nodes : (Kn, q), logw : (Kn,)
        Quadrature rule; Kn == 1 means Laplace.
    u : (G, q)
        IN: starting modes; OUT: the modes.
    ll : (G,)
        OUT: log L_j (-inf where the mode was not found).
    chol_out : (G, q, q)
        OUT: the Cholesky factor of H_j at the mode (lower triangle).
    zl, eta, rd, ubar : (n, q), (n,), (n, 8), (n, q)
        Work arrays.
    gab : (n, 2)
        OUT (``want_grad``): d log L / d A_i and d log L / d B_i.
    grad_lam : (q, q)
        OUT (``want_grad``): d log L / d Lambda.
    n_threads : int
        Threads over clusters (OpenMP); the result does not depend on them up to rounding.
    wobs : (n,), optional
        Observation (sampling) weights: row i contributes ``wobs_i l_i`` inside its cluster's
        integral.
    cweight : (G,), optional
        Cluster (sampling) weights: ``gab`` and ``grad_lam`` are those of
        ``sum_j cweight_j log L_j``; ``ll`` stays unweighted.

    Returns
    -------
    n_failed : int
        Clusters whose mode was not found.
    """
    _bd.rows("cluster_loglik", Z.shape[0], row_start, row_end)
    cdef index_t n = Z.shape[0], q = Z.shape[1], G = row_start.shape[0], Kn = nodes.shape[0]
    cdef index_t i, j, a, b, t, tid
    cdef int n_failed = 0, K = cuts.shape[0] + 1
    cdef double h
    cdef int nthreads = max(1, n_threads)
    if q > MAXQ:
        raise ValueError("at most %d random effects per level are supported" % MAXQ)
    if (yk.shape[0] != n or eta0.shape[0] != n or zl.shape[0] != n or zl.shape[1] != q or eta.shape[0] != n
            or rd.shape[0] != n or rd.shape[1] != NRD or ubar.shape[0] != n or ubar.shape[1] != q
            or gab.shape[0] != n or gab.shape[1] != 2):
        raise ValueError("row arrays must all have %d rows" % n)
    if (row_end.shape[0] != G or u.shape[0] != G or u.shape[1] != q or ll.shape[0] != G
            or chol_out.shape[0] != G or chol_out.shape[1] != q or chol_out.shape[2] != q):
        raise ValueError("cluster arrays must all have %d clusters" % G)
    if (lam.shape[0] != q or lam.shape[1] != q or nodes.shape[1] != q or logw.shape[0] != Kn
            or grad_lam.shape[0] != q or grad_lam.shape[1] != q):
        raise ValueError("inconsistent q or number of nodes")
    if K < 2:
        raise ValueError("at least one cut point is needed")
    if wobs is not None and wobs.shape[0] != n:
        raise ValueError("wobs must have one weight per row (%d)" % n)
    if cweight is not None and cweight.shape[0] != G:
        raise ValueError("cweight must have one weight per cluster (%d)" % G)
    cdef const double* w_ptr = &wobs[0] if wobs is not None and n > 0 else NULL
    cdef const double* cw_ptr = &cweight[0] if cweight is not None and G > 0 else NULL
    yarr = np.asarray(yk)
    if n and (yarr.min() < 0 or yarr.max() >= K):
        raise ValueError("categories must lie in 0..%d" % (K - 1))
    thread_d = np.empty((nthreads, Kn * q))
    thread_h = np.empty((nthreads, Kn))
    thread_g = np.empty((nthreads, Kn * q))
    thread_grad = np.zeros((nthreads, q * q))
    steps_buf = np.empty(G, dtype=np.intc)
    # every row's score and dl/dA at every node of one cluster per thread, for the AGHQ gradient
    # (clusters too large for a modest buffer evaluate their rows twice)
    cdef index_t buf_rows = 0
    if want_grad and Kn > 1 and G > 0:
        buf_rows = min(int(np.max(np.asarray(row_end) - np.asarray(row_start))), max(1, 1_000_000 // Kn))
    thread_rows = np.empty((nthreads, max(1, 2 * buf_rows * Kn)))
    cdef double[:, ::1] trows = thread_rows
    cdef double[:, ::1] td = thread_d, th = thread_h, tg = thread_g, tgrad = thread_grad
    cdef int[::1] steps = steps_buf
    with nogil:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            for a in range(q):
                h = 0.0
                for b in range(a, q):
                    h = h + lam[b, a] * Z[i, b]
                zl[i, a] = h
        for j in prange(G, num_threads=nthreads, schedule="static", chunksize=8):
            tid = threadid()
            steps[j] = one_cluster(link, &Z[0, 0], &yk[0], K, &cuts[0], &eta0[0], row_start[j], row_end[j], q,
                                   &nodes[0, 0], &logw[0], Kn, &u[j, 0], &ll[j], &chol_out[j, 0, 0], &zl[0, 0],
                                   &eta[0], &rd[0, 0], &td[tid, 0], &th[tid, 0], &tg[tid, 0], &ubar[0, 0],
                                   &gab[0, 0], want_grad, &tgrad[tid, 0], tol, maxit,
                                   &trows[tid, 0] if buf_rows > 0 else NULL, buf_rows, w_ptr,
                                   cw_ptr[j] if cw_ptr != NULL else 1.0)
        for j in range(G):
            if steps[j] < 0:
                n_failed += 1
        if want_grad:
            for a in range(q):
                for b in range(q):
                    grad_lam[a, b] = 0.0
                    for t in range(nthreads):
                        grad_lam[a, b] += tgrad[t, a * q + b]
    return n_failed


def row_loglik(int link, const int[::1] yk, const double[::1] cuts, const double[::1] eta):
    """Rows' log-likelihoods and derivatives at eta (no random effects): (l (n,), d (n, 8))."""
    cdef index_t n = yk.shape[0], i
    cdef int K = cuts.shape[0] + 1
    if eta.shape[0] != n:
        raise ValueError("yk and eta must have the same length")
    out = np.empty(n)
    der = np.empty((n, NRD))
    cdef double[::1] o = out
    cdef double[:, ::1] dv = der
    with nogil:
        for i in range(n):
            o[i] = row_ord(link, yk[i], K, &cuts[0], eta[i], &dv[i, 0])
    return out, der
