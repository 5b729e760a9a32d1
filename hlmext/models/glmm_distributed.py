"""Mixed logit / Poisson (any family of ``MixedGLM``) fitted on partitions of the data.

The rows are shuffled once so that every top-level cluster lives in one partition
(``hlmext.design.glmm_partitions``). Every partition then holds a model of the family's
class built on its own rows with the shared design infos (``LocalPart``: the same
columns and factor levels everywhere), and evaluates its clusters with the family's
compiled kernels through the model's own ``loglike_theta``. The log-likelihood and its
gradient are sums over top-level clusters, so the driver (``DistributedGLM``) adds the
partitions' values in partition order and optimizes with the in-memory optimizer
(``minimize_with_gradient``, ``best_on_boundary``); standard errors come from the same
finite differences of the summed gradient. Only parameters go to the partitions and
only sums come back.

What the in-memory model checks on all rows (a constant response, the rank of the fixed
part, the identification of the levels) is checked on sums gathered once
(``LocalPart.summary``). The GLM that starts the fit is the in-memory Newton-IRLS of
``glm_start`` with its cross-products ``X'WX`` summed over the partitions.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
import types
import warnings

import numpy as np
import pandas as pd
import patsy
from statsmodels.base.model import LikelihoodModel

from ..design import glmm_partitions as gp
from ..design.chunked import ChunkFormula, LocalRunner, _is_dask, chunk_source, design_pass
from ..design.dask_fit import DaskRunner
from ..design.layout import LevelSpec, MixedDesign
from ..design.level_structure import check_group_structure
from ..design.rank import check_fixed_rank
from ..exceptions import ConvergenceWarning, DataError, ModelError
from ..formula import frames
from ..formula import grammar as fm
from ..keywords import checked
from . import links
from .family_partitions import FamilyOnPartitions, check_nagq
from .glmm import MixedGLM, find_optimum
from .glm_start_partitions import glm_start, offset_shift
from .glmm_boundary import not_identified
from .design_input import release_arrays
from .mixed_family import MixedFamily
from ..threads import single_blas_thread
from .part_memory import CallLock, RowStore, SharedBuffers
from .quadrature import MAX_NODES
from .robust_options import cov_options
from ..stacklevel import user_stacklevel

LOG = logging.getLogger("hlmext.distributed")


# --------------------------------------------------------------------------- on a partition

class PartSpec:
    """What every partition needs to build its model: the family's class, the formula's
    shared design infos (``ChunkFormula``), the per-row roles given by column name, and the
    class's other arguments (``MixedFamily``'s ``family``)."""

    def __init__(self, family, form, extra, options=None, part=None):
        self.family, self.form, self.extra = family, form, dict(extra)
        self.options = dict(options or {})
        self.part = part or LocalPart                # what holds the partition's model


def build_part(rows, spec):
    """The ``LocalPart`` of a partition's rows, or None if none is used."""
    if len(rows) == 0:
        return None
    form = spec.form
    work = form.prepare(rows).reset_index(drop=True)
    try:
        frame, arrays, columns = frames.model_frame_with_columns(form.parsed, work, spec.extra, form.missing,
                                                                 form.eval_env(), infos=form.design())
    except DataError as err:
        if str(err).startswith("no rows left"):
            return None
        raise
    if len(frame.endog) == 0:
        return None
    # outermost level first: a tie in the number of groups keeps the nesting of the columns
    blocks = sorted(frame.random, key=lambda b: len(b.term.group))
    specs = [LevelSpec(b.term.level, b.groups, b.exog_re, [(b.term.cov, list(range(b.exog_re.shape[1])))],
                       list(b.names)) for b in blocks]
    design = MixedDesign(frame.endog, frame.exog, frame.exog_names, specs, endog_name=frame.endog_name,
                         partial=True)
    n_dropped = frame.n_dropped
    release_arrays(frame)
    model = spec.family(design=design, frame=None, columns=columns, **arrays, **spec.options)
    return spec.part(model, n_dropped)


def _compact(model):
    """Keep the rows once, in the smallest exact form (``part_memory.RowStore``): drop statsmodels'
    copies (``data``, ``endog``, ``exog``), the design's row order and matrix ``W`` (X is kept
    as a contiguous copy, alone, and a call sees it in W's layout, as in memory: the row
    stride changes the rounding of ``X' e``, and with it the last digits of a fit whose
    optimum is flat), with one level the per-row data constants (summed per cluster in
    ``_const_by_cluster``) and the rows' cluster codes, and the arrays the store makes again
    for every call."""
    model.data = model.endog = model.exog = None
    d = model.design
    d.order = None
    strided = None
    if d.W is not None and model._X is not None and model._X.base is d.W:
        strided = (np.ascontiguousarray(model._X), d.W.shape[1], int(d.zoff[-1]))
        model._X = strided[0]
        d.W = d.exog = None
    d.endog = None
    for lv in d.levels[:d.n_chain]:
        lv._codes = None                          # the rows' cluster codes: made from the sizes when asked for
    if not model.nested:
        model._row_const = None
    store = RowStore(model)
    if strided is not None:
        store.keep_strided("_X", *strided)
    store.release(model)
    return store


class LocalPart:
    """A partition's model (the family's class on the partition's rows) and what it returns.

    The part functions below run one at a time on a part (``lock``). The sums the driver's
    checks need are taken first (``summary``); then the rows are kept once, in the arrays the
    kernels read (``_compact``), and the per-row work arrays only during a call.
    """

    def __init__(self, model, n_dropped):
        self.model, self.n_dropped = model, n_dropped
        self._summary = self.summary()
        buffers = SharedBuffers(model._buffers.get(model))
        model._buffers = buffers
        self.store = self.compact(model)
        self.lock = CallLock(model, self.store, buffers)

    compact = staticmethod(_compact)

    def summary(self):
        """Sums over the partition's rows for the global checks, the start and the results."""
        m, d = self.model, self.model.design
        X, y = m._X, m._y
        xy = np.column_stack([X, y])
        levels = []
        for i, lv in enumerate(d.levels):
            z = d.z_of(i)
            levels.append(dict(name=lv.name, names=list(lv.names), cov=lv.cov, n_groups=lv.n_groups,
                               size_min=int(lv.sizes.min()), size_max=int(lv.sizes.max()),
                               single=bool(np.all(lv.sizes == 1)), zz=z.T @ z))
        return dict(n=m.nobs, n_dropped=self.n_dropped, y_min=float(y.min()), y_max=float(y.max()), y_sum=float(y.sum()),
                    gram=xy.T @ xy, x_sum=X.sum(axis=0), ones=np.all(X == 1.0, axis=0),
                    trials_sum=float(m.trials.sum()), off_sum=float(m.offset.sum()),
                    off_nonzero=bool(np.any(m.offset != 0)), levels=levels, qd=int(getattr(d, "qd", 0)),
                    not_identified=not_identified(m), exog_names=list(d.exog_names))


def part_summary(part):
    return part._summary


def part_reset(part):
    """Every fit starts the conditional modes from zero, as in memory."""
    with part.lock:
        part.model._u[:] = 0.0


def part_loglik(part, beta, theta, nagq, grad, log_phi=None):
    """The partition's log-likelihood (and gradient); at the driver's ``log_phi`` if the family has one."""
    with part.lock, single_blas_thread():
        if log_phi is None:
            return part.model.loglike_theta(beta, theta, nagq, grad=grad)
        return part.model.loglike_at(beta, theta, log_phi, nagq, grad=grad)


# --------------------------------------------------------------------------- on the driver

class _SizeSummary:
    """Group sizes of a level summed over partitions: what ``level_info`` asks of them."""

    def __init__(self, lo, hi, total, count):
        self._lo, self._hi, self._mean = lo, hi, total / count

    def min(self):
        return self._lo

    def max(self):
        return self._hi

    def mean(self):
        return self._mean

    def __eq__(self, value):
        """Whether every group has ``value`` rows (``np.all(sizes == 1)``, as on an array)."""
        return self._lo == value == self._hi

    __hash__ = None


class LevelSummary:
    """One level of random effects without its rows: name, columns, covariance, groups."""

    def __init__(self, info):
        self.name, self.names, self.cov = info["name"], info["names"], info["cov"]
        self.q = len(self.names)
        self.n_groups = 0
        self._lo, self._hi, self.zz = np.inf, -np.inf, np.zeros((self.q, self.q))
        self.first = 0
        self.single = True

    def add(self, info):
        self.n_groups += info["n_groups"]
        self._lo, self._hi = min(self._lo, info["size_min"]), max(self._hi, info["size_max"])
        self.zz = self.zz + info["zz"]
        self.single &= info["single"]

    def finish(self, nobs):
        self.sizes = _SizeSummary(self._lo, self._hi, nobs, self.n_groups)


class PartitionedDesign:
    """The design of a model whose rows stay on their partitions (``has_rows`` False)."""

    has_rows = False
    qd = 0
    y_shift = 0.0

    def __init__(self, levels, nobs, n_dropped, exog_names, endog_name, intercept_col):
        self.levels, self.n_chain, self.nobs = levels, len(levels), nobs
        self.n_dropped, self.exog_names, self.endog_name = n_dropped, exog_names, endog_name
        self.k_fe, self.intercept_col = len(exog_names), intercept_col
        self.crossed = []

    @property
    def n_levels(self):
        return len(self.levels)

    def z_rms(self, i):
        return np.sqrt(np.diag(self.levels[i].zz) / max(self.nobs, 1))


_FAMILY_METHODS = ("lams", "theta_start", "theta_bounds", "theta_scale", "report_names", "report_from_theta",
                   "theta_from_report", "_check_nagq")
_FAMILY_LABELS = ("_family_code", "_sm_family", "model_label", "eform_label", "versus", "latent_variance")


class DistributedGLM(FamilyOnPartitions, LikelihoodModel):
    """A mixed model of ``family`` whose rows live on the partitions (``hlmext.melogit``,
    ``mepoisson``, ``meglm``, ``meprobit``, ``mecloglog`` and ``menbreg`` build it for chunked,
    Parquet or Dask data).

    Parameters
    ----------
    family : type
        A ``MixedGLM`` subclass (``hlmext.MixedLogit``, ``hlmext.MixedPoisson``, ...); its
        kernels, family code and labels are used.
    parts : hlmext.design.glmm_partitions.Partitions
        The partitions, each holding a ``LocalPart``.
    frame : ModelFrame
        Design infos and names without rows (for ``predict`` on new data).
    formula : str
    columns : dict
        Per-row roles given by column name (``trials``, ``offset``, ``exposure``).
    progress : bool
        Print one line per evaluation of the log-likelihood (a pass over the partitions).
    options : dict, optional
        The family class's other arguments (``{"family": FamilySpec}`` for ``MixedFamily``).
    """

    results_class = wrapper_class = None
    sampling = None
    _cweight = _pen = None
    offset = None

    # the parameters as the family's class defines them (bound to the family's in ``__init__``)
    lams = MixedGLM.lams
    theta_start = MixedGLM.theta_start
    theta_bounds = MixedGLM.theta_bounds
    theta_scale = MixedGLM.theta_scale
    report_names = MixedGLM.report_names
    report_from_theta = MixedGLM.report_from_theta
    theta_from_report = MixedGLM.theta_from_report
    _check_nagq = MixedGLM._check_nagq

    def __init__(self, family, parts, frame, formula, columns, progress=False, options=None):
        self.family, self.parts, self.frame, self.formula = family, parts, frame, formula
        self.options = dict(options or {})
        self.spec = self.options.get("family")
        for name in _FAMILY_METHODS:                # the family's own parametrization, if it has one
            func = getattr(family, name)
            if name == "_check_nagq" and issubclass(family, MixedFamily):
                func = check_nagq                   # MixedFamily's own calls its base class's
            setattr(self, name, types.MethodType(func, self))
        self.columns, self.progress = dict(columns), bool(progress)
        for name in _FAMILY_LABELS:                 # class attributes, or properties of the family's spec
            attr = inspect.getattr_static(family, name, None)
            if isinstance(attr, property):
                attr = attr.fget(self)
            elif isinstance(attr, types.FunctionType):
                attr = types.MethodType(attr, self)
            setattr(self, name, attr)
        if len(parts) == 0:
            raise DataError("no rows left: every row has missing or non-finite values (or the data has no rows)")
        self._summarize(parts.map(part_summary))
        self._init_family()
        names = self.design.exog_names
        super().__init__(pd.Series(np.zeros(0), name=self.design.endog_name),
                         pd.DataFrame(np.zeros((0, len(names))), columns=names), hasconst=False)
        self.data.param_names = list(names) + self.report_names()
        self.n_evals, self._start_time = 0, None

    def _summarize(self, parts):
        first = parts[0]
        names = [lv["name"] for lv in first["levels"]]
        if any(p["qd"] for p in parts):
            raise ModelError("the random part has crossed factors within the top-level clusters; fit in memory")
        levels = [LevelSummary(info) for info in first["levels"]]
        n = sum(p["n"] for p in parts)
        for p in parts:
            if [lv["name"] for lv in p["levels"]] != names:
                raise ModelError("the partitions order the levels %s differently; write the nesting in the formula, "
                                 "e.g. (1 | a/b)" % ", ".join(map(repr, names)))
            for lv, info in zip(levels, p["levels"]):
                lv.add(info)
        first_cluster = 0
        for lv in levels:
            lv.finish(n)
            lv.first, first_cluster = first_cluster, first_cluster + lv.n_groups
        self.levels = levels
        self.k_re = sum(lv.cov.n_theta for lv in levels)
        self.nested = len(levels) > 1
        gram = sum(p["gram"] for p in parts)
        self._G0 = gram
        exog_names = first["exog_names"]
        ones = np.logical_and.reduce([p["ones"] for p in parts])
        self._ones = np.flatnonzero(ones)
        endog_name = self.frame.endog_name
        self.design = PartitionedDesign(levels, n, sum(p["n_dropped"] for p in parts), exog_names, endog_name,
                                        int(self._ones[0]) if self._ones.size else -1)
        self.frame.n_dropped = self.design.n_dropped
        self.nobs, self.k_fe = n, len(exog_names)
        if min(p["y_min"] for p in parts) == max(p["y_max"] for p in parts):
            raise DataError("the response %r has the same value (%g) in every row: there is nothing to model"
                            % (endog_name, parts[0]["y_min"]))
        check_fixed_rank(gram[:-1, :-1], exog_names)
        check_group_structure(levels, len(levels))
        for lv in levels:
            if lv.q > 1 and np.linalg.matrix_rank(lv.zz) < lv.q:
                raise ModelError("the random-effects design of level %r (%s) is rank deficient: some columns are "
                                 "collinear or constant; drop one of them" % (lv.name, ", ".join(lv.names)))
        self._x_sum = sum(p["x_sum"] for p in parts)
        self._y_sum = float(sum(p["y_sum"] for p in parts))
        self._trials_sum = float(sum(p["trials_sum"] for p in parts))
        off_nonzero = any(p["off_nonzero"] for p in parts)
        self._offset_mean = sum(p["off_sum"] for p in parts) / n if off_nonzero else 0.0
        self._offset_given = off_nonzero
        ni = [p["not_identified"] for p in parts]
        self.not_identified = [nm for nm in ni[0] if all(nm in other for other in ni[1:])]

    @property
    def exog_names(self):
        return self.design.exog_names

    @property
    def endog_names(self):
        return self.design.endog_name

    # ------------------------------------------------------------------ objective
    def loglike_theta(self, beta, theta, nagq=1, grad=False):
        """Log-likelihood (and gradient) at (beta, theta): the partitions' sums, in partition order
        (with a dispersion parameter, at its maximum there: ``family_partitions``)."""
        beta, theta = np.asarray(beta, float), np.asarray(theta, float)
        return self._evaluate(beta, theta, nagq, grad, self._profiled(beta, theta, nagq))

    def _evaluate(self, beta, theta, nagq, grad, log_phi):
        out = self.parts.map(part_loglik, beta, theta, nagq, grad, log_phi)
        self._report(out, grad)
        if not grad:
            return float(sum(out)) if all(np.isfinite(out)) else -np.inf
        ll = sum(o[0] for o in out)
        if not np.isfinite(ll):
            return -np.inf, np.full(beta.size + theta.size, np.nan)
        return float(ll), sum(o[1] for o in out)

    def _report(self, out, grad):
        self.n_evals += 1
        if self._start_time is None:
            self._start_time = time.perf_counter()
        ll = sum(o[0] if grad else o for o in out)
        elapsed = time.perf_counter() - self._start_time
        LOG.info("evaluation %d: log-likelihood %.10g over %d partitions (%.1fs)", self.n_evals, ll,
                 len(self.parts), elapsed)
        if self.progress:
            print("  evaluation %4d: log-likelihood %.10g  (%.1fs)" % (self.n_evals, ll, elapsed), flush=True)

    def loglike(self, params, nagq=7):
        """Log-likelihood at ``params`` = (fixed effects, sd's and correlations), the modes from zero."""
        params = np.asarray(params, float)
        nagq = self._check_nagq(nagq)
        self.parts.map(part_reset)
        return self.loglike_theta(params[:self.k_fe], self.theta_from_report(params[self.k_fe:]), nagq)

    # ------------------------------------------------------------------ fit
    @checked
    def fit(self, nagq=None, start=None, maxiter=1000, disp=False, cov_type=None, cov_kwds=None):
        """Fit by maximum likelihood on the partitions; see ``MixedGLM.fit``.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("contraception")
        >>> chunks = [df.iloc[i::3] for i in range(3)]
        >>> res = hlmext.melogit("use ~ age + urban + (1 | district)", chunks).fit(nagq=7)
        >>> round(res.llf, 3)
        -1250.063
        """
        robust, _ = cov_options(None, cov_type, cov_kwds, reml=False)
        if nagq is None:
            nagq = 1 if self.nested or 7 ** self.levels[0].q > MAX_NODES else 7
        self.parts.map(part_reset)
        self._start_time = None
        with single_blas_thread():
            return self._fit(nagq, start, maxiter, disp, robust)

    def _fit(self, nagq, start, maxiter, disp, robust=None):
        """As ``MixedGLM._fit``, with the GLM start and the offset's shift from the partitions' sums."""
        nagq = self._check_nagq(nagq)
        self._start_family(robust)
        opt, null_llf, se_glm = find_optimum(self, nagq, start, maxiter, disp, glm_start, offset_shift)
        if not opt.converged:
            warnings.warn("the optimizer did not converge: max |gradient| of the deviance is %.3g after %d "
                          "evaluations; rescale covariates, simplify the random part or try other start values"
                          % (opt.max_abs_gradient, opt.n_evals), ConvergenceWarning, stacklevel=user_stacklevel())
        return self._finish_family(self.wrapper_class(self.results_class(self, opt.end, nagq, opt, null_llf,
                                                                          se_glm, robust)))


# --------------------------------------------------------------------------- construction

def from_formula(cls, family, formula, data, extra, cov=None, missing="drop", eval_env=0, npartitions=None,
                 client=None, progress=False, batch_size=None, categories=None, tmpdir=None, options=None,
                 data_hook=None, part=None):
    """A ``cls`` (a ``DistributedGLM``) of ``family`` from a formula and chunked, Parquet or Dask data.

    Parameters
    ----------
    cls : type
        ``DistributedGLM`` or a subclass (the user-facing one names the results class).
    family : type
        The ``MixedGLM`` subclass whose model every partition builds.
    formula : str
    data : list of DataFrame, callable, str, os.PathLike or dask.dataframe.DataFrame
        As for ``hlmext.design.chunked.from_formula``.
    extra : dict
        Per-row roles (``trials``, ``offset``, ``exposure``) as column names, or None.
    cov, missing, eval_env, batch_size, categories
        As for ``hlmext.design.chunked.from_formula``.
    npartitions : int, optional
        Partitions after the shuffle (default twice the client's threads, or 4 without a
        client, and at least one per ``PART_ROWS`` rows of a list of chunks or of Parquet
        data; for a Dask DataFrame at least its own number). A call on a partition makes
        its per-row arrays (about 130 bytes a row), so a partition's rows bound them.
    client : distributed.Client, optional
        Where the partitions live (default the current client; without one, this process).
    progress : bool
        Print one line per evaluation of the log-likelihood.
    tmpdir : str, optional
        Where chunks are hash-partitioned (default the system's temporary directory).
    options : dict, optional
        The family class's other arguments: ``{"family": ...}`` for ``MixedFamily`` (a
        statsmodels family instance, ``"nb2"``/``"nb1"`` or a ``FamilySpec``).
    data_hook : callable, optional
        ``data_hook(source)`` -> ``(source, options)``: a pass over the data (the Dask
        DataFrame, or the ``LocalRunner`` of the chunks) before the design pass, giving the
        data to read from then on and more of the class's arguments (``ordinal_partitions``:
        the response read as the codes of its categories, and the categories).
    part : type, optional
        What holds a partition's model (default ``LocalPart``).
    """
    options = dict(options or {})
    if issubclass(family, MixedFamily):
        spec = options.get("family")
        if spec is None:
            raise TypeError("MixedFamily needs family= (a statsmodels family instance, e.g. "
                            "sm.families.Binomial(link=sm.families.links.Probit()))")
        options["family"] = spec if isinstance(spec, links.FamilySpec) else links.resolve(spec)
    parsed = fm.parse(formula, cov=cov)
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    for role, value in extra.items():
        if value is not None and not isinstance(value, str):
            raise TypeError("%s must be a column name for chunked, Parquet or Dask data (an array cannot follow "
                            "the rows through the shuffle): add it to the data as a column" % role)
    if npartitions is not None and (isinstance(npartitions, bool) or not isinstance(npartitions, int)
                                    or npartitions < 1):
        raise ValueError("npartitions must be a positive integer, got %r" % (npartitions,))
    if not isinstance(eval_env, patsy.EvalEnvironment):
        eval_env = patsy.EvalEnvironment.capture(eval_env, reference=1)
    form = ChunkFormula(parsed, missing, eval_env, categories)
    key = gp.shuffle_key(parsed)
    roles = {role: col for role, col in extra.items() if col is not None}
    client = client if client is not None else gp.default_client()
    folder = None
    try:
        if _is_dask(data):
            all_columns = list(data.columns)
            if data_hook is not None:
                data, more = data_hook(data)
                options.update(more)
            design_pass(DaskRunner(data, form, client=client), form)
            columns = list(dict.fromkeys(form.columns(all_columns) + list(roles.values())))
            n = npartitions or max(data.npartitions, 2 * _threads(client))
            sources = gp.from_dask(data, key, columns, n)
        else:
            source = chunk_source(data, batch_size=batch_size, columns=_parquet_columns(data, form, roles))
            runner = LocalRunner(source)
            if data_hook is not None:
                runner, more = data_hook(runner)
                options.update(more)
            design_pass(runner, form)
            n = npartitions or _partitions_for(data, client)
            folder = gp.BucketFolder(runner.chunks(), key, _chunk_columns(runner, form, roles), n, tmpdir)
            sources = folder.dirs
        if client is not None:
            form.make_portable(list(form.sample.columns) + list(roles.values()))
        parts = gp.Partitions(sources, build_part, PartSpec(family, form, roles, options, part), client)
    finally:
        if folder is not None:
            folder.close()
    model = cls(family, parts, _frame_stub(form), formula, roles, progress=progress, options=options)
    model.lazy_modes = _is_dask(data) and client is not None
    return model


#: the rows of a partition by default (chunked and Parquet data): a call's arrays on a
#: partition, about 130 bytes a row, stay near 130 MB however large the data
PART_ROWS = 1_000_000


def _partitions_for(data, client):
    """Partitions for chunked or Parquet data: twice the client's threads, more for more than
    ``PART_ROWS`` rows a partition (when the rows are counted without reading them)."""
    rows = _count_rows(data)
    return max(2 * _threads(client), -(-rows // PART_ROWS) if rows else 0)


def _count_rows(data):
    """The rows of a list of DataFrames or of Parquet data (from its metadata); None otherwise."""
    if isinstance(data, (list, tuple)):
        return sum(len(chunk) for chunk in data)
    if isinstance(data, (str, os.PathLike)) and os.path.exists(data):
        import pyarrow.dataset as ds
        return ds.dataset(os.fspath(data), format="parquet", partitioning="hive").count_rows()
    return None


def _threads(client):
    """The client's threads (2 without a client: partitions for two cores)."""
    return max(1, sum(client.nthreads().values())) if client is not None else 2


def _parquet_columns(data, form, roles):
    """The Parquet columns to read: the formula's and the per-row roles' (None: not Parquet)."""
    if not isinstance(data, (str, os.PathLike)) or not os.path.exists(data):
        return None
    import pyarrow.dataset as ds
    names = ds.dataset(os.fspath(data), format="parquet", partitioning="hive").schema.names
    return list(dict.fromkeys(form.columns(names) + [c for c in roles.values() if c in names]))


def _chunk_columns(runner, form, roles):
    """The columns every chunk contributes to the partitions (from the first chunk's columns)."""
    first = next(iter(runner.chunks()))
    missing = [c for c in roles.values() if c not in first.columns]
    if missing:
        raise DataError("the data lack the column(s) %s" % ", ".join(map(repr, missing)))
    return list(dict.fromkeys(form.columns(list(first.columns)) + list(roles.values())))


def _frame_stub(form):
    """The formula frame without rows (design infos and names, for ``predict`` on new data)."""
    mf = form.frame(form.sample)
    blocks = [dataclasses.replace(b, exog_re=np.zeros((0, len(b.names))), groups=np.zeros((0, len(b.term.group)),
                                                                                          dtype=object))
              for b in mf.random]
    return dataclasses.replace(mf, endog=np.zeros(0), exog=np.zeros((0, len(mf.exog_names))), random=blocks,
                               row_labels=pd.RangeIndex(0), n_dropped=0)
