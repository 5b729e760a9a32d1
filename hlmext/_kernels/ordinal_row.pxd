# cython: language_level=3
"""One row of the ordinal (cumulative logit / probit) model: l = log(F(A) - F(B)) with
A = c_k - eta, B = c_{k-1} - eta, and its derivatives (the notation of ``ordinal.pyx``).
Inline: the one-level ordinal kernel and ``helpers.row_loglik`` (the nested kernels) each
compile their own copy."""
from libc.math cimport exp, log, log1p, expm1, erfc, fabs

cdef enum:
    NRD = 8          # per-row derivatives: score, w, dw/deta, dl/dA, dw/dA, dw/dB, dscore/dA, dscore/dB

cdef inline double log_cdf(int link, double x) noexcept nogil:
    """log F(x) (link 0 logit, 1 probit)."""
    cdef double r, s
    if link == 0:
        if x >= 0.0:
            return -log1p(exp(-x))
        return x - log1p(exp(x))
    if x > 5.0:
        return log1p(-0.5 * erfc(x * 0.7071067811865476))
    if x > -30.0:
        return log(0.5 * erfc(-x * 0.7071067811865476))
    r = 1.0 / (x * x)                         # Mills-ratio series: ample beyond -30
    s = 1.0 - r * (1.0 - 3.0 * r * (1.0 - 5.0 * r * (1.0 - 7.0 * r)))
    return -0.5 * x * x - log(-x) - 0.9189385332046727 + log(s)


cdef inline double log_pdf(int link, double x) noexcept nogil:
    """log f(x)."""
    if link == 0:
        return log_cdf(0, x) + log_cdf(0, -x)
    return -0.5 * x * x - 0.9189385332046727


cdef inline double log1mexp(double x) noexcept nogil:
    """log(1 - e^x) for x <= 0."""
    if x > -0.6931471805599453:
        return log(-expm1(x))
    return log1p(-exp(x))


cdef inline void cdf_pair(int link, double x, double* F, double* Fc, double* f) noexcept nogil:
    """F(x), 1 - F(x) (each accurate in its own tail) and f(x)."""
    cdef double e
    if link == 0:
        e = exp(-fabs(x))
        if x >= 0.0:
            F[0] = 1.0 / (1.0 + e)
            Fc[0] = e / (1.0 + e)
        else:
            F[0] = e / (1.0 + e)
            Fc[0] = 1.0 / (1.0 + e)
        f[0] = F[0] * Fc[0]
        return
    if x >= 0.0:
        Fc[0] = 0.5 * erfc(x * 0.7071067811865476)
        F[0] = 1.0 - Fc[0]
    else:
        F[0] = 0.5 * erfc(-x * 0.7071067811865476)
        Fc[0] = 1.0 - F[0]
    f[0] = exp(-0.5 * x * x - 0.9189385332046727)


cdef inline double log_diff(int link, bint top, bint bottom, double A, double B) noexcept nogil:
    """log(F(A) - F(B)) on the log scale of the tail A and B lie in (rows far in a tail)."""
    if bottom:
        return log_cdf(link, A)
    if top:
        return log_cdf(link, -B)
    if A <= 0.0:
        return log_cdf(link, A) + log1mexp(log_cdf(link, B) - log_cdf(link, A))
    if B >= 0.0:
        return log_cdf(link, -B) + log1mexp(log_cdf(link, -A) - log_cdf(link, -B))
    return log(exp(log_cdf(link, A)) - exp(log_cdf(link, B)))


cdef inline double row_ord(int link, int k, int K, const double* cuts, double eta, double* d) noexcept nogil:
    """l = log(F(A) - F(B)) of a row in category k at eta; the NRD derivatives into ``d`` if not NULL.

    F(A) - F(B) is formed from the CDF or its complement, whichever is accurate; when it is
    below 1e-280 (a row far in a tail) the logs are taken first (``log_diff``).
    """
    cdef bint top = k >= K - 1, bottom = k <= 0
    cdef double A = 0.0, B = 0.0, D, logD, a = 0.0, a1 = 0.0, a2 = 0.0, b = 0.0, b1 = 0.0, b2 = 0.0, s
    cdef double FA = 1.0, FcA = 0.0, fA = 0.0, FB = 0.0, FcB = 1.0, fB = 0.0
    if not top:
        A = cuts[k] - eta
        cdf_pair(link, A, &FA, &FcA, &fA)
    if not bottom:
        B = cuts[k - 1] - eta
        cdf_pair(link, B, &FB, &FcB, &fB)
    D = FcB - FcA if (not bottom and B >= 0.0) else FA - FB
    if D > 1e-280:
        logD = log(D)
        if d == NULL:
            return logD
        a, b = fA / D, fB / D
    else:
        logD = log_diff(link, top, bottom, A, B)
        if d == NULL:
            return logD
        if not top:
            a = exp(log_pdf(link, A) - logD)
        if not bottom:
            b = exp(log_pdf(link, B) - logD)
    if link == 0:                            # f'/f = 1 - 2F, f''/f = (1 - 2F)^2 - 2f
        a1 = a * (FcA - FA)
        a2 = a * ((FcA - FA) * (FcA - FA) - 2.0 * fA)
        b1 = b * (FcB - FB)
        b2 = b * ((FcB - FB) * (FcB - FB) - 2.0 * fB)
    else:                                    # f'/f = -x, f''/f = x^2 - 1
        a1, a2 = -A * a, (A * A - 1.0) * a
        b1, b2 = -B * b, (B * B - 1.0) * b
    s = a - b
    d[0] = -s
    d[1] = s * s - a1 + b1
    d[3] = a
    d[4] = 2.0 * s * (a1 - a * s) - a2 + a * (a1 - b1)
    d[5] = 2.0 * s * (b * s - b1) + b2 - b * (a1 - b1)
    d[2] = -(d[4] + d[5])
    d[6] = a * s - a1
    d[7] = b1 - b * s
    return logD
