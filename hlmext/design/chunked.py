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
   combinations, levels are nested or crossed as ``level_structure.chain_and_crossed`` decides
   from rows, and the clusters are numbered, ordered and given their blocks exactly as
   in ``MixedDesign``; ``y_shift`` is the mean of the used ``y`` (as in memory).
3. **statistics**: per chunk, ``W = [Z | X | y - y_shift]``, and every row scattered into
   its clusters' blocks (``_core.scatter_cross_products``); with crossed factors also
   the chain's coupling ``Z_c' D`` (into the slots of its sparse pattern, made from the
   combinations of pass 2, or dense by the in-memory rule), ``D'D`` and ``D'[X y]`` by
   sparse products; the global ``[X y]'[X y]`` by BLAS.

``StatsDesign`` holds the result in the layout of ``MixedDesign`` with ``has_rows =
False``, and ``LinearMixed`` fits it unchanged: the fit, ``summary()``, standard errors,
BLUPs and their variances, LR tests and ``predict`` on new data need only the
statistics. Fitted values and residuals of the fitted rows need one more pass:
:func:`residuals`, :func:`fittedvalues` (or ``results.predict(chunk,
which="conditional")`` chunk by chunk).

Memory: the per-cluster blocks, and during pass 2 the distinct key combinations (the
innermost clusters for nested levels; up to one per row for crossed factors).
Dask data frames go through the same passes (``hlmext.design.dask_fit``).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..formula import grammar as fm
from ..formula import frames
from ..exceptions import DataError, ModelError
from .statistics import Statistics, StatsDesign, _Clusters, _group_columns, _key_arrays, _layout

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
        if self.namespace is None:               # pickled with its fit: keep what the formula names
            self.make_portable([] if self.sample is None else list(self.sample.columns))
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
            infos = frames.design_infos(self.parsed, lambda: iter([self.sample]), self.eval_env())
            if self.sample_all is not None:
                wide = frames.design_infos(self.parsed, lambda: iter([self.sample_all]), self.eval_env())
                if any(a.column_names != b.column_names for a, b in zip(wide.as_list(), infos.as_list())):
                    infos.detect = wide
            self.infos = infos
        return self.infos

    def columns(self, available):
        """Columns the formula reads (variables and grouping columns), among ``available``."""
        p = self.parsed
        text = " ".join([p.response, p.fixed] + [t.formula for t in p.random])
        words = frames._words(text, available)
        groups = [c for t in p.random for c in t.group if c in available]
        return list(dict.fromkeys(words + groups))

    def prepare(self, chunk):
        """The chunk with the user's categories applied, and strings missing as NaN, not pd.NA.

        (Dask and Parquet give ``string`` columns with ``pd.NA``, which patsy takes for a level;
        pandas' default ``str`` dtype marks missing strings with NaN, which patsy drops.)
        """
        if not isinstance(chunk, pd.DataFrame):
            raise DataError("every chunk must be a pandas DataFrame, got %s" % type(chunk).__name__)
        frames.check_column_names(self.parsed, chunk.columns)
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
            mf = frames.model_frame(self.parsed, work, missing=self.missing, eval_env=self.eval_env())
        except DataError as err:
            if str(err).startswith("no rows left"):
                return work.iloc[:0]
            raise
        return work.iloc[np.asarray(mf.row_labels)]

    def frame(self, chunk):
        """The chunk's ``ModelFrame`` with the shared design infos, or None without used rows."""
        if len(chunk) == 0:
            return None
        mf = frames.model_frame(self.parsed, self.prepare(chunk), missing=self.missing, eval_env=self.eval_env(),
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


def design_pass(runner, form):
    """Pass 1 with ``runner``: the design infos every chunk shares (set on ``form``, and returned)."""
    head = runner.first(_head, form)
    if head is None:
        raise DataError("no rows left: every row of every chunk has missing or non-finite values (or the data "
                        "has no rows)")
    tentative = frames.design_infos(form.parsed, lambda: iter([head]), form.eval_env())
    scan = _needs_scan(tentative, head)
    if tentative.stateful or () in scan:
        # a factor's state or levels depend on all the rows in a way a sample cannot hold
        if runner.portable():
            raise ModelError("stateful transforms (center(), standardize(), splines) need every row on one "
                             "machine; compute the transformed column in the data instead")
        form.sample = head
        form.infos = infos = frames.design_infos(form.parsed, lambda: runner.map(_used, form), form.eval_env())
    else:
        form.sample = head
        if scan:
            reps = list(runner.map(_representatives, form, scan))
            form.sample = pd.concat([head] + [used for used, _ in reps], ignore_index=True)
            form.sample_all = pd.concat([head] + [every for _, every in reps], ignore_index=True)
        infos = form.design()
    return infos


def build_design(runner, form):
    """Run the three passes with ``runner`` and return the ``StatsDesign``."""
    infos = design_pass(runner, form)

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
    blocks = [frames.RandomBlock(term=term, exog_re=np.zeros((0, len(names))), names=names, design_info=info,
                             groups=np.zeros((0, len(term.group)), dtype=object))
              for (term, names), info in zip(clusters.terms, infos.random)]
    return frames.ModelFrame(endog=np.zeros(0), endog_name=design.endog_name, exog=np.zeros((0, design.k_fe)),
                         exog_names=design.exog_names, fixed_design_info=infos.fixed, random=blocks,
                         row_labels=pd.RangeIndex(0), n_dropped=design.n_dropped)


def from_formula(formula, data, cov=None, missing="drop", eval_env=0, batch_size=None, categories=None):
    """The design of a linear mixed model from a formula and data read in chunks (``hlmext.mixedlm``
    builds its ``LinearMixed`` from this).

    Parameters
    ----------
    formula : str
        As for ``hlmext.mixedlm`` (lme4 or Stata syntax).
    data : list of DataFrame, callable, str, os.PathLike or dask.dataframe.DataFrame
        A list or tuple of DataFrames; a function returning a fresh iterator of DataFrames
        (called once per pass); a Parquet file or directory (read with pyarrow in record
        batches of ``batch_size`` rows, only the columns the formula uses); or a Dask
        DataFrame (partitions processed on its workers, see ``hlmext.design.dask_fit``). The rows
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
    (StatsDesign, ModelFrame)
        The design (cross-product statistics, no rows) and a stub of the formula frame, as
        ``LinearMixed(design=design, frame=frame, formula=formula)`` takes them.

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
    return design, frame


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
