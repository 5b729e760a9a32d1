"""Property-based tests of the array interface and of fits running in threads at once.

- Any ``endog``/``exog``/``groups``/``exog_re`` (shapes, dtypes, memory orders, lengths,
  missing labels) either fits or raises a ``ValueError`` or ``TypeError`` with a message;
  never another exception.
- Models fitted in two threads at once give the results of fitting them one after the other.

CI runs a bounded number of examples (under a minute); set HLMEXT_FUZZ_EXAMPLES=2000 for a
long run.
"""
import os
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hlmext

EXAMPLES = int(os.environ.get("HLMEXT_FUZZ_EXAMPLES", "25"))
THREAD_EXAMPLES = max(EXAMPLES // 5, 4)

DTYPES = ["float64", "float32", "int64", "int8", "bool", "object-numbers", "object-string", "complex",
          "str", "datetime"]


def _cast(values, dtype):
    if dtype == "object-numbers":
        return values.astype(object)
    if dtype == "object-string":
        out = values.astype(object)
        if out.size:
            out.flat[out.size // 2] = "a"
        return out
    if dtype == "str":
        return values.astype(str)
    if dtype == "datetime":
        return (values * 1e6).astype("int64").astype("datetime64[s]")
    if dtype == "bool":
        return values > 0
    if dtype.startswith("int"):
        return np.round(values * 10).astype(dtype)
    return values.astype(dtype)


@st.composite
def arrays(draw, n, ncols, name):
    """An argument of ``n`` rows (sometimes of another length or number of dimensions)."""
    rows = n + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
    ndim = draw(st.sampled_from([1, 2, 2, 2, 3] if name != "endog" else [1, 1, 1, 2, 0]))
    cols = ncols if name != "endog" else draw(st.sampled_from([1, 1, 2]))
    shape = {0: (), 1: (max(rows, 0),), 2: (max(rows, 0), cols), 3: (max(rows, 0), cols, 1)}[ndim]
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = rng.normal(size=shape)
    if draw(st.integers(0, 9)) == 0 and values.size:
        values.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e300, -0.0]))
    dtype = draw(st.sampled_from(DTYPES[:2] * 4 + DTYPES))
    values = _cast(values, dtype)
    if draw(st.booleans()) and values.ndim == 2:
        values = np.asfortranarray(values)
    if draw(st.integers(0, 5)) == 0:
        values = values.tolist() if values.ndim else values
    return values


@st.composite
def group_labels(draw, n):
    rows = n + draw(st.sampled_from([0, 0, 0, 0, 0, -1]))
    n_groups = draw(st.integers(1, 8))
    codes = np.arange(max(rows, 0)) % n_groups
    kind = draw(st.sampled_from(["int", "str", "float", "mixed", "nan", "none", "2-d", "3-d"]))
    if kind == "str":
        return np.array(["s%d" % c for c in codes])
    if kind == "float":
        return codes.astype(float)
    if kind == "mixed":
        return np.array([c if c % 2 else "g%d" % c for c in codes], dtype=object)
    if kind == "nan":
        out = codes.astype(float)
        out[: min(2, len(out))] = np.nan
        return out
    if kind == "none":
        out = codes.astype(object)
        if len(out):
            out[0] = None
        return out
    if kind == "2-d":
        return np.column_stack([codes, codes % 2])
    if kind == "3-d":
        return codes[:, None, None]
    return codes


@st.composite
def array_inputs(draw):
    n = draw(st.integers(0, 40))
    p = draw(st.integers(0, 3))
    q = draw(st.integers(0, 2))
    endog = draw(arrays(n, 1, "endog"))
    exog = draw(arrays(n, p, "exog"))
    groups = draw(group_labels(n))
    exog_re = draw(st.none() | arrays(n, q, "exog_re"))
    family = draw(st.sampled_from(["linear", "linear", "logit", "poisson"]))
    return endog, exog, groups, exog_re, family


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(array_inputs())
def test_any_array_input_fits_or_raises_a_clean_error(case):
    endog, exog, groups, exog_re, family = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if family == "linear":
                hlmext.LinearMixed(endog, exog, groups, exog_re=exog_re).fit(reml=False)
            else:
                y = np.abs(np.round(np.asarray(endog, dtype=float))) if _is_real(endog) else endog
                if family == "logit" and _is_real(endog):
                    y = (y > 0).astype(float)
                cls = hlmext.MixedLogit if family == "logit" else hlmext.MixedPoisson
                cls(y, exog, groups, exog_re=exog_re).fit(nagq=1)
        except (ValueError, TypeError) as err:       # DataError and ModelError are ValueErrors
            assert str(err)
            assert "Buffer has wrong number of dimensions" not in str(err)
            assert "internal design layout" not in str(err)
            assert "could not convert" not in str(err)


def _is_real(values):
    try:
        arr = np.asarray(values)
    except ValueError:
        return False
    return arr.dtype.kind in "biuf" and arr.ndim in (1, 2) and np.all(np.isfinite(arr))


# --------------------------------------------------------------------------- threads

@st.composite
def thread_data(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    n_groups = draw(st.integers(5, 25))
    n = n_groups * draw(st.integers(3, 12))
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=n_groups)[g] + rng.normal(size=n)
    slope = draw(st.booleans())
    exog_re = np.column_stack([np.ones(n), x]) if slope else None
    return y, np.column_stack([np.ones(n), x]), g, exog_re, draw(st.sampled_from(["linear", "logit"]))


def _model(y, X, g, exog_re, family):
    if family == "linear":
        return hlmext.LinearMixed(y, X, g, exog_re=exog_re)
    return hlmext.MixedLogit((y > 1).astype(float), X, g, exog_re=exog_re)


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = model.fit(reml=False) if isinstance(model, hlmext.LinearMixed) else model.fit(nagq=1)
        except (ValueError, TypeError) as err:
            return type(err).__name__ + str(err)
    return np.concatenate([res.params.to_numpy(), res.bse.to_numpy(), [res.llf]])


def _in_threads(func, args):
    out = [None] * len(args)

    def run(i):
        out[i] = func(args[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
    else:
        np.testing.assert_array_equal(a, b)


@settings(max_examples=THREAD_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(thread_data(), thread_data())
def test_two_models_fitted_in_threads_equal_serial_fits(first, second):
    serial = [_fit(_model(*first)), _fit(_model(*second))]
    threaded = _in_threads(_fit, [_model(*first), _model(*second)])
    for a, b in zip(serial, threaded):
        _same(a, b)


@settings(max_examples=THREAD_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(thread_data())
def test_one_model_fitted_in_two_threads_equals_serial_fit(case):
    model = _model(*case)
    serial = _fit(model)
    for result in _in_threads(_fit, [model, model]):
        _same(serial, result)
