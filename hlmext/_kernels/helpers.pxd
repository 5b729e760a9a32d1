# cython: language_level=3
"""Helpers shared by the compiled kernels: the small Cholesky factor and triangular solves
of the per-cluster blocks (``core``, ``gradient``, ``glmm``, ``glmm_nested``) and one row's
log-likelihood of the generalized models. Inline: each kernel compiles its own copy."""
cimport cython
from libc.math cimport exp, expm1, log, log1p, sqrt, erfc, atan2, lgamma, INFINITY
from hlmext._kernels.ordinal_row cimport NRD, row_ord

ctypedef Py_ssize_t index_t

cdef enum:
    MAXQ = 12

# families and links of ``row_loglik`` (``hlmext.models.links`` holds the same codes)
cdef enum:
    F_BINOMIAL = 0
    F_POISSON = 1
    F_GAMMA = 2
    F_GAUSSIAN = 3
    F_NB2 = 4
    F_NB1 = 5
    F_INVGAUSS = 6
    F_ORDINAL = 7        # cumulative logit / probit: y the row's category 0..K-1 (``ordinal_row``)

cdef enum:
    L_CANONICAL = -1
    L_LOGIT = 0
    L_LOG = 1
    L_PROBIT = 2
    L_CLOGLOG = 3
    L_CAUCHIT = 4
    L_IDENTITY = 5
    L_INVERSE = 6
    L_SQRT = 7
    L_INVERSE_SQUARED = 8

ctypedef struct Family:
    int family
    int link
    double phi          # dispersion: Gamma shape, Gaussian sd, NB2 alpha, NB1 delta, inverse Gaussian lambda
    double c            # its constant: lgamma(shape), log(sd), log(lambda) / 2
    const double* cuts  # F_ORDINAL: the K - 1 increasing cut points (owned by the caller's array)
    int n_cat           # F_ORDINAL: K


cdef inline Family as_family(object code) except *:
    """The kernel's family from ``code``: 0 (binomial-logit), 1 (Poisson-log), or a tuple
    (family, link, dispersion) of the codes above (link -1: the family's canonical link);
    the ordinal family is (F_ORDINAL, L_LOGIT or L_PROBIT, 1.0, cuts), ``cuts`` a contiguous
    float64 array that the caller keeps alive while the kernel runs."""
    cdef Family f
    cdef const double[::1] cuts
    f.cuts, f.n_cat = NULL, 0
    if isinstance(code, tuple) and len(code) == 4 and code[0] == F_ORDINAL:
        cuts = code[3]
        if cuts.shape[0] < 1 or code[1] not in (L_LOGIT, L_PROBIT):
            raise ValueError("the ordinal family needs the logit or probit link and at least one cut point")
        f.family, f.link, f.phi, f.cuts, f.n_cat = F_ORDINAL, code[1], 1.0, &cuts[0], cuts.shape[0] + 1
        f.c = 0.0
        return f
    if isinstance(code, tuple):
        f.family, f.link, f.phi = code[0], code[1], code[2]
    else:
        f.family, f.link, f.phi = code, L_CANONICAL, 1.0
    if f.link == L_CANONICAL:
        f.link = {F_BINOMIAL: L_LOGIT, F_GAUSSIAN: L_IDENTITY, F_GAMMA: L_INVERSE,
                  F_INVGAUSS: L_INVERSE_SQUARED}.get(f.family, L_LOG)
    f.c = 0.0
    if f.family == F_GAMMA:
        f.c = lgamma(f.phi)
    elif f.family == F_GAUSSIAN:
        f.c = log(f.phi)
    elif f.family == F_INVGAUSS:
        f.c = 0.5 * log(f.phi)
    return f


@cython.cdivision(True)
cdef inline bint mean_of(int link, double eta, double* m) noexcept nogil:
    """m[0..3] = mu and its first three derivatives in eta (the links of the families other
    than the binomial); False where eta is outside the link's domain."""
    cdef double t
    if link == L_LOG:
        t = exp(eta)
        m[0] = t; m[1] = t; m[2] = t; m[3] = t
    elif link == L_IDENTITY:
        m[0] = eta; m[1] = 1.0; m[2] = 0.0; m[3] = 0.0
    elif link == L_INVERSE:
        if eta == 0.0:
            return False
        t = 1.0 / eta
        m[0] = t; m[1] = -t * t; m[2] = 2.0 * t * t * t; m[3] = -6.0 * t * t * t * t
    elif link == L_SQRT:
        if eta < 0.0:
            return False
        m[0] = eta * eta; m[1] = 2.0 * eta; m[2] = 2.0; m[3] = 0.0
    elif link == L_INVERSE_SQUARED:
        if eta <= 0.0:
            return False
        t = 1.0 / sqrt(eta)
        m[0] = t; m[1] = -0.5 * t / eta; m[2] = 0.75 * t / (eta * eta); m[3] = -1.875 * t / (eta * eta * eta)
    else:
        return False
    return True


@cython.cdivision(True)
cdef inline void polygamma012(double x, double* p0, double* p1, double* p2) noexcept nogil:
    """digamma, trigamma and tetragamma at x > 0 (recurrence up to 10, then the asymptotic series)."""
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, r, r2
    while x < 10.0:
        r = 1.0 / x
        a0 -= r; a1 += r * r; a2 -= 2.0 * r * r * r
        x += 1.0
    r = 1.0 / x
    r2 = r * r
    p0[0] = a0 + log(x) - 0.5 * r - r2 * (1.0 / 12 - r2 * (1.0 / 120 - r2 * (1.0 / 252 - r2 / 240)))
    p1[0] = a1 + r + 0.5 * r2 + r * r2 * (1.0 / 6 - r2 * (1.0 / 30 - r2 * (1.0 / 42 - r2 / 30)))
    p2[0] = a2 - r2 - r * r2 - r2 * r2 * (0.5 - r2 * (1.0 / 6 - r2 * (1.0 / 6 - 0.3 * r2)))


@cython.cdivision(True)
cdef inline double gamma_ratio(double y, double s, double* d0, double* d1, double* d2) noexcept nogil:
    """lgamma(y + s) - lgamma(s) - y log s for a count y, and psi_k(y + s) - psi_k(s), k = 0, 1, 2
    (with ``d0`` not NULL); sums over j < y for small counts (no cancellation when s is large)."""
    cdef double v = 0.0, a = 0.0, b = 0.0, c = 0.0, t
    cdef int j
    if y < 200.0:
        for j in range(<int>y):
            v += log1p(j / s)
            if d0 != NULL:
                t = 1.0 / (s + j)
                a += t; b -= t * t; c += 2.0 * t * t * t
        if d0 != NULL:
            d0[0] = a; d1[0] = b; d2[0] = c
        return v
    if d0 != NULL:
        polygamma012(y + s, d0, d1, d2)
        polygamma012(s, &a, &b, &c)
        d0[0] -= a; d1[0] -= b; d2[0] -= c
    return lgamma(y + s) - lgamma(s) - y * log(s)


@cython.cdivision(True)
cdef inline double binomial_row(int link, double y, double n, double eta, double* L) noexcept nogil:
    """y log p + (n - y) log(1 - p) for the probit, cloglog, cauchit and log links, and in L its
    first three derivatives in eta, formed from the ratios p1 / p and p1 / (1 - p) of the
    derivatives pk of p in eta (finite where p or 1 - p is tiny but not zero)."""
    cdef double p, q, d1, r2, r3, t, a, b, v = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    if link == L_PROBIT:
        p = 0.5 * erfc(-eta / sqrt(2.0))
        q = 0.5 * erfc(eta / sqrt(2.0))
        d1 = exp(-0.5 * eta * eta) / sqrt(2.0 * 3.141592653589793)
        r2 = -eta                             # p2 / p1 and p3 / p1
        r3 = eta * eta - 1.0
    elif link == L_CLOGLOG:
        t = exp(eta)
        p = -expm1(-t)
        q = exp(-t)
        d1 = exp(eta - t)
        r2 = 1.0 - t
        r3 = (1.0 - t) * (1.0 - t) - t
    elif link == L_CAUCHIT:
        p = atan2(1.0, -eta) / 3.141592653589793
        q = atan2(1.0, eta) / 3.141592653589793
        t = 1.0 / (1.0 + eta * eta)
        d1 = t / 3.141592653589793
        r2 = -2.0 * eta * t
        r3 = (6.0 * eta * eta - 2.0) * t * t
    elif link == L_LOG:
        if eta > 0.0 or (eta == 0.0 and y < n):
            return -INFINITY
        p = exp(eta)
        q = -expm1(eta)
        d1 = p
        r2 = 1.0
        r3 = 1.0
    else:
        return -INFINITY
    if y > 0.0:
        if p <= 0.0:
            return -INFINITY
        a = d1 / p
        v += y * log(p)
        s1 += y * a
        s2 -= y * a * a
        s3 += 2.0 * y * a * a * a
    if n - y > 0.0:
        if q <= 0.0:
            return -INFINITY
        b = d1 / q
        v += (n - y) * log(q)
        s1 -= (n - y) * b
        s2 -= (n - y) * b * b
        s3 -= 2.0 * (n - y) * b * b * b
    # with lk the derivatives of l in p: s1 = l1 p1, s2 = l2 p1^2, s3 = l3 p1^3
    L[0] = s1
    L[1] = s2 + s1 * r2                       # l2 p1^2 + l1 p2
    L[2] = s3 + 3.0 * s2 * r2 + s1 * r3       # l3 p1^3 + 3 l2 p1 p2 + l1 p3
    return v


@cython.cdivision(True)
cdef inline double row_loglik(Family f, double y, double n, double eta, double* mu, double* w,
                              double* dw) noexcept nogil:
    """One row's log-likelihood in eta, less the data constant the caller adds (log C(n, y),
    -log y!, -log y, -log(2 pi) / 2: what depends on neither eta nor the dispersion);
    ``-inf`` outside the link's domain.

    A binomial row has ``n`` trials; any other row counts ``n`` times (its weight, 1 without
    sampling weights). If ``mu`` is not NULL, the derivatives of l(eta) there:
    ``mu[0] = y - l'(eta)`` (the mean, for the canonical links, where l' = y - mu: callers
    take ``y - mu[0]`` as the score), ``w[0] = -l''(eta)`` (the observed weight: the modes'
    Newton steps, the Laplace determinant and the quadrature's scale all use it) and
    ``dw[0] = -l'''(eta)``.
    """
    cdef double e, p, pc, sp, v, l1, l2, l3, s, g0, g1, g2, k
    cdef double L[3]
    cdef double m[4]
    cdef double od[NRD]
    if f.family == F_BINOMIAL and f.link == L_LOGIT:
        if eta >= 0.0:
            e = exp(-eta)
            p = 1.0 / (1.0 + e)
            pc = e / (1.0 + e)
            sp = eta + log1p(e)
        else:
            e = exp(eta)
            p = e / (1.0 + e)
            pc = 1.0 / (1.0 + e)
            sp = log1p(e)
        if mu != NULL:
            mu[0] = n * p
            w[0] = n * p * pc
            dw[0] = w[0] * (pc - p)
        return y * eta - n * sp
    if f.family == F_POISSON and f.link == L_LOG:
        e = exp(eta)
        if mu != NULL:
            mu[0] = y - n * (y - e)
            w[0] = n * e
            dw[0] = n * e
        return n * (y * eta - e)
    if f.family == F_NB2 and f.link == L_LOG:        # closed forms: s = 1 / alpha, p = s / (s + mu)
        s = 1.0 / f.phi
        e = exp(eta)
        v = gamma_ratio(y, s, NULL, NULL, NULL) + y * eta - (s + y) * log1p(e / s)
        if mu != NULL:
            p = s / (s + e)
            mu[0] = y - n * (y - e) * p
            w[0] = n * (s + y) * e * p / (s + e)
            dw[0] = w[0] * (s - e) / (s + e)
        return n * v
    if f.family == F_ORDINAL:                       # y the category; n counts the row
        if mu == NULL:
            return n * row_ord(0 if f.link == L_LOGIT else 1, <int> y, f.n_cat, f.cuts, eta, NULL)
        v = row_ord(0 if f.link == L_LOGIT else 1, <int> y, f.n_cat, f.cuts, eta, od)
        mu[0] = y - n * od[0]
        w[0] = n * od[1]
        dw[0] = n * od[2]
        return n * v
    if f.family == F_BINOMIAL:
        v = binomial_row(f.link, y, n, eta, L)
        if v == -INFINITY:
            return v
        l1 = L[0]; l2 = L[1]; l3 = L[2]      # derivatives in eta already: mu' = 1, mu'' = mu''' = 0
        m[1] = 1.0; m[2] = 0.0; m[3] = 0.0
        k = 1.0                       # n counts the trials, not the row
    else:
        if not mean_of(f.link, eta, m):
            return -INFINITY
        k = n
        if f.family != F_GAUSSIAN and (m[0] < 0.0 or (m[0] == 0.0 and (y > 0.0 or f.family != F_POISSON))):
            return -INFINITY
        if f.family == F_POISSON:
            v = (y * log(m[0]) if y > 0.0 else 0.0) - m[0]
            l1 = y / m[0] - 1.0
            l2 = -y / (m[0] * m[0])
            l3 = 2.0 * y / (m[0] * m[0] * m[0])
        elif f.family == F_GAMMA:
            s = y / m[0]
            v = f.phi * (log(f.phi) + log(s) - s) - f.c
            l1 = f.phi * (s - 1.0) / m[0]
            l2 = f.phi * (1.0 - 2.0 * s) / (m[0] * m[0])
            l3 = f.phi * (6.0 * s - 2.0) / (m[0] * m[0] * m[0])
        elif f.family == F_GAUSSIAN:
            s = (y - m[0]) / f.phi
            v = -0.5 * s * s - f.c
            l1 = s / f.phi
            l2 = -1.0 / (f.phi * f.phi)
            l3 = 0.0
        elif f.family == F_NB2:
            s = 1.0 / f.phi
            v = gamma_ratio(y, s, NULL, NULL, NULL) - (s + y) * log1p(m[0] / s)
            if y > 0.0:
                v += y * log(m[0])
            l1 = y / m[0] - (s + y) / (s + m[0])
            l2 = (s + y) / ((s + m[0]) * (s + m[0])) - y / (m[0] * m[0])
            l3 = 2.0 * y / (m[0] * m[0] * m[0]) - 2.0 * (s + y) / ((s + m[0]) * (s + m[0]) * (s + m[0]))
        elif f.family == F_NB1:
            s = m[0] / f.phi
            v = gamma_ratio(y, s, &g0, &g1, &g2) - (s + y) * log1p(f.phi)
            if y > 0.0:
                v += y * log(m[0])
            l1 = (g0 - log1p(f.phi)) / f.phi
            l2 = g1 / (f.phi * f.phi)
            l3 = g2 / (f.phi * f.phi * f.phi)
        elif f.family == F_INVGAUSS:
            s = (y - m[0]) / m[0]
            v = f.c - 0.5 * f.phi * s * s / y
            e = m[0] * m[0]
            l1 = f.phi * (y / m[0] - 1.0) / e
            l2 = f.phi * (2.0 - 3.0 * y / m[0]) / (e * m[0])
            l3 = f.phi * (12.0 * y / m[0] - 6.0) / (e * e)
        else:
            return -INFINITY
    if mu != NULL:
        mu[0] = y - k * l1 * m[1]
        w[0] = -k * (l2 * m[1] * m[1] + l1 * m[2])
        dw[0] = -k * (l3 * m[1] * m[1] * m[1] + 3.0 * l2 * m[1] * m[2] + l1 * m[3])
    return k * v


cdef inline int chol_ld(double* a, index_t q, index_t lda) noexcept nogil:
    """In-place lower Cholesky factor of the q x q block at ``a`` (leading dimension lda)."""
    cdef index_t i, j, t
    cdef double s
    for j in range(q):
        s = a[j * lda + j]
        for t in range(j):
            s -= a[j * lda + t] * a[j * lda + t]
        if not s > 0.0:
            return j + 1
        s = sqrt(s)
        a[j * lda + j] = s
        for i in range(j + 1, q):
            s = a[i * lda + j]
            for t in range(j):
                s -= a[i * lda + t] * a[j * lda + t]
            a[i * lda + j] = s / a[j * lda + j]
    return 0


cdef inline void lower_solve(const double* L, index_t ldl, index_t q, double* b, index_t ncol,
                             index_t ldb) noexcept nogil:
    """b <- L^{-1} b for L lower triangular (row-major, ld ``ldl``); b is q x ncol (ld ``ldb``)."""
    cdef index_t i, t, c
    cdef double d
    for i in range(q):
        d = L[i * ldl + i]
        for t in range(i):
            for c in range(ncol):
                b[i * ldb + c] -= L[i * ldl + t] * b[t * ldb + c]
        for c in range(ncol):
            b[i * ldb + c] /= d


cdef inline void lower_t_solve(const double* L, index_t ldl, index_t q, double* b, index_t ncol,
                               index_t ldb) noexcept nogil:
    """b <- L^{-T} b for L lower triangular (row-major, ld ``ldl``); b is q x ncol (ld ``ldb``)."""
    cdef index_t i, t, c
    cdef double w, d
    for i in range(q - 1, -1, -1):
        for t in range(i + 1, q):
            w = L[t * ldl + i]
            if w == 0.0:
                continue
            for c in range(ncol):
                b[i * ldb + c] -= w * b[t * ldb + c]
        d = L[i * ldl + i]
        for c in range(ncol):
            b[i * ldb + c] /= d


cdef inline void lower_ld(const double* L, index_t q, index_t lda, double* b) noexcept nogil:
    """b <- L^{-1} b for one vector b (L at leading dimension lda)."""
    lower_solve(L, lda, q, b, 1, 1)


cdef inline void upper_ld(const double* L, index_t q, index_t lda, double* b) noexcept nogil:
    """b <- L^{-T} b for one vector b (L at leading dimension lda)."""
    lower_t_solve(L, lda, q, b, 1, 1)
