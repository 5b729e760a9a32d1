"""The cross-products of the dense tail ``[D X y]`` of crossed factors, without its zeros.

With crossed factors the global block ``G0 = [D X y]'[D X y]`` is ``(qd + p + 1)^2`` values,
but its ``D'D`` part is mostly zero: one crossed level meets itself only on its groups'
diagonal blocks, and two crossed levels only on the pairs of groups that share rows.
``TailGram`` keeps ``D'D`` as a sparse matrix and the rows of ``[X y]`` dense, and writes
the scaled tail ``diag(Lambda_D, I)' G0 diag(Lambda_D, I) + diag(I, 0)`` straight into the
buffer the factorization then works in place on: a fit holds that buffer, not a second
dense copy of the statistics.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse


class TailGram:
    """``G0`` of a design with crossed levels, in parts.

    Attributes
    ----------
    dd : scipy.sparse.csr_matrix (qd, qd)
        ``D'D``, both triangles.
    border : ndarray (p + 1, qd + p + 1)
        The rows of ``[X y]``: ``[X y]'[D X y]``.
    """

    def __init__(self, dd, border):
        self.dd = sparse.csr_matrix(dd)
        self.dd.sum_duplicates()
        self.border = np.ascontiguousarray(border, dtype=float)
        self.qd = self.dd.shape[0]
        self.size = (self.border.shape[1]) ** 2
        coo = self.dd.tocoo()
        self._row, self._col = coo.row.astype(np.intp), coo.col.astype(np.intp)

    @classmethod
    def from_rows(cls, crossed, xy, qd, xy_gram, weights=None):
        """From the sorted rows: the crossed levels (``codes``, ``z``, ``doff``, ``q``), ``xy = [X y]``
        and its Gram matrix ``xy_gram`` (weighted with the row ``weights`` if any)."""
        p1 = xy.shape[1]
        border = np.zeros((p1, qd + p1))
        border[:, qd:] = xy_gram
        rows, cols, vals = [], [], []
        for j, lv in enumerate(crossed):
            codes, ng, q = lv.codes, lv.n_groups, lv.q
            first = lv.doff + np.arange(ng) * q               # every group's first column
            for a in range(q):
                w = np.asarray(lv.z[:, a], dtype=float)
                if weights is not None:
                    w = w * weights
                for c in range(p1):
                    border[c, first + a] = np.bincount(codes, weights=w * xy[:, c], minlength=ng)
                for b in range(a, q):                          # within a group: one value per group
                    v = np.bincount(codes, weights=w * lv.z[:, b], minlength=ng)
                    rows += [first + a] if a == b else [first + a, first + b]
                    cols += [first + b] if a == b else [first + b, first + a]
                    vals += [v] if a == b else [v, v]
                for other in crossed[j + 1:]:                  # two levels: the pairs of groups that share rows
                    key = codes.astype(np.int64) * other.n_groups + other.codes
                    pairs, at = np.unique(key, return_inverse=True)
                    del key
                    g, h = pairs // other.n_groups, pairs % other.n_groups
                    for b in range(other.q):
                        v = np.bincount(at, weights=w * other.z[:, b], minlength=len(pairs))
                        r, c2 = first[g] + a, other.doff + h * other.q + b
                        rows += [r, c2]
                        cols += [c2, r]
                        vals += [v, v]
        if rows:
            dd = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                   shape=(qd, qd)).tocsr()
        else:
            dd = sparse.csr_matrix((qd, qd))
        return cls(dd, border)

    def dense(self):
        """``G0`` as one dense array, flat (row-major)."""
        qd, n = self.qd, self.border.shape[1]
        G = np.zeros((n, n))
        G[self._row, self._col] = self.dd.data
        G[qd:, :] = self.border
        G[:qd, qd:] = self.border[:, :qd].T
        return G.ravel()

    @property
    def yy(self) -> float:
        """``y'y``, the last entry of ``G0``."""
        return float(self.border[-1, -1])

    def scale_into(self, out, design, lams):
        """``M' G0 M + diag(I, 0)``, ``M = diag(Lambda_D, I)``, into the flat buffer ``out``: the lower
        triangle (row-major) and the diagonal are written, the rest of ``out`` is zero."""
        qd, n = self.qd, self.border.shape[1]
        G = out.reshape(n, n)
        G.fill(0.0)
        lam_d = _lambda_d(design, lams)
        if lam_d is None:                      # random intercepts: Lambda_D is a diagonal
            scale = np.concatenate([np.full(lv.n_groups, lam[0, 0]) for lv, lam in zip(design.crossed, lams)])
            lower = self._row >= self._col
            r, c = self._row[lower], self._col[lower]
            G[r, c] = self.dd.data[lower] * scale[r] * scale[c]
            G[qd:, :qd] = self.border[:, :qd] * scale
        else:
            scaled = (lam_d.T @ self.dd @ lam_d).tocoo()
            lower = scaled.row >= scaled.col
            G[scaled.row[lower], scaled.col[lower]] = scaled.data[lower]
            G[qd:, :qd] = (lam_d.T @ self.border[:, :qd].T).T
        G[qd:, qd:] = np.tril(self.border[:, qd:])
        G[np.arange(qd), np.arange(qd)] += 1.0
        return out

    def add_traces(self, sigma, t, design, lams, trace, lam_off):
        """The crossed groups' own rows of the gradient's traces from the parts, as
        ``_kernels.gradient.dense_traces`` from the dense block: crossed level ``j``'s
        ``trace[a, b] += sum_g [G0[D, :t] M Sigma[:t, D]]_{(g, b), (g, a)}`` with
        ``M = diag(Lambda_D, I)``, over ``D'D``'s nonzeros and, for REML (``t > qd``), the rows of
        ``X``. ``sigma``: the ``t x t`` tail inverse; ``lam_off[n_chain + j]``: level ``j``'s place
        in ``trace``."""
        qd, n_chain = self.qd, design.n_chain
        doffs = np.array([lv.doff for lv in design.crossed])
        for j, lv in enumerate(design.crossed):
            q, ng = lv.q, lv.n_groups
            inside = (self._row >= lv.doff) & (self._row < lv.doff + ng * q)
            i, r, v = self._row[inside], self._col[inside], self.dd.data[inside]
            g, b = (i - lv.doff) // q, (i - lv.doff) % q
            out = np.zeros((q, q))
            level_of_r = np.searchsorted(doffs, r, side="right") - 1
            for k, (other, lam) in enumerate(zip(design.crossed, lams)):
                at = level_of_r == k
                qh = other.q
                h, c2 = (r[at] - other.doff) // qh, (r[at] - other.doff) % qh
                for a in range(q):
                    col = lv.doff + g[at] * q + a
                    y = sum(lam[c2, c] * sigma[other.doff + h * qh + c, col] for c in range(qh))
                    out[a] += np.bincount(b[at], weights=v[at] * y, minlength=q)
            for x in range(t - qd):                   # REML: Sigma's rows of X
                rows = lv.doff + np.arange(ng)[:, None] * q + np.arange(q)        # (g, b)
                for a in range(q):
                    out[a] += (self.border[x, rows] * sigma[qd + x, rows[:, a]][:, None]).sum(axis=0)
            off = lam_off[n_chain + j]
            trace[off:off + q * q] += out.ravel()

    def d_column(self, j):
        """Column ``qd + j`` of ``G0`` over ``D`` (``j`` counts ``X`` then ``y``)."""
        return self.border[j, :self.qd]

    def diagonal_blocks(self, lv):
        """The crossed level ``lv``'s groups' blocks of ``D'D``: ``(n_groups, q, q)``."""
        q, ng = lv.q, lv.n_groups
        inside = (self._row >= lv.doff) & (self._row < lv.doff + ng * q)
        inside &= (self._row - lv.doff) // q == (self._col - lv.doff) // q
        inside &= self._col >= lv.doff
        r, c = self._row[inside] - lv.doff, self._col[inside] - lv.doff
        out = np.zeros((ng, q, q))
        out[r // q, r % q, c % q] = self.dd.data[inside]
        return out

    def block(self, rows, cols):
        """The dense ``D'D[rows, cols]`` of two slices of ``D``."""
        return self.dd[rows, cols].toarray()


def _lambda_d(design, lams):
    """``Lambda_D`` as a sparse block diagonal, or None when every crossed level has one effect."""
    if all(lv.q == 1 for lv in design.crossed):
        return None
    return sparse.block_diag([sparse.kron(sparse.identity(lv.n_groups), lam) for lv, lam in
                              zip(design.crossed, lams)], format="csr")
