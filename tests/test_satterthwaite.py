"""Satterthwaite df against lmerTest 3.1-3 (tests/reference/inference, made by make_refs.R).

Tolerance: 1e-2 relative as asked (agreement is ~1e-6: both sides use the same
parameterization (theta, sigma) and formula; only the numerical derivatives differ).
"""
import warnings

import numpy as np
import pytest
from scipy import stats

import hlmext
from conftest import load_reference
from hlmext.inference.satterthwaite import Satterthwaite, fe_table

MODELS = ["exam_ri_ml", "exam_rs_ml", "exam_rs_reml", "sleep_rs_reml", "sleep_rs_ml", "pastes_nested_ml"]


def fit(ref):
    data = {"exam.csv": lambda: hlmext.datasets.load("gcse").query("nstu > 4"),
            "sleepstudy.csv": lambda: hlmext.datasets.load("sleepstudy"),
            "pastes.csv": lambda: hlmext.datasets.load("pastes")}[ref["dataset"]]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hlmext.BoundaryWarning)
        return hlmext.mixedlm(ref["formula"], data).fit(reml=ref["method"] == "REML")


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    ref = load_reference(request.param, "inference")
    return ref, fit(ref)


def test_df_of_fixed_effects(case):
    ref, res = case
    sat = ref["satterthwaite"]
    assert list(res.fe_params.index) == sat["names"]
    table = fe_table(res)
    np.testing.assert_allclose(table["df"], sat["df"], rtol=1e-2)
    np.testing.assert_allclose(table["se"], sat["se"], rtol=1e-4)
    np.testing.assert_allclose(table["t"], sat["t"], rtol=1e-4)
    np.testing.assert_allclose(table["pvalue"], sat["pvalue"], rtol=2e-2, atol=1e-12)


def test_df_of_a_contrast(case):
    ref, res = case
    con = ref["satterthwaite"]["contrast"]
    L = np.zeros(len(res.params))
    L[:len(con["L"])] = con["L"]
    tt = res.t_test(L[None, :], df="satterthwaite")
    assert float(tt.df_denom[0]) == pytest.approx(con["df"], rel=1e-2)
    assert float(tt.effect[0]) == pytest.approx(con["estimate"], rel=1e-6)
    assert float(tt.sd[0, 0]) == pytest.approx(con["se"], rel=1e-4)
    assert float(tt.pvalue) == pytest.approx(con["pvalue"], rel=2e-2, abs=1e-12)


def test_string_hypotheses_and_rows():
    df = hlmext.datasets.load("sleepstudy")
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    tt = res.t_test("Days = 10, Intercept + 5 * Days = 300", df="satterthwaite")
    assert tt.df_denom.shape == (2,)
    lo, hi = tt.conf_int()[0]
    se = float(tt.sd[0])
    crit = stats.t.ppf(0.975, tt.df_denom[0])
    assert (lo, hi) == pytest.approx((res.fe_params["Days"] - crit * se, res.fe_params["Days"] + crit * se))
    assert float(tt.tvalue[0]) == pytest.approx((res.fe_params["Days"] - 10) / se)
    assert tt.pvalue[1] == pytest.approx(2 * stats.t.sf(abs(tt.tvalue[1]), tt.df_denom[1]))
    normal = res.t_test("Days = 10")                            # the default is statsmodels' z test
    assert normal.distribution == "norm"
    with pytest.raises(ValueError, match="fixed effects only"):
        res.t_test("sd(Residual) = 20", df="satterthwaite")
    with pytest.raises(ValueError, match="satterthwaite"):
        res.t_test("Days = 10", df="containment")


def test_derivatives_are_stable():
    """The df do not depend on the finite-difference steps (Hessian and Jacobian)."""
    df = hlmext.datasets.load("gcse").query("nstu > 4")
    res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    sat = Satterthwaite(res)
    np.testing.assert_allclose(sat.cov_beta, res.cov_fe.to_numpy(), rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(sat.hessian) > 0)
    np.testing.assert_allclose(2 * np.linalg.inv(sat.hessian), sat.cov_varpar, rtol=1e-8)
    L = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 10.0]])
    for step in (3e-4, 3e-3):
        np.testing.assert_allclose(Satterthwaite(res, rel_step=step).df(L), sat.df(L), rtol=1e-4)


def test_summary_with_satterthwaite_df():
    import hlmext
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", hlmext.datasets.load("sleepstudy")).fit()
    text = str(res.summary(dfmethod="satterthwaite"))
    assert "P>|t|" in text and "Satterthwaite df (min 17.0, max 17.0)" in text


# ----------------------------------------------------------------- F tests (make_ftests.R)

def ftest_cases():
    import json
    from pathlib import Path
    path = Path(__file__).parent / "reference" / "inference" / "ftests.json"
    return {r["id"]: r for r in json.loads(path.read_text())}


@pytest.fixture(scope="module", params=sorted(ftest_cases()))
def fcase(request):
    ref = ftest_cases()[request.param]
    data = {"exam.csv": lambda: hlmext.datasets.load("gcse"),
            "sleepstudy.csv": lambda: hlmext.datasets.load("sleepstudy")}[ref["dataset"]]()
    formula = ref["formula"].replace("vr + schgend", "C(vr) + C(schgend)")
    res = hlmext.mixedlm(formula, data).fit(reml=ref["method"] == "REML")
    return ref, res


def _our_name(lme4_name):
    """lme4's coefficient names (``(Intercept)``, ``vr2``) as the formula here writes them."""
    if lme4_name == "(Intercept)":
        return "Intercept"
    for factor in ("vr", "schgend"):
        if lme4_name.startswith(factor) and lme4_name[len(factor):].isdigit():
            return "C(%s)[T.%s]" % (factor, lme4_name[len(factor):])
    return lme4_name


def test_f_test_matches_lmertest_contest(fcase):
    ref, res = fcase
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)
    ours = list(res.fe_params.index)
    lme4_names = [_our_name(nm) for nm in ref["fixed_names"]]
    L = np.atleast_2d(ref["L"])[:, [lme4_names.index(nm) for nm in ours]]    # to our column order
    ft = res.f_test(L, df="satterthwaite")
    want = ref["contest"]
    assert int(ft.df_num) == want["ndf"]
    assert float(ft.fvalue) == pytest.approx(want["F"], rel=1e-4)
    assert float(ft.df_denom) == pytest.approx(want["ddf"], rel=1e-2)
    assert float(ft.pvalue) == pytest.approx(want["p"], rel=1e-2)


def test_term_f_tests_match_lmertest_anova(fcase):
    """lmerTest's type III table of a model without interactions: one joint test per term."""
    ref, res = fcase
    names = list(res.fe_params.index)
    av = ref["anova"]
    for term, F, ndf, ddf in zip(*(np.atleast_1d(av[k]) for k in ("terms", "F", "ndf", "ddf"))):
        cols = [i for i, nm in enumerate(names) if nm == term or nm.startswith("C(%s)" % term)]
        L = np.eye(len(names))[cols]
        ft = res.f_test(L, df="satterthwaite")
        assert int(ft.df_num) == ndf
        assert float(ft.fvalue) == pytest.approx(F, rel=1e-4)
        assert float(ft.df_denom) == pytest.approx(ddf, rel=1e-2)


def test_f_test_of_one_row_is_the_squared_t_test():
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", hlmext.datasets.load("sleepstudy")).fit()
    ft = res.f_test("Days = 10", df="satterthwaite")
    tt = res.t_test("Days = 10", df="satterthwaite")
    assert float(ft.fvalue) == pytest.approx(float(tt.tvalue[0, 0]) ** 2, rel=1e-12)
    assert float(ft.df_denom) == pytest.approx(float(tt.df_denom[0]), rel=1e-12)


def test_f_test_denominator_df_rules():
    from hlmext.inference.satterthwaite import _f_denominator_df
    assert _f_denominator_df([7.0]) == 7.0
    assert _f_denominator_df([5.0, 5.0]) == 5.0
    assert _f_denominator_df([1.5, 30.0]) == 2.0
    E = 10 / 8 + 20 / 18
    assert _f_denominator_df([10.0, 20.0]) == pytest.approx(2 * E / (E - 2))


def test_anova_table_matches_lmertest(fcase):
    ref, res = fcase
    table = res.anova()
    av = ref["anova"]
    want = {_anova_name(t): (F, ndf, ddf, pv) for t, F, ndf, ddf, pv in
            zip(*(np.atleast_1d(av[k]) for k in ("terms", "F", "ndf", "ddf", "p")))}
    assert sorted(table.index) == sorted(want)
    for term, (F, ndf, ddf, pv) in want.items():
        row = table.loc[term]
        assert row["NumDF"] == ndf
        assert row["F value"] == pytest.approx(F, rel=1e-4)
        assert row["DenDF"] == pytest.approx(ddf, rel=1e-2)
        assert row["Pr(>F)"] == pytest.approx(pv, rel=1e-2)


def _anova_name(term):
    return "C(%s)" % term if term in ("vr", "schgend") else term


def test_sampling_weights_refuse_satterthwaite_f_tests():
    df = hlmext.datasets.load("sleepstudy").assign(w=lambda d: 1.0 + (d.index % 2))
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df, pweights="w").fit(reml=False)
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.f_test("Intercept = 0, Days = 0", df="satterthwaite")
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.anova()
