# cython: language_level=3
"""Helpers shared by the compiled kernels: the small Cholesky factor and triangular solves
of the per-cluster blocks (``core``, ``gradient``, ``glmm``, ``glmm_nested``) and one row's
log-likelihood of the generalized models. Inline: each kernel compiles its own copy."""
from libc.math cimport exp, log, log1p, sqrt

ctypedef Py_ssize_t index_t

cdef enum:
    MAXQ = 12


cdef inline double row_loglik(int family, double y, double n, double eta, double* mu, double* w,
                              double* dw) noexcept nogil:
    """y eta - b(eta) for one row; mean, weight b''(eta) and its derivative if ``mu`` is not NULL."""
    cdef double e, p, pc, sp
    if family == 0:
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
    e = exp(eta)
    if mu != NULL:
        mu[0] = e
        w[0] = e
        dw[0] = e
    return y * eta - e


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
