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
from hlmext.satterthwaite import Satterthwaite, fe_table

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
        res.t_test("Days = 10", df="kenward-roger")


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
