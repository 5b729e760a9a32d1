"""Data shuffled so that every top-level cluster lives in one partition, and the partitions' work.

A generalized mixed model's likelihood is a sum over its top-level clusters, but each
term needs all the rows of its cluster at every evaluation (the conditional modes are
found by Newton iterations over them). So the rows are moved once, by the key of the
outermost level, and then stay where they are:

- a Dask DataFrame is shuffled on the key columns by Dask (``DataFrame.shuffle``);
- chunks (a list of DataFrames, a function returning an iterator of them, a Parquet file
  or directory) are hash-partitioned on the key into Parquet files, one directory per
  partition, in a temporary directory (removed once every partition is built).

``Partitions`` then builds one object per partition from its rows (a caller's
``build(rows, spec)``, e.g. a per-partition model) and runs functions on them:
``map(func, *args)`` returns ``func(part, *args)`` of every partition, in partition order.
With a ``distributed.Client`` the parts live on the workers and every call runs where its
part is (no row leaves its worker; only what ``func`` returns travels); a failed task or a
lost worker raises, so no sum is ever made of some of the partitions. Without a client the
parts are built and held in this process.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import numpy as np
import pandas as pd

from ..exceptions import DataError, ModelError


def shuffle_key(parsed):
    """The grouping columns of the outermost level, which place every cluster of every level.

    The random terms' grouping columns must form a chain by inclusion (``(1 | a/b)``,
    ``(1 | a) + (1 | a:b)``, Stata ``|| a: || b:``): then every group of every level lies
    inside one group of the outermost level. Crossed factors, and nested levels written
    with labels unique across the outer groups (``(1 | a) + (1 | b)``), have no such key.
    """
    groups = sorted({tuple(t.group) for t in parsed.random}, key=len)
    for inner, outer in zip(groups[1:], groups[:-1]):
        if not set(outer) <= set(inner):
            raise ModelError("a generalized model on chunked or Dask data needs nested levels whose grouping "
                             "columns contain the outer levels' (e.g. (1 | %s/%s)); the terms on %s are crossed "
                             "or their nesting is not written in the formula: write the nesting as (1 | a/b), or "
                             "fit in memory" % (outer[0], inner[-1], " and ".join(repr(":".join(g)) for g in groups)))
    return list(groups[0])


def hash_buckets(frame, key, n):
    """The partition (0 .. n-1) of every row of ``frame``: a hash of its key columns."""
    h = pd.util.hash_pandas_object(frame[key], index=False, categorize=True).to_numpy()
    return (h % np.uint64(n)).astype(np.intp)


def write_buckets(chunks, key, columns, n, folder):
    """Hash-partition the chunks into ``n`` directories of Parquet files under ``folder``.

    Returns the directories (one per partition, some possibly empty).
    """
    try:
        import pyarrow  # noqa: F401  (pandas' Parquet engine)
    except ImportError as err:
        raise ImportError("fitting a generalized model on chunked data shuffles its rows through Parquet files, "
                          "which needs pyarrow: pip install pyarrow (or hlmext[dask])") from err
    dirs = [os.path.join(folder, "part-%05d" % b) for b in range(n)]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    for i, chunk in enumerate(chunks):
        missing = [c for c in columns if c not in chunk.columns]
        if missing:
            raise DataError("chunk %d lacks the column(s) %s" % (i, ", ".join(map(repr, missing))))
        chunk = chunk[columns]
        bucket = hash_buckets(chunk, key, n)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(n + 1))
        for b in range(n):
            if bounds[b + 1] > bounds[b]:
                rows = chunk.iloc[order[bounds[b]:bounds[b + 1]]].reset_index(drop=True)
                rows.to_parquet(os.path.join(dirs[b], "chunk-%06d.parquet" % i), index=False)
    return dirs


def read_bucket(path):
    """The rows of one partition directory (an empty DataFrame if it has none)."""
    files = sorted(f for f in os.listdir(path) if f.endswith(".parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(os.path.join(path, f)) for f in files], ignore_index=True)


def _build_from(source, build, spec):
    rows = read_bucket(source) if isinstance(source, str) else source
    return _with_token(build(rows, spec))


def _build_dask(rows, build, spec):
    return _with_token(build(rows, spec))


def _with_token(part):
    """A built part gets a token of its own: a part built again (after a lost worker) is noticed."""
    if part is not None:
        part.token = uuid.uuid4().hex
    return part


def default_client():
    """The current ``distributed`` client, or None."""
    try:
        from distributed import default_client as current
        return current()
    except (ImportError, ValueError):
        return None


class Partitions:
    """One object per partition of shuffled data, on the workers (with a client) or here.

    Parameters
    ----------
    sources : list
        Per partition: a directory of Parquet files (``write_buckets``), or a Dask delayed
        DataFrame (a partition of a shuffled Dask DataFrame).
    build : callable
        ``build(rows, spec)`` -> the partition's object, or None for a partition without
        used rows (dropped).
    spec : object
        Passed to ``build`` (picklable with a client).
    client : distributed.Client, optional
        Where the parts live; without one, in this process (Dask partitions computed with
        dask's threads).
    """

    def __init__(self, sources, build, spec, client=None):
        self.client = client
        if client is None:
            sources = list(sources)
            if sources and not isinstance(sources[0], str):
                import dask                        # the shuffle runs once for all partitions
                sources = list(dask.compute(*sources, scheduler="threads"))
            parts = []
            while sources:
                parts.append(_build_from(sources.pop(0), build, spec))
            self.parts = [p for p in parts if p is not None]
            return
        import dask
        futures = []
        for src in sources:
            if isinstance(src, str):
                futures.append(client.submit(_build_from, src, build, spec, pure=False))
            else:
                futures.append(client.compute(dask.delayed(_build_dask, pure=False)(src, build, spec)))
        # a part is never moved (it holds a lock, and its worker's memory): once every part is
        # built, the small questions about it run on its own worker only
        from distributed import wait
        with client.as_current():
            wait(futures)
        for f in futures:
            if f.status != "finished":
                f.result()                         # raises the build's error (or the lost worker's)
        where = {k: list(v) for k, v in client.who_has(futures).items()}
        info = client.gather([client.submit(_is_none_and_token, f, pure=False, workers=where[f.key][:1],
                                            allow_other_workers=False) for f in futures])
        self.parts = [f for f, (empty, _) in zip(futures, info) if not empty]
        for f, (empty, _) in zip(futures, info):
            if empty:
                f.release()
        self._where = {f.key: where[f.key] for f in self.parts}
        self._tokens = [token for empty, token in info if not empty]

    def __len__(self):
        return len(self.parts)

    def _groups(self):
        """Per worker, the positions of the partitions it holds; a partition lost with its worker
        (or computed again elsewhere) is an error: its modes and its rows are not those of the fit."""
        lost = [i for i, f in enumerate(self.parts) if f.status != "finished"]
        if lost:
            raise ModelError(LOST % len(lost))
        groups = {}
        for i, part in enumerate(self.parts):
            groups.setdefault(self._where[part.key][0], []).append(i)
        return groups

    def submit(self, func, *args):
        """Futures of ``[(token, func(part, *args))]`` per worker, and the positions of their partitions."""
        groups = self._groups()
        futures = [self.client.submit(_each, func, [self.parts[i] for i in idx], *args, pure=False, workers=[w],
                                      allow_other_workers=True) for w, idx in groups.items()]
        return futures, list(groups.values())

    def map(self, func, *args):
        """``func(part, *args)`` of every partition, in partition order (a failure raises)."""
        if self.client is None:
            return [func(part, *args) for part in self.parts]
        futures, positions = self.submit(func, *args)
        out = [None] * len(self.parts)
        try:
            for idx, results in zip(positions, self.client.gather(futures)):
                for i, (token, value) in zip(idx, results):
                    if token != self._tokens[i]:
                        raise ModelError(LOST % 1)
                    out[i] = value
        finally:
            for f in futures:
                f.cancel()
        return out

    def __getstate__(self):
        raise TypeError("a model fitted on partitions holds its data on the workers and cannot be pickled; "
                        "pickle the results' tables (params, cov_params()) instead")


def _is_none_and_token(part):
    return (True, None) if part is None else (False, part.token)


def _each(func, parts, *args):
    return [(part.token, func(part, *args)) for part in parts]


LOST = ("%d partition(s) of the data were lost with a worker (or computed again elsewhere) during the fit; the "
        "fit stops rather than sum the others: build the model again (hlmext.melogit(...)) and refit")


def from_dask(ddf, key, columns, npartitions=None):
    """The partitions of ``ddf`` shuffled on ``key`` (Dask delayed DataFrames)."""
    missing = [c for c in columns if c not in ddf.columns]
    if missing:
        raise DataError("the Dask DataFrame lacks the column(s) %s" % ", ".join(map(repr, missing)))
    shuffled = ddf[columns].shuffle(on=key, npartitions=npartitions or ddf.npartitions)
    return shuffled.to_delayed()


class BucketFolder:
    """A temporary directory of hash-partitioned chunks, removed by ``close()``."""

    def __init__(self, chunks, key, columns, n, where=None):
        self.path = tempfile.mkdtemp(prefix="hlmext-partitions-", dir=where)
        try:
            self.dirs = write_buckets(chunks, key, columns, n, self.path)
        except BaseException:
            self.close()
            raise

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)
