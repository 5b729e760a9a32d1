"""Nested levels and crossed factors: syntax, results per level, conditional variances."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext._kernels import reference as _reference
from hlmext.exceptions import ModelError


@pytest.fixture(scope="module")
def pastes():
    return hlmext.datasets.load("pastes")


def test_nested_syntaxes_agree(pastes):
    bars = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit(reml=False)
    stata = hlmext.mixedlm("strength ~ 1 || batch: || cask:", pastes).fit(reml=False)
    implicit = hlmext.mixedlm("strength ~ 1 + (1 | batch) + (1 | sample)", pastes).fit(reml=False)
    assert stata.llf == pytest.approx(bars.llf, rel=1e-10)
    assert implicit.llf == pytest.approx(bars.llf, rel=1e-10)     # sample ids are unique: nested
    assert implicit.model.design.qd == 0                          # so no dense crossed block
    assert list(bars.n_groups) == ["batch", "batch:cask"]
    assert bars.n_groups == {"batch": 10, "batch:cask": 30}


def test_three_level_icc_and_summary(pastes):
    res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit(reml=False)
    sd_b, sd_c, sd_e = res.re_params["estimate"]
    total = sd_b ** 2 + sd_c ** 2 + sd_e ** 2
    icc = res.icc()
    assert icc.iloc[0]["icc"] == pytest.approx(sd_b ** 2 / total)
    assert icc.iloc[1]["icc"] == pytest.approx((sd_b ** 2 + sd_c ** 2) / total)
    text = str(res.summary())
    assert "Group Variable" in text and "batch: Identity" in text and "batch:cask: Identity" in text


def test_conditional_prediction_adds_every_level(pastes):
    res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit(reml=False)
    row = pastes.iloc[[0]]
    b1 = res.random_effects["batch"].loc[row.batch.iloc[0], "Intercept"]
    b2 = res.random_effects["batch:cask"].loc[(row.batch.iloc[0], row.cask.iloc[0]), "Intercept"]
    assert res.predict(row, which="conditional").iloc[0] == pytest.approx(res.fe_params.iloc[0] + b1 + b2)
    np.testing.assert_allclose(res.predict(which="conditional") + res.resid, pastes.strength)


def test_covariance_per_level(gcse):
    res = hlmext.mixedlm("gcse ~ lrt || school: lrt || sex:", gcse,
                         cov={"school": "unstructured"}).fit(reml=False)
    assert res.model.design.qd == 0           # Stata's levels nest: sex within school
    assert res.re_structure == {"school:sex": "Identity", "school": "Unstructured"}
    crossed = hlmext.mixedlm("gcse ~ lrt + (lrt | school) + (1 | intake)", gcse).fit(reml=False)
    assert crossed.model.design.qd == 3       # intake bands cross schools
    assert crossed.converged


def test_level_with_the_same_groups_as_its_parent(gcse):
    with pytest.raises(ModelError, match="same groups"):
        hlmext.mixedlm("gcse ~ lrt || school: || vr:", gcse)    # vr is constant within school


@pytest.mark.parametrize("formula", [
    "strength ~ 1 + (1 | batch/cask)",
    "diameter ~ 1 + (1 | plate) + (1 | sample)",
])
def test_conditional_variances_match_dense_inverse(formula, pastes):
    data = pastes if "strength" in formula else hlmext.datasets.load("penicillin")
    res = hlmext.mixedlm(formula, data).fit(reml=True)
    model = res.model
    d = model.design
    lams = model.lams(res.theta)
    Z = _reference.dense_z(d)
    lam = _reference._block_diag([lam for lv, lam in zip(d.levels, lams) for _ in range(lv.n_groups)])
    ZL = Z @ lam
    cov_b = res.scale * lam @ np.linalg.inv(ZL.T @ ZL + np.eye(ZL.shape[1])) @ lam.T
    k = 0
    for lv in d.levels:
        want = np.diag(cov_b)[k:k + lv.n_groups]
        got = res.random_effects_cov[lv.name].reindex(lv.labels)["var(Intercept)"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-8)
        k += lv.n_groups


def test_crossed_with_slopes_fits():
    rng = np.random.default_rng(5)
    n = 600
    df = pd.DataFrame({"a": rng.integers(0, 40, n), "b": rng.integers(0, 8, n), "x": rng.normal(size=n)})
    ua, ub, sa = rng.normal(size=40), rng.normal(size=8), 0.5 * rng.normal(size=40)
    df["y"] = 1 + (1 + sa[df.a]) * df.x + ua[df.a] + ub[df.b] + rng.normal(size=n)
    res = hlmext.mixedlm("y ~ x + (x | a) + (1 | b)", df).fit(reml=False)
    assert res.converged and res.model.design.qd == 8
    assert set(res.random_effects) == {"a", "b"}


def test_too_many_random_effects_for_the_data():
    df = pd.DataFrame({"g": np.arange(20), "x": np.arange(20.0), "y": np.arange(20.0) ** 1.5})
    with pytest.raises(ModelError, match="not identified"):
        hlmext.mixedlm("y ~ x + (1 | g)", df)


@pytest.mark.parametrize("formula, data", [
    ("y ~ x + (1 | district) + (1 | district:school)", "nested"),
    ("y ~ x + (1 | worker) + (1 | item)", "crossed"),
])
def test_multilevel_moment_start_reaches_the_optimum_of_the_full_search(formula, data):
    """Nested and crossed: Newton steps from the moment estimates of every level
    (``hlmext.models.moments``) end where L-BFGS-B and Newton from the default start end."""
    from test_chunked import crossed, nested
    df = {"nested": nested, "crossed": crossed}[data](n=6000)
    model = hlmext.mixedlm(formula, df)
    moments = model.theta_moments()
    assert moments is not None and np.all(np.isfinite(moments))
    fast = model.fit(reml=False)
    assert fast.opt.attempts[0][0] == "Newton" and len(fast.opt.attempts) == 1
    full = model.fit(reml=False, start=model.theta_start() * model.theta_scale())
    assert full.opt.attempts[0][0] == "L-BFGS-B"
    assert fast.llf == pytest.approx(full.llf, rel=1e-12)
    np.testing.assert_allclose(fast.params, full.params, rtol=1e-7)
    np.testing.assert_allclose(moments, fast.theta, rtol=0.25)


@pytest.mark.parametrize("columns", [
    {"a": [3, 1, 3, 7, 1, 3], "b": [10, 10, 2, 2, 10, 2]},                       # small integer ids
    {"a": [3, 1, 3, 7, 1, 3], "b": [10**12, 10**12, 2, 2, 10**12, 2]},           # sparse integer ids
    {"a": ["x", "y", "x", "z", "y", "x"], "b": ["q", "q", "p", "p", "q", "p"]},    # strings
    {"a": [3, 1, 3, 7, 1, 3], "b": ["q", "q", "p", "p", "q", "p"]},                # mixed
])
def test_codes_of_several_grouping_columns_are_pandas_groups(columns):
    from hlmext.formula.grouping import group_codes
    frame = pd.DataFrame(columns)
    values = frame.to_numpy() if frame.dtypes.nunique() == 1 and frame.dtypes.iloc[0].kind == "i" \
        else frame.to_numpy(dtype=object)
    codes, labels = group_codes(values, "a:b")
    expected = frame.groupby(["a", "b"], sort=True).ngroup().to_numpy()
    np.testing.assert_array_equal(codes, expected)
    assert list(labels) == list(frame.groupby(["a", "b"], sort=True).size().index)


def test_codes_of_grouping_with_missing_value_is_an_error():
    from hlmext.formula.grouping import group_codes
    from hlmext.exceptions import DataError
    values = np.array([["x", 1], ["y", None]], dtype=object)
    with pytest.raises(DataError, match="'a:b' has missing values"):
        group_codes(values, "a:b")


def test_random_intercepts_hold_no_column_of_ones_per_row(pastes):
    from hlmext.formula import grammar as fm
    from hlmext.formula import frames
    frame = frames.model_frame(fm.parse("strength ~ 1 + (1 | batch/cask)"), pastes)
    assert all(block.exog_re.strides == (0, 0) for block in frame.random)
    model = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes)
    assert model.design.z_of(0).strides[0] == model.design.W.strides[0]   # the ones live in W only
    np.testing.assert_array_equal(model.design.endog, pastes["strength"].to_numpy()[model.design.order])
