"""Many responses, one design: one random-intercept model fitted to every column of ``Y``.

Genomics (a model per gene), simulation studies and bootstraps fit the same mixed model
to thousands of responses. The design's statistics (cluster sizes ``n_k``, cluster sums
``a_k`` of the fixed-effects rows, ``X'X``) are computed once; per column only the
response's (``1'y_k`` per cluster, ``X'y``, ``y'y``) are, and the one variance parameter
is found by a root search of the criterion's derivative, all in compiled code with the
columns spread over threads (``hlmext._kernels.many``; ``hlmext.set_num_threads``).

Rows whose response is missing (or not finite) are left out of that column's fit only:
the design's statistics are downdated for them, so every column gives what fitting it
alone gives. The Satterthwaite df use lmerTest's parameters ``(theta, sigma)`` with the
analytic Hessian of the criterion (``satterthwaite_df``).
"""
from __future__ import annotations

import keyword

import numpy as np
import pandas as pd

from .._kernels import many as _many
from ..exceptions import DataError, ModelError
from ..threads import get_num_threads

EIGEN_TOL = 1e-8            # lmerTest's tolerance for the eigenvalues of the Hessian
PLACEHOLDER = "_response_"  # the column a one-sided formula's model is built with
STATUS = _many.STATUS       # a column's status code -> text


def with_placeholder(formula, data):
    """``(formula, data, one_sided)``: a one-sided formula ``"~ x + (1 | g)"`` gets a placeholder
    response (a column of row numbers, never fitted) so that the model's design can be built."""
    if not isinstance(formula, str) or not formula.lstrip().startswith("~"):
        return formula, data, False
    if not isinstance(data, pd.DataFrame):
        raise DataError("a one-sided formula (for fit_many) needs the data as a pandas DataFrame, got %s"
                        % type(data).__name__)
    name = PLACEHOLDER
    while name in data.columns:
        name = "_" + name
    return name + " " + formula.lstrip(), data.assign(**{name: np.arange(len(data), dtype=float)}), True


class ManyDesign:
    """The design's arrays the kernel needs, from a model built by ``hlmext.mixedlm``.

    Parameters
    ----------
    model : LinearMixed
        One grouping factor with a random intercept, in memory, without weights.
    n_rows : int
        Rows of the data (and of ``Y``).
    """

    def __init__(self, model, n_rows):
        d = model.design
        if not getattr(d, "has_rows", False):
            raise ModelError("fit_many needs the data in memory (a DataFrame), not read in chunks")
        if len(d.levels) != 1 or d.qd or d.levels[0].q != 1:
            raise ModelError("fit_many fits one grouping factor with a random intercept, as '~ x + (1 | g)'; "
                             "this model has %s: fit its responses one at a time with fit()"
                             % ", ".join("%s (%d effects)" % (lv.name, lv.q) for lv in d.levels))
        if d.weights is not None or getattr(model, "sampling", None) is not None:
            raise ModelError("fit_many does not take weights or pweights; fit weighted models with fit()")
        self.n_rows = n_rows
        self.X = np.ascontiguousarray(d.exog)
        self.cluster = np.repeat(np.arange(d.levels[0].n_groups, dtype=np.intp), d.row_end - d.row_start)
        self.rows = data_positions(model, n_rows)[np.asarray(d.order, dtype=np.intp)]
        self.n_groups = d.levels[0].n_groups
        self.intercept_col = d.intercept_col
        self.exog_names = list(d.exog_names)
        self.level = d.levels[0].name


def data_positions(model, n_rows):
    """Row positions in the data of the model's rows (the formula's rows, in the data's order)."""
    frame = model.frame
    if frame.n_dropped == 0:
        if model.design.nobs != n_rows:
            raise DataError("Y has %d rows but the model's data have %d: give one row per row of the data"
                            % (n_rows, model.design.nobs))
        return np.arange(n_rows, dtype=np.intp)
    data = getattr(getattr(model, "call", None), "data", None)
    if data is None or len(data) != n_rows:
        raise DataError("Y has %d rows; it needs one row per row of the data the model was built from"
                        % n_rows)
    if not data.index.is_unique:
        raise DataError("the model dropped rows with missing values and the data's index has duplicate labels, "
                        "so Y's rows cannot be matched: reset the index (data.reset_index(drop=True))")
    return data.index.get_indexer(frame.row_labels).astype(np.intp)


def fit_responses(model, Y, reml=True):
    """Fit ``model`` to every column of ``Y`` (in memory or Dask): ``(design, fit, names, column)``
    with ``column(j, name)`` the values of one response (for its fit alone)."""
    if is_dask(Y):
        call = getattr(model, "call", None)
        design = ManyDesign(model, len(call.data) if call is not None else model.design.nobs)
        fit, names = fit_dask(design, Y, reml)
        if hasattr(Y, "columns"):
            return design, fit, names, lambda j, name: np.asarray(Y[name].compute(), dtype=float)
        return design, fit, names, lambda j, name: np.asarray(Y[:, j].compute(), dtype=float)
    values, names = response_matrix(Y)
    design = ManyDesign(model, values.shape[0])
    return design, fit_columns(design, values, reml), names, lambda j, name: values[:, j]


def is_dask(Y) -> bool:
    """True for a Dask array or DataFrame (``fit_dask`` then fits its blocks of columns)."""
    return type(Y).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(Y, "to_delayed")


def fit_dask(design, Y, reml=True, block_bytes=64 << 20):
    """``(fit, names)`` of a Dask array or DataFrame ``Y``: blocks of columns, each with all the rows
    (about ``block_bytes``), fitted as tasks (on the default client's workers if there is one, else
    on dask's local scheduler); only the per-column results come back."""
    import dask
    if hasattr(Y, "to_dask_array"):                   # a DataFrame: its columns name the responses
        names = list(Y.columns)
        _check_names_and_types(names, Y.dtypes)
        Y = Y.to_dask_array(lengths=True)
    else:
        names = None
    if Y.ndim != 2:
        raise DataError("Y must be 2-D (rows of the data x responses), got %d dimensions" % Y.ndim)
    names = list(range(Y.shape[1])) if names is None else names
    if Y.shape[1] == 0:
        raise DataError("Y has no columns")
    if Y.shape[0] != design.n_rows:
        raise DataError("Y has %d rows; it needs one row per row of the data (%d)" % (Y.shape[0], design.n_rows))
    width = int(max(1, block_bytes // (8 * max(Y.shape[0], 1))))
    blocks = Y.astype(float).rechunk((Y.shape[0], width)).to_delayed().ravel()
    parts = dask.compute(*[dask.delayed(_fit_block, pure=True)(design, b, reml) for b in blocks])
    fit = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    return fit, names


def _fit_block(design, block, reml):
    return fit_columns(design, np.asarray(block, dtype=float), reml)


def _check_names_and_types(names, dtypes):
    if len(set(names)) != len(names):
        raise DataError("Y has duplicate column names; give every response a distinct name")
    bad = [c for c, t in dtypes.items() if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))]
    if bad:
        raise DataError("Y's columns must be numeric; %r is %s" % (bad[0], dtypes[bad[0]]))


def response_matrix(Y):
    """``(values, names)`` of ``Y``: a DataFrame (names its columns) or a 2-D array (names 0, 1, ...)."""
    if isinstance(Y, pd.Series):
        Y = Y.to_frame()
    if isinstance(Y, pd.DataFrame):
        names = list(Y.columns)
        _check_names_and_types(names, Y.dtypes)
        values = Y.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            values = np.asarray(Y, dtype=float)
        except (TypeError, ValueError) as err:
            raise DataError("Y must be a DataFrame or a 2-D numeric array (one column per response)") from err
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise DataError("Y must be 2-D (rows of the data x responses), got %d dimensions" % values.ndim)
        names = list(range(values.shape[1]))
    if values.shape[1] == 0:
        raise DataError("Y has no columns")
    return values, names


def fit_columns(design, values, reml=True):
    """Fit every column of ``values`` (rows of the data x responses); a dict of per-column arrays."""
    ncol, p = values.shape[1], design.X.shape[1]
    out = dict(beta=np.empty((ncol, p)), dinv=np.empty((ncol, p)), qdiag=np.empty((ncol, p)),
               hess=np.empty((ncol, 3)), theta=np.empty(ncol), sigma=np.empty(ncol), deviance=np.empty(ncol),
               nobs=np.empty(ncol), ngroups=np.empty(ncol), status=np.empty(ncol, dtype=np.intc))
    _many.fit_many(design.X, design.cluster, design.rows, values, design.n_groups, design.intercept_col,
                   bool(reml), get_num_threads(), **out)
    out["df"] = satterthwaite_df(out)
    return out


def satterthwaite_df(fit):
    """Satterthwaite df of every fixed effect of every column, lmerTest's way.

    With ``tau = (theta, sigma)``, ``C = sigma^2 A^{-1}`` and ``H`` the Hessian of the
    criterion in ``tau``: ``df = 2 C_jj^2 / (g' (2 H^+) g)`` with ``g = dC_jj / dtau``:
    ``dC/dtheta = -2 theta sigma^2 A^{-1} A_s A^{-1}`` and ``dC/dsigma = 2 sigma A^{-1}``;
    ``H^+`` keeps the eigenvalues above 1e-8, as lmerTest.
    """
    theta, sigma, dinv, qdiag, h = fit["theta"], fit["sigma"], fit["dinv"], fit["qdiag"], fit["hess"]
    df = np.full(dinv.shape, np.nan)
    ok = np.all(np.isfinite(h), axis=1)
    if not ok.any():
        return df
    H = np.stack([h[ok, 0], h[ok, 1], h[ok, 1], h[ok, 2]], axis=1).reshape(-1, 2, 2)
    w, V = np.linalg.eigh(H)
    inv = np.where(w > EIGEN_TOL, 1.0 / np.where(w > EIGEN_TOL, w, 1.0), 0.0)
    acov = 2.0 * np.einsum("jak,jk,jbk->jab", V, inv, V)
    s2 = sigma[ok, None] ** 2
    C = s2 * dinv[ok]
    g_theta = -2.0 * theta[ok, None] * s2 * qdiag[ok]
    g_sigma = 2.0 * sigma[ok, None] * dinv[ok]
    denom = (g_theta ** 2 * acov[:, None, 0, 0] + 2 * g_theta * g_sigma * acov[:, None, 0, 1]
             + g_sigma ** 2 * acov[:, None, 1, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        df[ok] = 2.0 * C ** 2 / denom
    return df


def column_formula(model, name):
    """``(formula, column)``: the model's formula with the response of column ``name`` (a name
    patsy reads: the column's own name when it is an identifier not in the data)."""
    call = model.call
    rhs = call.formula.split("~", 1)[1].strip() if "~" in call.formula else call.formula
    data = call.data
    column = str(name) if isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) \
        and name not in data.columns else PLACEHOLDER
    while column != name and column in data.columns:
        column = "_" + column
    return "%s ~ %s" % (column, rhs), column
