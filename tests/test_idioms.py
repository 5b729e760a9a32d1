"""lme4 and Stata idioms: coef, ranef(condvar=True), update, anova, estat_group, lrtest in either order.

lme4 figures (sleepstudy, pastes) come from tests/reference/lme4 (R 4.2.2, lme4 1.1-31; see its
README). Conditional standard errors are checked against the closed forms of random-intercept
models: ``1 / (1/sd^2 + n_j/sigma^2)`` (linear) and ``1 / (1/sd^2 + sum_i n_i p_i (1 - p_i))`` at
the conditional modes (logit, Laplace).
"""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from conftest import load_reference
from hlmext.exceptions import FormulaError, ModelError
from hlmext.update import ModelCall, update_formula


@pytest.fixture(scope="module")
def sleep():
    return hlmext.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_rs(sleep):
    return hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit(reml=False)


@pytest.fixture(scope="module")
def sleep_ri(sleep):
    return hlmext.mixedlm("Reaction ~ Days + (1 | Subject)", sleep).fit(reml=False)


@pytest.fixture(scope="module")
def pastes():
    return hlmext.datasets.load("pastes")


@pytest.fixture(scope="module")
def nested(pastes):
    return hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit()


@pytest.fixture(scope="module")
def cbpp():
    return hlmext.datasets.load("cbpp")


@pytest.fixture(scope="module")
def logit(cbpp):
    return hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=1)


# ---------------------------------------------------------------------- coef
def test_coef_is_fixed_plus_random(sleep_rs):
    coef = sleep_rs.coef()
    blups = sleep_rs.random_effects["Subject"]
    assert isinstance(coef, pd.DataFrame) and coef.index.name == "Subject"
    assert list(coef.columns) == ["Intercept", "Days"]
    expected = blups.to_numpy() + sleep_rs.fe_params.to_numpy()
    np.testing.assert_allclose(coef.to_numpy(), expected, rtol=1e-12)
    assert list(coef.index) == list(blups.index)


def test_coef_matches_lme4(sleep_rs):
    ref = load_reference("sleepstudy_rs_ml")
    fixed = np.array([f["estimate"] for f in ref["fixed"]])
    lme4_coef = fixed + np.asarray(ref["blups_head"]["Subject"])
    tol = 0.01 * np.sqrt(np.diag(sleep_rs.cov_re["Subject"].to_numpy())).max()
    np.testing.assert_allclose(sleep_rs.coef().to_numpy()[:5], lme4_coef, atol=tol)


def test_coef_of_nested_levels_adds_each_levels_own_effects(nested):
    coef = nested.coef()
    assert list(coef) == ["batch", "batch:cask"]
    icept = nested.fe_params["Intercept"]
    np.testing.assert_allclose(coef["batch"]["Intercept"], icept + nested.random_effects["batch"]["Intercept"])
    inner = coef["batch:cask"]
    assert inner.index.names == ["batch", "cask"]
    np.testing.assert_allclose(inner["Intercept"], icept + nested.random_effects["batch:cask"]["Intercept"])
    # lme4 (coef of cask:batch does not add the batch effect): group A:a
    ref = load_reference("pastes_nested_reml")
    lme4_value = ref["fixed"][0]["estimate"] + ref["blups_head"]["cask:batch"][0][0]
    assert inner.loc[("A", "a"), "Intercept"] == pytest.approx(lme4_value, abs=0.01)


def test_coef_of_a_random_term_without_fixed_effect_starts_at_zero(sleep):
    res = hlmext.mixedlm("Reaction ~ 1 + (Days | Subject)", sleep).fit(reml=False)
    coef = res.coef()
    assert list(coef.columns) == ["Days", "Intercept"]            # lme4 puts the added columns first
    np.testing.assert_allclose(coef["Days"], res.random_effects["Subject"]["Days"])


def test_coef_of_glmm(logit):
    coef = logit.coef()
    assert list(coef.columns) == list(logit.fe_params.index) and coef.index.name == "herd"
    np.testing.assert_allclose(coef["Intercept"],
                               logit.fe_params["Intercept"] + logit.random_effects["herd"]["Intercept"])
    for name in logit.fe_params.index[1:]:
        assert np.all(coef[name] == logit.fe_params[name])


# ---------------------------------------------------------------------- ranef
def test_ranef_without_condvar_is_the_named_blups(sleep_rs, nested):
    table = sleep_rs.ranef()
    pd.testing.assert_frame_equal(table, sleep_rs.random_effects["Subject"], check_names=False)
    assert table.index.name == "Subject"
    assert list(nested.ranef()) == ["batch", "batch:cask"]


def test_ranef_condvar_se_is_the_root_of_the_conditional_variance(sleep_rs):
    table = sleep_rs.ranef(condvar=True)
    assert table.index.names == ["level", "group", "term"] and list(table.columns) == ["estimate", "se"]
    assert len(table) == 18 * 2
    for term in ("Intercept", "Days"):
        part = table.xs(term, level="term").xs("Subject", level="level")
        var = sleep_rs.random_effects_cov["Subject"]["var(%s)" % term]
        np.testing.assert_allclose(part["se"], np.sqrt(var.to_numpy()), rtol=1e-12)
        np.testing.assert_allclose(part["estimate"], sleep_rs.random_effects["Subject"][term])


def test_ranef_condvar_of_a_random_intercept_has_the_closed_form(sleep_ri, sleep):
    sd = sleep_ri.re_params["estimate"].iloc[0]
    sigma2 = sleep_ri.scale
    n = sleep.groupby("Subject").size()
    table = sleep_ri.ranef(condvar=True).xs("Subject", level="level").xs("Intercept", level="term")
    expected = np.sqrt(1.0 / (1.0 / sd ** 2 + n.reindex(table.index).to_numpy() / sigma2))
    np.testing.assert_allclose(table["se"], expected, rtol=1e-6)


def test_ranef_condvar_of_a_glmm_has_the_closed_form(logit, cbpp):
    sd = logit.re_params["estimate"].iloc[0]
    p = logit.predict(which="mu", conditional=True)
    info = (cbpp["size"] * p * (1 - p)).groupby(cbpp["herd"]).sum()
    table = logit.ranef(condvar=True).xs("herd", level="level").xs("Intercept", level="term")
    expected = np.sqrt(1.0 / (1.0 / sd ** 2 + info.reindex(table.index).to_numpy()))
    np.testing.assert_allclose(table["se"], expected, rtol=1e-5)


def test_ranef_condvar_labels_nested_groups(nested):
    table = nested.ranef(condvar=True)
    assert len(table) == 10 + 30
    row = table.loc[("batch:cask", "A:a", "Intercept")]
    assert row["estimate"] == pytest.approx(nested.random_effects["batch:cask"].loc[("A", "a"), "Intercept"])


# ---------------------------------------------------------------------- estat_group
def test_estat_group(nested, sleep_rs, cbpp, logit):
    table = nested.estat_group()
    assert table.index.name == "level" and list(table.index) == ["batch", "batch:cask"]
    assert table.loc["batch"].tolist() == [10, 6, 6.0, 6] and table.loc["batch:cask"].tolist() == [30, 2, 2.0, 2]
    sizes = cbpp.groupby("herd").size()
    row = logit.estat_group().loc["herd"]
    assert row.tolist() == [15, sizes.min(), pytest.approx(sizes.mean()), sizes.max()]


# ---------------------------------------------------------------------- update
@pytest.mark.parametrize("old, new, expected", [
    ("y ~ x + z + (x | g)", ". ~ . - z", "y ~ x + (x | g)"),
    ("y ~ x + (x | g)", ". ~ . + z", "y ~ x + z + (x | g)"),
    ("y ~ x + (x | g)", "log_y ~ .", "log_y ~ x + (x | g)"),
    ("y ~ x + (x|g)", ". ~ . - (x | g) + (1 | g)", "y ~ x + (1 | g)"),
    ("y ~ x + (1 | g)", ". ~ . - x", "y ~ 1 + (1 | g)"),
    ("y ~ a*b + (1 | g)", ". ~ . - a:b", "y ~ a*b - a:b + (1 | g)"),
    ("y ~ x + (1 | g)", ". ~ . - 1", "y ~ x - 1 + (1 | g)"),
    ("y ~ x + (1 | g)", "y ~ z + (z | h)", "y ~ z + (z | h)"),
    ("y ~ x || g: x, cov(un)", ". ~ . + z", "y ~ x + z || g: x, cov(un)"),
])
def test_update_formula(old, new, expected):
    assert update_formula(old, new) == expected


def test_update_formula_errors():
    with pytest.raises(FormulaError, match=r"cannot remove \(x \| h\)"):
        update_formula("y ~ x + (1 | g)", ". ~ . - (x | h)")
    with pytest.raises(FormulaError, match="only the fixed part"):
        update_formula("y ~ x || g:", ". ~ . + (1 | h)")
    with pytest.raises(FormulaError, match="'~'"):
        update_formula("y ~ x + (1 | g)", ". - x")


def _same_fit(a, b):
    assert a.llf == pytest.approx(b.llf, rel=1e-9)
    np.testing.assert_allclose(np.asarray(a.params), np.asarray(b.params), rtol=1e-6)
    assert list(a.model.exog_names) == list(b.model.exog_names) and a.reml == b.reml


def test_update_formula_equals_a_fresh_fit(sleep_rs, sleep):
    smaller = sleep_rs.update(". ~ . - Days")
    _same_fit(smaller, hlmext.mixedlm("Reaction ~ 1 + (Days | Subject)", sleep).fit(reml=False))
    other = sleep_rs.update("Reaction ~ Days + (1 | Subject)")
    _same_fit(other, hlmext.mixedlm("Reaction ~ Days + (1 | Subject)", sleep).fit(reml=False))


def test_update_data_and_method(sleep_rs, sleep):
    subset = sleep[sleep.Days < 8]
    _same_fit(sleep_rs.update(data=subset),
              hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", subset).fit(reml=False))
    _same_fit(sleep_rs.update(reml=True), hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit())
    _same_fit(sleep_rs.update(". ~ . - Days", reml=True),
              hlmext.mixedlm("Reaction ~ 1 + (Days | Subject)", sleep).fit())


def test_update_keeps_the_options(sleep):
    w = np.tile([1.0, 2.0], 90)
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep, cov="independent", weights=w).fit(
        reml=False, cov_type="cluster", cov_kwds={"correction": "CR0"})
    new = res.update(". ~ . - Days")
    fresh = hlmext.mixedlm("Reaction ~ 1 + (Days | Subject)", sleep, cov="independent", weights=w).fit(
        reml=False, cov_type="cluster", cov_kwds={"correction": "CR0"})
    _same_fit(new, fresh)
    assert new.cov_type == fresh.cov_type and new.model.nobs == 270
    np.testing.assert_allclose(np.asarray(new.bse), np.asarray(fresh.bse), rtol=1e-6)


def test_update_of_a_glmm_keeps_family_trials_and_nagq(cbpp):
    res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=7)
    new = res.update(". ~ 1 + (1 | herd)")
    fresh = hlmext.melogit("incidence ~ 1 + (1 | herd)", cbpp, trials="size").fit(nagq=7)
    assert isinstance(new.model, hlmext.MixedLogit) and new.nagq == 7
    _same_fit(new, fresh)
    assert res.update(nagq=1).llf == pytest.approx(
        hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=1).llf, rel=1e-9)


def test_update_rejects_unknown_keywords(sleep_rs, logit):
    with pytest.raises(TypeError, match="'rmel'"):
        sleep_rs.update(rmel=False)
    with pytest.raises(TypeError, match=r"'reml'.*did you mean 'nagq'"):
        logit.update(reml=False)


def test_update_needs_a_kept_call(sleep_rs):
    call = pickle.loads(pickle.dumps(sleep_rs.model.call))
    assert isinstance(call, ModelCall) and call.data is None and call.formula == sleep_rs.model.formula
    model = hlmext.LinearMixed.from_formula("Reaction ~ Days + (1 | Subject)", hlmext.datasets.load("sleepstudy"))
    with pytest.raises(ModelError, match="mixedlm"):
        model.fit(reml=False).update(". ~ . - Days")


# ---------------------------------------------------------------------- anova, lrtest
def test_lrtest_in_either_order(sleep_ri, sleep_rs):
    a, b = hlmext.lrtest(sleep_ri, sleep_rs), hlmext.lrtest(sleep_rs, sleep_ri)
    assert (a.statistic, a.df, a.pvalue, a.kind) == (b.statistic, b.df, b.pvalue, b.kind)


def test_anova_table_against_lrtest_and_lme4(sleep_ri, sleep_rs):
    table = hlmext.anova(sleep_rs, sleep_ri)
    assert list(table.index) == ["m2", "m1"] and table.index.name == "model"      # sorted by npar
    assert list(table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    test = hlmext.lrtest(sleep_ri, sleep_rs)
    assert table.loc["m1", ["Chisq", "Df", "Pr(>Chisq)"]].tolist() == [test.statistic, test.df, test.pvalue]
    assert table.loc["m2", ["Chisq", "Pr(>Chisq)"]].isna().all()
    for name, ref in (("m2", "sleepstudy_ri_ml"), ("m1", "sleepstudy_rs_ml")):
        ref = load_reference(ref)
        row = table.loc[name]
        assert row["logLik"] == pytest.approx(ref["loglik"], rel=1e-6)
        assert row["AIC"] == pytest.approx(ref["aic"], rel=1e-6)
        assert row["BIC"] == pytest.approx(ref["bic"], rel=1e-6)
        assert row["deviance"] == pytest.approx(ref["deviance"], rel=1e-6)
    assert table["npar"].tolist() == [4, 6]
    lme4_chisq = 2 * (load_reference("sleepstudy_rs_ml")["loglik"] - load_reference("sleepstudy_ri_ml")["loglik"])
    assert table.loc["m1", "Chisq"] == pytest.approx(lme4_chisq, abs=1e-4)
    assert table.attrs["formulas"]["m1"] == "Reaction ~ Days + (Days | Subject)"


def test_anova_refits_reml_fits_with_ml(sleep, sleep_ri, sleep_rs):
    reml = [hlmext.mixedlm(f, sleep).fit() for f in ("Reaction ~ Days + (1 | Subject)",
                                                       "Reaction ~ Days + (Days | Subject)")]
    with pytest.warns(UserWarning, match="refitting model.* with ML"):
        table = hlmext.anova(*reml, names=["ri", "rs"])
    assert table.loc["ri", "logLik"] == pytest.approx(sleep_ri.llf, rel=1e-8)
    assert table.loc["rs", "logLik"] == pytest.approx(sleep_rs.llf, rel=1e-8)
    assert "refitted with ML" in table.attrs["notes"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = hlmext.anova(*reml, refit=False)
    assert kept.loc["m1", "logLik"] == pytest.approx(reml[0].llf)


def test_anova_of_three_models_and_errors(sleep, sleep_ri, sleep_rs):
    flat = hlmext.mixedlm("Reaction ~ 1 + (1 | Subject)", sleep).fit(reml=False)
    table = hlmext.anova(sleep_rs, flat, sleep_ri, names=["rs", "flat", "ri"])
    assert list(table.index) == ["flat", "ri", "rs"]
    assert table.loc["ri", "Chisq"] == pytest.approx(hlmext.lrtest(flat, sleep_ri).statistic)
    assert table.loc["rs", "Df"] == 2
    with pytest.raises(ValueError, match="two or more"):
        hlmext.anova(sleep_rs)
    with pytest.raises(ValueError, match="names"):
        hlmext.anova(sleep_rs, sleep_ri, names=["a"])
