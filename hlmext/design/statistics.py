"""Cluster layout and statistics of data seen in chunks: the design the core fits.

``StatsDesign`` has the attributes and methods of ``MixedDesign`` that ``LinearMixed``,
its factorization and its results use, built from statistics accumulated over chunks
(``hlmext.design.chunked``) instead of from rows held in memory (``has_rows = False``):
``_Clusters`` gathers the distinct grouping-key combinations, ``_layout`` numbers the
clusters as ``MixedDesign`` would, ``Statistics`` accumulates the per-cluster blocks.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from .._kernels import core as _core, crossed as _crossed
from . import layout as _mem
from .layout import LevelSpec, level_gram, _level, _perm
from .level_structure import chain_and_crossed, check_group_structure, merge_same_grouping
from .memory import check_memory
from .sparse_coupling import pattern
from .tail_gram import TailGram
from .collinearity import dependent_columns
from .rank import check_fixed_rank
from ..exceptions import DataError, ModelError
from ..formula.grouping import group_codes


def _group_columns(parsed):
    return list(dict.fromkeys(c for t in parsed.random for c in t.group))


def _key_arrays(mf, columns):
    """Per grouping column, its values in the chunk's used rows."""
    out = {}
    for block in mf.random:
        for j, col in enumerate(block.term.group):
            if col not in out:
                out[col] = block.groups[:, j]
    return [out[c] for c in columns]


def _key_index(arrays, columns):
    if len(arrays) == 1:
        return pd.Index(arrays[0], name=columns[0])
    return pd.MultiIndex.from_arrays(arrays, names=columns)


class _Clusters:
    """Adds up the chunk summaries (pass 2)."""

    def __init__(self):
        self.n = self.n_dropped = 0
        self.sums = []
        self.y_min, self.y_max = np.inf, -np.inf
        self.ones = None
        self.terms = None
        self._counts, self._pending = None, []

    def add(self, s):
        if s is None:
            return
        self.n_dropped += s.n_dropped
        if s.n == 0:
            return
        self.n += s.n
        self.sums.append(s.y_sum)
        self.y_min, self.y_max = min(self.y_min, s.y_min), max(self.y_max, s.y_max)
        self.ones = s.ones if self.ones is None else self.ones & s.ones
        self.terms = self.terms or s.terms
        self._pending.append(s.counts)
        if len(self._pending) >= 16:
            self._combine()

    def _combine(self):
        parts = ([self._counts] if self._counts is not None else []) + self._pending
        self._pending = []
        if parts:
            both = pd.concat(parts)
            self._counts = both.groupby(level=list(range(both.index.nlevels)), sort=False).sum()

    @property
    def counts(self) -> pd.Series:
        self._combine()
        return self._counts

    @property
    def y_mean(self) -> float:
        """The mean of the used y: ``math.fsum`` over the chunks' correctly rounded sums (exact up to
        an ulp or so, like ``np.mean`` in memory; any shift is exact algebraically, see ``MixedDesign``)."""
        return math.fsum(self.sums) / self.n


# --------------------------------------------------------------------------- the layout

class ClusterLayout:
    """Clusters and columns of the statistics, decided after pass 2 (picklable).

    Attributes
    ----------
    combos : pandas.Index
        The distinct combinations of the grouping keys (one column per grouping column).
    combo_chain : ndarray (n_combos, n_chain)
        Cluster number (global, core order) of each combination at every chain level.
    combo_dense : ndarray (n_combos, n_crossed)
        Group code (label order) of each combination at every crossed level.
    chain_blocks, dense_blocks : list of (list of int, list of int)
        Per level: the model frame's random blocks it is made of and its column order.
    coupling : sparse_coupling.Coupling or None
        The pattern of the chain clusters' coupling to the crossed block (values after the own
        blocks), or None: the coupling is dense, ``qd`` columns in every block (``stat_qd``).
    """

    def __init__(self, combos, combo_chain, combo_dense, chain_blocks, dense_blocks, zoff, k_fe, qd, dense_doff,
                 dense_q, stat_off, level_first, y_shift, group_columns, coupling=None):
        self.combos = combos
        self.combo_chain = combo_chain
        self.combo_dense = combo_dense
        self.chain_blocks = chain_blocks
        self.dense_blocks = dense_blocks
        self.zoff = zoff
        self.k_fe = k_fe
        self.qd = qd
        self.dense_doff = dense_doff
        self.dense_q = dense_q
        self.stat_off = stat_off
        self.level_first = level_first
        self.y_shift = y_shift
        self.group_columns = group_columns
        self.coupling = coupling
        self.stat_qd = 0 if coupling is not None else qd
        self.m = int(zoff[-1]) + k_fe + 1
        self.widths = np.array([(zoff[l + 1] - zoff[l]) * (self.m - zoff[l] + self.stat_qd)
                                for l in range(len(zoff) - 1)], dtype=np.intp)
        self._keys = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_keys"] = None                    # remade where needed: half the pickle
        return state

    @property
    def n_chain(self):
        return len(self.zoff) - 1

    def combo_of_rows(self, mf):
        """Index into ``combos`` of every used row of a chunk."""
        idx = self.combos.get_indexer(_key_index(_key_arrays(mf, self.group_columns), self.group_columns))
        if np.any(idx < 0):
            raise DataError("a chunk holds a group that was not there when the clusters were counted: the "
                            "data changed between passes (a chunk source must return the same rows every time)")
        return idx

    @staticmethod
    def _z(mf, blocks):
        ids, perm = blocks
        z = mf.random[ids[0]].exog_re if len(ids) == 1 else np.hstack([mf.random[j].exog_re for j in ids])
        return z if perm == list(range(z.shape[1])) else z[:, perm]

    def arrays(self, mf):
        """``W = [Z_0 | ... | X | y - y_shift]``, the chain cluster of every row and level, the
        crossed levels' group codes and designs."""
        n = len(mf.endog)
        W = np.empty((n, self.m))
        for l, blocks in enumerate(self.chain_blocks):
            W[:, self.zoff[l]:self.zoff[l + 1]] = self._z(mf, blocks)
        Q = self.zoff[-1]
        W[:, Q:Q + self.k_fe] = mf.exog
        W[:, -1] = mf.endog - self.y_shift
        combo = self.combo_of_rows(mf)
        cluster = np.ascontiguousarray(self.combo_chain[combo])
        dense = [(self.combo_dense[combo, j], self._z(mf, blocks)) for j, blocks in enumerate(self.dense_blocks)]
        return W, cluster, dense

    def dense_matrix(self, dense, n):
        """The chunk's crossed design ``D`` (n x qd, sparse)."""
        from scipy import sparse
        parts = []
        for (codes, z), doff, q in zip(dense, self.dense_doff, self.dense_q):
            rows = np.repeat(np.arange(n), q)
            cols = (doff + codes[:, None] * q + np.arange(q)).ravel()
            parts.append(sparse.csr_matrix((z.ravel(), (rows, cols)), shape=(n, self.qd)))
        return sum(parts[1:], parts[0]).tocsr()

    def coupling_values(self, W, cluster, D):
        """``Z_c' D`` of a chunk as flat indices into the statistics and values (one chain level):
        inside every cluster's block (dense coupling) or into the slots of the sparse pattern."""
        from scipy import sparse
        n, q = W.shape[0], int(self.zoff[1])
        rows = np.repeat(np.arange(n), q)
        cols = (cluster[:, 0][:, None] * q + np.arange(q)).ravel()
        n_clusters = int(self.level_first[1])
        Zc = sparse.csr_matrix((W[:, :q].ravel(), (rows, cols)), shape=(n, n_clusters * q))
        C = (Zc.T @ D).tocoo()
        C.sum_duplicates()
        g, a = np.divmod(C.row, q)
        if self.coupling is None:
            idx = self.stat_off[g] + a * (self.m + self.qd) + q + C.col
            return idx.astype(np.intp), C.data
        return self.pattern_slots(g, a, C.col), C.data

    def pattern_slots(self, g, a, col):
        """Flat indices into the statistics of the coupling values of cluster ``g``, row ``a``,
        column ``col`` of ``D`` (values of cluster ``k``: ``q x n_k`` from ``q ptr[k]``, row-major)."""
        c = self.coupling
        if self._keys is None:                   # the pattern as one ascending key: cluster * qd + column
            self._keys = np.repeat(np.arange(len(c.ptr) - 1, dtype=np.int64) * self.qd, np.diff(c.ptr)) + c.cols
        key = g.astype(np.int64) * self.qd + col
        at = np.searchsorted(self._keys, key)
        if at.size and (at.max() >= len(self._keys) or np.any(self._keys[at] != key)):
            raise DataError("a chunk holds a pair of groups that was not there when the clusters were counted: "
                            "the data changed between passes (a chunk source must return the same rows every time)")
        start = c.ptr[g]
        return (c.offset + c.q * start + a * (c.ptr[g + 1] - start) + (at - start)).astype(np.intp)

    def check_clusters(self, cluster):
        """Every row's cluster index must lie in its level (the kernel does not check)."""
        for l in range(self.n_chain):
            c = cluster[:, l]
            if c.size and (c.min() < self.level_first[l] or c.max() >= self.level_first[l + 1]):
                raise ValueError("internal error: cluster index out of its level's range")


# --------------------------------------------------------------------------- pass 3: statistics

class Statistics:
    """The statistics being added up (pass 3): per-cluster blocks and the global block."""

    def __init__(self, layout, stat_size):
        self.layout = layout
        p1 = layout.k_fe + 1
        self.stats = np.zeros(stat_size)
        self.n = 0
        self.xy = np.zeros((p1, p1))
        self.dtd = None
        self.dtxy = np.zeros((layout.qd, p1))

    def add_chunk(self, mf):
        """Scatter one chunk's rows into the global arrays."""
        L = self.layout
        W, cluster, dense = L.arrays(mf)
        L.check_clusters(cluster)
        _core.scatter_cross_products(W, L.zoff, cluster, L.stat_off, L.stat_qd, self.stats)
        self._add_global(W, cluster, dense)

    def _add_global(self, W, cluster, dense):
        L = self.layout
        xy = W[:, L.zoff[-1]:]
        self.n += W.shape[0]
        self.xy += xy.T @ xy
        if L.qd:
            D = L.dense_matrix(dense, W.shape[0])
            self.add_dense(D.T @ D, np.asarray(D.T @ xy), *L.coupling_values(W, cluster, D))

    def add_dense(self, dtd, dtxy, idx, vals):
        self.dtd = dtd if self.dtd is None else self.dtd + dtd
        self.dtxy += dtxy
        self.stats[idx] += vals

    def add_partial(self, part):
        """Add a chunk's statistics computed elsewhere (``dask_fit.partial_statistics``)."""
        if part is None:
            return
        L = self.layout
        for l, (ids, block) in enumerate(part["levels"]):
            base, G = L.stat_off[L.level_first[l]], L.level_first[l + 1] - L.level_first[l]
            view = self.stats[base:base + G * L.widths[l]].reshape(G, L.widths[l])
            view[ids - L.level_first[l]] += block
        self.n += part["n"]
        self.xy += part["xy"]
        if L.qd:
            self.add_dense(part["dtd"], part["dtxy"], part["cidx"], part["cval"])

    def global_block(self):
        """``[D X y]'[D X y]``: dense (C order) without crossed levels, else a ``TailGram`` (``D'D``
        sparse), as in memory."""
        if not self.layout.qd:
            return np.ascontiguousarray(self.xy)
        return TailGram(self.dtd, np.hstack([self.dtxy.T, self.xy]))


# --------------------------------------------------------------------------- the design

class StatsDesign:
    """The statistics of a mixed model accumulated over chunks, in ``MixedDesign``'s layout.

    ``LinearMixed(design=StatsDesign(...))`` fits it as it fits a ``MixedDesign``; the rows
    themselves are not kept (``has_rows = False``): fitted values and residuals need a
    pass over the data (:func:`residuals`). Build it with :func:`from_formula`.

    Attributes
    ----------
    levels : list of Level
        Innermost chain level first, then the crossed levels (labels, sizes, q, cov, first, doff).
    nobs, k_fe, exog_names, endog_name, y_shift, intercept_col
        As in ``MixedDesign``; ``y_shift`` is the mean of the used y when X has an
        intercept column.
    n_chain, qd, crossed, dense_q, dense_groups, zoff, m, level_first, stat_off, stat_size,
    parent, u_off, n_u
        The layout of the statistics (see ``_core``).
    """

    has_rows = False

    def __init__(self, levels, n_chain, layout, stats, G0, nobs, exog_names, endog_name, intercept_col,
                 parent, n_dropped=0, form=None):
        self.levels = levels
        self.n_chain = n_chain
        self.crossed = levels[n_chain:]
        self.layout = layout
        self.form = form
        self.nobs = int(nobs)
        self.n_dropped = int(n_dropped)
        self.exog_names = list(exog_names)
        self.endog_name = endog_name
        self.k_fe = len(self.exog_names)
        self.intercept_col = int(intercept_col)
        self.y_shift = float(layout.y_shift)
        self.zoff = np.asarray(layout.zoff, dtype=np.intp)
        self.m = layout.m
        self.qd = int(layout.qd)
        self.stat_qd = int(layout.stat_qd)  # the chain's coupling: dense in every block, or sparse after them
        self.coupling = layout.coupling
        self.dense_q = np.array([lv.q for lv in self.crossed], dtype=np.intp)
        self.dense_groups = np.array([lv.n_groups for lv in self.crossed], dtype=np.intp)
        self.level_first = np.asarray(layout.level_first, dtype=np.intp)
        self.n_clusters = int(self.level_first[-1])
        self.stat_off = np.asarray(layout.stat_off, dtype=np.intp)
        self.stat_size = int(stats.size)
        self.parent = np.asarray(parent, dtype=np.intp)
        q_of_cluster = np.concatenate([np.full(lv.n_groups, lv.q) for lv in levels[:n_chain]])
        self.u_off = np.concatenate([[0], np.cumsum(q_of_cluster)[:-1]]).astype(np.intp)
        self.n_u = int(q_of_cluster.sum())
        self.endog = np.zeros(0)
        self.exog = np.zeros((0, self.k_fe))
        self._stats = stats
        self._G0 = G0 if isinstance(G0, TailGram) else np.ascontiguousarray(G0).ravel()
        self._grams = [self._gram(i) for i in range(len(levels))]
        self.check_layout()
        self._check_identified()

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def statistics(self):
        """``(stats, G0)``: the per-cluster blocks and the global block ``[D X y]'[D X y]`` (raveled)."""
        return self._stats, self._G0

    def _gram(self, i):
        """``Z_i' Z_i`` of level ``i`` summed over its groups (q x q), from the statistics."""
        return level_gram(self, self._stats, self._G0, i)

    def z_rms(self, i) -> np.ndarray:
        """Root mean square of each random-effects column of level ``i`` (from the statistics)."""
        return np.sqrt(np.diag(self._grams[i]) / max(self.nobs, 1))

    def check_layout(self):
        """Verify every array and index the compiled core will trust (``MixedDesign.check_layout``
        without the rows)."""
        problems = []
        for name in ("zoff", "level_first", "stat_off", "parent", "u_off", "dense_q", "dense_groups"):
            arr = getattr(self, name)
            if arr.dtype != np.intp or not arr.flags.c_contiguous:
                problems.append("%s must be a contiguous intp array" % name)
        if not (self._stats.dtype == np.float64 and self._stats.flags.c_contiguous):
            problems.append("statistics must be contiguous float64")
        if np.any(np.diff(self.zoff) < 1) or self.zoff[0] != 0 or self.zoff[-1] + self.k_fe + 1 != self.m:
            problems.append("zoff does not describe the columns")
        nclus = self.n_clusters
        if np.any(np.diff(self.level_first) < 0) or len(self.stat_off) != nclus or len(self.parent) != nclus:
            problems.append("level_first does not describe the clusters")
        if np.any((self.parent < -1) | (self.parent >= nclus)):
            problems.append("parent indices out of range")
        widths = np.concatenate([np.full(self.level_first[i + 1] - self.level_first[i],
                                         (self.zoff[i + 1] - self.zoff[i]) * (self.m - self.zoff[i] + self.stat_qd))
                                 for i in range(len(self.zoff) - 1)]) if nclus else np.zeros(0, np.intp)
        own = self.stat_size - (self.coupling.size if self.coupling is not None else 0)
        if nclus and (np.any(self.stat_off < 0) or self.stat_off[-1] + widths[-1] != own
                      or np.any(np.diff(self.stat_off) != widths[:-1])):
            problems.append("statistics offsets are inconsistent")
        if self.coupling is not None:
            try:
                _crossed.check(nclus, int(self.zoff[1]), self.m, self.coupling.ptr, self.coupling.cols, self.qd, own,
                               self.stat_size - own)
            except ValueError as exc:
                problems.append(str(exc))
            if self.n_chain != 1 or self.coupling.offset != own:
                problems.append("a sparse coupling needs one chain level and its values after the own blocks")
        if self.qd != int(np.sum(self.dense_q * self.dense_groups)):
            problems.append("crossed block size is inconsistent")
        if self._G0.size != (self.qd + self.k_fe + 1) ** 2 or (isinstance(self._G0, TailGram) and self._G0.qd != self.qd):
            problems.append("the global block has the wrong size")
        if problems:
            raise ValueError("internal design layout check failed: " + "; ".join(problems))

    def _check_identified(self):
        """The identification checks of ``MixedDesign`` that need no rows."""
        check_group_structure(self.levels, self.n_chain)
        for lev, gram in zip(self.levels, self._grams):
            zero, bad = dependent_columns(gram)
            if zero or bad:
                raise ModelError("the random-effects design of level %r (%s) is rank deficient: some "
                                 "columns are collinear or constant; drop one of them"
                                 % (lev.name, ", ".join(lev.names)))
        if isinstance(self._G0, TailGram):
            xtx = self._G0.border[:self.k_fe, self.qd:self.qd + self.k_fe]
        else:
            p1 = self.qd + self.k_fe + 1
            xtx = self._G0.reshape(p1, p1)[self.qd:self.qd + self.k_fe, self.qd:self.qd + self.k_fe]
        check_fixed_rank(xtx, self.exog_names)


def _layout(clusters, form, k_fe):
    """Levels, nesting, cluster numbering and block offsets from the pass-2 summaries.

    Mirrors ``MixedDesign.__init__``: the same level order, chain and crossed levels
    (``chain_and_crossed`` on the codes of the distinct key combinations, which nest
    exactly when the rows do), clusters in the order of the sorted rows, same offsets.
    """
    counts = clusters.counts
    combos, sizes_of_combo = counts.index, counts.to_numpy()
    group_columns = _group_columns(form.parsed)
    terms = clusters.terms
    specs, codes, labels, blocks_of = [], [], [], {}

    def column(c):
        return np.asarray(combos.get_level_values(c) if combos.nlevels > 1 else combos)

    for j, (term, names) in enumerate(terms):
        # the same kind of array as the model frame's groups: the column's dtype, objects for several
        values = (column(term.group[0]).reshape(-1, 1) if len(term.group) == 1
                  else np.column_stack([column(c).astype(object) for c in term.group]))
        c, lab = group_codes(values, term.level)
        q = len(names)
        specs.append((LevelSpec(term.level, None, np.zeros((0, q)), [(term.cov, list(range(q)))], names),
                      np.zeros((0, q))))
        codes.append(c)
        labels.append(lab)
        blocks_of.setdefault(term.level, []).append(j)
    specs, codes, labels = merge_same_grouping(specs, codes, labels)
    columns = {}                          # the chain by the cost it implies, as in memory
    chain, crossed = chain_and_crossed(codes, [z.shape[1] for _, z in specs] if _mem.SPARSE_COUPLING else None,
                                        k_fe, columns)

    levels, chain_blocks, ranks = [], [], {}
    first = 0
    combo_chain = np.empty((len(combos), len(chain)), dtype=np.intp)
    for pos, i in enumerate(chain[::-1]):              # innermost first
        depth = len(chain) - 1 - pos                    # index of this level in chain (outermost first)
        G = int(codes[i].max()) + 1
        keys = []
        for k in chain[:depth + 1]:                     # outermost .. this level, per group
            arr = np.empty(G, dtype=np.int64)
            arr[codes[i]] = codes[k]
            keys.append(arr)
        order = np.lexsort(keys[::-1])
        rank = np.empty(G, dtype=np.intp)
        rank[order] = np.arange(G)
        ranks[i] = rank
        spec = specs[i][0]
        sizes = np.bincount(codes[i], weights=sizes_of_combo, minlength=G)[order].astype(np.int64)
        lev = _level(spec, labels[i][order], sizes, np.zeros(0, dtype=np.int64))
        lev.first = first
        levels.append(lev)
        combo_chain[:, pos] = first + rank[codes[i]]
        chain_blocks.append((blocks_of[spec.name], _perm(spec)))
        first += G
    n_chain = len(levels)
    parent = np.full(first, -1, dtype=np.intp)
    for pos in range(n_chain - 1):
        inner, outer = chain[::-1][pos], chain[::-1][pos + 1]
        lev, out = levels[pos], levels[pos + 1]
        outer_code = np.empty(lev.n_groups, dtype=np.int64)
        outer_code[ranks[inner][codes[inner]]] = codes[outer]
        parent[lev.first:lev.first + lev.n_groups] = out.first + ranks[outer][outer_code]
    qd, dense_blocks, dense_doff = 0, [], []
    combo_dense = np.empty((len(combos), len(crossed)), dtype=np.intp)
    for j, i in enumerate(crossed):
        spec = specs[i][0]
        G = len(labels[i])
        lev = _level(spec, labels[i], np.bincount(codes[i], weights=sizes_of_combo, minlength=G).astype(np.int64),
                     np.zeros(0, dtype=np.int64))
        lev.doff = qd
        dense_doff.append(qd)
        qd += lev.n_groups * lev.q
        levels.append(lev)
        combo_dense[:, j] = codes[i]
        dense_blocks.append((blocks_of[spec.name], _perm(spec)))

    chain_levels = levels[:n_chain]
    zoff = np.concatenate([[0], np.cumsum([lv.q for lv in chain_levels])]).astype(np.intp)
    m = int(zoff[-1]) + k_fe + 1
    q_of_cluster = np.concatenate([np.full(lv.n_groups, lv.q) for lv in chain_levels])
    coupling = None                       # sparse by the in-memory rule (``layout.DENSE_FILL``)
    if qd and _mem.SPARSE_COUPLING and not columns.get("pattern", 0) > _mem.DENSE_FILL * first * qd:
        coupling = _combo_pattern(combo_chain[:, 0], combo_dense, levels[n_chain:], chain_levels[0].q)
    stat_qd = 0 if coupling is not None else qd
    width = np.concatenate([np.full(lv.n_groups, m - zoff[i] + stat_qd) for i, lv in enumerate(chain_levels)])
    sizes = q_of_cluster * width
    if stat_qd and sizes.sum() > 2.5e8:
        raise ModelError("the crossed random effects need a %d x %d coupling matrix (%.1f GB); put the "
                         "factor with the most groups first or reduce the crossed factors"
                         % (int(q_of_cluster.sum()), qd, sizes.sum() * 8 / 1e9))
    extra = 0
    if coupling is not None:
        coupling.offset = int(sizes.sum())
        extra = coupling.size
    check_memory(levels, n_chain, int(sizes.sum()) + extra, k_fe)
    stat_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    level_first = np.array([lv.first for lv in chain_levels] + [first], dtype=np.intp)
    ones = np.flatnonzero(clusters.ones)
    intercept_col = int(ones[0]) if ones.size else -1
    y_shift = clusters.y_mean if ones.size else 0.0
    layout = ClusterLayout(combos, combo_chain, combo_dense, chain_blocks, dense_blocks, zoff, k_fe, qd,
                           np.array(dense_doff, dtype=np.intp), np.array([lv.q for lv in levels[n_chain:]],
                                                                          dtype=np.intp),
                           stat_off, level_first, y_shift, group_columns, coupling)
    return levels, n_chain, layout, parent, intercept_col, int(sizes.sum()) + extra


def _combo_pattern(cluster, combo_dense, crossed, q):
    """The ``sparse_coupling.Coupling`` of the chain's clusters from the distinct key combinations
    (each standing for its rows: a cluster touches the groups of its combinations)."""
    order = np.argsort(cluster, kind="stable")
    counts = np.bincount(cluster, minlength=int(cluster.max()) + 1 if len(cluster) else 0)
    ends = np.cumsum(counts)

    levels = [SimpleNamespace(codes=np.ascontiguousarray(combo_dense[order, j]), q=lv.q, doff=lv.doff,
                              n_groups=lv.n_groups) for j, lv in enumerate(crossed)]   # what ``pattern`` reads
    return pattern(ends - counts, ends, levels, q, 0)


# --------------------------------------------------------------------------- the passes
