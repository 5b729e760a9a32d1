"""lrtest refuses comparisons that are not LR tests: different responses or rows, non-nested
fixed or random parts, chunked fits whose statistics differ; nested models still pass."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext import ModelError


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(25), 12)
    h = np.tile(np.arange(12), 25) % 4
    x, z = rng.normal(size=300), rng.normal(size=300)
    y = 1 + x + 0.5 * z + rng.normal(size=25)[g] + rng.normal(size=300)
    return pd.DataFrame({"y": y, "y2": y + rng.normal(size=300), "x": x, "z": z, "g": g, "g2": (g + h) % 25,
                         "yb": (y > 1).astype(float), "yb2": (y + 2 * rng.normal(size=300) > 1).astype(float)})


def ml(formula, data):
    return hlmext.mixedlm(formula, data).fit(reml=False)


def test_different_responses_refused(df):
    with pytest.raises(ModelError, match="different responses .'y' and 'y2'"):
        hlmext.lrtest(ml("y ~ x + (1 | g)", df), ml("y2 ~ x + z + (1 | g)", df))


def test_same_name_different_values_refused(df):
    small = ml("y ~ x + (1 | g)", df)
    big = ml("y ~ x + z + (1 | g)", df.assign(y=df.y2))
    with pytest.raises(ModelError, match="responses 'y' differ in 300 of the 300 rows"):
        hlmext.lrtest(small, big)


def test_different_rows_of_the_same_count_refused(df):
    small = ml("y ~ x + (1 | g)", df.iloc[:-1])
    big = ml("y ~ x + z + (1 | g)", df.iloc[1:])
    with pytest.raises(ModelError, match="different rows"):
        hlmext.lrtest(small, big)


def test_non_nested_fixed_parts_refused(df):
    with pytest.raises(ModelError, match="not nested.*'x'.*not a valid LR test"):
        hlmext.lrtest(ml("y ~ x + (1 | g)", df), ml("y ~ z + np.exp(z) + (1 | g)", df))
    # nesting is numerical, not by name: other names, same column space
    small = ml("y ~ I(2 * x - 1) + (1 | g)", df)
    big = ml("y ~ x + z + (1 | g)", df)
    test = hlmext.lrtest(small, big)
    assert test.statistic == pytest.approx(2 * (big.llf - small.llf))


def test_non_nested_random_parts_refused(df):
    with pytest.raises(ModelError, match="level 'g' of random effects is not in the bigger model"):
        hlmext.lrtest(ml("y ~ x + (1 | g)", df), ml("y ~ x + (x | g2)", df))
    with pytest.raises(ModelError, match="random effect.*'z'.*not in the bigger model's level 'g'"):
        hlmext.lrtest(ml("y ~ x + (0 + z | g)", df), ml("y ~ x + (x | g)", df))


def test_same_level_name_different_grouping_refused(df):
    n = len(df)
    X = np.column_stack([np.ones(n), df.x])
    small = hlmext.LinearMixed(df.y, X, df.g).fit(reml=False)
    big = hlmext.LinearMixed(df.y, np.column_stack([X, df.z]), df.g2).fit(reml=False)
    with pytest.raises(ModelError, match="groups the rows differently"):
        hlmext.lrtest(small, big)


def test_array_models_with_default_names_checked_numerically(df):
    n = len(df)
    X = np.column_stack([np.ones(n), df.x])
    small = hlmext.LinearMixed(df.y, np.column_stack([np.ones(n), df.z]), df.g).fit(reml=False)
    big = hlmext.LinearMixed(df.y, np.column_stack([X, df.x ** 2]), df.g).fit(reml=False)
    with pytest.raises(ModelError, match="not nested.*'x2'"):          # both name it x2: other columns
        hlmext.lrtest(small, big)


def test_glmm_different_responses_and_non_nested_refused(df):
    small = hlmext.melogit("yb ~ x + (1 | g)", df).fit(nagq=1)
    with pytest.raises(ModelError, match="different responses"):
        hlmext.lrtest(small, hlmext.melogit("yb2 ~ x + z + (1 | g)", df).fit(nagq=1))
    with pytest.raises(ModelError, match="not nested"):
        hlmext.lrtest(small, hlmext.melogit("yb ~ z + np.exp(z) + (1 | g)", df).fit(nagq=1))
    big = hlmext.melogit("yb ~ x + z + (1 | g)", df).fit(nagq=1)
    assert hlmext.lrtest(small, big).df == 1


def test_linear_against_glmm_refused(df):
    with pytest.raises(ModelError, match="different kinds"):
        hlmext.lrtest(ml("yb ~ 1 + (1 | g)", df), hlmext.melogit("yb ~ x + z + (1 | g)", df).fit(nagq=1))


def chunks(data, k=3):
    return [data.iloc[i::k] for i in range(k)]


def test_chunked_reml_with_different_fixed_columns_refused(df):
    small = hlmext.mixedlm("y ~ x + (1 | g)", chunks(df)).fit(reml=True)
    big = hlmext.mixedlm("y ~ x + (x | g)", chunks(df.assign(x=df.z))).fit(reml=True)
    with pytest.raises(ModelError, match="X'X or X'y differ"):
        hlmext.lrtest(small, big)
    # nested chunked fits pass, with the statistic of the fits in memory
    small = hlmext.mixedlm("y ~ x + (1 | g)", chunks(df)).fit(reml=False)
    big = hlmext.mixedlm("y ~ x + z + (1 | g)", chunks(df)).fit(reml=False)
    ref = hlmext.lrtest(ml("y ~ x + (1 | g)", df), ml("y ~ x + z + (1 | g)", df))
    assert hlmext.lrtest(small, big).statistic == pytest.approx(ref.statistic, rel=1e-8)


def test_chunked_different_responses_refused(df):
    small = hlmext.mixedlm("y ~ x + (1 | g)", chunks(df)).fit(reml=False)
    big = hlmext.mixedlm("y2 ~ x + z + (1 | g)", chunks(df)).fit(reml=False)
    with pytest.raises(ModelError, match="different responses"):
        hlmext.lrtest(small, big)

