"""The array interface and data frames: every shape, dtype and layout either fits (as the
plain float arrays do) or raises a ``DataError`` naming the argument and what is expected.

Inputs that used to reach the compiled core run in a subprocess, so a crash there fails
its test instead of the test run.
"""
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext import DataError, ModelError

N = 60

SETUP = """
import numpy as np, pandas as pd, hlmext
rng = np.random.default_rng(0)
g = np.repeat(np.arange(6), 10)
x = rng.normal(size=60)
y = 1 + x + rng.normal(size=6)[g] + rng.normal(size=60)
X = np.column_stack([np.ones(60), x])
"""

# cases whose input reached the compiled core: name -> expression fitting a model
CORE_CASES = {
    "endog (n, 1)": "hlmext.LinearMixed(y[:, None], X, g).fit(reml=False)",
    "logit endog (n, 1)": "hlmext.MixedLogit((y[:, None] > 1).astype(float), X, g).fit(nagq=1)",
    "exog 3-D": "hlmext.LinearMixed(y, X[:, :, None], g).fit()",
    "logit exog 3-D": "hlmext.MixedLogit((y > 1).astype(float), X[:, :, None], g).fit(nagq=1)",
    "exog_re 3-D": "hlmext.LinearMixed(y, X, g, exog_re=X[:, :, None]).fit()",
    "exog_re no columns": "hlmext.LinearMixed(y, X, g, exog_re=np.ones((60, 0))).fit()",
    "poisson exog_re no columns":
        "hlmext.MixedPoisson((y > 1).astype(float), X, g, exog_re=np.ones((60, 0))).fit(nagq=1)",
    "object exog with a string": "hlmext.LinearMixed(y, np.array([[1.0, 'a']] * 60, dtype=object), g).fit()",
    "endog two columns": "hlmext.LinearMixed(np.column_stack([y, y]), X, g).fit()",
}

RUNNER = """
import json, sys
results = {}
for name, expr in json.loads(sys.argv[1]).items():
    try:
        res = eval(expr)
        results[name] = ["ok", [float(v) for v in res.params.to_numpy()[:2]]]
    except Exception as err:
        results[name] = [type(err).__name__, str(err)]
    print(json.dumps({name: results[name]}), flush=True)
"""


@pytest.fixture(scope="module")
def core_outcomes():
    """Each case's outcome (from one subprocess; a case that crashed it has none)."""
    proc = subprocess.run([sys.executable, "-c", SETUP + RUNNER, json.dumps(CORE_CASES)],
                          capture_output=True, text=True, timeout=300)
    out = {}
    for line in proc.stdout.splitlines():
        out.update(json.loads(line))
    out["_stderr"] = proc.stderr[-2000:]
    return out


def outcome(core_outcomes, name):
    assert name in core_outcomes, "the subprocess crashed at %r:\n%s" % (name, core_outcomes["_stderr"])
    return core_outcomes[name]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 10)
    x = rng.normal(size=N)
    y = 1 + x + rng.normal(size=6)[g] + rng.normal(size=N)
    return y, np.column_stack([np.ones(N), x]), g


@pytest.fixture(scope="module")
def reference(data):
    y, X, g = data
    return hlmext.LinearMixed(y, X, g).fit(reml=False)


@pytest.mark.parametrize("name", ["endog (n, 1)", "logit endog (n, 1)"])
def test_column_endog_is_raveled(core_outcomes, name, reference):
    kind, params = outcome(core_outcomes, name)
    assert kind == "ok"
    if not name.startswith("logit"):
        np.testing.assert_allclose(params, reference.params.to_numpy()[:2], rtol=1e-10)


@pytest.mark.parametrize("name, fragment", [
    ("exog 3-D", r"exog must have shape \(n, p\).*got shape \(60, 2, 1\)"),
    ("logit exog 3-D", r"exog must have shape \(n, p\)"),
    ("exog_re 3-D", r"exog_re must have shape \(n, q\).*got shape \(60, 2, 1\)"),
    ("exog_re no columns", r"exog_re has no columns.*exog_re=None"),
    ("poisson exog_re no columns", r"exog_re has no columns"),
    ("object exog with a string", r"exog must hold numbers; entry 1 is 'a' \(str\)"),
    ("endog two columns", r"endog must be one response value per row.*got shape \(60, 2\)"),
])
def test_bad_shapes_and_types_name_the_argument(core_outcomes, name, fragment):
    import re
    kind, message = outcome(core_outcomes, name)
    assert kind == "DataError" and re.search(fragment, message), (kind, message)


def test_other_layouts_and_dtypes_fit_like_float_arrays(data, reference):
    y, X, g = data
    variants = {
        "lists": (list(y), X.tolist(), list(g)),
        "pandas": (pd.Series(y), pd.DataFrame(X), pd.Series(g)),
        "one-column DataFrame endog": (pd.DataFrame({"y": y}), X, g),
        "Fortran order": (y, np.asfortranarray(X), g),
        "reversed strides": (y[::-1], X[::-1], g[::-1]),
        "string groups": (y, X, np.array(["s%d" % v for v in g])),
        "float groups": (y, X, g.astype(float)),
    }
    for name, (yy, XX, gg) in variants.items():
        res = hlmext.LinearMixed(yy, XX, gg).fit(reml=False)
        assert res.llf == pytest.approx(reference.llf, rel=1e-9), name
    X32 = X.astype(np.float32)
    assert hlmext.LinearMixed(y, X32, g).fit(reml=False).llf == pytest.approx(
        hlmext.LinearMixed(y, X32.astype(np.float64), g).fit(reml=False).llf, rel=1e-12)
    # integer and boolean columns are numbers
    hlmext.LinearMixed(np.round(10 * y).astype(np.int64), np.column_stack([np.ones(N, bool), X[:, 1] > 0]),
                       g.astype(np.int16)).fit(reml=False)


@pytest.mark.parametrize("make, fragment", [
    (lambda y, X, g: (1.0, X, g), r"endog must be one response value per row.*a single value"),
    (lambda y, X, g: (y.astype(complex), X, g), r"endog must hold real numbers.*complex"),
    (lambda y, X, g: (y, X.astype(str), g), r"exog must hold real numbers.*strings"),
    (lambda y, X, g: (y, X, g[:-1]), r"groups has 59 rows but endog has 60"),
    (lambda y, X, g: (y, X[:-1], g), r"exog has 59 rows but endog has 60: give one row per observation"),
    (lambda y, X, g: (y, X, np.where(g == 2, np.nan, g)), r"groups has missing labels .NaN or None. in 10 rows"),
    (lambda y, X, g: (y, X, g[:, None, None]), r"groups must have shape \(n,\)"),
    (lambda y, X, g: (y, np.array([[1.0, None]] * 60, dtype=object), g), r"exog must hold numbers; entry 1 is None"),
])
def test_bad_arrays_raise_data_error_naming_the_argument(data, make, fragment):
    with pytest.raises(DataError, match=fragment):
        hlmext.LinearMixed(*make(*data)).fit()


def test_mismatched_exog_re_length(data):
    y, X, g = data
    with pytest.raises(DataError, match="exog_re has 59 rows but endog has 60"):
        hlmext.LinearMixed(y, X, g, exog_re=X[:-1]).fit()


# --------------------------------------------------------------------------- data frames

@pytest.fixture(scope="module")
def df(data):
    y, X, g = data
    return pd.DataFrame({"y": y, "x": X[:, 1], "g": g, "z": X[:, 1] ** 2})


@pytest.mark.parametrize("column", ["x", "g", "y"])
def test_duplicate_used_column_names_the_column(df, column):
    d = df.copy()
    d.columns = ["y", "x", "g", column]
    with pytest.raises(DataError, match="more than one column named '%s'" % column):
        hlmext.mixedlm("y ~ x + (1 | g)", d)


def test_duplicate_unused_column_is_fine_and_multiindex_refused(df):
    d = df.copy()
    d.columns = ["y", "x", "g", "y"]
    with pytest.raises(DataError, match="'y'"):
        hlmext.mixedlm("y ~ x + (1 | g)", d)
    d.columns = ["y", "x", "g", "unused"]
    d.insert(4, "unused", 1.0, allow_duplicates=True)
    assert hlmext.mixedlm("y ~ x + (1 | g)", d).fit(reml=False).converged
    m = df.copy()
    m.columns = pd.MultiIndex.from_tuples([("a", "y"), ("a", "x"), ("b", "g"), ("b", "z")])
    with pytest.raises(DataError, match="MultiIndex columns"):
        hlmext.mixedlm("y ~ x + (1 | g)", m)


def test_mixed_int_and_str_group_labels_group_as_strings(df):
    labels = np.array([1 if v % 2 else "a%d" % v for v in df.g], dtype=object)
    mixed = hlmext.mixedlm("y ~ x + (1 | g)", df.assign(g=labels)).fit(reml=False)
    as_str = hlmext.mixedlm("y ~ x + (1 | g)", df.assign(g=labels.astype(str))).fit(reml=False)
    assert mixed.llf == pytest.approx(as_str.llf, rel=1e-12)
    assert list(mixed.random_effects["g"].index) == list(as_str.random_effects["g"].index)
    logit = hlmext.melogit("yb ~ x + (1 | g)", df.assign(g=labels, yb=(df.y > 1).astype(float))).fit(nagq=1)
    assert np.isfinite(logit.llf)
    arrays = hlmext.LinearMixed(df.y, np.column_stack([np.ones(N), df.x]), labels).fit(reml=False)
    assert arrays.llf == pytest.approx(as_str.llf, rel=1e-9)


# --------------------------------------------------------------------------- offsets

@pytest.fixture(scope="module")
def base(df):
    return hlmext.mixedlm("y ~ x + (1 | g)", df).fit(reml=False)


@pytest.mark.parametrize("offset", [1e6, 1e9])
def test_far_from_zero_column_is_not_called_collinear(df, offset):
    with pytest.raises(ModelError, match="'xb' are far from zero.*not collinear.*centre them") as info:
        hlmext.mixedlm("y ~ xb + (1 | g)", df.assign(xb=df.x + offset))
    assert "linear combination" not in str(info.value)
    # real collinearity alongside an offset is still reported as such
    with pytest.raises(ModelError, match="linear combination"):
        hlmext.mixedlm("y ~ x + xb + (1 | g)", df.assign(xb=2 * df.x + 1e9))


def test_moderate_offset_fits_with_a_warning_and_the_same_slope(df, base):
    with pytest.warns(UserWarning, match="column 'xb' has a mean .*centre it") as caught:
        res = hlmext.mixedlm("y ~ xb + (1 | g)", df.assign(xb=df.x + 2e4)).fit(reml=False)
    assert caught[0].filename == __file__
    assert res.fe_params["xb"] == pytest.approx(base.fe_params["x"], rel=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = hlmext.mixedlm("y ~ xb + (1 | g)", df.assign(xb=df.x + 100)).fit(reml=False)
    assert small.fe_params["xb"] == pytest.approx(base.fe_params["x"], rel=1e-8)
    assert small.fe_params["Intercept"] + 100 * small.fe_params["xb"] == pytest.approx(
        base.fe_params["Intercept"], rel=1e-8)


def test_duplicate_used_column_in_chunks_names_the_column(df):
    d = df.copy()
    d.columns = ["y", "x", "g", "x"]
    with pytest.raises(DataError, match="more than one column named 'x'"):
        hlmext.mixedlm("y ~ x + (1 | g)", [d.iloc[:30], d.iloc[30:]]).fit()


def test_glmm_trials_and_offset_name_the_argument(data):
    y, X, g = data
    successes = (y > 1).astype(float)
    with pytest.raises(DataError, match="trials must hold numbers; entry 0 is 'ten'"):
        hlmext.MixedLogit(successes, X, g, trials=np.array(["ten"] * N, dtype=object))
    with pytest.raises(DataError, match="offset must hold real numbers.*strings"):
        hlmext.MixedPoisson(successes, X, g, offset=np.array(["0"] * N))
