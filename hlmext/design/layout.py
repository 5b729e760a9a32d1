"""The design of a linear or generalized mixed model, laid out for the compiled core.

``MixedDesign`` holds the response, the fixed-effects design ``X`` and, per level of
random effects, its design ``Z_l``, its grouping and its covariance structure. Rows are
sorted once so that every cluster at every level is a contiguous run (outermost level
as the primary sort key), and the matrix ``W = [Z_0 | ... | Z_{L-1} | X | y]`` is stored
in that order with the innermost level first. Levels that nest (each cluster of an
inner level lies in exactly one cluster of the next level out) form this chain; nesting
is detected from the data, so class ids that are unique across schools nest implicitly.
When some levels do not nest (crossed factors), one level is the chain (the one whose
elimination costs least, ``sparse_coupling.elimination_cost``) and the others are crossed:
their random effects are factored as one dense block, to which each chain cluster is
coupled only where its rows touch it (``sparse_coupling``).

All validation of arrays that reach ``_core`` happens here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .covariance import LevelCovariance, make_structure
from .level_structure import chain_and_crossed, check_group_structure, grouped_specs
from .memory import check_memory, dense_block_fits
from .rank import check_fixed_rank
from . import sparse_coupling
from .tail_gram import TailGram
from .._kernels import core as _core, crossed as _crossed, row_order
from ..exceptions import DataError, ModelError


#: Store each chain cluster's coupling to the crossed block on the groups its rows touch
#: (``sparse_coupling``). ``False`` keeps the dense coupling of ``qd`` columns in every cluster's
#: block (the tests compare the two).
SPARSE_COUPLING = True
#: ... unless the chain's clusters touch more than this fraction of the crossed columns on
#: average: then the dense coupling is kept (its batched BLAS updates cost less than the
#: scatter of a pattern that is mostly full; the chain is still the cheapest one)
DENSE_FILL = 0.25


@dataclass
class LevelSpec:
    """One level of random effects before sorting: what the user asked for.

    Parameters
    ----------
    name : str
        Level name, e.g. ``"school"`` or ``"school:class"``.
    groups : ndarray, shape (n,) or (n, k)
        Group labels of every row (k columns combine into one grouping).
    exog_re : ndarray, shape (n, q)
        Random-effects design columns.
    blocks : list of (str, list of int)
        Covariance structure name and the column indices (into ``exog_re``) of each block.
    names : list of str
        Column names of ``exog_re``.
    """

    name: str
    groups: np.ndarray
    exog_re: np.ndarray
    blocks: list
    names: list


@dataclass
class Level:
    """One level of random effects after sorting (as the core sees it)."""

    name: str
    names: list                  # random-effects column names
    cov: LevelCovariance
    labels: pd.Index             # group label of every cluster, in cluster order
    sizes: np.ndarray            # rows per cluster
    first: int                   # first global cluster number (-1 for a crossed level)
    _codes: np.ndarray = field(default=None, repr=False)   # see codes
    z: np.ndarray = field(default=None, repr=False)   # crossed level: its design (sorted rows)
    doff: int = 0                # crossed level: first column in the dense block D

    @property
    def codes(self) -> np.ndarray:
        """Cluster of every sorted row (0-based within the level); a chain level's are made
        from its cluster sizes when first asked for (its clusters are runs of rows)."""
        if self._codes is None:
            self._codes = np.repeat(np.arange(len(self.sizes)), self.sizes)
        return self._codes

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    @property
    def q(self) -> int:
        return len(self.names)


class MixedDesign:
    """Sorted, validated arrays of a mixed model and the cluster structure for the core.

    Parameters
    ----------
    endog : array_like, shape (n,)
    exog : array_like, shape (n, p)
    exog_names : list of str
    levels : list of LevelSpec
        In any order; they are ordered by nesting (innermost first for the core).
    partial : bool
        The rows are one partition of a larger data set holding whole top-level clusters
        (``hlmext.models.glmm_distributed``): the checks that need every row (a constant
        response, the rank of the fixed part, the identification of the levels) are left
        to the caller, who makes them on the sums over all partitions.
    dense_coupling : bool
        Keep every chain cluster's coupling to the crossed block dense (``qd`` columns) and
        the chain the level with the most groups, whatever ``SPARSE_COUPLING`` says: the
        residual structures add their whitened coupling into that layout.
    check_tail : bool
        Refuse crossed factors whose dense tail is too large to fit in minutes
        (``sparse_coupling.check_tail``), before the rows are sorted.

    Attributes
    ----------
    order : ndarray (n,)
        Sorted row i is original row ``order[i]``.
    W : ndarray (n, m)
        ``[Z_0 | ... | Z_{L-1} | X | y - y_shift]`` in sorted order, innermost level first;
        ``y_shift`` is the mean of y when X has an intercept column (``intercept_col``), else 0.
    levels : list of Level
        Innermost first.
    """

    def __init__(self, endog, exog, exog_names, levels, endog_name="y", weights=None, partial=False,
                 dense_coupling=False, check_tail=False):
        sparse = SPARSE_COUPLING and not dense_coupling      # the crossed coupling's layout (see above)
        endog = np.asarray(endog, dtype=float)
        exog = np.asarray(exog, dtype=float)
        if exog.ndim == 1:
            exog = exog[:, None]
        n = endog.shape[0]
        if n == 0:
            raise DataError("no observations to fit")
        if exog.shape[0] != n:
            raise DataError("exog has %d rows but endog has %d" % (exog.shape[0], n))
        if not levels:
            raise ModelError("a mixed model needs at least one level of random effects")
        self.endog_name = endog_name
        self.exog_names = list(exog_names)
        self.nobs = n
        weights = _check_weights(weights, n)
        self.k_fe = exog.shape[1]

        specs, codes, labels = grouped_specs(levels, n)
        columns = {}
        chain, crossed = chain_and_crossed(codes, [z.shape[1] for _, z in specs] if sparse else None, self.k_fe,
                                            columns)
        tail = [(specs[i][0].name, len(labels[i]), specs[i][1].shape[1]) for i in crossed]
        if check_tail and dense_block_fits(sum(g * q for _, g, q in tail), self.k_fe):
            sparse_coupling.check_tail(tail, self.k_fe)     # (a tail beyond memory: check_memory's message)
        # sort rows: outermost chain level is the primary key. The chain's clusters are found
        # from their innermost groups, so the row codes of the chain are freed before W is
        # written: the inputs, W and the row permutations are all the large arrays alive at once
        order, rank, counts, cluster_codes = _row_order([codes[i] for i in chain],
                                                        [len(labels[i]) for i in chain])
        order = self.order = order.astype(np.int32) if n < 2 ** 31 else order   # half the memory when it fits
        crossed_codes = [codes[i] for i in crossed]
        del codes
        # y is centred when X has an intercept column: the fit is unchanged (only the intercept
        # moves, by y_shift) and the cross-products lose much less to cancellation
        self.intercept_col = _intercept_column(exog)
        self.y_shift = float(np.average(endog, weights=weights)) if self.intercept_col >= 0 else 0.0
        self.W = _sorted_matrix([(specs[i][0].name, specs[i][1], _perm(specs[i][0])) for i in chain[::-1]],
                                exog, endog, rank)
        del rank
        self._endog, self._endog_input = None, endog      # sorted when first asked for (see endog)
        if np.ptp(self.W[:, -1]) == 0 and not partial:
            raise DataError("the response %r has the same value (%g) in every row: there is nothing to "
                            "model" % (endog_name, endog[0]))
        if self.y_shift:
            self.W[:, -1] -= self.y_shift
        xy = self.W[:, self.W.shape[1] - self.k_fe - 1:]
        self._xy_gram = xy.T @ xy                 # [X y]'[X y]: the rank check and the global block
        if not partial:
            check_fixed_rank(self._xy_gram[:self.k_fe, :self.k_fe], self.exog_names, xy[:, :-1], self.intercept_col)

        self.levels = []
        first = 0
        row_start = np.cumsum(counts) - counts    # of every innermost cluster
        for k in range(len(chain) - 1, -1, -1):   # innermost first
            i, codes_k = chain[k], cluster_codes[k]
            spec = specs[i][0]
            head = np.concatenate([[0], np.flatnonzero(np.diff(codes_k)) + 1])   # its first innermost cluster
            starts = row_start[head]
            ends = np.append(starts[1:], n)
            lev = _level(spec, labels[i][codes_k[head]], ends - starts, None)
            lev.first, lev._starts, lev._ends = first, starts, ends
            self.levels.append(lev)
            first += len(starts)
        self.n_chain = len(self.levels)
        self.qd = 0
        for i, codes_i in zip(crossed, crossed_codes):     # most groups first
            spec, z = specs[i]
            if not np.all(np.isfinite(z)):
                raise DataError("random-effects design of level %r contains NaN or inf" % spec.name)
            sorted_codes = codes_i[order].astype(_code_dtype(len(labels[i])), copy=False)
            lev = _level(spec, labels[i], np.bincount(sorted_codes, minlength=len(labels[i])), sorted_codes)
            if z.strides[0] == 0:              # the same values in every row (a random intercept)
                lev.z = np.broadcast_to(np.ascontiguousarray(z[:1, _perm(spec)]), (n, z.shape[1]))
            else:
                lev.z = np.ascontiguousarray(z[order][:, _perm(spec)])
            lev.doff = self.qd
            self.qd += lev.n_groups * lev.q
            self.levels.append(lev)
        del crossed_codes
        self.crossed = self.levels[self.n_chain:]
        self.dense_q = np.array([lv.q for lv in self.crossed], dtype=np.intp)
        self.dense_groups = np.array([lv.n_groups for lv in self.crossed], dtype=np.intp)
        self.n_clusters = first
        self.zoff = np.concatenate([[0], np.cumsum([lv.q for lv in self.levels[:self.n_chain]])]).astype(np.intp)
        self.weights = None if weights is None else np.ascontiguousarray(weights[order])
        self.n_effective = n if weights is None else float(weights.sum())
        q_total = self.zoff[-1]
        self.exog = self.W[:, q_total:q_total + self.k_fe]     # a view: X is stored once, in W
        self.m = self.W.shape[1]
        chain_levels = self.levels[:self.n_chain]
        self.level_first = np.array([lv.first for lv in chain_levels] + [first], dtype=np.intp)
        self.row_start = np.concatenate([lv._starts for lv in chain_levels]).astype(np.intp)
        self.row_end = np.concatenate([lv._ends for lv in chain_levels]).astype(np.intp)
        parent = np.full(first, -1, dtype=np.intp)
        for lev, outer in zip(chain_levels[:-1], chain_levels[1:]):
            parent[lev.first:lev.first + lev.n_groups] = (
                outer.first + np.searchsorted(outer._starts, lev._starts, side="right") - 1)
        self.parent = parent
        q_of_cluster = np.concatenate([np.full(lv.n_groups, lv.q) for lv in chain_levels])
        # the chain's coupling to the crossed groups: sparse (after the own blocks), or dense
        # (``qd`` columns inside every block; kept to test the sparse one against)
        self.coupling = None
        # (most pairs occur: the dense layout's BLAS blocks are faster, and no pattern is made)
        if self.qd and sparse and not columns.get("pattern", 0) > DENSE_FILL * len(self.row_start) * self.qd:
            self.coupling = sparse_coupling.pattern(self.row_start, self.row_end, self.crossed,
                                                    chain_levels[0].q, 0)
        self.stat_qd = 0 if self.coupling is not None else self.qd
        width = np.concatenate([np.full(lv.n_groups, self.m - self.zoff[i] + self.stat_qd)
                                for i, lv in enumerate(chain_levels)])
        sizes = q_of_cluster * width
        if self.stat_qd and sizes.sum() > 2.5e8:
            raise ModelError("the crossed random effects need a %d x %d coupling matrix (%.1f GB); put the "
                             "factor with the most groups first or reduce the crossed factors"
                             % (int(q_of_cluster.sum()), self.qd, sizes.sum() * 8 / 1e9))
        if self.coupling is not None:
            self.coupling.offset = int(sizes.sum())
        extra = self.coupling.size if self.coupling is not None else 0
        check_memory(self.levels, self.n_chain, int(sizes.sum()) + extra, self.k_fe)
        self.stat_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self.stat_size = int(sizes.sum()) + extra
        self.u_off = np.concatenate([[0], np.cumsum(q_of_cluster)[:-1]]).astype(np.intp)
        self.n_u = int(q_of_cluster.sum())
        if not partial:
            self._check_identified()
        self.check_layout()

    @property
    def endog(self) -> np.ndarray:
        """The response in sorted row order (made from the input when first asked for, after
        the build, so that it is not one more array alive while ``W`` is written)."""
        if self._endog is None:
            self._endog = np.ascontiguousarray(self._endog_input[self.order])
            self._endog_input = None
        return self._endog

    @endog.setter
    def endog(self, values):
        self._endog, self._endog_input = values, None

    def check_layout(self):
        """Verify every array and index the compiled core will trust.

        The kernels do no bounds checking, so this runs once per design and raises
        ``ValueError`` naming any inconsistency instead of letting the core read out of range.
        """
        n, m = self.W.shape
        problems = []
        if not (self.W.flags.c_contiguous and self.W.dtype == np.float64):
            problems.append("W must be C-contiguous float64")
        for name in ("zoff", "level_first", "row_start", "row_end", "stat_off", "parent", "u_off",
                     "dense_q", "dense_groups"):
            arr = getattr(self, name)
            if arr.dtype != np.intp or not arr.flags.c_contiguous:
                problems.append("%s must be a contiguous intp array" % name)
        if np.any(np.diff(self.zoff) < 1) or self.zoff[0] != 0 or self.zoff[-1] + self.k_fe + 1 != m:
            problems.append("zoff does not describe W's columns")
        if np.any(np.diff(self.level_first) < 0) or self.level_first[-1] != len(self.row_start):
            problems.append("level_first does not describe the clusters")
        if np.any(self.row_start < 0) or np.any(self.row_end > n) or np.any(self.row_start > self.row_end):
            problems.append("cluster row ranges fall outside the data")
        nclus = len(self.row_start)
        if np.any((self.parent < -1) | (self.parent >= nclus)):
            problems.append("parent indices out of range")
        widths = np.concatenate([np.full(self.level_first[i + 1] - self.level_first[i],
                                         (self.zoff[i + 1] - self.zoff[i]) * (m - self.zoff[i] + self.stat_qd))
                                 for i in range(len(self.zoff) - 1)]) if nclus else np.zeros(0, np.intp)
        own = self.stat_size - (self.coupling.size if self.coupling is not None else 0)
        if nclus and (np.any(self.stat_off < 0) or self.stat_off[-1] + widths[-1] != own
                      or np.any(np.diff(self.stat_off) != widths[:-1])):
            problems.append("statistics offsets are inconsistent")
        if self.coupling is not None:
            try:
                _crossed.check(nclus, int(self.zoff[1]), m, self.coupling.ptr, self.coupling.cols, self.qd, own,
                               self.stat_size - own)
            except ValueError as exc:
                problems.append(str(exc))
            if self.n_chain != 1 or self.coupling.offset != own:
                problems.append("a sparse coupling needs one chain level and its values after the own blocks")
        if self.qd != int(np.sum(self.dense_q * self.dense_groups)):
            problems.append("crossed block size is inconsistent")
        for lev in self.crossed:
            if lev.codes.dtype != _code_dtype(lev.n_groups) or not lev.codes.flags.c_contiguous \
                    or len(lev.codes) != n or (n and (lev.codes.min() < 0 or lev.codes.max() >= lev.n_groups)):
                problems.append("group codes of crossed level %r are out of range" % lev.name)
        if problems:
            raise ValueError("internal design layout check failed: " + "; ".join(problems))

    has_rows = True

    def statistics(self):
        """The one pass over the rows: per-cluster blocks and the global block (see ``_core``).

        Returns ``(stats, G0)``: the flat per-cluster statistics (``stat_size``) and the
        global cross-product block ``[D X y]'[D X y]`` (raveled; with crossed levels a
        ``tail_gram.TailGram``). Everything a fit needs.
        """
        stats = np.zeros(self.stat_size)
        _core.cross_products(self.W, self.zoff, self.level_first, self.row_start, self.row_end,
                             self.stat_off, self.stat_qd, stats, self.weights)
        chain = self.levels[0]
        c = self.coupling
        for lev in self.crossed:               # the chain's coupling to the crossed groups
            if c is not None:
                _crossed.add_coupling(self.W, chain.q, self.row_start, self.row_end, c.ptr, c.cols, lev.doff,
                                      lev.codes, lev.z, stats[c.offset:], self.weights)
            else:
                _core.add_crossed_coupling(self.W, chain.q, self.row_start, self.row_end, self.stat_off,
                                           self.m + self.qd, chain.q + lev.doff, lev.codes, lev.z, stats,
                                           self.weights)
        if self.qd:                            # crossed levels: D'D without its zeros
            xy = self.W[:, self.zoff[-1]:]
            gram = self.__dict__.pop("_xy_gram", None)
            if gram is None or self.weights is not None:
                gram = (xy if self.weights is None else xy * self.weights[:, None]).T @ xy
            G0 = TailGram.from_rows(self.crossed, xy, self.qd, gram, self.weights)
        else:
            G0 = np.ascontiguousarray(self.global_block()).ravel()
        # the columns' root mean squares follow from the statistics: no other pass over the rows
        # (weighted as the statistics are: those of the data with every row repeated w times)
        cache = self.__dict__.setdefault("_z_rms", {})
        for i in range(len(self.levels)):
            gram = level_gram(self, stats, G0, i)
            cache[i] = np.sqrt(np.maximum(np.diag(gram), 0.0) / max(self.n_effective, 1e-300))
        return stats, G0

    def z_rms(self, i) -> np.ndarray:
        """Root mean square of each random-effects column of level ``i`` (computed once; by
        ``statistics`` for the linear model)."""
        cache = self.__dict__.setdefault("_z_rms", {})
        if i not in cache:
            z = self.z_of(i)
            cache[i] = np.sqrt(np.einsum("ij,ij->j", z, z) / max(len(z), 1))
        return cache[i]

    def z_of(self, i) -> np.ndarray:
        """Random-effects design (sorted rows) of level ``i`` of ``levels``."""
        if i < self.n_chain:
            return self.W[:, self.zoff[i]:self.zoff[i + 1]]
        return self.levels[i].z

    def global_block(self) -> np.ndarray:
        """Cross-products ``[D X y]'[D X y]`` (D: every group's columns of every crossed level)."""
        gram = self.__dict__.pop("_xy_gram", None)     # from the rank check, used once (W's y may change)
        if gram is not None and not self.qd and self.weights is None:
            return gram
        xy = self.W[:, self.zoff[-1]:]
        wxy = xy if self.weights is None else xy * self.weights[:, None]
        if not self.qd:
            return wxy.T @ xy
        qd = self.qd
        G = np.zeros((qd + xy.shape[1], qd + xy.shape[1]))
        G[qd:, qd:] = gram if gram is not None and self.weights is None else wxy.T @ xy
        for j, first in enumerate(self.crossed):
            for other in self.crossed[j:]:
                _core.add_crossed_gram(first.codes, first.z, first.doff, other.codes, other.z, other.doff,
                                       xy if other is first else xy[:, :0], G, self.weights)
                if other is not first:
                    rows = slice(first.doff, first.doff + first.n_groups * first.q)
                    cols = slice(other.doff, other.doff + other.n_groups * other.q)
                    G[cols, rows] = G[rows, cols].T
        G[qd:, :qd] = G[:qd, qd:].T
        return G

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def _check_identified(self):
        check_group_structure(self.levels, self.n_chain)
        for i, lev in enumerate(self.levels):
            if _column_rank(self.z_of(i)) < lev.q:
                raise ModelError("the random-effects design of level %r (%s) is rank deficient: some "
                                 "columns are collinear or constant; drop one of them"
                                 % (lev.name, ", ".join(lev.names)))


def _column_rank(z, block=1 << 16):
    """``numpy.linalg.matrix_rank(z)`` for a tall ``z`` (n x q), from a QR factorization taken
    block by block (the singular values of R are those of z), so no copy of z is made."""
    r = np.zeros((0, z.shape[1]))
    for start in range(0, len(z), block):
        r = np.linalg.qr(np.vstack([r, z[start:start + block]]), mode="r")
    sv = np.linalg.svd(r, compute_uv=False)
    return int(np.sum(sv > sv.max(initial=0.0) * max(z.shape) * np.finfo(float).eps))


def level_gram(design, stats, G0, i):
    """``Z_i' Z_i`` of level ``i`` summed over its groups (q x q), from the per-cluster
    statistics (chain levels) or the global block ``G0`` (crossed levels)."""
    lv = design.levels[i]
    if i < design.n_chain:
        D = design.m - design.zoff[i] + design.stat_qd
        base = design.stat_off[design.level_first[i]]
        blocks = stats[base:base + lv.n_groups * lv.q * D].reshape(lv.n_groups, lv.q, D)
        return blocks[:, :, :lv.q].sum(axis=0)
    if isinstance(G0, TailGram):
        return G0.diagonal_blocks(lv).sum(axis=0)
    p1 = design.qd + design.k_fe + 1
    dtd = np.asarray(G0).reshape(p1, p1)
    idx = lv.doff + np.arange(lv.n_groups)[:, None] * lv.q + np.arange(lv.q)
    return dtd[idx[:, :, None], idx[:, None, :]].sum(axis=0)


def _code_dtype(n_groups):
    """Group codes of a crossed level: int32 when they fit (half the memory of intp)."""
    return np.dtype(np.int32) if n_groups < 2 ** 31 else np.dtype(np.intp)


def _check_weights(weights, n):
    """Frequency weights: one finite, non-negative number per row (None: all ones)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float).ravel()
    if w.shape[0] != n:
        raise DataError("weights have %d values but the model has %d rows" % (w.shape[0], n))
    if not np.all(np.isfinite(w)):
        raise DataError("weights contain NaN or inf; drop those rows or give them a weight")
    if np.any(w < 0):
        raise DataError("frequency weights must be non-negative; %d rows have negative weights" % (w < 0).sum())
    if not w.sum() > 0:
        raise DataError("every frequency weight is zero: nothing to fit")
    return w


def _row_order(keys, n_groups):
    """Rows sorted by the nested chain's codes (``keys`` outermost first), stably.

    Returns ``(order, rank, counts, cluster_codes)``: sorted row ``i`` is row ``order[i]``,
    row ``i`` goes to ``rank[i]``, ``counts`` the rows of every group of the innermost level
    in sorted order, and ``cluster_codes[l]`` the code in level ``l`` of ``keys`` of each of
    those groups. Every inner group lies in one group of each outer level, so the groups of
    the innermost level are put in the order of their outer groups (a sort of the groups
    only) and the rows are then sorted by one counting sort on that key: the order of
    ``np.lexsort(keys[::-1])``.
    """
    key, n_key = keys[-1], n_groups[-1]
    if len(keys) > 1:
        outer = []
        for c in keys[:-1]:
            of_group = np.empty(n_key, dtype=np.intp)
            of_group[key] = c
            outer.append(of_group)
        groups = np.lexsort([np.arange(n_key)] + outer[::-1])
        pos = np.empty(n_key, dtype=np.intp)
        pos[groups] = np.arange(n_key)
        key = pos[key]
        cluster_codes = [of_group[groups] for of_group in outer] + [groups]
    else:
        cluster_codes = [np.arange(n_key)]
    counts = np.bincount(key, minlength=n_key)
    order, rank = np.empty(len(key), dtype=np.intp), np.empty(len(key), dtype=np.intp)
    row_order.counting_order(np.ascontiguousarray(key, dtype=np.intp), counts, order, rank)
    return order, rank, counts, cluster_codes


def _sorted_matrix(zcols, exog, endog, rank, block=1 << 14):
    """``W = [Z_0 | ... | X | y]`` with row ``i`` written at row ``rank[i]``: one C-ordered array,
    filled in place from the inputs (no sorted copies of them). NaN or inf raise ``DataError``.

    The rows go in blocks, each block from every input in turn, so that the rows of ``W``
    a block touches are still in cache when the next input is written to them.
    """
    q = sum(len(perm) for _, _, perm in zcols)
    W = np.empty((len(endog), q + exog.shape[1] + 1))
    fix = "contains NaN or inf; drop or impute those rows first"
    sources = [(endog[:, None], None, W.shape[1] - 1, "endog " + fix), (exog, None, q, "exog " + fix)]
    k = 0
    for name, z, perm in zcols:
        sources.append((z, None if perm == list(range(z.shape[1])) else perm, k,
                        "random-effects design of level %r contains NaN or inf" % name))
        k += len(perm)
    bad = np.zeros(len(sources), dtype=np.intp)
    for start in range(0, len(endog), block):
        rows = slice(start, start + block)
        for j, (src, cols, col0, _) in enumerate(sources):
            part = src[rows] if cols is None else src[rows][:, cols]
            bad[j] += row_order.scatter_rows(part, rank[rows], W, col0)
    for count, (_, _, _, message) in zip(bad, sources):
        if count:
            raise DataError(message)
    return W


def _intercept_column(exog):
    """First column of ones in ``exog``, or -1 (only columns starting with a one are scanned)."""
    if not len(exog):
        return -1
    for j in np.flatnonzero(exog[0] == 1.0):
        if np.all(exog[:, j] == 1.0):
            return int(j)
    return -1


def _perm(spec):
    """Column order of a level: its covariance blocks one after the other."""
    return [j for _, cols in spec.blocks for j in cols]


def _level(spec, labels, sizes, codes):
    blocks = [(make_structure(kind, len(cols)), [spec.names[j] for j in cols]) for kind, cols in spec.blocks]
    return Level(name=spec.name, names=[spec.names[j] for j in _perm(spec)], cov=LevelCovariance(blocks),
                 labels=labels, sizes=np.asarray(sizes), first=-1, _codes=codes)
