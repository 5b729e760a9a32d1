"""How a partition of a generalized model fitted on partitions holds its rows between calls.

A worker holds its partitions' rows for the whole fit, so they are kept once, in the
smallest exact form (``RowStore``): the fixed-effects design, the response in the
narrowest integer type that holds it exactly, and nothing for what is the same in every
row (trials of 1, a zero offset, a random intercept's column of ones) or repeats another
column (a random slope's column of X). The arrays the kernels read (``_Z``, ``_y``,
``trials``, ``offset``) and their per-row work arrays are made when a call on the
partition starts and dropped when it ends (``CallLock``), so a worker holds them for one
partition at a time: with partitions of a bounded number of rows, a bounded size.
"""
from __future__ import annotations

import threading

import numpy as np

#: the kernels' per-row work arrays: they exist only while a call runs on the partition
ROW_BUFFERS = ("e", "eta", "mu", "w", "dw", "zl", "ubar", "rd", "gab")

#: per-row values a model caches during a call (``dispersion_laplace``): dropped with the work arrays
ROW_CACHES = ("_row_cluster_index",)

#: integer types tried for a response or trials, narrowest first
_INTEGERS = (np.int8, np.int16, np.int32)


def narrowest(values):
    """``values`` (float64) in the narrowest integer type holding every value exactly, else as they are."""
    values = np.asarray(values)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return values
    lo, hi = values.min(), values.max()
    for kind in _INTEGERS:
        info = np.iinfo(kind)
        if info.min <= lo and hi <= info.max:
            small = values.astype(kind)
            if np.array_equal(small, values) and not np.any(np.signbit(values[values == 0])):
                return small
            return values
    return values


def _as_float(values):
    return np.ascontiguousarray(values, dtype=np.float64)


class RowStore:
    """A partition model's per-row arrays in their smallest exact form, and how to make them again.

    ``recipes`` maps a model attribute to ``(kind, value)``: ``"float"`` (an array made
    float64 again, e.g. a narrowed response), ``"fill"`` (``(shape, value)``: the same value
    in every row), ``"columns"`` (per column of ``_Z``: ``("one",)``, ``("x", k)`` for
    column ``k`` of the fixed-effects design ``x_name``, or the column's values) or
    ``"derived"`` (a function of the model's other arrays). Several attributes may share
    one array (``_ky`` is ``_y``).
    """

    def __init__(self, model, x_name="_X"):
        n = model.nobs
        self.recipes, self.aliases, self.x_name = {}, {}, x_name
        self.recipes["_y"] = ("float", narrowest(model._y))
        self.aliases["_ky"] = "_y" if model._ky is model._y else None
        for name, alias, value in (("trials", "_kn", 1.0), ("offset", "_koff", 0.0)):
            arr = getattr(model, name)
            if arr is None:
                continue
            same = getattr(model, alias) is arr
            if np.all(arr == value) and not (value == 0.0 and np.any(np.signbit(arr))):
                self.recipes[name] = ("fill", ((n,), value))
            else:
                self.recipes[name] = ("float", narrowest(arr) if name == "trials" else arr)
            self.aliases[alias] = name if same else None
        self.aliases = {k: v for k, v in self.aliases.items() if v is not None}
        if not int(getattr(model.design, "qd", 0)):
            self.recipes["_Z"] = ("columns", _z_columns(model._Z, getattr(model, x_name)))
        if model.nested and getattr(model, "_cl", None) is not None and not int(getattr(model.design, "qd", 0)):
            self.derive("_cl", _chain_codes)

    def keep_strided(self, name, values, width, first):
        """Hold ``values`` (n, k) contiguous, and give the model for a call a view of columns
        ``first:first + k`` of a fresh (n, width) array: the in-memory layout of X inside the
        design matrix W, whose row stride decides the rounding of BLAS products such as the
        gradient's ``X' e``."""
        self.recipes[name] = ("strided", (values, width, first))

    def derive(self, name, func):
        """Make ``name`` for every call as ``func(model)``, after the arrays above (and drop it after)."""
        self.recipes[name] = ("derived", func)

    def release(self, model):
        """Drop the per-row arrays that ``make`` builds again (after ``__init__``, once)."""
        for name in list(self.recipes) + list(self.aliases):
            kind, value = self.recipes.get(name, (None, None))
            setattr(model, name, value[0] if kind == "strided" else None)
        for name in ROW_CACHES:
            model.__dict__.pop(name, None)

    def make(self, model):
        """Set the model's per-row arrays for a call."""
        for name, (kind, value) in self.recipes.items():
            if kind == "float":
                arr = _as_float(value)
            elif kind == "fill":
                shape, fill = value
                arr = np.full(shape, fill)
            elif kind == "columns":
                arr = _z_of(value, getattr(model, self.x_name))
            elif kind == "strided":
                values, width, first = value
                arr = np.empty((values.shape[0], width))[:, first:first + values.shape[1]]
                arr[...] = values
            else:
                continue
            setattr(model, name, arr)
        for alias, name in self.aliases.items():
            setattr(model, alias, getattr(model, name))
        for name, (kind, func) in self.recipes.items():
            if kind == "derived":
                setattr(model, name, func(model))

    @property
    def nbytes(self):
        """Bytes held per partition by the store (the arrays of the ``"float"`` and ``"columns"`` kinds)."""
        total = 0
        for kind, value in self.recipes.values():
            if kind == "float":
                total += value.nbytes
            elif kind == "strided":
                total += value[0].nbytes
            elif kind == "columns":
                total += sum(c[1].nbytes for c in value[1] if c[0] == "array")
        return total


def _chain_codes(model):
    """Every row's cluster in each level of the nested chain (the kernel's ``_cl``), from the sizes."""
    d = model.design
    cols = [lv.first + np.repeat(np.arange(lv.n_groups), lv.sizes) for lv in d.levels[:d.n_chain]]
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.intp)


def _z_columns(Z, X):
    """How to make every column of Z: ``("one",)``, ``("x", k)`` (column k of X) or ``("array", values)``."""
    cols = []
    for j in range(Z.shape[1]):
        z = Z[:, j]
        if np.all(z == 1.0):
            cols.append(("one",))
            continue
        same = [k for k in range(X.shape[1]) if np.array_equal(z, X[:, k])
                and np.array_equal(np.signbit(z), np.signbit(X[:, k]))]
        cols.append(("x", same[0]) if same else ("array", np.array(z)))
    return (Z.shape, cols)


def _z_of(spec, X):
    shape, cols = spec
    Z = np.empty(shape)
    for j, col in enumerate(cols):
        if col[0] == "one":
            Z[:, j] = 1.0
        elif col[0] == "x":
            Z[:, j] = X[:, col[1]]
        else:
            Z[:, j] = col[1]
    return Z


class SharedBuffers:
    """One set of work buffers for every thread (``threads.PerThread`` keeps one per thread): the
    conditional modes warm-start from the partition's previous evaluation, whichever thread
    of a worker runs it, as the in-memory fit's do (``CallLock`` keeps one call at a time).
    The per-row arrays are allocated when a call starts and released when it ends."""

    def __init__(self, buffers):
        self.buffers = buffers
        self.row_shapes = {name: getattr(buffers, name).shape for name in ROW_BUFFERS
                           if getattr(buffers, name, None) is not None}
        self.release()

    def get(self, model):
        return self.buffers

    def allocate(self):
        for name, shape in self.row_shapes.items():
            setattr(self.buffers, name, np.empty(shape))

    def release(self):
        for name in self.row_shapes:
            setattr(self.buffers, name, None)


class CallLock:
    """One call at a time on a partition (re-entrant: a call may run another part function);
    the model's per-row arrays (``RowStore``) and work arrays exist while the outermost call holds it."""

    def __init__(self, model, store, buffers):
        self._lock, self._depth = threading.RLock(), 0
        self._model, self._store, self._buffers = model, store, buffers

    def __enter__(self):
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1:
            try:
                self._store.make(self._model)
                self._buffers.allocate()
            except BaseException:
                self._drop()
                self._depth -= 1
                self._lock.release()
                raise
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self._drop()
        self._lock.release()

    def _drop(self):
        self._buffers.release()
        self._store.release(self._model)
