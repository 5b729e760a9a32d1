"""Linear mixed models on data larger than memory: chunks of rows, Parquet files, Dask.

The profiled likelihood depends on the rows only through per-cluster cross-product
blocks ``Z_lk' [Z_l ... X y]_k`` and the global block ``[D X y]'[D X y]`` (see ``_core``),
and both are sums over rows. So the rows can arrive in any order, in chunks, and a
cluster's rows may be spread over many chunks. Three passes over the data build the
same statistics as ``MixedDesign`` does in memory:

1. **design**: patsy's design infos of the response, the fixed part and every random
   term (``formula.design_infos``), so that every chunk gets the same columns and factor
   levels. Only the first chunk is read, unless a factor is categorical with levels not
   fixed by its dtype: then every chunk contributes one row per distinct value (levels
   come from all used rows, as in memory); a stateful transform (``center(x)``) needs
   all used rows.
2. **clusters**: per chunk, the model frame (missing values dropped by the in-memory
   rule), the count, the sum (``math.fsum``) and the range of ``y``, the all-ones columns of ``X``,
   and the distinct combinations of the grouping keys with their row counts. From the
   combinations, levels are nested or crossed as ``design._chain_and_crossed`` decides
   from rows, and the clusters are numbered, ordered and given their blocks exactly as
   in ``MixedDesign``; ``y_shift`` is the mean of the used ``y`` (as in memory).
3. **statistics**: per chunk, ``W = [Z | X | y - y_shift]``, and every row scattered into
   its clusters' blocks (``_core.scatter_cross_products``); with crossed factors also
   the chain's coupling ``Z_c' D``, ``D'D`` and ``D'[X y]`` by sparse products; the global
   ``[X y]'[X y]`` by BLAS.

``StatsDesign`` holds the result in the layout of ``MixedDesign`` with ``has_rows =
False``, and ``LinearMixed`` fits it unchanged: the fit, ``summary()``, standard errors,
BLUPs and their variances, LR tests and ``predict`` on new data need only the
statistics. Fitted values and residuals of the fitted rows need one more pass:
:func:`residuals`, :func:`fittedvalues` (or ``results.predict(chunk,
which="conditional")`` chunk by chunk).

Memory: the per-cluster blocks, and during pass 2 the distinct key combinations (the
innermost clusters for nested levels; up to one per row for crossed factors).
Dask data frames go through the same passes (``hlmext.dask_fit``).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _core
from . import formula as fm
from .design import (LevelSpec, _chain_and_crossed, _codes_of, _level, _merge_same_grouping, _perm,
                     check_group_structure)
from .exceptions import DataError, ModelError

__all__ = ["StatsDesign", "from_formula", "residuals", "fittedvalues", "chunk_source", "is_chunked"]

DEFAULT_BATCH_SIZE = 500_000


# --------------------------------------------------------------------------- sources

def is_chunked(data) -> bool:
    """True for data that ``mixedlm`` reads in chunks rather than as one DataFrame.

    A list or tuple of DataFrames, a function returning an iterator of DataFrames, a
    Parquet path (str or ``os.PathLike``), an iterator, or a Dask DataFrame.
    """
    if isinstance(data, pd.DataFrame):
        return False
    if isinstance(data, (list, tuple)):
        return len(data) > 0 and all(isinstance(c, pd.DataFrame) for c in data)
    return (callable(data) or isinstance(data, (str, os.PathLike, Iterator)) or _is_dask(data))


def _is_dask(data) -> bool:
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "to_delayed")


def chunk_source(data, batch_size=None, columns=None):
    """A zero-argument function returning a fresh iterator of DataFrames over ``data``.

    Parameters
    ----------
    data : list or tuple of DataFrame, callable, str or os.PathLike
        Chunks; a function returning a fresh iterator of chunks (called once per pass);
        or a Parquet file or directory, read in record batches with pyarrow.
    batch_size : int, optional
        Rows per Parquet batch (default 500,000).
    columns : list of str, optional
        Parquet columns to read (default all).

    Returns
    -------
    callable
    """
    if isinstance(data, (list, tuple)):
        chunks = list(data)
        return lambda: iter(chunks)
    if isinstance(data, (str, os.PathLike)):
        return _parquet_source(os.fspath(data), batch_size or DEFAULT_BATCH_SIZE, columns)
    if isinstance(data, Iterator):
        raise DataError("an iterator of chunks can be read only once, and a fit reads the data two or three "
                        "times: pass a list of DataFrames, a Parquet path, or a function that returns a fresh "
                        "iterator (e.g. lambda: pd.read_csv(path, chunksize=10**6))")
    if callable(data):
        return data
    raise DataError("data must be a DataFrame, a list of DataFrames, a function returning an iterator of "
                    "DataFrames, a Parquet path or a Dask DataFrame, not %s" % type(data).__name__)


def _parquet_source(path, batch_size, columns):
    """Record batches of a Parquet file or (hive-partitioned) directory, file by file.

    Each file is read with ``ParquetFile.iter_batches``, which reads as it is asked: the
    dataset scanner reads ahead in background threads and, with a consumer as slow as a
    model frame, buffers hundreds of MB.
    """
    try:
        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
    except ImportError as err:                       # pragma: no cover - depends on the install
        raise ImportError("reading Parquet needs pyarrow: pip install 'hlmext[dask]'") from err
    if not os.path.exists(path):
        raise DataError("no such Parquet file or directory: %r" % path)
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    wanted = dataset.schema.names if columns is None else [c for c in columns if c in dataset.schema.names]

    def batches():
        for fragment in dataset.get_fragments():
            keys = ds.get_partition_keys(fragment.partition_expression)
            reader = pq.ParquetFile(fragment.path, filesystem=fragment.filesystem)
            names = [c for c in wanted if c not in keys]
            for batch in reader.iter_batches(batch_size=batch_size, columns=names):
                if batch.num_rows == 0:
                    continue
                # dictionary columns as their values: each batch has its own dictionary, so
                # the levels come from the values of all batches (sorted), not the first batch
                arrays = [a.dictionary_decode() if pa.types.is_dictionary(a.type) else a for a in batch.columns]
                chunk = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names).to_pandas()
                yield chunk.assign(**{k: v for k, v in keys.items() if k in wanted})
    return batches


# --------------------------------------------------------------------------- per chunk: formula

class ChunkFormula:
    """What every chunk needs to become a model frame: the formula, the missing-value rule,
    the design infos and the user's categories. Picklable for Dask workers, which rebuild the
    design infos from ``sample`` (a few used rows holding every level) and ``namespace``.
    """

    def __init__(self, parsed, missing, env, categories=None):
        self.parsed = parsed
        self.missing = missing
        self.categories = {c: pd.CategoricalDtype(list(v)) for c, v in (categories or {}).items()}
        self.env = env
        self.infos = None
        self.sample = self.sample_all = None     # used rows / all rows holding every level
        self.namespace = None

    def __getstate__(self):
        if self.namespace is None:
            raise TypeError("call make_portable() before sending a ChunkFormula to other processes")
        state = dict(self.__dict__)
        state["env"] = state["infos"] = None
        return state

    def make_portable(self, columns):
        """Keep of the caller's namespace only the names the formula uses (patsy's environments do
        not pickle; modules and functions in this dict do)."""
        p = self.parsed
        text = " ".join([p.response, p.fixed] + [t.formula for t in p.random])
        names = self.eval_env().namespace
        self.namespace = {w: names[w] for w in dict.fromkeys(re.findall(r"[A-Za-z_]\w*", text))
                          if w not in columns and w in names}

    def eval_env(self):
        import patsy
        if self.env is None:
            self.env = patsy.EvalEnvironment([dict(self.namespace)])
        return self.env

    def design(self):
        """The design infos: levels of the used rows (``sample``), and, if the rows with missing
        values hold other levels, the infos of all rows (``sample_all``) to find those rows."""
        if self.infos is None:
            infos = fm.design_infos(self.parsed, lambda: iter([self.sample]), self.eval_env())
            if self.sample_all is not None:
                wide = fm.design_infos(self.parsed, lambda: iter([self.sample_all]), self.eval_env())
                if any(a.column_names != b.column_names for a, b in zip(wide.as_list(), infos.as_list())):
                    infos.detect = wide
            self.infos = infos
        return self.infos

    def columns(self, available):
        """Columns the formula reads (variables and grouping columns), among ``available``."""
        p = self.parsed
        text = " ".join([p.response, p.fixed] + [t.formula for t in p.random])
        words = fm._words(text, available)
        groups = [c for t in p.random for c in t.group if c in available]
        return list(dict.fromkeys(words + groups))

    def prepare(self, chunk):
        """The chunk with the user's categories applied, and strings missing as NaN, not pd.NA.

        (Dask and Parquet give ``string`` columns with ``pd.NA``, which patsy takes for a level;
        pandas' default ``str`` dtype marks missing strings with NaN, which patsy drops.)
        """
        if not isinstance(chunk, pd.DataFrame):
            raise DataError("every chunk must be a pandas DataFrame, got %s" % type(chunk).__name__)
        out = chunk
        for col in self.columns(out.columns):
            dtype = out[col].dtype
            if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
                out = out.assign(**{col: out[col].astype(pd.StringDtype(dtype.storage, na_value=np.nan))})
        for col, dtype in self.categories.items():
            if col in out.columns:
                unknown = out[col].notna() & ~out[col].isin(dtype.categories)
                if unknown.any():
                    raise DataError("column %r has the value %r, which is not among the categories given "
                                    "for it" % (col, out[col][unknown].iloc[0]))
                out = out.assign(**{col: out[col].astype(dtype)})
        return out

    def used_rows(self, chunk, prepared=False):
        """The rows of ``chunk`` the model uses (the in-memory missing-value rule), by position."""
        work = chunk if prepared else self.prepare(chunk).reset_index(drop=True)
        if len(work) == 0:
            return work
        try:
            mf = fm.model_frame(self.parsed, work, missing=self.missing, eval_env=self.eval_env())
        except DataError as err:
            if str(err).startswith("no rows left"):
                return work.iloc[:0]
            raise
        return work.iloc[np.asarray(mf.row_labels)]

    def frame(self, chunk):
        """The chunk's ``ModelFrame`` with the shared design infos, or None without used rows."""
        if len(chunk) == 0:
            return None
        mf = fm.model_frame(self.parsed, self.prepare(chunk), missing=self.missing, eval_env=self.eval_env(),
                            infos=self.design())
        return mf if len(mf.endog) else None


def _used(chunk, form):
    return form.used_rows(chunk)


def _head(chunk, form, k=200):
    """Up to ``k`` used rows of a chunk (None if it has none): enough to classify the factors."""
    used = form.used_rows(chunk)
    return used.iloc[:k][form.columns(used.columns)] if len(used) else None


def _representatives(chunk, form, column_sets):
    """One row per distinct value of every categorical factor's columns: among the used rows
    (the levels of the design) and among all rows (what the missing-value check meets)."""
    work = form.prepare(chunk).reset_index(drop=True)
    work = work[form.columns(work.columns)]

    def firsts(rows):
        keep = np.zeros(len(rows), dtype=bool)
        for cols in column_sets:
            keep |= ~rows.duplicated(subset=list(cols)).to_numpy()
        return rows[keep]
    return firsts(form.used_rows(work, prepared=True)), firsts(work)


def _needs_scan(infos, head):
    """Column sets of categorical factors whose levels are not fixed by a pandas dtype."""
    out = []
    for cols in infos.categorical_columns(head.columns):
        if not cols or not all(isinstance(head[c].dtype, pd.CategoricalDtype) or
                               pd.api.types.is_bool_dtype(head[c].dtype) for c in cols):
            out.append(cols)
    return out


# --------------------------------------------------------------------------- pass 2: clusters

@dataclass
class ChunkSummary:
    """What pass 2 keeps of a chunk."""
    n: int
    n_dropped: int
    y_sum: float          # sum of y, correctly rounded (math.fsum)
    y_min: float
    y_max: float
    ones: np.ndarray      # X columns equal to 1 in every row
    counts: pd.Series     # rows per distinct combination of the grouping keys
    terms: list = field(default=None, repr=False)   # (RandomTerm, names) of the random blocks


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


def _summarize(chunk, form):
    """Pass 2 on one chunk; None if it has no used rows."""
    n_rows = len(chunk)
    mf = form.frame(chunk)
    if mf is None:
        return ChunkSummary(0, n_rows, 0.0, np.inf, -np.inf, None, None) if n_rows else None
    y = mf.endog
    cols = _group_columns(form.parsed)
    keys = pd.DataFrame(dict(zip(cols, _key_arrays(mf, cols))))
    counts = keys.groupby(cols, sort=False).size()
    return ChunkSummary(len(y), mf.n_dropped, math.fsum(y.tolist()), float(y.min()), float(y.max()),
                        np.all(mf.exog == 1.0, axis=0), counts, [(b.term, list(b.names)) for b in mf.random])


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
    """

    def __init__(self, combos, combo_chain, combo_dense, chain_blocks, dense_blocks, zoff, k_fe, qd, dense_doff,
                 dense_q, stat_off, level_first, y_shift, group_columns):
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
        self.m = int(zoff[-1]) + k_fe + 1
        self.widths = np.array([(zoff[l + 1] - zoff[l]) * (self.m - zoff[l] + qd) for l in range(len(zoff) - 1)],
                               dtype=np.intp)

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

    def coupling(self, W, cluster, D):
        """``Z_c' D`` of a chunk as flat indices into the statistics and values (one chain level)."""
        from scipy import sparse
        n, q = W.shape[0], int(self.zoff[1])
        rows = np.repeat(np.arange(n), q)
        cols = (cluster[:, 0][:, None] * q + np.arange(q)).ravel()
        n_clusters = int(self.level_first[1])
        Zc = sparse.csr_matrix((W[:, :q].ravel(), (rows, cols)), shape=(n, n_clusters * q))
        C = (Zc.T @ D).tocoo()
        C.sum_duplicates()
        g, a = np.divmod(C.row, q)
        idx = self.stat_off[g] + a * (self.m + self.qd) + q + C.col
        return idx.astype(np.intp), C.data

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
        _core.scatter_cross_products(W, L.zoff, cluster, L.stat_off, L.qd, self.stats)
        self._add_global(W, cluster, dense)

    def _add_global(self, W, cluster, dense):
        L = self.layout
        xy = W[:, L.zoff[-1]:]
        self.n += W.shape[0]
        self.xy += xy.T @ xy
        if L.qd:
            D = L.dense_matrix(dense, W.shape[0])
            self.add_dense(D.T @ D, np.asarray(D.T @ xy), *L.coupling(W, cluster, D))

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
        """``[D X y]'[D X y]`` (dense, C order)."""
        if not self.layout.qd:
            return np.ascontiguousarray(self.xy)
        top = np.hstack([self.dtd.toarray(), self.dtxy])
        return np.ascontiguousarray(np.vstack([top, np.hstack([top[:, self.layout.qd:].T, self.xy])]))


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
        self._G0 = np.ascontiguousarray(G0).ravel()
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
        lv = self.levels[i]
        if i < self.n_chain:
            D = self.m - self.zoff[i] + self.qd
            base = self.stat_off[lv.first]
            blocks = self._stats[base:base + lv.n_groups * lv.q * D].reshape(lv.n_groups, lv.q, D)
            return blocks[:, :, :lv.q].sum(axis=0)
        p1 = self.qd + self.k_fe + 1
        dtd = self._G0.reshape(p1, p1)
        idx = lv.doff + np.arange(lv.n_groups)[:, None] * lv.q + np.arange(lv.q)
        return dtd[idx[:, :, None], idx[:, None, :]].sum(axis=0)

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
                                         (self.zoff[i + 1] - self.zoff[i]) * (self.m - self.zoff[i] + self.qd))
                                 for i in range(len(self.zoff) - 1)]) if nclus else np.zeros(0, np.intp)
        if nclus and (np.any(self.stat_off < 0) or self.stat_off[-1] + widths[-1] != self.stat_size
                      or np.any(np.diff(self.stat_off) != widths[:-1])):
            problems.append("statistics offsets are inconsistent")
        if self.qd != int(np.sum(self.dense_q * self.dense_groups)):
            problems.append("crossed block size is inconsistent")
        if self._G0.size != (self.qd + self.k_fe + 1) ** 2:
            problems.append("the global block has the wrong size")
        if problems:
            raise ValueError("internal design layout check failed: " + "; ".join(problems))

    def _check_identified(self):
        """The identification checks of ``MixedDesign`` that need no rows."""
        check_group_structure(self.levels, self.n_chain)
        for lev, gram in zip(self.levels, self._grams):
            zero, bad = _dependent_columns(gram)
            if zero or bad:
                raise ModelError("the random-effects design of level %r (%s) is rank deficient: some "
                                 "columns are collinear or constant; drop one of them"
                                 % (lev.name, ", ".join(lev.names)))
        p1 = self.qd + self.k_fe + 1
        xtx = self._G0.reshape(p1, p1)[self.qd:self.qd + self.k_fe, self.qd:self.qd + self.k_fe]
        zero, bad = _dependent_columns(xtx)
        names = self.exog_names
        if zero:
            raise ModelError("the fixed-effects column(s) %s are zero in every row; drop them from the formula"
                             % ", ".join(repr(names[j]) for j in zero))
        if bad:
            cols = ", ".join(repr(names[j]) for j in bad)
            raise ModelError("the fixed-effects design is rank deficient: %s %s a linear combination of "
                             "earlier columns (perfect collinearity); drop %s from the formula"
                             % (cols, "is" if len(bad) == 1 else "are", "it" if len(bad) == 1 else "them"))


def _dependent_columns(gram, tol=1e-11):
    """Columns of a Gram matrix that are zero, and those (numerically) combinations of earlier ones.

    The test of ``design._check_fixed_rank`` on the Gram matrix scaled to unit diagonal: the
    part of column j not explained by the earlier independent columns must keep ``tol`` of
    its sum of squares.
    """
    norm = np.sqrt(np.diag(gram))
    zero = [int(j) for j in np.flatnonzero(norm == 0)]
    if zero:
        return zero, []
    gram = gram / np.outer(norm, norm)
    kept, bad = [], []
    for j in range(gram.shape[0]):
        if kept:
            c = gram[np.ix_(kept, kept)]
            b = gram[kept, j]
            resid = gram[j, j] - b @ np.linalg.solve(c, b)
        else:
            resid = gram[j, j]
        (kept if resid > tol else bad).append(j)
    return [], bad


def _layout(clusters, form, k_fe):
    """Levels, nesting, cluster numbering and block offsets from the pass-2 summaries.

    Mirrors ``MixedDesign.__init__``: the same level order, chain and crossed levels
    (``_chain_and_crossed`` on the codes of the distinct key combinations, which nest
    exactly when the rows do), clusters in the order of the sorted rows, same offsets.
    """
    counts = clusters.counts
    combos, sizes_of_combo = counts.index, counts.to_numpy()
    columns = _group_columns(form.parsed)
    terms = clusters.terms
    specs, codes, labels, blocks_of = [], [], [], {}

    def column(c):
        return np.asarray(combos.get_level_values(c) if combos.nlevels > 1 else combos)

    for j, (term, names) in enumerate(terms):
        # the same kind of array as the model frame's groups: the column's dtype, objects for several
        values = (column(term.group[0]).reshape(-1, 1) if len(term.group) == 1
                  else np.column_stack([column(c).astype(object) for c in term.group]))
        c, lab = _codes_of(values, term.level)
        q = len(names)
        specs.append((LevelSpec(term.level, None, np.zeros((0, q)), [(term.cov, list(range(q)))], names),
                      np.zeros((0, q))))
        codes.append(c)
        labels.append(lab)
        blocks_of.setdefault(term.level, []).append(j)
    specs, codes, labels = _merge_same_grouping(specs, codes, labels)
    chain, crossed = _chain_and_crossed(codes)

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
    width = np.concatenate([np.full(lv.n_groups, m - zoff[i] + qd) for i, lv in enumerate(chain_levels)])
    sizes = q_of_cluster * width
    if qd and sizes.sum() > 2.5e8:
        raise ModelError("the crossed random effects need a %d x %d coupling matrix (%.1f GB); put the "
                         "factor with the most groups first or reduce the crossed factors"
                         % (int(q_of_cluster.sum()), qd, sizes.sum() * 8 / 1e9))
    stat_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    level_first = np.array([lv.first for lv in chain_levels] + [first], dtype=np.intp)
    ones = np.flatnonzero(clusters.ones)
    intercept_col = int(ones[0]) if ones.size else -1
    y_shift = clusters.y_mean if ones.size else 0.0
    layout = ClusterLayout(combos, combo_chain, combo_dense, chain_blocks, dense_blocks, zoff, k_fe, qd,
                           np.array(dense_doff, dtype=np.intp), np.array([lv.q for lv in levels[n_chain:]],
                                                                          dtype=np.intp),
                           stat_off, level_first, y_shift, columns)
    return levels, n_chain, layout, parent, intercept_col, int(sizes.sum())


# --------------------------------------------------------------------------- the passes

class LocalRunner:
    """Runs a per-chunk function over the chunks of a local source, in order."""

    def __init__(self, source):
        self.source = source

    def chunks(self):
        for chunk in self.source():
            if not isinstance(chunk, pd.DataFrame):
                raise DataError("every chunk must be a pandas DataFrame, got %s" % type(chunk).__name__)
            if len(chunk):
                yield chunk

    def map(self, func, *args):
        for chunk in self.chunks():
            yield func(chunk, *args)

    def first(self, func, *args):
        return next((r for r in self.map(func, *args) if r is not None), None)

    def accumulate(self, form, layout, acc):
        """Pass 3: scatter every chunk's rows straight into the statistics."""
        for chunk in self.chunks():
            mf = form.frame(chunk)
            if mf is not None:
                acc.add_chunk(mf)

    def portable(self):
        return False


def build_design(runner, form):
    """Run the three passes with ``runner`` and return the ``StatsDesign``."""
    # pass 1: design infos
    head = runner.first(_head, form)
    if head is None:
        raise DataError("no rows left: every row of every chunk has missing or non-finite values (or the data "
                        "has no rows)")
    tentative = fm.design_infos(form.parsed, lambda: iter([head]), form.eval_env())
    scan = _needs_scan(tentative, head)
    if tentative.stateful or () in scan:
        # a factor's state or levels depend on all the rows in a way a sample cannot hold
        if runner.portable():
            raise ModelError("stateful transforms (center(), standardize(), splines) need every row on one "
                             "machine; compute the transformed column in the data instead")
        form.sample = head
        form.infos = infos = fm.design_infos(form.parsed, lambda: runner.map(_used, form), form.eval_env())
    else:
        form.sample = head
        if scan:
            reps = list(runner.map(_representatives, form, scan))
            form.sample = pd.concat([head] + [used for used, _ in reps], ignore_index=True)
            form.sample_all = pd.concat([head] + [every for _, every in reps], ignore_index=True)
        infos = form.design()

    # pass 2: clusters
    clusters = _Clusters()
    for summary in runner.map(_summarize, form):
        clusters.add(summary)
    if clusters.n == 0:
        raise DataError("no rows left: every row has missing or non-finite values")
    if clusters.y_min == clusters.y_max:
        raise DataError("the response %r has the same value (%g) in every row: there is nothing to model"
                        % (form.parsed.response, clusters.y_min))
    exog_names = list(infos.fixed.column_names)
    levels, n_chain, layout, parent, intercept_col, stat_size = _layout(clusters, form, len(exog_names))

    # pass 3: statistics
    acc = Statistics(layout, stat_size)
    runner.accumulate(form, layout, acc)
    if acc.n != clusters.n:
        raise DataError("the data changed between passes: %d rows were counted, then %d read (a chunk source "
                        "must return the same rows every time)" % (clusters.n, acc.n))
    design = StatsDesign(levels, n_chain, layout, acc.stats, acc.global_block(), clusters.n,
                         exog_names, form.parsed.response, intercept_col, parent,
                         n_dropped=clusters.n_dropped, form=form)
    return design, _frame_stub(design, clusters, infos)


def _frame_stub(design, clusters, infos):
    """A ``ModelFrame`` without rows: the design infos, terms and names, for ``predict``."""
    blocks = [fm.RandomBlock(term=term, exog_re=np.zeros((0, len(names))), names=names, design_info=info,
                             groups=np.zeros((0, len(term.group)), dtype=object))
              for (term, names), info in zip(clusters.terms, infos.random)]
    return fm.ModelFrame(endog=np.zeros(0), endog_name=design.endog_name, exog=np.zeros((0, design.k_fe)),
                         exog_names=design.exog_names, fixed_design_info=infos.fixed, random=blocks,
                         row_labels=pd.RangeIndex(0), n_dropped=design.n_dropped)


def from_formula(formula, data, cov=None, missing="drop", eval_env=0, batch_size=None, categories=None):
    """A ``LinearMixed`` model from a formula and data read in chunks (``hlmext.mixedlm`` calls this).

    Parameters
    ----------
    formula : str
        As for ``hlmext.mixedlm`` (lme4 or Stata syntax).
    data : list of DataFrame, callable, str, os.PathLike or dask.dataframe.DataFrame
        A list or tuple of DataFrames; a function returning a fresh iterator of DataFrames
        (called once per pass); a Parquet file or directory (read with pyarrow in record
        batches of ``batch_size`` rows, only the columns the formula uses); or a Dask
        DataFrame (partitions processed on its workers, see ``hlmext.dask_fit``). The rows
        of one cluster may be in any chunks.
    cov : str or dict, optional
        Covariance structures, as for ``mixedlm``.
    missing : {"drop", "raise"}
        Rows with missing or non-finite values in used columns, as in memory.
    eval_env : int or patsy.EvalEnvironment
        Where the formula's functions are looked up (frames above the caller).
    batch_size : int, optional
        Rows per Parquet record batch (default 500,000).
    categories : dict of str -> list, optional
        Levels of categorical columns, in order. Without them, levels come from a pass over
        all the data (sorted, as patsy does in memory); with them that pass is skipped.

    Returns
    -------
    LinearMixed
        ``model.design`` is a ``StatsDesign``; ``.fit()`` as usual.

    Notes
    -----
    Results equal the in-memory fit of the concatenated chunks up to rounding. What needs
    the rows after the fit (fitted values, residuals) needs another pass:
    :func:`residuals`, :func:`fittedvalues`.

    Examples
    --------
    >>> import numpy as np, pandas as pd, hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> shuffled = df.sample(frac=1.0, random_state=0)
    >>> chunks = [shuffled.iloc[i:i + 1000] for i in range(0, len(df), 1000)]
    >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", chunks).fit(reml=False)
    >>> round(res.llf, 3)
    -13998.439
    """
    import patsy
    from .linear import LinearMixed
    parsed = fm.parse(formula, cov=cov)
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    if not isinstance(eval_env, patsy.EvalEnvironment):
        eval_env = patsy.EvalEnvironment.capture(eval_env, reference=1)
    form = ChunkFormula(parsed, missing, eval_env, categories)
    if _is_dask(data):
        from .dask_fit import DaskRunner
        runner = DaskRunner(data, form)
    else:
        runner = _local_runner(data, form, batch_size)
    design, frame = build_design(runner, form)
    return LinearMixed(design=design, frame=frame, formula=formula)


def _local_runner(data, form, batch_size):
    """A ``LocalRunner`` over ``data``; Parquet reads only the formula's columns."""
    columns = None
    if isinstance(data, (str, os.PathLike)) and os.path.exists(data):
        import pyarrow.dataset as ds
        columns = form.columns(ds.dataset(os.fspath(data), format="parquet", partitioning="hive").schema.names)
    return LocalRunner(chunk_source(data, batch_size=batch_size, columns=columns))


# --------------------------------------------------------------------------- after the fit

def _fitted(mf, layout, beta, b_chain, b_dense):
    """Conditional fitted values ``X beta + Z b`` of a chunk's used rows."""
    W, cluster, dense = layout.arrays(mf)
    out = mf.exog @ beta
    for l in range(layout.n_chain):
        b = b_chain[l][cluster[:, l] - layout.level_first[l]]
        out += np.einsum("ij,ij->i", W[:, layout.zoff[l]:layout.zoff[l + 1]], b)
    for (codes, z), b in zip(dense, b_dense):
        out += np.einsum("ij,ij->i", z, b[codes])
    return out


def _modes(results):
    """BLUPs per level in the order of the statistics (chain clusters, crossed groups)."""
    design = results.model.design
    b_chain, b_dense = [], []
    for i, lv in enumerate(design.levels):
        b = results.random_effects[lv.name].reindex(lv.labels)[lv.names].to_numpy()
        (b_chain if i < design.n_chain else b_dense).append(b)
    return b_chain, b_dense


def _per_chunk(chunk, form, layout, beta, b_chain, b_dense, what):
    mf = form.frame(chunk)
    if mf is None:
        return pd.Series(np.zeros(0), name=what)
    fitted = _fitted(mf, layout, beta, b_chain, b_dense)
    values = mf.endog - fitted if what == "resid" else fitted
    return pd.Series(values, index=mf.row_labels, name=what)


def _row_pass(results, data, what, batch_size):
    design = results.model.design
    if not isinstance(design, StatsDesign):
        raise ValueError("this model holds its rows: use results.%s" % ("resid" if what == "resid"
                                                                       else "fittedvalues"))
    form, layout = design.form, design.layout
    beta = results.fe_params.to_numpy()
    b_chain, b_dense = _modes(results)
    if _is_dask(data):
        from .dask_fit import map_rows
        return map_rows(data, _per_chunk, form, layout, beta, b_chain, b_dense, what)
    return _local_runner(data, form, batch_size).map(_per_chunk, form, layout, beta, b_chain, b_dense, what)


def residuals(results, data, batch_size=None):
    """Conditional residuals ``y - X beta - Z b`` of a chunked fit, chunk by chunk.

    Parameters
    ----------
    results : MixedResults
        A fit of a model built from chunks (``model.design`` a ``StatsDesign``).
    data : list of DataFrame, callable, str or dask.dataframe.DataFrame
        The data the model was fitted to (same chunks or any other split of the same rows).
    batch_size : int, optional
        Rows per Parquet batch.

    Returns
    -------
    iterator of pandas.Series
        One Series per chunk over its used rows (indexed by the chunk's row labels); for a
        Dask DataFrame, a lazy Dask Series.

    Examples
    --------
    >>> import pandas as pd, hlmext
    >>> from hlmext import chunked
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> chunks = [df.iloc[:2000], df.iloc[2000:]]
    >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", chunks).fit()
    >>> r = pd.concat(chunked.residuals(res, chunks))
    >>> len(r) == len(df)
    True
    """
    return _row_pass(results, data, "resid", batch_size)


def fittedvalues(results, data, batch_size=None):
    """Conditional fitted values ``X beta + Z b`` of a chunked fit, chunk by chunk (see :func:`residuals`)."""
    return _row_pass(results, data, "fitted", batch_size)
