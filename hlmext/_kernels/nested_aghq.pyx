# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled adaptive Gauss-Hermite quadrature of a generalized mixed model with two nested
levels (Stata's multilevel ``mvaghermite``; Rabe-Hesketh, Skrondal & Pickles 2005, J.
Econometrics 128). Notation as in ``glmm.pyx``: u ~ N(0, I), eta = eta0 + zl' u with
zl = Lambda' z, and h(u) = log p(y | u) - |u|^2 / 2 (no data constants).

Outer cluster k (q2 effects v) holds inner clusters c (q1 effects u_c each):

    L_k = int phi(v) prod_c [ int phi(u_c) prod_{i in c} p(y_i | v, u_c) du_c ] dv.

The outer integral is a product rule of K2 points centred at the joint conditional mode
v_k and scaled by L_k^{-T}, L_k the Cholesky factor of the curvature of v once the inner
effects are eliminated (the caller takes both from the Laplace kernel ``glmm_nested``). At
every outer node v_m, every inner integral is its own adaptive rule of K1 points, centred
at the inner mode given v_m and scaled by the inner curvature there (found here by Newton
iterations from the joint mode). With one point per level this is exactly the Laplace
approximation of the joint integral.
"""
from libc.math cimport exp, log, fabs, sqrt, INFINITY, isfinite
from cython.parallel cimport prange, threadid

from hlmext._kernels.helpers cimport MAXQ, index_t, Family, as_family, row_loglik, chol_ld, lower_ld, upper_ld

cdef double SQRT2 = 1.4142135623730951

# the family argument of ``helpers.row_loglik``, in one place: its type, and (in
# ``two_level_loglik``) its conversion from the Python family code
ctypedef Family family_t


cdef inline double row_value(family_t family, double y, double n, double eta, double* mu, double* w) noexcept nogil:
    """One row's log-density without constants; mean and weight if ``mu`` is not NULL
    (the only call of ``row_loglik`` in this module)."""
    cdef double dw
    return row_loglik(family, y, n, eta, mu, w, &dw)


cdef double inner_eval(family_t family, const double* y, const double* ntr, const double* off,
                       const double* z1, index_t r0, index_t r1, index_t q, const double* u,
                       double* g, double* H) noexcept nogil:
    """h(u) of one inner cluster given the outer effects (in ``off``); its gradient and
    H = -h'' if ``g`` is not NULL."""
    cdef index_t i, a, b
    cdef double h = 0.0, et, m = 0.0, wi = 0.0, r
    if g != NULL:
        for a in range(q):
            g[a] = -u[a]
            for b in range(q):
                H[a * q + b] = 1.0 if a == b else 0.0
    for a in range(q):
        h -= 0.5 * u[a] * u[a]
    for i in range(r0, r1):
        et = off[i]
        for a in range(q):
            et += z1[i * q + a] * u[a]
        if g == NULL:
            h += row_value(family, y[i], ntr[i], et, NULL, NULL)
            continue
        h += row_value(family, y[i], ntr[i], et, &m, &wi)
        r = y[i] - m
        for a in range(q):
            g[a] += r * z1[i * q + a]
            for b in range(a + 1):
                H[a * q + b] += wi * z1[i * q + a] * z1[i * q + b]
    if g != NULL:
        for a in range(q):
            for b in range(a + 1, q):
                H[a * q + b] = H[b * q + a]
    return h


cdef double inner_integral(family_t family, const double* y, const double* ntr, const double* off,
                           const double* z1, index_t r0, index_t r1, index_t q, const double* u0,
                           const double* nodes, const double* logw, index_t K, double* vals,
                           double tol, int maxit) noexcept nogil:
    """log of one inner cluster's integral given the outer effects: Newton iterations
    (with step halving) from ``u0`` to the mode, then the adaptive rule (``vals``: scratch
    of K values). -inf on failure."""
    cdef double u[MAXQ]
    cdef double g[MAXQ]
    cdef double step[MAXQ]
    cdef double trial[MAXQ]
    cdef double L[MAXQ * MAXQ]
    cdef double gt[MAXQ]
    cdef double Ht[MAXQ * MAXQ]
    cdef double h, ht, smax, t, top, s, ldet
    cdef index_t a, b, k
    cdef int it, halvings
    cdef bint done = False
    for a in range(q):
        u[a] = u0[a]
    h = inner_eval(family, y, ntr, off, z1, r0, r1, q, u, g, L)
    for it in range(maxit):
        if chol_ld(L, q, q) != 0:
            return -INFINITY
        for a in range(q):
            step[a] = g[a]
        lower_ld(L, q, q, step)
        upper_ld(L, q, q, step)
        smax = 0.0
        for a in range(q):
            if fabs(step[a]) > smax:
                smax = fabs(step[a])
        if smax < tol:
            for a in range(q):
                u[a] += step[a]
            inner_eval(family, y, ntr, off, z1, r0, r1, q, u, g, L)
            if chol_ld(L, q, q) != 0:
                return -INFINITY
            done = True
            break
        # the full step is evaluated with its gradient and H (it is nearly always taken);
        # halved steps with the value only
        t = 1.0
        for halvings in range(60):
            for a in range(q):
                trial[a] = u[a] + t * step[a]
            if halvings == 0:
                ht = inner_eval(family, y, ntr, off, z1, r0, r1, q, trial, gt, Ht)
            else:
                ht = inner_eval(family, y, ntr, off, z1, r0, r1, q, trial, NULL, NULL)
            if isfinite(ht) and ht >= h - 1e-13 * (1.0 + fabs(h)):
                break
            t *= 0.5
        else:
            return -INFINITY
        for a in range(q):
            u[a] = trial[a]
        if halvings == 0:
            h = ht
            for a in range(q):
                g[a] = gt[a]
            for a in range(q * q):
                L[a] = Ht[a]
        else:
            h = inner_eval(family, y, ntr, off, z1, r0, r1, q, u, g, L)
    if not done:
        return -INFINITY
    ldet = 0.0
    for a in range(q):
        ldet += log(L[a * q + a])
    # nodes u + sqrt(2) L^{-T} x_k; log-sum-exp of logw_k + h there
    top = -INFINITY
    for k in range(K):
        for a in range(q):
            step[a] = SQRT2 * nodes[k * q + a]
        upper_ld(L, q, q, step)
        for a in range(q):
            trial[a] = u[a] + step[a]
        vals[k] = logw[k] + inner_eval(family, y, ntr, off, z1, r0, r1, q, trial, NULL, NULL)
        if vals[k] > top:
            top = vals[k]
    if not isfinite(top):
        return -INFINITY
    s = 0.0
    for k in range(K):
        s += exp(vals[k] - top)
    return top + log(s) - ldet


cdef double outer_cluster(family_t family, const double* y, const double* ntr, const double* eta0,
                          const double* z1, const double* z2, index_t q1, index_t q2, const index_t* row_start,
                          index_t c0, index_t c1, const double* v_mode, const double* v_chol,
                          const double* u_mode, const double* nodes1, const double* logw1, index_t K1,
                          const double* nodes2, const double* logw2, index_t K2, double* off, double* vals,
                          double* terms, double tol, int maxit) noexcept nogil:
    """log L_k of the outer cluster holding inner clusters c0:c1: the outer rule, and at each
    of its nodes every inner cluster's adaptive rule (``off``: its rows' eta0 + z2' v)."""
    cdef double v[MAXQ]
    cdef double top = -INFINITY, s = 0.0, term, ldet = 0.0
    cdef index_t m, a, i, c
    for a in range(q2):
        ldet += log(v_chol[a * q2 + a])
    for m in range(K2):
        for a in range(q2):
            v[a] = SQRT2 * nodes2[m * q2 + a]
        upper_ld(v_chol, q2, q2, v)
        term = logw2[m]
        for a in range(q2):
            v[a] += v_mode[a]
            term -= 0.5 * v[a] * v[a]
        for i in range(row_start[c0], row_start[c1]):
            off[i] = eta0[i]
            for a in range(q2):
                off[i] += z2[i * q2 + a] * v[a]
        for c in range(c0, c1):
            term += inner_integral(family, y, ntr, off, z1, row_start[c], row_start[c + 1], q1, &u_mode[c * q1],
                                   nodes1, logw1, K1, vals, tol, maxit)
        terms[m] = term
        if term > top:
            top = term
    if not isfinite(top):
        return -INFINITY
    for m in range(K2):
        s += exp(terms[m] - top)
    return top + log(s) - ldet


def two_level_loglik(object family_code, const double[:, ::1] z1, const double[:, ::1] z2, const double[::1] y,
                     const double[::1] ntr, const double[::1] eta0, const index_t[::1] row_start,
                     const index_t[::1] child_start, const double[:, ::1] v_mode, const double[:, :, ::1] v_chol,
                     const double[:, ::1] u_mode, const double[:, ::1] nodes1, const double[::1] logw1,
                     const double[:, ::1] nodes2, const double[::1] logw2, double[::1] ll,
                     double tol=1e-10, int maxit=100, int n_threads=1):
    """Adaptive Gauss-Hermite log-likelihood (without the data constants) of every outer cluster.

    Parameters
    ----------
    family_code
        The family, as the other GLMM kernels take it.
    z1, z2 : (n, q1), (n, q2)
        Lambda' z of every row for the inner and the outer level; rows sorted by inner
        cluster, inner clusters sorted by outer cluster.
    y, ntr, eta0 : (n,)
        Response, trials (1 for Poisson) and the fixed part of eta, in that order.
    row_start : (G1 + 1,)
        Inner cluster c holds rows row_start[c]:row_start[c + 1].
    child_start : (G2 + 1,)
        Outer cluster k holds inner clusters child_start[k]:child_start[k + 1].
    v_mode, v_chol : (G2, q2), (G2, q2, q2)
        The outer centre and the lower Cholesky factor of its curvature (inner effects
        eliminated), from the Laplace kernel at the same parameters.
    u_mode : (G1, q1)
        The inner joint modes: the start of every inner Newton iteration.
    nodes1, logw1, nodes2, logw2
        Product rules of each level (``hlmext.models.quadrature.gauss_hermite_rule``).
    ll : (G2,)
        OUT: log L_k.
    n_threads : int
        Threads of the loop over outer clusters (each cluster is computed the same way on
        any thread, so the result does not depend on them).

    Returns
    -------
    int
        The number of outer clusters whose integral failed (an inner mode not found).
    """
    cdef family_t family = as_family(family_code)
    cdef index_t n = y.shape[0], q1 = z1.shape[1], q2 = z2.shape[1]
    cdef index_t G1 = row_start.shape[0] - 1, G2 = child_start.shape[0] - 1
    cdef index_t K1 = nodes1.shape[0], K2 = nodes2.shape[0]
    cdef index_t k, c
    cdef int failed = 0
    if q1 > MAXQ or q2 > MAXQ or q1 < 1 or q2 < 1:
        raise ValueError("two_level_loglik: each level needs 1 to %d effects" % MAXQ)
    if (z1.shape[0] != n or z2.shape[0] != n or ntr.shape[0] != n or eta0.shape[0] != n
            or G1 < 0 or G2 < 0 or row_start[0] != 0 or row_start[G1] != n or child_start[0] != 0
            or child_start[G2] != G1 or u_mode.shape[0] != G1 or u_mode.shape[1] != q1
            or v_mode.shape[0] != G2 or v_mode.shape[1] != q2 or v_chol.shape[0] != G2
            or v_chol.shape[1] != q2 or v_chol.shape[2] != q2 or ll.shape[0] != G2
            or nodes1.shape[1] != q1 or nodes2.shape[1] != q2 or logw1.shape[0] != K1
            or logw2.shape[0] != K2):
        raise ValueError("two_level_loglik: inconsistent shapes")
    for c in range(G1):
        if row_start[c + 1] < row_start[c]:
            raise ValueError("two_level_loglik: row_start must be non-decreasing")
    for k in range(G2):
        if child_start[k + 1] < child_start[k]:
            raise ValueError("two_level_loglik: child_start must be non-decreasing")
    import numpy as np
    cdef int nthreads = max(1, n_threads)
    off_buf = np.empty(n)
    vals_buf = np.empty((nthreads, max(K1, 1)))
    terms_buf = np.empty((nthreads, max(K2, 1)))
    cdef double[::1] off = off_buf
    cdef double[:, ::1] vals = vals_buf, terms = terms_buf
    cdef int tid
    with nogil:
        # each outer cluster owns its rows of ``off`` and is computed the same way on any thread
        for k in prange(G2, num_threads=nthreads, schedule="dynamic"):
            tid = threadid()
            ll[k] = outer_cluster(family, &y[0], &ntr[0], &eta0[0], &z1[0, 0], &z2[0, 0], q1, q2,
                                  &row_start[0], child_start[k], child_start[k + 1], &v_mode[k, 0],
                                  &v_chol[k, 0, 0], &u_mode[0, 0], &nodes1[0, 0], &logw1[0], K1,
                                  &nodes2[0, 0], &logw2[0], K2, &off[0], &vals[tid, 0], &terms[tid, 0],
                                  tol, maxit)
        for k in range(G2):
            if not isfinite(ll[k]):
                failed += 1
    return failed
