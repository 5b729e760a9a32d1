"""Fitting on a Dask cluster: the passes of ``hlmext.design.chunked`` over a Dask DataFrame's partitions.

Every pass maps a per-chunk function of ``hlmext.design.chunked`` over the partitions, on the
workers; only what it returns travels to the client: a few used rows in pass 1 (one per
level of every categorical factor), the distinct grouping-key combinations with their
counts in pass 2, and in pass 3 the blocks of the clusters each partition holds (with
the crossed factors' sparse products), which the client adds into the statistics in
partition order, so that the sums, and the fit, do not depend on which worker finishes
first. The rows stay on the workers. With a ``distributed.Client`` (the default client,
if there is one) at most ``window`` partitions are in flight; without one, dask's local
scheduler runs batches of partitions.

The formula's design infos (patsy objects, which do not pickle) are rebuilt on every
worker from the sample of pass 1 and the names the formula takes from the caller's
namespace (``ChunkFormula.make_portable``); stateful transforms such as ``center(x)``
are therefore not supported here.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from .._kernels import core as _core


def _default_client():
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None


class DaskRunner:
    """Runs a per-chunk function over the partitions of a Dask DataFrame, results in partition order.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    form : hlmext.design.chunked.ChunkFormula
        Only the columns the formula reads are kept (Parquet reads only those).
    client : distributed.Client, optional
        Default: the current default client, else dask's local scheduler.
    window : int, optional
        Partitions in flight at once with a client (default twice its threads, at least 4).
    """

    def __init__(self, ddf, form, client=None, window=None):
        columns = list(ddf.columns)
        self.ddf = ddf[form.columns(columns)]
        form.make_portable(columns)
        self.parts = self.ddf.to_delayed()
        self.client = client if client is not None else _default_client()
        if window is None and self.client is not None:
            threads = sum(self.client.nthreads().values()) or 1
            window = max(4, 2 * threads)
        self.window = window or 4

    def portable(self):
        return True

    def map(self, func, *args):
        """Yield ``func(partition, *args)`` for every partition, in partition order."""
        import dask
        if self.client is None:
            for i in range(0, len(self.parts), self.window):
                tasks = [dask.delayed(func, pure=False)(part, *args) for part in self.parts[i:i + self.window]]
                yield from dask.compute(*tasks, scheduler="threads")
            return
        shared = self.client.scatter(_Args(args), broadcast=True, hash=False)   # sent once per worker
        pending = deque()
        try:
            for part in self.parts:
                pending.append(self.client.compute(dask.delayed(_call, pure=False)(func, part, shared)))
                if len(pending) >= self.window:
                    yield _take(pending.popleft())
            while pending:
                yield _take(pending.popleft())
        finally:
            for fut in pending:
                fut.cancel()
            shared.release()

    def accumulate(self, form, layout, acc):
        """Pass 3: each partition's statistics (its clusters only), added up in partition order."""
        for part in self.map(partial_statistics, form, layout):
            acc.add_partial(part)

    def first(self, func, *args):
        """The first result that is not None, computing one partition at a time."""
        import dask
        for part in self.parts:
            task = dask.delayed(func, pure=False)(part, *args)
            out = (self.client.compute(task).result() if self.client is not None
                   else dask.compute(task, scheduler="threads")[0])
            if out is not None:
                return out
        return None


class _Args:
    """The shared arguments of a pass, scattered to the workers as one object."""

    def __init__(self, args):
        self.args = args


def _call(func, part, shared):
    return func(part, *shared.args)


def _take(future):
    out = future.result()
    future.release()
    return out


def partial_statistics(chunk, form, layout):
    """Pass 3 on one chunk, for adding up elsewhere: only the clusters the chunk holds.

    Returns None without used rows, else a dict: ``levels`` (per chain level, the global
    cluster numbers present and their blocks), ``xy`` and, with crossed factors, ``dtd``,
    ``dtxy`` and the coupling ``cidx``/``cval`` (flat indices into the statistics).
    """
    mf = form.frame(chunk)
    if mf is None:
        return None
    L = layout
    W, cluster, dense = L.arrays(mf)
    L.check_clusters(cluster)
    local = np.empty_like(cluster)
    ids, offsets, size = [], [np.zeros(0, dtype=np.intp)], 0
    for l in range(L.n_chain):
        first, G = L.level_first[l], L.level_first[l + 1] - L.level_first[l]
        if G <= 8 * len(cluster):          # a table over the level's clusters beats sorting
            seen = np.bincount(cluster[:, l] - first, minlength=G) > 0
            present = first + np.flatnonzero(seen)
            inverse = (np.cumsum(seen) - 1)[cluster[:, l] - first]
        else:
            present, inverse = np.unique(cluster[:, l], return_inverse=True)
        local[:, l] = sum(len(o) for o in offsets) + inverse
        offsets.append(size + L.widths[l] * np.arange(len(present), dtype=np.intp))
        size += L.widths[l] * len(present)
        ids.append(present)
    stats = np.zeros(size)
    _core.scatter_cross_products(W, L.zoff, local, np.concatenate(offsets), L.stat_qd, stats)
    levels, k = [], 0
    for l, present in enumerate(ids):
        n_l = len(present) * L.widths[l]
        levels.append((present, stats[k:k + n_l].reshape(len(present), L.widths[l])))
        k += n_l
    xy = W[:, L.zoff[-1]:]
    out = {"levels": levels, "n": W.shape[0], "xy": xy.T @ xy}
    if L.qd:
        D = L.dense_matrix(dense, W.shape[0])
        out["dtd"], out["dtxy"] = (D.T @ D).tocsr(), np.asarray(D.T @ xy)
        out["cidx"], out["cval"] = L.coupling_values(W, cluster, D)
    return out


def map_rows(ddf, func, *args):
    """A lazy Dask Series of ``func(partition, *args)`` (residuals or fitted values per partition)."""
    what = args[-1]
    return ddf.map_partitions(func, *args, meta=pd.Series(dtype="float64", name=what))
