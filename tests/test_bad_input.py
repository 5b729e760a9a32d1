"""Bad input gets a clear error (type and message), never a crash or a silent NaN."""
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext import DataError, FormulaError, ModelError


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=200)
    return pd.DataFrame({"y": 1 + x + rng.normal(size=20)[g] + rng.normal(size=200), "x": x, "g": g,
                         "s": np.where(x > 0, "a", "b")})


CASES = [
    # (description, formula, data transform, kwargs, exception, message fragment)
    ("empty data", "y ~ x + (1 | g)", lambda d: d.iloc[:0], {}, DataError, "no rows"),
    ("misspelt fixed column", "y ~ xx + (1 | g)", None, {}, FormulaError, "did you mean 'x'"),
    ("misspelt group column", "y ~ x + (1 | gg)", None, {}, FormulaError, "did you mean 'g'"),
    ("misspelt random column", "y ~ x + (xx | g)", None, {}, FormulaError, "'xx'"),
    ("missing response", "z ~ x + (1 | g)", None, {}, FormulaError, "'z'"),
    ("NaN with missing=raise", "y ~ x + (1 | g)", lambda d: d.assign(x=d.x.where(d.index > 2)),
     {"missing": "raise"}, DataError, "3 rows"),
    ("inf with missing=raise", "y ~ x + (1 | g)", lambda d: d.assign(x=d.x.replace(d.x.iloc[0], np.inf)),
     {"missing": "raise"}, DataError, "'x'"),
    ("all rows missing", "y ~ x + (1 | g)", lambda d: d.assign(x=np.nan), {}, DataError, "no rows left"),
    ("non-numeric response", "s ~ x + (1 | g)", None, {}, DataError, "not numeric"),
    ("single group", "y ~ x + (1 | g)", lambda d: d.assign(g=1), {}, ModelError, "single group"),
    ("slope with groups of size 1", "y ~ x + (x | g)", lambda d: d.assign(g=np.arange(len(d))), {},
     ModelError, "one observation"),
    ("collinear fixed effects", "y ~ x + x2 + (1 | g)", lambda d: d.assign(x2=3 * d.x - 1), {},
     ModelError, "'x2'"),
    ("zero fixed column", "y ~ x + z0 + (1 | g)", lambda d: d.assign(z0=0.0), {}, ModelError, "zero in every row"),
    ("rank-deficient random design", "y ~ x + (x + x2 | g)", lambda d: d.assign(x2=2 * d.x), {},
     ModelError, "rank deficient"),
    ("constant response", "y ~ x + (1 | g)", lambda d: d.assign(y=5.0), {}, DataError, "same value"),
    ("syntax: unbalanced parenthesis", "y ~ x + (x | g", None, {}, FormulaError, "^"),
    ("syntax: empty bar side", "y ~ x + (x | )", None, {}, FormulaError, "|"),
    ("syntax: no tilde", "y x + (1 | g)", None, {}, FormulaError, "~"),
    ("no random part", "y ~ x", None, {}, FormulaError, "random"),
    ("unknown covariance", "y ~ x || g: x", None, {"cov": "toeplitz"}, FormulaError, "unstructured"),
    ("level with as many groups as rows", "y ~ x + (1 | id)", lambda d: d.assign(id=np.arange(len(d))), {},
     ModelError, "not identified"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, df):
    _, formula, transform, kwargs, exc, fragment = case
    data = transform(df) if transform else df
    with pytest.raises(exc) as info:
        hlmext.mixedlm(formula, data, **kwargs).fit()
    assert fragment in str(info.value)


def test_bad_arrays():
    y = np.arange(10.0)
    with pytest.raises(DataError, match="rows"):
        hlmext.LinearMixed(y, np.ones((9, 1)), np.repeat([0, 1], 5))
    with pytest.raises(DataError, match="NaN"):
        hlmext.LinearMixed(np.r_[np.nan, y[1:]], np.ones((10, 1)), np.repeat([0, 1], 5))


def test_groups_of_size_one_and_string_ids_are_fine(df):
    d = df.copy()
    d["g"] = "school-" + d.g.astype(str)
    d.loc[d.index[:5], "g"] = ["solo-%d" % i for i in range(5)]
    res = hlmext.mixedlm("y ~ x + (1 | g)", d).fit()
    assert np.isfinite(res.llf) and res.converged
    assert "solo-0" in res.random_effects["g"].index


@pytest.mark.parametrize("scale", [1e-6, 1e6, 1e12])
def test_extreme_magnitudes_fit_like_standardized(df, scale):
    base = hlmext.mixedlm("y ~ x + (x | g)", df).fit(reml=False)
    big = df.assign(x=df.x * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error", hlmext.ConvergenceWarning)
        res = hlmext.mixedlm("y ~ x + (x | g)", big).fit(reml=False)
    assert res.llf == pytest.approx(base.llf, rel=1e-8)
    assert res.fe_params["x"] * scale == pytest.approx(base.fe_params["x"], rel=1e-6)
    assert res.re_params.loc["sd(x)[g]", "estimate"] * scale == pytest.approx(
        base.re_params.loc["sd(x)[g]", "estimate"], rel=1e-4)


def test_scaled_response(df):
    base = hlmext.mixedlm("y ~ x + (1 | g)", df).fit(reml=False)
    res = hlmext.mixedlm("y ~ x + (1 | g)", df.assign(y=df.y * 1e9 + 1e12)).fit(reml=False)
    assert res.fe_params["x"] == pytest.approx(base.fe_params["x"] * 1e9, rel=1e-6)
    assert res.re_params["estimate"].iloc[0] == pytest.approx(base.re_params["estimate"].iloc[0] * 1e9, rel=1e-5)


def test_pandas_string_column_with_missing_values(df):
    d = df.copy()
    d["s"] = d["s"].astype("string")
    d.loc[d.index[:4], "s"] = pd.NA
    model = hlmext.mixedlm("y ~ x + C(s) + (1 | g)", d)
    assert model.frame.n_dropped == 4 and "C(s)[T.b]" in model.exog_names


def test_column_hiding_a_formula_function(df):
    data = df.assign(C=1.0, cat=np.arange(len(df)) % 3)
    with pytest.raises(FormulaError, match="column named 'C', which hides the function C"):
        hlmext.mixedlm("y ~ C(cat) + (1 | g)", data)
