"""Model frames: the numeric arrays of a parsed mixed-model formula on a DataFrame.

Response, fixed design and random-effects designs (patsy), grouping values, dropped
rows, and the design infos that rebuild the same columns for new data or for every
chunk of a data set. This is the only module of hlmext that calls patsy.
"""
from __future__ import annotations

import dataclasses
import difflib
import keyword
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy

from ..exceptions import DataError, FormulaError
from .design_state import decode, encode
from .grammar import RandomTerm, parse

__all__ = ["RandomBlock", "ModelFrame", "model_frame", "exog_for", "DesignInfos", "design_infos",
           "model_frame_with_columns"]

_WORDS = re.compile(r"""Q\(\s*(['"])(.*?)\1\s*\)|([A-Za-z_]\w*)""")


@dataclass
class RandomBlock:
    """The numeric random-effects design of one term (rows as in the ModelFrame)."""
    term: RandomTerm
    exog_re: np.ndarray
    names: list[str]
    design_info: object
    groups: np.ndarray     # (n, k) grouping values: the column's own dtype for k = 1, objects otherwise

    def __getstate__(self):
        return _picklable(self.__dict__, "design_info")

    def __setstate__(self, state):
        self.__dict__.update(_restored(state, "design_info"))


@dataclass
class ModelFrame:
    """Numeric arrays of a mixed model, all with the same rows in the data's order."""
    endog: np.ndarray
    endog_name: str
    exog: np.ndarray
    exog_names: list[str]
    fixed_design_info: object
    random: list[RandomBlock]
    row_labels: pd.Index
    n_dropped: int

    def __getstate__(self):
        return _picklable(self.__dict__, "fixed_design_info")

    def __setstate__(self, state):
        self.__dict__.update(_restored(state, "fixed_design_info"))


def _picklable(state, key):
    """The attributes with patsy's design info in a picklable form (``hlmext.formula.design_state``)."""
    from .design_state import encode
    return {**state, key: encode(state[key])}


def _restored(state, key):
    from .design_state import decode
    return {**state, key: decode(state[key])}


def _as_frame(data, what="data"):
    if not isinstance(data, pd.DataFrame):
        try:
            data = pd.DataFrame(data)
        except (TypeError, ValueError) as err:
            raise DataError(f"{what} must be a pandas DataFrame or a dict of columns, "
                            f"got {type(data).__name__}") from err
    if data.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    return data


def check_column_names(parsed, columns):
    """A ``DataError`` for MultiIndex columns, and for a column the formula uses that appears
    more than once (which of them is meant is unclear)."""
    if isinstance(columns, pd.MultiIndex):
        raise DataError("data has MultiIndex columns (e.g. %r); a formula names flat columns: flatten them "
                        "first, e.g. data.columns = ['_'.join(map(str, c)) for c in data.columns]"
                        % (columns[0],))
    if not columns.has_duplicates:
        return
    formulas = " ".join([parsed.response, parsed.fixed] + [t.formula for t in parsed.random])
    used = _words(formulas, columns) + [name for t in parsed.random for name in t.group]
    dup = [name for name in dict.fromkeys(used) if (columns == name).sum() > 1]
    if dup:
        raise DataError("data has more than one column named %s; rename or drop the duplicates (the formula "
                        "uses %s)" % (", ".join(map(repr, dup)), "it" if len(dup) == 1 else "them"))


def _for_patsy(data, used=None):
    """``data`` without ``pd.NA`` (patsy cannot handle it): nullable numeric/boolean columns
    as float64 with NaN, pandas string columns as objects with NaN for missing (``used``: only
    these columns, the others are left as they are)."""
    dtypes = list(data.dtypes.items()) if used is None else [(c, data[c].dtype) for c in used]
    nullable = [c for c, dt in dtypes if isinstance(dt, pd.api.extensions.ExtensionDtype)
                and (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))]
    strings = [c for c, dt in dtypes if isinstance(dt, pd.StringDtype)]
    if nullable or strings:
        data = data.copy()
        for c in nullable:
            data[c] = data[c].to_numpy("float64", na_value=np.nan)
        for c in strings:
            data[c] = data[c].to_numpy(dtype=object, na_value=np.nan)
    return data


def _strings_as_categories(data, used, keep):
    """Columns of strings among ``used`` (not in ``keep``) as pandas categoricals.

    patsy reads a categorical's codes and sorted categories at once, where it looks at an
    object column's values one by one (about three times as long: 1 s for 73,000 rows);
    the levels, their order and the missing values are the same. Not for chunks (their
    categories would differ from the design's levels) or a formula giving ``levels=``."""
    cols = [c for c in used if c not in keep and (data[c].dtype == object or isinstance(data[c].dtype, pd.StringDtype))
            and pd.api.types.infer_dtype(data[c], skipna=True) == "string"]
    if not cols:
        return data
    return data.assign(**{c: data[c].astype("category") for c in cols})


def _missing_column_error(name, columns):
    columns = [str(c) for c in columns]
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "columns are: " + ", ".join(columns[:30])
    return FormulaError(f"column {name!r} used in the formula is not in the data; {hint}")


def _patsy_error(err, what, columns):
    """Map a PatsyError to FormulaError (or DataError for problems with values)."""
    missing = re.search(r"NameError: name '([^']+)' is not defined", str(err))
    if missing:
        return _missing_column_error(missing.group(1), columns)
    if "missing values" in str(err) or "expected levels" in str(err):
        return DataError(f"{what}: {err}")
    if "object is not callable" in str(err):
        hidden = [name for name in dict.fromkeys(re.findall(r"([A-Za-z_]\w*)\s*\(", str(err))) if name in columns]
        if hidden:
            return FormulaError(f"cannot evaluate {what}: the data have a column named {hidden[0]!r}, which hides "
                                f"the function {hidden[0]}() in the formula; rename that column")
    return FormulaError(f"cannot evaluate {what}: {err}")


def _quote_keywords(formula, columns):
    """Columns named like Python keywords (``class``, ``yield``) as ``Q("class")`` for patsy."""
    names = [c for c in columns if isinstance(c, str) and keyword.iskeyword(c)]
    for name in names:
        formula = re.sub(r"(?<![\w.'\"])%s(?![\w'\"])" % re.escape(name), 'Q("%s")' % name, formula)
    return formula


def _design(formula, data, env, na_action, what):
    """patsy design matrix of a right-hand side (DataFrame if na_action='drop').

    ``formula`` may also be a pre-built patsy ``DesignInfo`` (chunked data: same columns in every chunk).
    """
    return_type = "dataframe" if na_action == "drop" else "matrix"
    if isinstance(formula, str):
        formula = _quote_keywords(formula, data.columns)
    try:
        if isinstance(formula, str):
            key = (formula, tuple((c, str(data[c].dtype)) for c in _words(formula, data.columns)))
            info = _PLAIN_INFOS.get(key)
            plain = None if info is None else _plain_design(info, data, return_type)
            if plain is None:
                info = patsy.incr_dbuilder(formula, lambda: iter([data]), eval_env=env, NA_action=na_action)
                plain = _plain_design(info, data, return_type)
            if plain is not None:
                if key not in _PLAIN_INFOS and len(_PLAIN_INFOS) < 256:
                    _PLAIN_INFOS[key] = decode(encode(info))   # holds no caller's namespace (see encode)
                return plain
            formula = info
        return patsy.dmatrix(formula, data, eval_env=env, NA_action=na_action, return_type=return_type)
    except patsy.PatsyError as err:
        raise _patsy_error(err, what, data.columns) from err


#: patsy's design infos of right-hand sides of the intercept and numeric columns (``_plain_design``),
#: by formula and the dtypes of the columns it names: they depend on nothing else, so a
#: formula fitted again (to other data of the same columns) skips patsy's builder. The copy
#: kept is a pickle's: of the namespace where the formula was built, only the names it reads
_PLAIN_INFOS = {}


def _plain_design(info, data, return_type):
    """The matrix patsy builds for ``info`` when every term is the intercept or one numeric data
    column (``1 + Days``), formed from the columns directly; None otherwise (patsy builds it)."""
    columns = []
    for term in info.terms:
        if not term.factors:
            columns.append(None)
            continue
        code = term.factors[0].code if len(term.factors) == 1 else None
        fi = info.factor_infos[term.factors[0]]
        if code not in data.columns or fi.type != "numerical" or fi.num_columns != 1 \
                or not isinstance(data[code].dtype, np.dtype) or data[code].dtype.kind not in "iuf":
            return None
        columns.append(data[code].to_numpy(dtype=np.float64))
    n = len(data)
    out = np.empty((n, len(columns)))
    for j, values in enumerate(columns):
        out[:, j] = 1.0 if values is None else values
    if return_type == "matrix":
        if not np.isfinite(out.sum()) and np.isnan(out).any():
            return None                       # patsy raises its error about missing values
        return patsy.DesignMatrix(out, info)
    keep = ~np.isnan(out).any(axis=1)
    frame = pd.DataFrame(out if keep.all() else out[keep], columns=info.column_names,
                         index=data.index if keep.all() else data.index[keep])
    frame.design_info = info
    return frame


def _response(expr, data, env, na_action, info=None):
    """The response as a one-column DataFrame indexed like the rows patsy kept (``info``: pre-built)."""
    if info is None and expr in data.columns and isinstance(data[expr].dtype, np.dtype) \
            and data[expr].dtype.kind in "iufb":
        # a numeric column: what patsy would return, without evaluating a formula
        y = pd.DataFrame({expr: data[expr].to_numpy(dtype=np.float64)}, index=data.index)
        missing = y[expr].isna().to_numpy()
        if missing.any():
            if na_action != "drop":
                raise DataError(f"the response {expr!r} has missing values")
            y = y.loc[~missing]
        return y
    if expr in data.columns:
        column = data[expr]
        if pd.api.types.is_bool_dtype(column.dtype):
            data = data.assign(**{expr: column.astype("float64")})
        elif not pd.api.types.is_numeric_dtype(column.dtype):
            example = next(iter(column.dropna()), "value")
            raise DataError(f"response {expr!r} is not numeric (dtype {column.dtype}); recode it, "
                            f"e.g. (df.{expr} == {example!r}).astype(int)")
    try:
        y = patsy.dmatrices(f"{_quote_keywords(expr, data.columns)} ~ 0", data, eval_env=env, NA_action=na_action,
                            return_type="dataframe")[0] if info is None else \
            patsy.dmatrix(info, data, eval_env=env, NA_action=na_action, return_type="dataframe")
    except patsy.PatsyError as err:
        raise _patsy_error(err, f"the response {expr!r}", data.columns) from err
    names = [str(c) for c in y.columns]
    if len(names) == 2 and names[0].endswith("[False]") and names[1].endswith("[True]"):
        y = y.iloc[:, [1]]  # a boolean expression: 1 for True
    elif len(names) != 1:
        raise DataError(f"response {expr!r} evaluates to {len(names)} columns ({', '.join(names)}); "
                        f"it must be a single numeric column")
    return y


def _words(formula, columns):
    """Data columns named in a formula, in order of appearance."""
    found = [m.group(2) or m.group(3) for m in _WORDS.finditer(formula)]
    return list(dict.fromkeys(w for w in found if w in columns))


def _bad_values(values):
    """Mask of missing (and, for numbers, non-finite) values of a column."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iub":
        return np.zeros(len(values), dtype=bool)          # numpy integers and booleans are never missing
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return ~np.isfinite(values.to_numpy("float64", na_value=np.nan))
    return values.isna().to_numpy()


def _missing_rows(parsed, work, group_columns):
    """Mask of the rows with a missing or non-finite value in a data column the formula names
    (grouping columns included), or None if there are none."""
    formulas = " ".join([parsed.response, parsed.fixed] + [t.formula for t in parsed.random])
    bad = None
    for name in dict.fromkeys(_words(formulas, work.columns) + group_columns):
        col_bad = _bad_values(work[name])
        if col_bad.any():
            bad = col_bad if bad is None else bad | col_bad
    return bad


def _finite_rows(values, n):
    """Mask of the ``n`` data rows whose values are all finite; ``values`` holds every row,
    or is a DataFrame of the rows patsy kept (its index)."""
    arr = np.asarray(values, dtype="float64")
    rows = values.index.to_numpy() if isinstance(values, pd.DataFrame) and len(values) != n else None
    if rows is None and np.isfinite(arr.sum()):
        return np.ones(n, dtype=bool)     # a finite sum: no NaN or inf anywhere (one pass, no copy)
    finite = np.isfinite(arr).all(axis=1)
    if rows is None:
        return finite
    keep = np.zeros(n, dtype=bool)
    keep[rows] = finite
    return keep


def _dropped_summary(work, keep, parts, keep_by_part, group_columns):
    """"'lrt' (2), 'gcse' (1)": dropped rows per column, then per expression (np.log(0))."""
    formulas = " ".join(expr for expr, _ in parts)
    counts, explained = {}, np.zeros(len(work), dtype=bool)
    for name in dict.fromkeys(_words(formulas, work.columns) + group_columns):
        bad = _bad_values(work[name])
        counts[name], explained = int((bad & ~keep).sum()), explained | bad
    for (expr, _), part_keep in zip(parts, keep_by_part):
        counts[expr] = counts.get(expr, 0) + int((~part_keep & ~explained).sum())
        explained |= ~part_keep
    ranked = sorted((c for c in counts.items() if c[1]), key=lambda c: -c[1])
    return ", ".join(f"{name!r} ({count})" for name, count in ranked)


def _group_values(frame, columns, rows, all_rows):
    """Grouping values of the used rows: the column's own dtype for one column; for several,
    one integer array if every column holds integers (no Python objects per row), else objects."""
    if len(columns) == 1:
        values = frame[columns[0]].to_numpy()
        return (values if all_rows else values[rows])[:, None]
    if all(frame[c].dtype.kind in "iu" for c in columns):
        return np.column_stack([frame[c].to_numpy() if all_rows else frame[c].to_numpy()[rows] for c in columns])
    sub = frame[columns] if all_rows else frame.iloc[rows][columns]
    return sub.to_numpy(dtype=object)


def _random_design_array(exog_re):
    """A random part's design as a float array; an intercept alone is a read-only view of one
    value (no column of ones is kept per row)."""
    if list(exog_re.design_info.column_names) == ["Intercept"]:
        return np.broadcast_to(np.ones((1, 1)), exog_re.shape)
    return np.ascontiguousarray(exog_re, dtype=np.float64)


def model_frame(parsed, data, missing="drop", eval_env=None, infos=None) -> ModelFrame:
    """Build response, fixed and random design arrays from a DataFrame.

    Parameters
    ----------
    parsed : ParsedFormula or str
        Output of :func:`parse` (a string is parsed with default options).
    data : pandas.DataFrame or dict of columns
    missing : {"drop", "raise"}
        What to do with rows having missing or non-finite values in the response,
        a variable of the fixed or random part, or a grouping column.
    eval_env : int or patsy.EvalEnvironment, optional
        Where names such as ``np`` or user functions are looked up: an int counts
        frames above the caller of model_frame (0, the default, is the caller).
        ``np`` is always available.
    infos : DesignInfos, optional
        Pre-built patsy design infos (:func:`design_infos`), so that every chunk of a data
        set gets the same columns and factor levels; a chunk whose rows are all dropped
        then gives an empty frame instead of an error.

    Returns
    -------
    ModelFrame

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4], "x": [0., 1, np.nan, 3], "g": list("aabb")})
    >>> mf = model_frame(parse("y ~ np.log1p(x) + (1 | g)"), df)
    >>> mf.exog.shape, mf.exog_names, mf.n_dropped, list(mf.row_labels)
    ((3, 2), ['Intercept', 'np.log1p(x)'], 1, [0, 1, 3])
    >>> mf.random[0].groups.ravel().tolist()
    ['a', 'a', 'b']
    """
    if isinstance(parsed, str):
        parsed = parse(parsed)
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    if not isinstance(eval_env, patsy.EvalEnvironment):
        eval_env = patsy.EvalEnvironment.capture(eval_env or 0, reference=1)
    env = eval_env.with_outer_namespace({"np": np, "numpy": np})
    frame = _as_frame(data)
    check_column_names(parsed, frame.columns)
    for term in parsed.random:
        for name in term.group:
            if name not in frame.columns:
                raise _missing_column_error(name, frame.columns)
    group_columns = list(dict.fromkeys(name for t in parsed.random for name in t.group))
    formulas = " ".join([parsed.response, parsed.fixed] + [t.formula for t in parsed.random])
    # patsy reads only the columns the formula names: the others are not converted
    work = _for_patsy(frame, list(dict.fromkeys(_words(formulas, frame.columns) + group_columns)))
    work = work.set_axis(pd.RangeIndex(len(frame)))
    factor_words = _words(parsed.fixed + " " + " ".join(t.formula for t in parsed.random), frame.columns)
    keep_as_is = set(group_columns) | set(_words(parsed.response, frame.columns))

    def for_patsy(rows):                      # string factors of these rows as categoricals (their levels)
        if infos is not None or "levels" in formulas:
            return rows
        return _strings_as_categories(rows, factor_words, keep_as_is)

    detect = infos is not None and infos.detect is not None      # levels of dropped rows: other infos first
    y_info, x_spec, z_specs = _specs(parsed, infos.detect if detect else infos)

    # rows with a missing value in a column the formula names are left out before patsy sees
    # the data, so that stateful transforms (center, standardize) learn from the rows used
    raw_bad = _missing_rows(parsed, work, group_columns)
    source = for_patsy(work if raw_bad is None or raw_bad.all() else work.loc[~raw_bad])

    def evaluate(na_action):
        parts = [(parsed.response, _response(parsed.response, source, env, na_action, y_info)),
                 (parsed.fixed, _design(x_spec, source, env, na_action, "the fixed part"))]
        return parts + [(t.formula, _design(z, source, env, na_action, f"the random part of {t.level!r}"))
                        for t, z in zip(parsed.random, z_specs)]

    # without missing values in the columns used, patsy's matrices of all rows are final (no copies)
    if detect or raw_bad is not None:
        parts = evaluate("drop")
    else:
        try:
            parts = evaluate("raise")
        except DataError:
            parts = evaluate("drop")
    keep_by_part = [_finite_rows(values, len(work)) for _, values in parts]
    keep = np.logical_and.reduce(keep_by_part + [~_bad_values(work[c]) for c in group_columns])
    n_dropped = int((~keep).sum())
    if n_dropped:
        where = _dropped_summary(work, keep, parts, keep_by_part, group_columns)
        rows_have = "1 row has" if n_dropped == 1 else f"{n_dropped} rows have"
        if missing == "raise":
            raise DataError(f"{rows_have} missing or non-finite values in {where}; "
                            f"use missing='drop' to drop them")
        if n_dropped == len(work) and infos is None:
            raise DataError(f"no rows left: every row has missing or non-finite values ({where})")

    rows = np.flatnonzero(keep)
    if n_dropped == 0 and not detect:      # every row kept: the matrices of the first evaluation are final
        endog = parts[0][1].to_numpy("float64")[:, 0]
        exog = parts[1][1]
        random_designs = [values for _, values in parts[2:]]
    else:
        kept = for_patsy(work.iloc[rows])
        y_info, x_spec, z_specs = _specs(parsed, infos)
        endog = _response(parsed.response, kept, env, "raise", y_info).to_numpy("float64")[:, 0]
        exog = _design(x_spec, kept, env, "raise", "the fixed part")
        random_designs = [_design(z, kept, env, "raise", f"the random part of {term.level!r}")
                          for term, z in zip(parsed.random, z_specs)]
    blocks = []
    for term, exog_re in zip(parsed.random, random_designs):
        n_columns = exog_re.shape[1]
        cov = "identity" if n_columns == 1 else (term.cov_if_several_columns or term.cov)
        blocks.append(RandomBlock(
            term=dataclasses.replace(term, cov=cov) if cov != term.cov else term,
            exog_re=_random_design_array(exog_re),
            names=list(exog_re.design_info.column_names),
            design_info=exog_re.design_info,
            groups=_group_values(frame, list(term.group), rows, n_dropped == 0)))
    return ModelFrame(
        endog=np.ascontiguousarray(endog), endog_name=parsed.response,
        exog=np.ascontiguousarray(exog, dtype=np.float64),
        exog_names=list(exog.design_info.column_names), fixed_design_info=exog.design_info,
        random=blocks, row_labels=frame.index[rows], n_dropped=n_dropped)


def exog_for(design_info, newdata) -> np.ndarray:
    """Rebuild a fixed or random design (from a ModelFrame) on new data, e.g. for predict.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4], "x": [0., 1, 2, 3], "g": list("aabb")})
    >>> mf = model_frame(parse("y ~ x + (1 | g)"), df)
    >>> exog_for(mf.fixed_design_info, pd.DataFrame({"x": [10.0]}))
    array([[ 1., 10.]])
    """
    frame = _for_patsy(_as_frame(newdata, "newdata"))
    try:
        matrix = patsy.build_design_matrices([design_info], frame, NA_action="raise")[0]
    except patsy.PatsyError as err:
        raise _patsy_error(err, "the design on newdata", frame.columns) from err
    return np.ascontiguousarray(matrix, dtype=np.float64)


# --------------------------------------------------------------------------- chunked data

@dataclass
class DesignInfos:
    """patsy design infos of the response, the fixed part and every random term.

    Built once from all the data (:func:`design_infos`) and given to :func:`model_frame`
    for every chunk, so that all chunks get the same columns and factor levels: those of
    the used rows. ``detect``, if set, holds the infos of all rows (levels that occur only
    in rows with missing values elsewhere), with which ``model_frame`` finds those rows.
    """
    response: object
    fixed: object
    random: tuple
    detect: object = None

    def as_list(self):
        """The infos of the response, the fixed part and the random terms, in this order."""
        return [self.response, self.fixed, *self.random]

    @property
    def stateful(self) -> bool:
        """True if a factor memorizes the data (``center(x)``, ``standardize(x)``, splines)."""
        return any(fi.state.get("transforms") for info in self.as_list() for fi in info.factor_infos.values()
                   if isinstance(fi.state, dict))

    def categorical_columns(self, columns) -> list:
        """Per categorical factor, the data columns it reads (their distinct values fix its levels)."""
        out = []
        for info in self.as_list():
            for factor, fi in info.factor_infos.items():
                cols = tuple(_words(factor.name(), columns))
                if fi.type == "categorical" and cols not in out:
                    out.append(cols)
        return out


def _specs(parsed, infos):
    """(response info, fixed spec, random specs): formulas, or the pre-built infos."""
    if infos is None:
        return None, parsed.fixed, [t.formula for t in parsed.random]
    return infos.response, infos.fixed, list(infos.random)


def design_infos(parsed, data_iter_maker, eval_env=None) -> DesignInfos:
    """Design infos of a mixed-model formula from data given in chunks.

    Parameters
    ----------
    parsed : ParsedFormula or str
    data_iter_maker : callable
        Returns a fresh iterator over DataFrames (the rows whose values give the levels;
        missing values are skipped); patsy calls it once to find categorical levels and
        once more per stateful transform (``center(x)``).
    eval_env : int or patsy.EvalEnvironment, optional
        As for :func:`model_frame`.

    Returns
    -------
    DesignInfos

    Examples
    --------
    >>> chunks = [pd.DataFrame({"y": [1., 2], "c": ["a", "a"], "g": [1, 2]}),
    ...           pd.DataFrame({"y": [3., 4], "c": ["b", "a"], "g": [1, 2]})]
    >>> infos = design_infos(parse("y ~ c + (1 | g)"), lambda: iter(chunks))
    >>> model_frame(parse("y ~ c + (1 | g)"), chunks[0], infos=infos).exog_names
    ['Intercept', 'c[T.b]']
    """
    if isinstance(parsed, str):
        parsed = parse(parsed)
    if not isinstance(eval_env, patsy.EvalEnvironment):
        eval_env = patsy.EvalEnvironment.capture(eval_env or 0, reference=1)
    env = eval_env.with_outer_namespace({"np": np, "numpy": np})
    first = next(iter(data_iter_maker()), None)
    if first is None:
        raise DataError("no rows to build the design from")
    columns = first.columns
    response = parsed.response

    def prepared():
        for chunk in data_iter_maker():
            work = _for_patsy(chunk)
            if response in work.columns and pd.api.types.is_bool_dtype(work[response].dtype):
                work = work.assign(**{response: work[response].astype("float64")})
            yield work

    try:
        termlists = [patsy.ModelDesc.from_formula(f"{_quote_keywords(response, columns)} ~ 0").lhs_termlist]
        termlists += [patsy.ModelDesc.from_formula(_quote_keywords(f, columns)).rhs_termlist
                      for f in [parsed.fixed] + [t.formula for t in parsed.random]]
        infos = patsy.design_matrix_builders(termlists, prepared, env, NA_action="drop")
    except patsy.PatsyError as err:
        raise _patsy_error(err, "the formula", columns) from err
    return DesignInfos(infos[0], infos[1], tuple(infos[2:]))


def _extra_columns(data, extra, missing):
    """Arrays (over all rows of ``data``) of trials/offset/exposure given as columns or arrays."""
    arrays, columns = {}, {}
    keep = np.ones(len(data), dtype=bool)
    for role, value in extra.items():
        if value is None:
            continue
        if isinstance(value, str):
            if value not in data.columns:
                raise DataError("%s column %r is not in the data; columns are: %s"
                                % (role, value, ", ".join(map(str, data.columns[:30]))))
            columns[role], value = value, data[value]
        try:
            arr = np.asarray(pd.to_numeric(pd.Series(np.asarray(value).ravel())), dtype=float)
        except (TypeError, ValueError) as err:
            raise DataError("%s %r must be numeric" % (role, columns.get(role, role))) from err
        if arr.shape[0] != len(data):
            raise DataError("%s has %d values but the data have %d rows" % (role, arr.shape[0], len(data)))
        bad = ~np.isfinite(arr)
        if bad.any() and missing == "raise":
            raise DataError("%d rows have missing or non-finite values in %s %r; use missing='drop' to drop them"
                            % (bad.sum(), role, columns.get(role, role)))
        keep &= ~bad
        arrays[role] = arr
    if not keep.any():
        raise DataError("no rows left: every row has a missing %s" % " or ".join(arrays))
    return arrays, columns, keep


def model_frame_with_columns(parsed, data, extra, missing="drop", eval_env=0, infos=None):
    """``model_frame`` plus per-row columns outside the formula (trials, offset, weights, ...).

    ``extra`` maps a role to a column name or an array over the rows of ``data`` (or None).
    Rows where one of them is missing or non-finite are dropped (or raise) with the
    formula's rows. Returns ``(frame, arrays, columns)``: the frame, each role's values on
    the frame's rows, and the column names given. ``infos`` as for ``model_frame``.
    """
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    if not isinstance(eval_env, patsy.EvalEnvironment):
        eval_env = patsy.EvalEnvironment.capture(eval_env or 0, reference=1)
    data = _as_frame(data)
    if all(value is None for value in extra.values()):
        return model_frame(parsed, data, missing=missing, eval_env=eval_env, infos=infos), {}, {}
    arrays, columns, keep = _extra_columns(data, extra, missing)
    work = data.iloc[np.flatnonzero(keep)] if not keep.all() else data
    frame = model_frame(parsed, work.reset_index(drop=True), missing=missing, eval_env=eval_env, infos=infos)
    pos = np.asarray(frame.row_labels, dtype=np.intp)
    frame = dataclasses.replace(frame, row_labels=work.index[pos], n_dropped=frame.n_dropped + int((~keep).sum()))
    return frame, {role: arr[keep][pos] for role, arr in arrays.items()}, columns
