"""statsmodels conventions: MixedLM's keywords, the standard results members, readable reprs,
named tables and warnings that point at the caller's line."""
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import hlmext
from hlmext.exceptions import BoundaryWarning, FormulaError


@pytest.fixture(scope="module")
def gcse():
    return hlmext.datasets.load("gcse").query("nstu > 4")


@pytest.fixture(scope="module")
def pastes():
    return hlmext.datasets.load("pastes")


@pytest.fixture(scope="module")
def ri(gcse):
    return hlmext.mixedlm("gcse ~ lrt + C(sex) + (1 | school)", gcse).fit(reml=False)


@pytest.fixture(scope="module")
def logit():
    df = hlmext.datasets.load("cbpp")
    return df, hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=7)


# ---------------------------------------------------------------- MixedLM keywords

def test_groups_and_re_formula_give_the_bar_model(gcse):
    bar = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", gcse).fit()
    by_name = hlmext.mixedlm("gcse ~ lrt", gcse, groups="school", re_formula="~lrt").fit()
    by_array = hlmext.mixedlm("gcse ~ lrt", gcse, groups=gcse["school"].to_numpy(), re_formula="lrt").fit()
    for res in (by_name, by_array):
        assert res.llf == bar.llf
        np.testing.assert_allclose(np.asarray(res.params), np.asarray(bar.params), rtol=1e-12)


def test_re_formula_defaults_to_a_random_intercept(gcse):
    bar = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit()
    assert hlmext.mixedlm("gcse ~ lrt", gcse, groups="school").fit().llf == bar.llf


def test_random_slope_matches_statsmodels_mixedlm(gcse):
    ours = hlmext.mixedlm("gcse ~ lrt", gcse, groups="school", re_formula="~lrt").fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = smf.mixedlm("gcse ~ lrt", gcse, groups="school", re_formula="~lrt").fit(method=["lbfgs"])
    assert ours.llf == pytest.approx(theirs.llf, rel=1e-6)


@pytest.mark.parametrize("re_formula", [None, "1"])
def test_vc_formula_is_a_nested_random_intercept(pastes, re_formula):
    ours = hlmext.mixedlm("strength ~ 1", pastes, groups="batch", re_formula=re_formula,
                          vc_formula={"cask": "0 + C(cask)"}).fit()
    bar = "strength ~ 1 + (1 | batch:cask)" if re_formula is None else "strength ~ 1 + (1 | batch/cask)"
    assert ours.llf == hlmext.mixedlm(bar, pastes).fit().llf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = smf.mixedlm("strength ~ 1", pastes, groups="batch", re_formula=re_formula,
                             vc_formula={"cask": "0 + C(cask)"}).fit(method=["lbfgs"])
    assert ours.llf == pytest.approx(theirs.llf, rel=1e-6)


def test_vc_formula_of_a_numeric_column_is_an_uncorrelated_slope(pastes):
    df = pastes.assign(x=np.random.default_rng(0).normal(size=len(pastes)))
    ours = hlmext.mixedlm("strength ~ x", df, groups="batch", re_formula="1", vc_formula={"x": "0 + x"}).fit()
    assert ours.llf == hlmext.mixedlm("strength ~ x + (1 | batch) + (0 + x | batch)", df).fit().llf


def test_mixedlm_keywords_refuse_what_they_cannot_translate(gcse, pastes):
    with pytest.raises(FormulaError, match="the forms understood are"):
        hlmext.mixedlm("strength ~ 1", pastes, groups="batch", vc_formula={"cask": "C(cask) + sample"})
    with pytest.raises(FormulaError, match="groups="):
        hlmext.mixedlm("gcse ~ lrt", gcse, re_formula="~lrt")
    with pytest.raises(FormulaError, match="not both"):
        hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse, groups="school")
    with pytest.raises(ValueError, match="one label per row"):
        hlmext.mixedlm("gcse ~ lrt", gcse, groups=np.arange(3))


# ---------------------------------------------------------------- standard members

def test_df_model_df_resid_and_llnull(gcse, ri, logit):
    assert (ri.df_model, ri.df_resid) == (2, ri.nobs - 3)
    ols = smf.ols("gcse ~ lrt + C(sex)", gcse).fit()
    assert ri.llnull == pytest.approx(ols.llf, rel=1e-10)
    _, res = logit
    assert res.df_model == 3
    assert 2 * (res.llf - res.llnull) == pytest.approx(res.lr_test_vs_regression().statistic, rel=1e-12)


def test_predict_with_exog_is_the_marginal_prediction(gcse, ri, logit):
    rows = gcse.head(5)
    assert ri.model.exog_names == ["Intercept", "C(sex)[T.M]", "lrt"]
    X = np.column_stack([np.ones(5), rows.sex == "M", rows.lrt])
    np.testing.assert_allclose(ri.predict(exog=X), ri.predict(rows).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ri.predict(X), ri.predict(rows).to_numpy(), rtol=1e-12)
    df, res = logit
    X = np.asarray(pd.get_dummies(df.period.astype(str), drop_first=True), float)
    X = np.column_stack([np.ones(len(df)), X])
    np.testing.assert_allclose(res.predict(exog=X), res.predict(df).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.predict(exog=X, which="eta"), res.predict(df, which="eta").to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="3 columns"):
        ri.predict(exog=np.ones((2, 2)))


def test_summary_tables_are_named_dataframes(ri, logit):
    fixed, random = ri.summary().tables
    assert fixed.index.name == "gcse" and random.index.names == ["level", "parameter"]
    np.testing.assert_allclose(fixed.loc[ri.model.exog_names, "coef"], ri.fe_params)
    np.testing.assert_allclose(random["estimate"].to_numpy(), ri.re_params["estimate"].to_numpy())
    fixed = logit[1].summary(eform=True).tables[0]
    np.testing.assert_allclose(fixed.loc[logit[1].model.exog_names, "coef"], np.exp(logit[1].fe_params))


def test_t_test_pairwise_on_a_factor(ri, logit):
    _, res = logit
    pairs = res.t_test_pairwise("C(period)").result_frame
    assert len(pairs) == 6 and pairs.index.name == "pair"
    b = res.fe_params
    assert pairs.loc["3-2", "coef"] == pytest.approx(b["C(period)[T.3]"] - b["C(period)[T.2]"], rel=1e-12)
    assert pairs.loc["2-1", "coef"] == pytest.approx(b["C(period)[T.2]"], rel=1e-12)
    assert "pvalue-hs" in pairs
    assert ri.t_test_pairwise("C(sex)").result_frame.loc["M-F", "coef"] == pytest.approx(b_sex(ri), rel=1e-12)
    with pytest.raises(ValueError, match="terms are"):
        ri.t_test_pairwise("C(period)")


def b_sex(res):
    return res.fe_params["C(sex)[T.M]"]


def test_reprs_are_readable(gcse, ri, logit):
    text = repr(ri)
    assert text.startswith("<MixedResults: Mixed-effects ML regression, gcse ~ lrt + C(sex) + (1 | school)")
    assert repr(logit[1]).startswith("<GLMMResults: Mixed-effects logistic regression")
    lr = repr(ri.lr_test_vs_regression())
    assert lr.startswith("LRTest(statistic=") and "np." not in lr
    slope = hlmext.mixedlm("gcse ~ lrt + C(sex) + (lrt | school)", gcse).fit(reml=False)
    assert "np." not in repr(hlmext.lrtest(ri, slope))


def test_every_table_has_named_indexes(ri, logit):
    assert ri.random_effects["school"].index.name == "school"
    assert ri.random_effects_cov["school"].index.name == "school"
    assert ri.re_params.index.name == "parameter"
    assert ri.re_table.index.names == ["level", "parameter"]
    assert ri.fe_table.index.name == "term" and ri.fe_params.index.name is None
    assert ri.cov_fe.index.name == "term" and ri.cov_re["school"].index.name == "effect"
    assert ri.icc().index.name == "level"
    _, res = logit
    assert res.random_effects["herd"].index.name == "herd" and res.re_table.index.names == ["level", "parameter"]
    nested = hlmext.mixedlm("yld ~ nitro + (1 | Block/Variety)", hlmext.datasets.load("oats")).fit()
    assert nested.random_effects["Block:Variety"].index.names == ["Block", "Variety"]


# ---------------------------------------------------------------- warnings

def test_boundary_warning_of_a_linear_fit_points_at_the_caller():
    oats = hlmext.datasets.load("oats")
    model = hlmext.mixedlm("yld ~ C(Variety) + nitro + (1 | Block) + (1 | plot) + (1 | blknit)", oats)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(reml=False)
    boundary = [w for w in caught if issubclass(w.category, BoundaryWarning)]
    assert boundary and all(w.filename == __file__ for w in boundary)


def test_boundary_warning_of_a_glmm_fit_points_at_the_caller():
    rng = np.random.default_rng(1)              # no group effect: the sd's estimate is zero
    df = pd.DataFrame({"g": np.repeat(np.arange(30), 8), "x": rng.normal(size=240)})
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-0.5 * df.x)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hlmext.melogit("y ~ x + (1 | g)", df).fit()
    boundary = [w for w in caught if issubclass(w.category, BoundaryWarning)]
    assert boundary and all(w.filename == __file__ for w in boundary)


def test_llnull_is_the_ols_likelihood_also_for_reml_fits(gcse):
    res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse).fit()
    assert res.llnull == pytest.approx(sm.OLS(gcse.gcse, sm.add_constant(gcse.lrt)).fit().llf, rel=1e-10)
