"""Ordinal mixed models (``meologit``, ``meoprobit``) fitted on partitions of the data.

As for the other families (``hlmext.models.glmm_distributed``): the rows are shuffled once
by the cluster key, every partition builds the ordinal model on its rows
(``PartOrdinal``) and returns sums, and the driver (``DistributedOrdinal``) runs the
in-memory optimizer of ``MixedOrdinal`` on them. What differs:

- the response's categories come from all the data, in a pass over its column before the
  design pass (``ResponseLevels``: an ordered Categorical's categories, or the sorted
  distinct values, as ``ordinal.response_codes`` in memory), and every chunk's response
  is read as their codes; that every category occurs is checked on
  the counts summed over the partitions, since a partition may lack some;
- the start, the ordinal regression without random effects (``null_fit``), takes its
  log-likelihood and gradient summed over the partitions, and its cut points from the
  summed counts of the categories;
- a partition keeps its rows as the other families' do (``part_memory.RowStore``), the
  response codes and the rows' cut indices made again for every call.

One level of random effects, as in memory.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.chunked import LocalRunner, _is_dask
from ..exceptions import DataError, FormulaError, ModelError
from ..formula import grammar as fm
from ..keywords import checked
from . import glmm_distributed as gd
from ..threads import single_blas_thread
from .quadrature import MAX_NODES
from .robust_options import cov_options
from .ordinal import MixedOrdinal, fit_without_random_effects
from .part_memory import RowStore


# --------------------------------------------------------------------------- the response

def _levels_of(series, name):
    """(ordered categories or None, sorted distinct values) of one chunk's response."""
    if isinstance(series.dtype, pd.CategoricalDtype) and series.dtype.ordered:
        return list(series.dtype.categories), None
    return None, pd.unique(series.dropna())


def _merge_levels(pieces, name):
    """The categories of all chunks: an ordered Categorical's (the same in every chunk), else
    the sorted distinct values (``ordinal.response_codes``)."""
    ordered = [p[0] for p in pieces if p[0] is not None]
    if ordered:
        if len(ordered) != len(pieces) or any(o != ordered[0] for o in ordered):
            raise DataError("response %r is an ordered Categorical in some chunks and not in others, or with "
                            "other categories: give it the same ordered categories in every chunk" % name)
        return ordered[0]
    values = pd.unique(np.concatenate([np.asarray(p[1], dtype=object) for p in pieces])) if pieces else []
    try:
        return sorted(values)
    except TypeError as exc:
        raise DataError("response %r mixes values that cannot be sorted (%s); pass an ordered pandas "
                        "Categorical to give the order of its categories" % (name, exc)) from None


def codes_of(series, levels):
    """The response as category codes 0..K-1 (float, NaN where missing) of the given ``levels``."""
    codes = pd.Categorical(series, categories=levels).codes.astype(float)
    codes[codes < 0] = np.nan
    return codes


class _Recode:
    """Each chunk with its response as the codes of ``levels`` (picklable, for Dask's workers)."""

    def __init__(self, name, levels):
        self.name, self.levels = name, levels

    def __call__(self, chunk):
        if self.name not in chunk.columns:
            return chunk
        return chunk.assign(**{self.name: codes_of(chunk[self.name], self.levels)})


class ResponseLevels:
    """``glmm_distributed.from_formula``'s hook: the response's categories from a pass over its
    column, and the data (a Dask DataFrame, or the runner of the chunks) with the response read
    as their codes."""

    def __init__(self, name):
        self.name = name

    def __call__(self, source):
        name = self.name
        if _is_dask(source):
            if name not in source.columns:
                raise FormulaError("the response of an ordinal model must be a column of data; %r is not one" % name)
            col = source[name]
            if isinstance(col.dtype, pd.CategoricalDtype) and col.dtype.ordered and col.cat.known:
                pieces = [(list(col.dtype.categories), None)]
            else:
                pieces = [(None, col.dropna().unique().compute().to_numpy())]
        else:
            pieces = []
            for chunk in source.chunks():
                if name not in chunk.columns:
                    raise FormulaError("the response of an ordinal model must be a column of data; %r is not one"
                                       % name)
                pieces.append(_levels_of(chunk[name], name))
        levels = _merge_levels(pieces, name)
        if len(levels) < 2:
            raise DataError("response %r has %s: an ordinal model needs at least two categories"
                            % (name, "one category (%r)" % (levels[0],) if levels else "no values"))
        recode = _Recode(name, levels)
        if _is_dask(source):
            meta = source._meta.assign(**{name: np.zeros(0)})
            coded = source.map_partitions(recode, meta=meta)
        else:
            chunks = source.source
            coded = LocalRunner(lambda: (recode(c) for c in chunks()))
        return coded, {"categories": levels}


# --------------------------------------------------------------------------- on a partition

class PartOrdinal(MixedOrdinal):
    """The ordinal model of one partition's rows, with the categories of all the data: a
    partition may lack some of them (the driver checks the summed counts)."""

    def _check_response(self, y, ntr, name, trials_name):
        pass


def _compact_ordinal(model):
    """``glmm_distributed._compact`` for an ordinal partition: its fixed part is ``_Xb`` (no
    intercept, no columns for the cut points); the codes and cut indices are made per call."""
    model._X = None
    model.data = model.endog = model.exog = None
    d = model.design
    d.order = d.W = d.exog = None
    d.endog = None
    model._row_const = None
    store = RowStore(model, x_name="_Xb")
    store.derive("_yk", lambda m: np.ascontiguousarray(m._y, dtype=np.intc))
    store.derive("_cut_of_A", lambda m: np.where(m._yk < m.k_cut, m._yk, -1))
    store.derive("_cut_of_B", lambda m: m._yk - 1)
    store.release(model)
    return store


class OrdinalPart(gd.LocalPart):
    """A partition's ordinal model; its summary adds the counts of the categories."""

    compact = staticmethod(_compact_ordinal)

    def summary(self):
        m = self.model
        padded, m._X = m._X, m.design.exog          # the design with its intercept, for the checks
        try:
            out = super().summary()
        finally:
            m._X = padded
        out["counts"] = np.bincount(m._yk, minlength=m.k_cut + 1)
        return out


def part_null(part, fe):
    """The partition's log-likelihood without random effects, and its gradient in (beta, cuts)."""
    with part.lock:
        return part.model._null_loglike(fe)


# --------------------------------------------------------------------------- on the driver

class DistributedOrdinal(gd.DistributedGLM):
    """An ordinal mixed model whose rows live on the partitions (``hlmext.meologit`` and
    ``meoprobit`` build it for chunked, Parquet or Dask data); see ``MixedOrdinal``."""

    n_categories = MixedOrdinal.n_categories
    categories = MixedOrdinal.categories
    split = MixedOrdinal.split
    optimum = MixedOrdinal.optimum
    _fit = MixedOrdinal._fit

    def __init__(self, family, parts, frame, formula, columns, progress=False, options=None):
        options = dict(options or {})
        self.link, self._categories = options["link"], list(options["categories"])
        super().__init__(family, parts, frame, formula, columns, progress=progress, options=options)
        if self.link == "probit":
            self.model_label, self.eform_label, self.versus = ("Mixed-effects oprobit regression", "",
                                                               "oprobit regression")

    def _summarize(self, parts):
        super()._summarize(parts)
        counts = sum(p["counts"] for p in parts)
        empty = [str(c) for c, n in zip(self._categories, counts) if n == 0]
        if empty:
            raise DataError("response %r has no rows in categor%s %s (after dropping rows with missing values): "
                            "drop unused categories (Series.cat.remove_unused_categories()) or merge them"
                            % (self.design.endog_name, "ies" if len(empty) > 1 else "y", ", ".join(empty)))
        names = list(self.design.exog_names)
        if "Intercept" not in names:
            raise FormulaError("the fixed part of an ordinal model needs its intercept (the cut points take its "
                               "place and it is dropped from the design): remove '0 +' or '- 1' from the formula")
        self._keep = [i for i, nm in enumerate(names) if nm != "Intercept"]
        self.beta_names = [names[i] for i in self._keep]
        self.k_beta, self.k_cut = len(self._keep), len(self._categories) - 1
        self.cut_names = ["/cut%d" % (k + 1) for k in range(self.k_cut)]
        self.k_fe = self.k_beta + self.k_cut
        self.design.exog_names = self.beta_names + self.cut_names
        self.design.k_fe, self.design.intercept_col = self.k_fe, -1
        self._counts = counts

    def _null_loglike(self, fe):
        """``MixedOrdinal._null_loglike``: the partitions' sums."""
        out = self.parts.map(part_null, np.asarray(fe, float))
        ll = sum(o[0] for o in out)
        if not np.isfinite(ll):
            return -np.inf, np.full(len(fe), np.nan)
        return float(ll), sum(o[1] for o in out)

    def null_fit(self):
        """``MixedOrdinal.null_fit`` from the summed counts and the partitions' sums."""
        return fit_without_random_effects(self, self._counts)

    @checked
    def fit(self, nagq=None, start=None, maxiter=1000, disp=False, cov_type=None, cov_kwds=None):
        """Fit by maximum likelihood on the partitions; see ``MixedOrdinal.fit``.

        Examples
        --------
        >>> import hlmext
        >>> wine = hlmext.datasets.load("wine")
        >>> chunks = [wine.iloc[i::3] for i in range(3)]
        >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", chunks).fit(nagq=7)
        >>> round(res.llf, 4)
        -81.5325
        """
        robust, _ = cov_options(None, cov_type, cov_kwds, reml=False)
        if nagq is None:
            nagq = 1 if 7 ** self.levels[0].q > MAX_NODES else 7
        nagq = self._check_nagq(nagq)
        if nagq == 0:
            raise ModelError("nagq=0 (fixed effects in the penalized IRLS) is not available for ordinal models, "
                             "whose cut points are not fixed effects of a GLM; fit by the Laplace approximation "
                             "(nagq=1) or adaptive quadrature (nagq > 1)")
        self.parts.map(gd.part_reset)
        self._start_time = None
        with single_blas_thread():
            return self._fit(nagq, start, maxiter, disp, robust)


def from_formula(cls, formula, data, link="logit", cov=None, missing="drop", eval_env=0, **options):
    """A ``cls`` (a ``DistributedOrdinal``) from a formula and chunked, Parquet or Dask data;
    the options as for ``glmm_distributed.from_formula``."""
    parsed = fm.parse(formula, cov=cov)
    groups = {tuple(t.group) for t in parsed.random}
    if len(groups) > 1:
        raise ModelError("meologit/meoprobit fit one level of random effects; the model has %s: keep one "
                         "grouping level" % ", ".join(":".join(g) for g in sorted(groups, key=len, reverse=True)))
    return gd.from_formula(cls, PartOrdinal, formula, data, {}, cov=cov, missing=missing, eval_env=eval_env,
                           options={"link": link}, data_hook=ResponseLevels(parsed.response), part=OrdinalPart, **options)
