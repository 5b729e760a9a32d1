"""Small fits skip work that does not depend on the data: a plain numeric response is read
without evaluating a formula, and covariance structures form their constant pieces once."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.design import covariance
from hlmext.formula import frames


def test_plain_response_without_patsy(monkeypatch):
    sleep = hlmext.datasets.load("sleepstudy")

    def refuse(*args, **kwargs):
        raise AssertionError("patsy.dmatrices called for a plain response column")
    monkeypatch.setattr(frames.patsy, "dmatrices", refuse)
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    np.testing.assert_array_equal(np.sort(model.endog), np.sort(sleep.Reaction.to_numpy()))


@pytest.mark.parametrize("values", [[3, 1, 4, 1, 5, 9, 2, 6] * 5, [True, False, True, True] * 10,
                                    [1.5, np.nan, 2.5, 0.5, 3.0, np.nan, 1.0, 2.0] * 5])
def test_plain_response_as_patsy_reads_it(values):
    df = pd.DataFrame({"y": values, "x": np.arange(40.0) % 7, "g": np.repeat(np.arange(8), 5)})
    model = hlmext.mixedlm("y ~ x + (1 | g)", df)
    via_patsy = hlmext.mixedlm("I(y + 0) ~ x + (1 | g)", df)        # an expression: patsy evaluates it
    np.testing.assert_array_equal(model.endog, via_patsy.endog)
    assert model.frame.n_dropped == via_patsy.frame.n_dropped == int(np.isnan(np.asarray(values, float)).sum())
    assert model.endog.dtype == np.float64


def test_covariance_pieces_formed_once():
    s = covariance.Unstructured(3)
    first = s.lam_derivatives(np.ones(6))
    again = s.lam_derivatives(np.arange(6.0))
    assert all(a is b for a, b in zip(first, again))
    assert not first[0].flags.writeable
    rows, cols = s._index()
    assert rows is s._index()[0] and not rows.flags.writeable
    np.testing.assert_array_equal(s.lam(np.arange(1.0, 7.0)), [[1, 0, 0], [2, 4, 0], [3, 5, 6]])


@pytest.mark.parametrize("formula", ["1 + x", "x", "0 + x + k", "x + np.log(k)", "C(g) + x", "x:k", "1"])
@pytest.mark.parametrize("na_action", ["raise", "drop"])
def test_plain_designs_as_patsy_builds_them(formula, na_action):
    import patsy
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=30), "k": rng.integers(1, 9, 30), "g": rng.choice(list("abc"), 30)})
    if na_action == "drop":
        df.loc[[3, 17], "x"] = np.nan
    env = patsy.EvalEnvironment.capture(0)
    ours = frames._design(formula, df, env, na_action, "the fixed part")
    theirs = patsy.dmatrix(formula, df, eval_env=env, NA_action=na_action,
                           return_type="dataframe" if na_action == "drop" else "matrix")
    assert type(ours) is type(theirs)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert ours.design_info.column_names == theirs.design_info.column_names
    if na_action == "drop":
        assert list(ours.index) == list(theirs.index)


def test_plain_design_missing_values_raise_as_patsy():
    df = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    with pytest.raises(hlmext.exceptions.DataError):
        frames._design("1 + x", df, 0, "raise", "the fixed part")
