# cython: language_level=3
"""One cluster's Laplace and adaptive Gauss-Hermite integral: the steps that do not depend
on the rows' likelihood.

A cluster's integrand is exp(h(u)) with h(u) = -u'u/2 + sum_i l_i(eta0_i + zl_i'u) for
spherical random effects u; the kernels of every family (``glmm.pyx``) and of the ordinal
models (``ordinal.pyx``) differ only in l_i. What they share is here: the prior's part of h,
the Newton direction, the quadrature nodes around the mode and the log of the weighted sum
over them, and the posterior-weighted matrices of the AGHQ gradient (see ``docs/math.md``).
H is q x q row-major; L its lower Cholesky factor (``chol_ld``).
"""
from libc.math cimport exp, log, sqrt, fabs, INFINITY

from hlmext._kernels.helpers cimport MAXQ, index_t, lower_ld, upper_ld


cdef inline double prior_part(const double* u, index_t q, double* g, double* H) noexcept nogil:
    """-u'u/2; with ``g`` (not NULL) also sets g = -u and H = I, the prior's derivatives."""
    cdef index_t a, b
    cdef double h = 0.0
    for a in range(q):
        h -= 0.5 * u[a] * u[a]
        if g != NULL:
            g[a] = -u[a]
            for b in range(q):
                H[a * q + b] = 1.0 if a == b else 0.0
    return h


cdef inline void mirror_lower(double* H, index_t q) noexcept nogil:
    """Copy the lower triangle of H into its upper triangle."""
    cdef index_t a, b
    for a in range(q):
        for b in range(a + 1, q):
            H[a * q + b] = H[b * q + a]


cdef inline double newton_direction(const double* L, const double* g, index_t q, double* step) noexcept nogil:
    """step = H^{-1} g from the factor L of H; returns max_a |step_a|."""
    cdef index_t a
    cdef double smax = 0.0
    for a in range(q):
        step[a] = g[a]
    lower_ld(L, q, q, step)
    upper_ld(L, q, q, step)
    for a in range(q):
        if fabs(step[a]) > smax:
            smax = fabs(step[a])
    return smax


cdef inline void node_offsets(const double* L, const double* u, const double* nodes, index_t q, index_t K,
                              double* d, double* hk) noexcept nogil:
    """d_k = sqrt(2) L^{-T} x_k (the nodes around the mode u) and hk_k = the prior's part at u + d_k."""
    cdef index_t k, a
    cdef double s
    for k in range(K):
        for a in range(q):
            d[k * q + a] = sqrt(2.0) * nodes[k * q + a]
        upper_ld(L, q, q, &d[k * q])
        s = 0.0
        for a in range(q):
            s -= 0.5 * (u[a] + d[k * q + a]) * (u[a] + d[k * q + a])
        hk[k] = s


cdef inline double log_weighted_sum(double* hk, const double* logw, double h, index_t K) noexcept nogil:
    """log sum_k exp(logw_k + hk_k - h); hk becomes logw_k + hk_k - h."""
    cdef index_t k
    cdef double top = -INFINITY, s = 0.0
    for k in range(K):
        hk[k] += logw[k] - h
        if hk[k] > top:
            top = hk[k]
    for k in range(K):
        s += exp(hk[k] - top)
    return top + log(s)


cdef inline void node_weights(double* pk, const double* u, const double* d, index_t q, index_t K,
                              double* Gk) noexcept nogil:
    """pk: log weights in, the normalized posterior weights pi_k out; Gk_k = -(u + d_k), the
    prior's part of the score at every node (the rows' parts are added by the caller)."""
    cdef index_t k, a
    cdef double top = -INFINITY, total = 0.0
    for k in range(K):
        if pk[k] > top:
            top = pk[k]
    for k in range(K):
        pk[k] = exp(pk[k] - top)
        total += pk[k]
    for k in range(K):
        pk[k] /= total
        for a in range(q):
            Gk[k * q + a] = -(u[a] + d[k * q + a])


cdef inline void inverse_from_factor(const double* L, index_t q, double* out) noexcept nogil:
    """out = H^{-1}, column by column, from the factor L of H."""
    cdef double v[MAXQ]
    cdef index_t a, b
    for b in range(q):
        for a in range(q):
            v[a] = 1.0 if a == b else 0.0
        lower_ld(L, q, q, v)
        upper_ld(L, q, q, v)
        for a in range(q):
            out[a * q + b] = v[a]


cdef inline void aghq_omega(const double* L, const double* pk, const double* d, const double* Gk,
                            index_t q, index_t K, double* gbar, double* Om) noexcept nogil:
    """The AGHQ gradient's posterior matrices of one cluster.

    gbar = sum_k pi_k G_k (added to ``gbar``) and Omega = L^{-T} N L^{-1} + H^{-1}, where
    N is the symmetric part (from its lower triangle) of L'M and M = sum_k pi_k d_k (L^{-1} G_k)'.
    """
    cdef double Mm[MAXQ * MAXQ]
    cdef double Xm[MAXQ * MAXQ]
    cdef double v[MAXQ]
    cdef index_t k, a, b, c
    cdef double p
    for a in range(q):
        for b in range(q):
            Mm[a * q + b] = 0.0
    for k in range(K):
        for a in range(q):
            gbar[a] += pk[k] * Gk[k * q + a]
            v[a] = Gk[k * q + a]
        lower_ld(L, q, q, v)
        for a in range(q):
            for b in range(q):
                Mm[a * q + b] += pk[k] * d[k * q + a] * v[b]
    for a in range(q):                       # N = L'M, symmetrized from its lower triangle
        for b in range(a + 1):
            p = 0.0
            for c in range(a, q):
                p += L[c * q + a] * Mm[c * q + b]
            Xm[a * q + b] = p
    mirror_lower(Xm, q)
    for b in range(q):                       # L^{-T} N, column by column (stored transposed)
        for a in range(q):
            v[a] = Xm[a * q + b]
        upper_ld(L, q, q, v)
        for a in range(q):
            Mm[b * q + a] = v[a]
    inverse_from_factor(L, q, Om)
    for b in range(q):                       # + (L^{-T} (L^{-T} N)')' = L^{-T} N L^{-1}
        for a in range(q):
            v[a] = Mm[a * q + b]
        upper_ld(L, q, q, v)
        for a in range(q):
            Om[a * q + b] += v[a]


cdef inline double omega_row(const double* Om, const double* z, index_t q, double* oz) noexcept nogil:
    """oz = Omega z (with ``oz`` not NULL); returns z' Omega z."""
    cdef index_t a, b
    cdef double p, s = 0.0
    for a in range(q):
        p = 0.0
        for b in range(q):
            p += Om[a * q + b] * z[b]
        if oz != NULL:
            oz[a] = p
        s += z[a] * p
    return s
