# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the generalized linear mixed model with one level of random effects.

For cluster j with rows i, spherical random effects u (q-vector, prior N(0, I)),
relative factor Lambda (q x q lower triangular) and ``zl_i = Lambda' z_i``:

    eta_i = eta0_i + zl_i' u,        eta0_i = x_i' beta + offset_i
    h(u)  = sum_i [y_i eta_i - b(eta_i)] - |u|^2 / 2
    H(u)  = -d2h/du2 = sum_i w_i zl_i zl_i' + I,   w_i = b''(eta_i)

with ``b(eta) = n_i log(1 + e^eta)`` (binomial with n_i trials, logit link) or
``b(eta) = e^eta`` (Poisson, log link); the constants log C(n_i, y_i) and -log y_i!
are added by the caller. Per cluster:

- the mode u_j maximizes h by Newton steps with step halving, warm-started from the
  previous value in ``u`` and iterated until max |step| < ``tol``;
- Laplace:  log L_j ~ h(u_j) - 1/2 log det H_j;
- adaptive Gauss-Hermite (Liu & Pierce 1994, Pinheiro & Bates 1995): with H_j = L L'
  and product-rule nodes x_k and log weights ``logw_k`` (which include |x_k|^2 and
  -q/2 log pi), u_k = u_j + sqrt(2) L^{-T} x_k and
  log L_j ~ h(u_j) - 1/2 log det H_j + log sum_k exp(logw_k + h(u_k) - h(u_j)).

The Laplace gradient (``want_grad``) follows from the envelope theorem plus the
derivative of the log-determinant through eta (including the dependence of the mode):
with s_i = zl_i' H^{-1} zl_i, c_i = -w'_i s_i / 2, t = H^{-1} sum_i c_i zl_i and
e_i = y_i - mu_i + c_i - w_i zl_i't,

    d log L / d beta     = sum_i e_i x_i            (the caller forms X'e)
    d log L / d Lambda   = sum_i z_i (e_i u + (y_i - mu_i) t)' - M Lambda H^{-1},
                           M = sum_i w_i z_i z_i'.

The AGHQ gradient differentiates the rule through the mode and the factor L (nodes
move with the parameters): with pi_k the normalized node terms, G_k = dh/du at u_k,
M = sum_k pi_k (u_k - u)(L^{-1} G_k)', N the symmetrized lower triangle of L'M and
Omega = L^{-T} N L^{-1} + H^{-1}, the same formulas hold with s_i = zl_i' Omega zl_i,
t = H^{-1}(sum_k pi_k G_k + sum_i c_i zl_i), y_i - mu_i replaced by its posterior mean
over the nodes in e_i and e_i u by sum_k pi_k (y_i - mu_ik) u_k, and M Lambda H^{-1} by
sum_i w_i z_i (Omega zl_i)'. With one node (Laplace) they reduce to the formulas above.

Three layers, as in ``_core.pyx``: ``cdef ... noexcept nogil`` functions for one row or
one cluster; the ``def`` loop over clusters writing into caller-allocated arrays; the
Python facade (``glmm.py``) validates and allocates once per model. The blocks are tiny
(q is 1 to a few), so the Cholesky factor and triangular solves are short loops.
"""
from cython.parallel cimport prange, threadid
from libc.math cimport exp, log, sqrt, fabs, INFINITY, isfinite

from hlmext._kernels.helpers cimport MAXQ, index_t, Family, as_family, row_loglik, chol_ld, lower_ld, upper_ld
from hlmext._kernels.cluster_integral cimport (prior_part, mirror_lower, newton_direction, node_offsets,
                                               log_weighted_sum, node_weights, aghq_omega, omega_row)
import numpy as np
from hlmext._kernels import boundary as _bd

BINOMIAL = 0
POISSON = 1


# ---------------------------------------------------------------------------------
# Layer 1: one cluster
# ---------------------------------------------------------------------------------

cdef double cluster_eval(Family family, const double* y, const double* ntr, const double* eta0,
                         const double* zl, index_t nj, index_t q, const double* u, double* g,
                         double* H, double* eta, double* mu, double* w, double* dw) noexcept nogil:
    """h(u); if ``g`` is not NULL also its gradient and H (full, before factoring).

    If ``eta`` is not NULL the per-row eta, mu, w and w' are stored there.
    """
    cdef index_t i, a, b
    cdef double h = prior_part(u, q, g, H), et, m, wi, dwi, r
    for i in range(nj):
        et = eta0[i]
        for a in range(q):
            et += zl[i * q + a] * u[a]
        if g == NULL:
            h += row_loglik(family, y[i], ntr[i], et, NULL, NULL, NULL)
            continue
        h += row_loglik(family, y[i], ntr[i], et, &m, &wi, &dwi)
        r = y[i] - m
        for a in range(q):
            g[a] += r * zl[i * q + a]
            for b in range(a + 1):
                H[a * q + b] += wi * zl[i * q + a] * zl[i * q + b]
        if eta != NULL:
            eta[i] = et
            mu[i] = m
            w[i] = wi
            dw[i] = dwi
    if g != NULL:
        mirror_lower(H, q)
    return h


cdef int cluster_mode(Family family, const double* y, const double* ntr, const double* eta0,
                      const double* zl, index_t nj, index_t q, double* u, double* L,
                      double* eta, double* mu, double* w, double* dw, double tol, int maxit,
                      double* h_out) noexcept nogil:
    """Newton iterations with step halving for the mode of h, starting from ``u``.

    On return ``u`` is the mode, ``L`` the Cholesky factor of H there, ``h_out`` h(u) and
    the per-row arrays hold eta, mu, w, w' at the mode. Returns the number of Newton
    steps, or -1 if H could not be factored at the mode or no step improved h.

    Where H is not positive definite (a family whose rows are not log-concave in eta, such
    as the NB1 or the Gaussian with log link, away from the mode) the step is damped:
    H + c I with the smallest c = 10^k |H|_max that factors (Levenberg-Marquardt).
    """
    cdef double g[MAXQ]
    cdef double step[MAXQ]
    cdef double trial[MAXQ]
    cdef double Hc[MAXQ * MAXQ]
    cdef double h, ht, smax, t, shift, hmax
    cdef index_t a
    cdef int it, halvings, k
    cdef bint damped
    h = cluster_eval(family, y, ntr, eta0, zl, nj, q, u, g, L, NULL, NULL, NULL, NULL)
    for it in range(maxit):
        damped = False
        hmax = 1.0
        for a in range(q * q):
            Hc[a] = L[a]
            if fabs(L[a]) > hmax:
                hmax = fabs(L[a])
        if chol_ld(L, q, q) != 0:
            damped = True
            shift = 1e-3 * hmax
            for k in range(30):
                for a in range(q * q):
                    L[a] = Hc[a]
                for a in range(q):
                    L[a * q + a] += shift
                if chol_ld(L, q, q) == 0:
                    break
                shift *= 10.0
            else:
                return -1
        smax = newton_direction(L, g, q, step)
        if smax < tol and not damped:
            for a in range(q):
                u[a] += step[a]
            h_out[0] = cluster_eval(family, y, ntr, eta0, zl, nj, q, u, g, L, eta, mu, w, dw)
            if chol_ld(L, q, q) != 0:
                return -1
            return it + 1
        t = 1.0
        for halvings in range(60):
            for a in range(q):
                trial[a] = u[a] + t * step[a]
            ht = cluster_eval(family, y, ntr, eta0, zl, nj, q, trial, NULL, NULL, NULL, NULL, NULL, NULL)
            if isfinite(ht) and ht >= h - 1e-13 * (1.0 + fabs(h)):
                break
            t *= 0.5
        else:
            return -1
        for a in range(q):
            u[a] = trial[a]
        h = cluster_eval(family, y, ntr, eta0, zl, nj, q, u, g, L, NULL, NULL, NULL, NULL)
    return -1


cdef double aghq_term(Family family, const double* y, const double* ntr, const double* eta,
                      const double* zl, index_t nj, index_t q, const double* u, const double* L,
                      const double* nodes, const double* logw, index_t K, double* d, double* hk,
                      double h, double* resid) noexcept nogil:
    """log sum_k exp(logw_k + h(u_k) - h(u)), u_k = u + sqrt(2) L^{-T} x_k (``eta`` at u).

    With ``resid`` (nj x K, or NULL) also the residuals y_i - mu_i at every node, for the
    gradient (``aghq_grad``), which then need not evaluate the rows again.
    """
    cdef index_t k, i, a
    cdef double et, m, wi, dwi
    node_offsets(L, u, nodes, q, K, d, hk)
    for i in range(nj):
        for k in range(K):
            et = eta[i]
            for a in range(q):
                et += zl[i * q + a] * d[k * q + a]
            if resid == NULL:
                hk[k] += row_loglik(family, y[i], ntr[i], et, NULL, NULL, NULL)
            else:
                hk[k] += row_loglik(family, y[i], ntr[i], et, &m, &wi, &dwi)
                resid[i * K + k] = y[i] - m
    return log_weighted_sum(hk, logw, h, K)


cdef void cluster_grad(const double* y, const double* z, const double* zl, const double* mu,
                       const double* w, const double* dw, index_t nj, index_t q, const double* u,
                       const double* L, double* e, double* grad_lam) noexcept nogil:
    """Laplace gradient pieces of one cluster: per-row e_i and the sum into d/d Lambda."""
    cdef double v[MAXQ]
    cdef double r[MAXQ]
    cdef double tv[MAXQ]
    cdef double K1[MAXQ * MAXQ]
    cdef index_t i, a, b
    cdef double s, res, zt
    for a in range(q):
        r[a] = 0.0
        for b in range(q):
            K1[a * q + b] = 0.0
    for i in range(nj):
        for a in range(q):
            v[a] = zl[i * q + a]
        lower_ld(L, q, q, v)
        s = 0.0
        for a in range(q):
            s += v[a] * v[a]
        e[i] = -0.5 * dw[i] * s               # c_i for now
        for a in range(q):
            r[a] += e[i] * zl[i * q + a]
            for b in range(q):
                K1[a * q + b] += w[i] * z[i * q + a] * zl[i * q + b]
    for a in range(q):
        tv[a] = r[a]
    lower_ld(L, q, q, tv)
    upper_ld(L, q, q, tv)
    for i in range(nj):
        res = y[i] - mu[i]
        zt = 0.0
        for a in range(q):
            zt += zl[i * q + a] * tv[a]
        e[i] = res + e[i] - w[i] * zt
        for a in range(q):
            for b in range(q):
                grad_lam[a * q + b] += z[i * q + a] * (e[i] * u[b] + res * tv[b])
    # - M Lambda H^{-1}: row a of K1 = M Lambda, solved against H (symmetric)
    for a in range(q):
        for b in range(q):
            v[b] = K1[a * q + b]
        lower_ld(L, q, q, v)
        upper_ld(L, q, q, v)
        for b in range(q):
            grad_lam[a * q + b] -= v[b]


cdef void aghq_grad(Family family, const double* y, const double* ntr, const double* z,
                    const double* zl, const double* eta, const double* mu, const double* w,
                    const double* dw, index_t nj, index_t q, const double* u, const double* L,
                    const double* d, double* pk, index_t K, double* Gk, double* ubar, double* e,
                    double* grad_lam, const double* resid) noexcept nogil:
    """AGHQ gradient pieces of one cluster: per-row e_i and the sum into d/d Lambda.

    ``pk`` holds logw_k + h(u_k) - h(u) on entry (from ``aghq_term``) and the normalized
    node weights pi_k on exit; ``d`` the node offsets u_k - u = sqrt(2) L^{-T} x_k;
    ``resid`` the node residuals from ``aghq_term`` (or NULL: evaluated again here).
    """
    cdef double Om[MAXQ * MAXQ]
    cdef double r[MAXQ]
    cdef double oz[MAXQ]
    cdef index_t i, k, a, b
    cdef double et, m, wi, dwi, res, ci, zt
    node_weights(pk, u, d, q, K, Gk)
    for i in range(nj):                      # posterior means of the residual (and times u)
        e[i] = 0.0
        for a in range(q):
            ubar[i * q + a] = 0.0
        for k in range(K):
            if resid != NULL:
                res = resid[i * K + k]
            else:
                et = eta[i]
                for a in range(q):
                    et += zl[i * q + a] * d[k * q + a]
                row_loglik(family, y[i], ntr[i], et, &m, &wi, &dwi)
                res = y[i] - m
            e[i] += pk[k] * res
            for a in range(q):
                ubar[i * q + a] += pk[k] * res * (u[a] + d[k * q + a])
                Gk[k * q + a] += res * zl[i * q + a]
    for a in range(q):
        r[a] = 0.0
    aghq_omega(L, pk, d, Gk, q, K, r, Om)    # r = gbar; Omega
    for i in range(nj):                      # r = gbar + sum_i c_i zl_i
        ci = omega_row(Om, &zl[i * q], q, NULL)
        ci *= -0.5 * dw[i]
        for a in range(q):
            r[a] += ci * zl[i * q + a]
    lower_ld(L, q, q, r)                     # t = H^{-1} r
    upper_ld(L, q, q, r)
    for i in range(nj):
        ci = omega_row(Om, &zl[i * q], q, oz)
        zt = 0.0
        for a in range(q):
            zt += zl[i * q + a] * r[a]
        ci = -0.5 * dw[i] * ci - w[i] * zt
        e[i] += ci
        res = y[i] - mu[i]
        for a in range(q):
            for b in range(q):
                grad_lam[a * q + b] += z[i * q + a] * (ubar[i * q + b] + ci * u[b] + res * r[b] - w[i] * oz[b])


# ---------------------------------------------------------------------------------
# Layer 2: the loop over clusters
# ---------------------------------------------------------------------------------

def cluster_loglik(family_code, const double[:, ::1] Z, const double[::1] y, const double[::1] ntr,
                   const double[::1] eta0, const index_t[::1] row_start, const index_t[::1] row_end,
                   const double[:, ::1] lam, const double[:, ::1] nodes, const double[::1] logw,
                   double[:, ::1] u, double[::1] ll, double[:, :, ::1] chol_out, double[:, ::1] zl,
                   double[::1] eta, double[::1] mu, double[::1] w, double[::1] dw,
                   double[:, ::1] node_d, double[::1] node_h, double[:, ::1] node_g, double[:, ::1] ubar,
                   double[::1] e, double[:, ::1] grad_lam, bint want_grad, double tol=1e-10, int maxit=200,
                   const double[::1] cweight=None, int n_threads=1):
    """Per-cluster log-likelihood contributions (without the data constants).

    Parameters
    ----------
    family_code : int or tuple
        0 binomial-logit, 1 Poisson-log, or (family, link, dispersion) as in
        ``helpers.as_family`` (``hlmext.models.links``).
    Z : (n, q)
        Random-effects design, rows sorted by cluster.
    y, ntr, eta0 : (n,)
        Response (successes or counts), trials (ones for Poisson), fixed part of eta.
    row_start, row_end : (G,)
        Rows of every cluster.
    lam : (q, q)
        Lower-triangular relative factor Lambda.
    nodes : (K, q), logw : (K,)
        Quadrature nodes and log weights; K == 1 means Laplace.
    u : (G, q)
        IN: starting modes; OUT: the modes.
    ll : (G,)
        OUT: log L_j (``-inf`` where the mode was not found).
    chol_out : (G, q, q)
        OUT: in the lower triangle the Cholesky factor of H_j at the mode (the strict upper
        triangle holds H_j).
    zl, eta, mu, w, dw, node_d, node_h, node_g, ubar, e, grad_lam
        Work arrays (n, q), (n,) x 4, (K, q), (K,), (K, q), (n, q) and the outputs of the
        gradient: e (n,) and d log L / d Lambda (q, q), written only if ``want_grad``.
    cweight : (G,), optional
        Cluster weights (sampling weights): the gradient outputs are those of
        ``sum_j cweight_j log L_j``; ``ll`` stays unweighted.
    n_threads : int
        Threads over clusters (OpenMP; one if the extension was built without it). The
        node arrays above give only their sizes: every thread has its own.

    Returns
    -------
    n_failed : int
        Clusters whose mode was not found.
    max_steps : int
        Largest number of Newton steps taken by a cluster.
    """
    cdef Family family = as_family(family_code)
    _bd.rows("cluster_loglik", Z.shape[0], row_start, row_end)
    cdef index_t n = Z.shape[0], q = Z.shape[1], G = row_start.shape[0], K = nodes.shape[0]
    cdef index_t i, j, a, b, t, tid
    cdef int max_steps = 0, n_failed = 0
    cdef double h
    cdef bint weighted = cweight is not None
    cdef int nthreads = max(1, n_threads)
    if weighted and cweight.shape[0] != G:
        raise ValueError("cweight must have one weight per cluster")
    if q > MAXQ:
        raise ValueError("at most %d random effects per level are supported" % MAXQ)
    if (y.shape[0] != n or ntr.shape[0] != n or eta0.shape[0] != n or zl.shape[0] != n
            or zl.shape[1] != q or eta.shape[0] != n or mu.shape[0] != n or w.shape[0] != n
            or dw.shape[0] != n or e.shape[0] != n):
        raise ValueError("row arrays must all have %d rows" % n)
    if (row_end.shape[0] != G or u.shape[0] != G or u.shape[1] != q or ll.shape[0] != G
            or chol_out.shape[0] != G or chol_out.shape[1] != q or chol_out.shape[2] != q):
        raise ValueError("cluster arrays must all have %d clusters" % G)
    if (lam.shape[0] != q or lam.shape[1] != q or nodes.shape[1] != q or logw.shape[0] != K
            or node_d.shape[0] != K or node_d.shape[1] != q or node_h.shape[0] != K
            or node_g.shape[0] != K or node_g.shape[1] != q or ubar.shape[0] != n or ubar.shape[1] != q
            or grad_lam.shape[0] != q or grad_lam.shape[1] != q):
        raise ValueError("inconsistent q or number of nodes")
    import numpy as np
    # per-thread node work arrays and gradient sums (thread 0 uses the caller's node arrays' sizes)
    thread_d = np.empty((nthreads, K * q))
    thread_h = np.empty((nthreads, K))
    thread_g = np.empty((nthreads, K * q))
    thread_grad = np.zeros((nthreads, q * q))
    steps_buf = np.empty(G, dtype=np.intc)
    # node residuals of one cluster per thread, for the AGHQ gradient (skipped for clusters
    # too large for a modest buffer: those evaluate their rows twice)
    cdef index_t res_rows = 0
    if want_grad and K > 1 and G > 0:
        res_rows = min(int(np.max(np.asarray(row_end) - np.asarray(row_start))), max(1, 2_000_000 // K))
    thread_res = np.empty((nthreads, max(1, res_rows * K)))
    cdef double[:, ::1] tres = thread_res
    cdef double[:, ::1] td = thread_d, th = thread_h, tg = thread_g, tgrad = thread_grad
    cdef int[::1] steps = steps_buf
    cdef const double* cw_ptr = &cweight[0] if weighted and G > 0 else NULL
    with nogil:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            for a in range(q):
                h = 0.0
                for b in range(a, q):
                    h = h + lam[b, a] * Z[i, b]
                zl[i, a] = h
        # clusters in fixed interleaved chunks: each thread always gets the same clusters, so
        # the per-thread sums (and the result) do not change from run to run
        for j in prange(G, num_threads=nthreads, schedule="static", chunksize=8):
            tid = threadid()
            steps[j] = one_cluster(family, &Z[0, 0], &y[0], &ntr[0], &eta0[0], row_start[j], row_end[j],
                                   q, &nodes[0, 0], &logw[0], K, &u[j, 0], &ll[j], &chol_out[j, 0, 0],
                                   &zl[0, 0], &eta[0], &mu[0], &w[0], &dw[0], &td[tid, 0], &th[tid, 0],
                                   &tg[tid, 0], &ubar[0, 0], &e[0], want_grad,
                                   cw_ptr[j] if weighted else 1.0, &tgrad[tid, 0], tol, maxit,
                                   &tres[tid, 0] if res_rows > 0 else NULL, res_rows)
        for j in range(G):
            if steps[j] < 0:
                n_failed += 1
            elif steps[j] > max_steps:
                max_steps = steps[j]
        if want_grad:
            for a in range(q):
                for b in range(q):
                    grad_lam[a, b] = 0.0
                    for t in range(nthreads):
                        grad_lam[a, b] += tgrad[t, a * q + b]
    return n_failed, max_steps


cdef int one_cluster(Family family, const double* Z, const double* y, const double* ntr, const double* eta0,
                     index_t r0, index_t r1, index_t q, const double* nodes, const double* logw, index_t K,
                     double* u, double* ll, double* chol, double* zl, double* eta, double* mu, double* w,
                     double* dw, double* node_d, double* node_h, double* node_g, double* ubar, double* e,
                     bint want_grad, double cw, double* grad_sum, double tol, int maxit, double* res_buf,
                     index_t res_rows) noexcept nogil:
    """Mode, log L_j and (with ``want_grad``) gradient pieces of the cluster of rows r0..r1-1.

    Writes ``ll``, the mode ``u``, its factor ``chol`` and the rows' e_i (times ``cw``), and
    adds ``cw`` times the cluster's d log L / d Lambda into ``grad_sum``. Returns the
    Newton steps of the mode, or -1 (``ll`` is then -inf).
    """
    cdef index_t nj = r1 - r0, a, i
    cdef int steps
    cdef double h, ldet
    cdef double contrib[MAXQ * MAXQ]
    cdef double* resid
    steps = cluster_mode(family, &y[r0], &ntr[r0], &eta0[r0], &zl[r0 * q], nj, q, u, chol,
                         &eta[r0], &mu[r0], &w[r0], &dw[r0], tol, maxit, &h)
    if steps < 0:
        ll[0] = -INFINITY
        return -1
    ldet = 0.0
    for a in range(q):
        ldet += log(chol[a * q + a])
    ll[0] = h - ldet
    resid = res_buf if want_grad and res_buf != NULL and nj <= res_rows else NULL
    if K > 1:
        ll[0] += aghq_term(family, &y[r0], &ntr[r0], &eta[r0], &zl[r0 * q], nj, q, u, chol, nodes, logw, K,
                           node_d, node_h, h, resid)
    if not want_grad:
        return steps
    for a in range(q * q):
        contrib[a] = 0.0
    if K > 1:
        aghq_grad(family, &y[r0], &ntr[r0], &Z[r0 * q], &zl[r0 * q], &eta[r0], &mu[r0], &w[r0], &dw[r0], nj,
                  q, u, chol, node_d, node_h, K, node_g, &ubar[r0 * q], &e[r0], contrib, resid)
    else:
        cluster_grad(&y[r0], &Z[r0 * q], &zl[r0 * q], &mu[r0], &w[r0], &dw[r0], nj, q, u, chol, &e[r0],
                     contrib)
    for a in range(q * q):
        grad_sum[a] += cw * contrib[a]
    if cw != 1.0:                            # this cluster's terms count cweight_j times
        for i in range(r0, r1):
            e[i] *= cw
    return steps


def row_values(family_code, const double[::1] y, const double[::1] ntr, const double[::1] eta):
    """Every row's ``row_loglik`` and its outputs: (loglik, mu, w, dw), each (n,).

    ``mu`` is y - l'(eta), ``w`` = -l''(eta) and ``dw`` = -l'''(eta) (``helpers.row_loglik``);
    for tests and for the Python side's checks of a family."""
    cdef Family family = as_family(family_code)
    cdef index_t i, n = y.shape[0]
    if ntr.shape[0] != n or eta.shape[0] != n:
        raise ValueError("y, ntr and eta must have the same length")
    out = np.empty((4, n))
    cdef double[:, ::1] o = out
    for i in range(n):
        o[0, i] = row_loglik(family, y[i], ntr[i], eta[i], &o[1, i], &o[2, i], &o[3, i])
    return out[0], out[1], out[2], out[3]
