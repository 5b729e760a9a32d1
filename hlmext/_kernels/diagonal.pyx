# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The diagonal blocks of ``Sigma`` that the gradient of crossed factors needs (``docs/math.md``,
the gradient: ``[Sigma Lt'W'Z]_kk Lambda_k = I - Sigma_kk``), for one chain level whose clusters
hold a dense coupling to the crossed block (``_core``'s layout; ``hlmext.models.gradient``)."""
from scipy.linalg.cython_blas cimport dsyrk, dtrsm
from scipy.linalg.cython_lapack cimport dpotri, dtrtri
import numpy as np

from hlmext._kernels.helpers cimport index_t, lower_t_solve


def diagonal_sums(double[::1] work, index_t q, index_t ld, index_t nclus, double[::1] G, index_t ldg,
                  index_t t, const index_t[::1] dense_q, const index_t[::1] dense_groups,
                  double[::1] chain_sum, double[::1] dense_sum):
    """Sums of the diagonal blocks of ``Sigma`` for one chain level with a dense coupling.

    ``work`` holds the factor in ``_core``'s layout of one chain level: cluster ``k``'s ``q``
    rows at ``k * q * ld``, each ``[L_k | U_k,T | ...]`` (``U_k,T``, the ``t`` columns of the
    tail ``T = [D X]`` from column ``q``); ``G`` the tail's lower Cholesky factor ``L_T``
    (row-major, row stride ``ldg > t``, zero above its diagonal). With ``Sigma`` the inverse
    of the system without ``y`` (ML: ``t = qd``; REML: ``t = qd + p``):

        Sigma_kk = L_k^{-T} (I + U_k,T Sigma_TT U_k,T') L_k^{-1},     Sigma_TT = (L_T L_T')^{-1}.

    ``chain_sum`` (``q x q``) receives ``sum_k Sigma_kk`` and ``dense_sum`` (crossed level
    ``j``'s ``q_j x q_j`` after the levels before it) ``sum_g Sigma_gg``; both must be zero on
    entry. With ``q = 1``: ``sum_k U_k Sigma_TT U_k' / L_k^2 = tr(Sigma_TT K)``,
    ``K = sum_k U_k'U_k / L_k^2`` by one BLAS rank-k update (``t^2 / 2`` multiply-adds per
    cluster, kept above ``G``'s diagonal) and ``Sigma_TT`` from ``L_T`` (LAPACK ``dpotri``);
    otherwise ``Y_k = U_k,T L_T^{-T}`` by one triangular solve of every row (BLAS) and
    ``Sigma_gg`` from ``L_T^{-1}`` (``dtrtri``). No product of ``Sigma_TT`` with the rows.
    The factor is overwritten (``work``'s ``U_k,T`` and ``G``): it is then unusable.
    """
    cdef index_t ndense = dense_q.shape[0]
    cdef index_t qd = 0, j, need_dense = 0
    for j in range(ndense):
        qd += dense_q[j] * dense_groups[j]
        need_dense += dense_q[j] * dense_q[j]
    if q < 1 or ld < q + t or t < qd or work.shape[0] < nclus * q * ld or ldg <= t \
            or G.shape[0] < t * ldg + t:
        raise ValueError("diagonal_sums: work must hold nclus blocks of q rows of ld >= q + t values, G a "
                         "factor of more than t columns with row stride ldg > t (t >= qd)")
    if chain_sum.shape[0] < q * q or dense_sum.shape[0] < need_dense:
        raise ValueError("diagonal_sums: chain_sum must hold q x q and dense_sum every crossed level's block")
    cdef int n = <int> t, ncol = <int> (nclus * q), ldb = <int> ld, lda = <int> ldg, info = 0
    cdef char side = b'L', uplo = b'U', lower = b'L', trans = b'T', diag = b'N', no = b'N'
    cdef double one = 1.0, zero = 0.0
    cdef index_t k, a, b, c, i, g, c0, qj, off
    cdef double s, w
    cdef double* Yk
    cdef const double* Lk
    cdef const double* row
    pbuf = np.empty(max(q * q, t, 1))
    cdef double[::1] P = pbuf
    with nogil:
        if q == 1:
            for i in range(t):
                P[i] = 0.0
            for k in range(nclus):       # rows U_k / L_k, and K's diagonal
                Yk = &work[k * ld + 1]
                w = 1.0 / work[k * ld]
                chain_sum[0] += w * w
                for i in range(t):
                    Yk[i] *= w
                    P[i] += Yk[i] * Yk[i]
            if t and ncol:
                # K strictly above G's diagonal: column-major lower of K at &G[1] is row-major G[j, i + 1], i >= j
                dsyrk(&lower, &no, &n, &ncol, &one, &work[1], &ldb, &zero, &G[1], &lda)
                dpotri(&uplo, &n, &G[0], &lda, &info)    # Sigma_TT, row-major lower
            if info == 0:
                s = 0.0
                for i in range(t):
                    row = &G[i * ldg]
                    s += row[i] * P[i]
                    for j in range(i + 1, t):                # Sigma[j, i] K[i, j]
                        s += 2.0 * G[j * ldg + i] * row[j + 1]
                chain_sum[0] += s
                c0 = 0
                off = 0
                for j in range(ndense):
                    qj = dense_q[j]
                    for g in range(dense_groups[j]):
                        for a in range(qj):
                            for b in range(qj):
                                dense_sum[off + a * qj + b] += G[(c0 + max(a, b)) * ldg + c0 + min(a, b)]
                        c0 += qj
                    off += qj * qj
        else:
            if t and ncol:
                # row-major U (nclus q x t, stride ld) is column-major U' (t x nclus q); row-major lower
                # L_T is column-major upper R = L_T': L_T^{-1} U' = R^{-T} U'
                dtrsm(&side, &uplo, &trans, &diag, &n, &ncol, &one, &G[0], &lda, &work[q], &ldb)
            for k in range(nclus):
                Lk = &work[k * q * ld]
                Yk = &work[k * q * ld + q]
                for a in range(q):               # P = I + Y_k Y_k'
                    for c in range(a + 1):
                        s = 1.0 if a == c else 0.0
                        for i in range(t):
                            s += Yk[a * ld + i] * Yk[c * ld + i]
                        P[a * q + c] = s
                        P[c * q + a] = s
                lower_t_solve(Lk, ld, q, &P[0], q, q)          # L^{-T} P
                for a in range(q):                             # (L^{-T} P)' = P L^{-1}, in place
                    for c in range(a + 1, q):
                        s = P[a * q + c]
                        P[a * q + c] = P[c * q + a]
                        P[c * q + a] = s
                lower_t_solve(Lk, ld, q, &P[0], q, q)          # L^{-T} P L^{-1}
                for a in range(q * q):
                    chain_sum[a] += P[a]
            if t:
                dtrtri(&uplo, &diag, &n, &G[0], &lda, &info)   # L_T^{-1}, row-major lower
            if info == 0:
                # Sigma_gg = sum_{i >= g} Linv[i, g]' Linv[i, g], row by row of Linv (zero right of its diagonal)
                for i in range(t):
                    row = &G[i * ldg]
                    c0 = 0
                    off = 0
                    for j in range(ndense):
                        qj = dense_q[j]
                        for g in range(dense_groups[j]):
                            if c0 > i:
                                break
                            for a in range(qj):
                                for b in range(qj):
                                    dense_sum[off + a * qj + b] += row[c0 + a] * row[c0 + b]
                            c0 += qj
                        off += qj * qj
    if info != 0:
        raise ValueError("diagonal_sums: the tail's factor is singular (LAPACK info %d)" % info)
    return None
