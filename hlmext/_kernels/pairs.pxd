# cython: language_level=3
"""Products of one cluster's block with a column block of the random effects, shared by the
gradient kernels of the nested chain (``gradient``) and of the sparse crossed coupling
(``crossed``). Inline: each kernel compiles its own copy."""
from hlmext._kernels.helpers cimport index_t


cdef inline void trace_pair(const double* Sg, index_t lds, const double* B, index_t ldb,
                            const double* lam_c, index_t qk, index_t qc, double* Gk,
                            const double* lam_k, double* Gc, double* tmp) noexcept nogil:
    """For the pair (cluster k, column block c) with ``B = Z_k'Z_c`` (qk x qc) and
    ``Sg = Sigma_k,c``: ``Gk += Sg Lambda_c' B'`` and ``Gc += Sg' Lambda_k' B``."""
    cdef index_t a, b, c, e
    cdef double s
    # tmp = Lambda_c' B'  (qc x qk): tmp[b, c] = sum_e lam_c[e, b] B[c, e]
    for b in range(qc):
        for c in range(qk):
            s = 0.0
            for e in range(b, qc):
                s += lam_c[e * qc + b] * B[c * ldb + e]
            tmp[b * qk + c] = s
    for a in range(qk):
        for c in range(qk):
            s = 0.0
            for b in range(qc):
                s += Sg[a * lds + b] * tmp[b * qk + c]
            Gk[a * qk + c] += s
    # tmp = Lambda_k' B  (qk x qc): tmp[b, c] = sum_e lam_k[e, b] B[e, c]
    for b in range(qk):
        for c in range(qc):
            s = 0.0
            for e in range(b, qk):
                s += lam_k[e * qk + b] * B[e * ldb + c]
            tmp[b * qc + c] = s
    for a in range(qc):
        for c in range(qc):
            s = 0.0
            for b in range(qk):
                s += Sg[b * lds + a] * tmp[b * qc + c]
            Gc[a * qc + c] += s


cdef inline void subtract_lam_u(const double* B, index_t ldb, index_t qk, index_t qc, const double* lam_c,
                                const double* uc, double* out) noexcept nogil:
    """out[:qk] -= B Lambda_c u_c  (B is qk x qc)."""
    cdef index_t a, b, e
    cdef double s, v
    for b in range(qc):
        v = 0.0
        for e in range(b + 1):
            v += lam_c[b * qc + e] * uc[e]
        if v == 0.0:
            continue
        for a in range(qk):
            out[a] -= B[a * ldb + b] * v


cdef inline void subtract_lam_u_t(const double* B, index_t ldb, index_t qk, index_t qc, const double* lam_k,
                                  const double* uk, double* out) noexcept nogil:
    """out[:qc] -= B' Lambda_k u_k  (B is qk x qc)."""
    cdef index_t a, b, e
    cdef double v
    for a in range(qk):
        v = 0.0
        for e in range(a + 1):
            v += lam_k[a * qk + e] * uk[e]
        if v == 0.0:
            continue
        for b in range(qc):
            out[b] -= B[a * ldb + b] * v
