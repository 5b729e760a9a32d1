"""Behaviour of the linear mixed model beyond the reference figures."""

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext import DataError, FormulaError, ModelError


@pytest.fixture(scope="module")
def rs(gcse):
    return hlmext.mixedlm("gcse ~ lrt + (lrt | school)", gcse).fit(reml=False)


def test_array_interface_matches_formula(gcse, rs):
    X = np.column_stack([np.ones(len(gcse)), gcse.lrt])
    res = hlmext.LinearMixed(gcse.gcse, X, gcse.school, X).fit(reml=False)
    assert res.llf == pytest.approx(rs.llf, rel=1e-10)
    np.testing.assert_allclose(res.fe_params, rs.fe_params, rtol=1e-6)


def test_stata_and_lme4_syntax_agree(gcse, rs):
    stata = hlmext.mixedlm("gcse ~ lrt || school: lrt", gcse, cov="unstructured").fit(reml=False)
    assert stata.llf == pytest.approx(rs.llf, rel=1e-10)
    indep = hlmext.mixedlm("gcse ~ lrt || school: lrt", gcse).fit(reml=False)    # Stata default
    bars = hlmext.mixedlm("gcse ~ lrt + (lrt || school)", gcse).fit(reml=False)
    assert indep.llf == pytest.approx(bars.llf, rel=1e-10)
    assert "corr(Intercept,lrt)[school]" not in indep.params.index


def test_params_are_labelled_and_statsmodels_tools_work(rs):
    assert list(rs.params.index[:2]) == ["Intercept", "lrt"]
    assert rs.params.index[-1] == "sd(Residual)"
    t = rs.t_test("lrt = 0")
    assert float(np.squeeze(t.tvalue)) == pytest.approx(rs.fe_params["lrt"] / rs.bse_fe["lrt"])
    w = rs.wald_test("lrt = 0", scalar=True)
    assert w.statistic == pytest.approx(rs.wald_chi2[0])
    ci = rs.conf_int()
    assert ci.loc["lrt", 0] < rs.fe_params["lrt"] < ci.loc["lrt", 1]
    assert rs.scale == pytest.approx(rs.re_params.loc["sd(Residual)", "estimate"] ** 2)


def test_predict_marginal_conditional_and_new_groups(gcse, rs):
    marginal = rs.predict()
    np.testing.assert_allclose(marginal, rs.fe_params["Intercept"] + rs.fe_params["lrt"] * gcse.lrt)
    cond = rs.predict(which="conditional")
    np.testing.assert_allclose(cond + rs.resid, gcse.gcse)
    assert (cond.index == gcse.index).all()
    new = gcse.head(3).copy()
    np.testing.assert_allclose(rs.predict(new, which="conditional"), cond.iloc[:3])
    new["school"] = [9999, 9998, 1]                      # unseen schools get no random effect
    got = rs.predict(new, which="conditional")
    np.testing.assert_allclose(got.iloc[:2], rs.predict(new).iloc[:2])
    b = rs.random_effects["school"].loc[1]
    assert got.iloc[2] == pytest.approx(rs.predict(new).iloc[2] + b["Intercept"] + b["lrt"] * new.lrt.iloc[2])


def test_blup_variances_positive(rs):
    v = rs.random_effects_cov["school"]
    assert (v["var(Intercept)"] > 0).all() and (v["var(lrt)"] > 0).all()
    assert len(v) == 64


def test_lrtest_rules(gcse, rs):
    ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit(reml=False)
    t = hlmext.lrtest(ri, rs)
    assert t.df == 2 and t.statistic == pytest.approx(2 * (rs.llf - ri.llf))
    a = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit(reml=True)
    b = hlmext.mixedlm("gcse ~ lrt + C(sex) + (1 | school)", gcse).fit(reml=True)
    with pytest.raises(ModelError, match="reml=False"):
        hlmext.lrtest(a, b)


def test_icc_random_intercept(gcse):
    ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit(reml=False)
    icc = ri.icc()
    sd_u, sd_e = ri.re_params["estimate"]
    assert icc.loc["school", "icc"] == pytest.approx(sd_u ** 2 / (sd_u ** 2 + sd_e ** 2))
    assert icc.loc["school", "lower"] < icc.loc["school", "icc"] < icc.loc["school", "upper"]
    with pytest.raises(ValueError, match="random intercepts only"):
        hlmext.mixedlm("gcse ~ lrt + (lrt | school)", gcse).fit(reml=False).icc()


def test_string_group_ids_and_groups_of_size_one(gcse):
    df = gcse.copy()
    df["school"] = "s" + df.school.astype(str)
    res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    ref = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit(reml=False)
    assert res.llf == pytest.approx(ref.llf, rel=1e-12)
    assert "s1" in res.random_effects["school"].index
    # add ten schools of one student each: legitimate, and they get BLUPs
    extra = gcse.head(10).copy()
    extra["school"] = np.arange(1000, 1010)
    res1 = hlmext.mixedlm("gcse ~ lrt + (1 | school)", pd.concat([gcse, extra])).fit(reml=False)
    assert res1.n_groups["school"] == 74 and res1.converged


def test_shuffled_rows_give_same_fit(gcse, rs):
    shuffled = gcse.sample(frac=1.0, random_state=3)
    res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", shuffled).fit(reml=False)
    np.testing.assert_allclose(res.params, rs.params, rtol=1e-8)
    assert res.llf == pytest.approx(rs.llf, rel=1e-10)
    np.testing.assert_allclose(res.fittedvalues.loc[gcse.index], rs.fittedvalues, rtol=1e-6, atol=1e-6)


def test_same_data_same_result_bitwise(gcse, rs):
    again = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", gcse).fit(reml=False)
    assert np.array_equal(again.params.to_numpy(), rs.params.to_numpy())


def test_missing_values_drop_or_raise(gcse):
    df = gcse.copy()
    df.loc[df.index[:3], "lrt"] = np.nan
    m = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df)
    assert m.nobs == len(df) - 3 and m.frame.n_dropped == 3
    with pytest.raises(DataError, match="lrt"):
        hlmext.mixedlm("gcse ~ lrt + (1 | school)", df, missing="raise")


def test_bad_input_errors(gcse):
    with pytest.raises(FormulaError, match="lrtt"):
        hlmext.mixedlm("gcse ~ lrtt + (1 | school)", gcse)
    with pytest.raises(FormulaError, match="schol"):
        hlmext.mixedlm("gcse ~ lrt + (1 | schol)", gcse)
    with pytest.raises(ModelError, match="single group"):
        hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse[gcse.school == 1])
    df = gcse.assign(lrt2=2 * gcse.lrt)
    with pytest.raises(ModelError, match="lrt2"):
        hlmext.mixedlm("gcse ~ lrt + lrt2 + (1 | school)", df)
    with pytest.raises(ModelError, match="rank deficient"):
        hlmext.mixedlm("gcse ~ lrt + (lrt + lrt2 | school)", df)
    with pytest.raises(DataError, match="not numeric"):
        hlmext.mixedlm("sex ~ lrt + (1 | school)", gcse)
    one = gcse.groupby("school").head(1)
    with pytest.raises(ModelError, match="one observation"):
        hlmext.mixedlm("gcse ~ lrt + (lrt | school)", one)


def test_boundary_fit_is_reported():
    """Data with no school-level variation: the variance is estimated at zero."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(np.arange(30), 5), "x": rng.normal(size=150)})
    df["y"] = 1 + df.x + rng.normal(size=150)
    df["y"] -= df.groupby("g").y.transform("mean") - df.y.mean()     # remove all group variation
    with pytest.warns(hlmext.BoundaryWarning, match="sd\\(Intercept\\)"):
        res = hlmext.mixedlm("y ~ x + (1 | g)", df).fit(reml=False)
    assert res.re_params.loc["sd(Intercept)[g]", "estimate"] < 1e-3
    assert np.isnan(res.re_params.loc["sd(Intercept)[g]", "se"])
    assert "boundary" in str(res.summary())
    assert res.lr_test_vs_regression().statistic == pytest.approx(0, abs=1e-6)


def test_progress_only_when_asked(gcse, capsys):
    hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit(reml=False)
    assert capsys.readouterr().out == ""
    hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit(reml=False, disp=True)
    out = capsys.readouterr().out
    assert "iteration   1: deviance" in out and "Optimizer summary" in out


def test_conditional_prediction_needs_the_group_column(gcse, rs):
    with pytest.raises(FormulaError, match="'school'"):
        rs.predict(gcse[["lrt"]].head(3), which="conditional")


@pytest.mark.parametrize("formula", ["gcse ~ lrt + (lrt | school)", "gcse ~ lrt + (1 | school) + (1 | intake)"])
@pytest.mark.parametrize("reml", [False, True])
def test_frequency_weights_equal_replicated_rows(gcse, formula, reml):
    df = gcse.reset_index(drop=True)
    w = np.random.default_rng(0).integers(0, 4, len(df))
    replicated = hlmext.mixedlm(formula, df.loc[np.repeat(np.arange(len(df)), w)]).fit(reml=reml)
    weighted = hlmext.mixedlm(formula, df.assign(w=w), weights="w").fit(reml=reml)
    assert weighted.llf == pytest.approx(replicated.llf, rel=1e-12)
    assert weighted.nobs == replicated.nobs == w.sum()
    np.testing.assert_allclose(weighted.params, replicated.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.bse_fe, replicated.bse_fe, rtol=1e-8)


def test_bad_weights(gcse):
    with pytest.raises(DataError, match="negative"):
        hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse, weights=-np.ones(len(gcse)))
    with pytest.raises(DataError, match="not in the data"):
        hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse, weights="ww")


def test_bootstrap_refuses_frequency_weights(gcse):
    res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse, weights=np.ones(len(gcse))).fit(reml=False)
    with pytest.raises(ModelError, match="frequency weights"):
        res.simulate(1, seed=0)


def test_moment_start_reaches_the_optimum_of_the_full_search(gcse):
    """One level: Newton steps from the moment estimates end where L-BFGS-B and Newton end."""
    model = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", gcse)
    moments = model.theta_moments()
    fast = model.fit(reml=False)
    assert fast.opt.attempts[0][0] == "Newton" and len(fast.opt.attempts) == 1
    full = model.fit(reml=False, start=model.theta_start() * model.theta_scale())
    assert full.opt.attempts[0][0] == "L-BFGS-B"
    assert fast.llf == pytest.approx(full.llf, rel=1e-12)
    np.testing.assert_allclose(fast.params, full.params, rtol=1e-7)
    np.testing.assert_allclose(moments, fast.theta, rtol=0.2)
