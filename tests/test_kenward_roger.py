"""Kenward-Roger inference against pbkrtest 0.5.2 and lmerTest (tests/reference/kenward_roger,
made by make_refs.R): the adjusted covariance of the fixed effects, per-coefficient df and t
tests, joint F tests and the anova table, on nested, random-slope and crossed REML fits.

Tolerances: 1e-5 relative on covariances, SEs, t, F and df; 1e-4 on p-values. Both sides
compute the same closed-form quantities at the REML optimum, so the agreement (about
1e-7) is set by how closely the two optimizers agree.
"""
import warnings

import numpy as np
import pytest

import hlmext
from conftest import load_reference
from hlmext.exceptions import ModelError
from hlmext.inference.kenward_roger import KenwardRoger, fe_table

# id -> (our formula, dataset, factors whose lme4 names need translating)
MODELS = {
    "exam_factors": ("gcse ~ lrt + C(vr) + C(schgend) + (lrt | school)", "exam", ["vr", "schgend"]),
    "sleep_rs": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", []),
    "sleep_independent": ("Reaction ~ Days + (Days || Subject)", "sleepstudy", []),
    "oats_nested": ("yld ~ nitro + C(Variety) + (1 | Block/Variety)", "oats", ["Variety"]),
    "orthodont_rs": ("distance ~ age * C(Sex) + (age | Subject)", "orthodont", ["Sex"]),
    "penicillin_crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin", []),
}
REFS = {r["id"]: r for r in load_reference("kenward_roger", "kenward_roger")}


def _our_name(lme4_name, factors):
    """lme4's ``(Intercept)``, ``vr2``, ``age:SexMale`` as the formulas here name them."""
    if lme4_name == "(Intercept)":
        return "Intercept"
    parts = []
    for piece in lme4_name.split(":"):
        for factor in factors:
            if piece.startswith(factor) and len(piece) > len(factor):
                piece = "C(%s)[T.%s]" % (factor, piece[len(factor):])
                break
        parts.append(piece)
    return ":".join(parts)


def _vector(values):
    return np.atleast_1d(np.asarray(values, float))


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    formula, dataset, factors = MODELS[request.param]
    ref = REFS[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hlmext.BoundaryWarning)
        res = hlmext.mixedlm(formula, hlmext.datasets.load(dataset)).fit()
    names = ref["fixed_names"]
    names = [names] if isinstance(names, str) else names
    lme4_order = [_our_name(nm, factors) for nm in names]
    perm = [lme4_order.index(nm) for nm in res.fe_params.index]      # lme4's columns in our order
    return ref, res, perm


def test_fit_is_the_reference_fit(case):
    ref, res, _ = case
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)


def test_adjusted_covariance_matches_pbkrtest(case):
    ref, res, perm = case
    kr = KenwardRoger(res)
    for ours, theirs in ((kr.cov_beta, ref["vcov"]), (kr.cov_beta_adj, ref["vcov_adj"])):
        theirs = np.atleast_2d(np.asarray(theirs, float))[np.ix_(perm, perm)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())
    assert np.all(np.diag(kr.cov_beta_adj) >= np.diag(kr.cov_beta) * (1 - 1e-12))   # the adjustment inflates


def test_coefficient_table_matches_lmertest(case):
    ref, res, perm = case
    table = fe_table(res)
    want = {k: _vector(v)[perm] for k, v in ref["coef"].items()}
    np.testing.assert_allclose(table["coef"], want["estimate"], rtol=1e-5)
    np.testing.assert_allclose(table["se"], want["se"], rtol=1e-5)
    np.testing.assert_allclose(table["df"], want["df"], rtol=1e-5)
    np.testing.assert_allclose(table["t"], want["t"], rtol=1e-5)
    np.testing.assert_allclose(table["pvalue"], want["p"], rtol=1e-4, atol=1e-300)


def test_t_test_of_a_coefficient_is_its_table_row(case):
    _, res, _ = case
    table = fe_table(res)
    name = res.fe_params.index[-1]
    tt = res.t_test("%s = 0" % name, df="kenward-roger") if "[" not in name else \
        res.t_test(np.eye(len(res.params))[[len(res.fe_params) - 1]], df="kenward-roger")
    assert float(tt.tvalue[0, 0]) == pytest.approx(table["t"].iloc[-1], rel=1e-12)
    assert float(tt.df_denom[0]) == pytest.approx(table["df"].iloc[-1], rel=1e-12)


def test_joint_f_test_matches_krmodcomp(case):
    ref, res, perm = case
    L = np.atleast_2d(np.asarray(ref["L"], float))[:, perm]
    ft = res.f_test(L, df="kenward-roger")
    want = ref["joint"]
    assert int(ft.df_num) == want["ndf"]
    assert float(ft.fvalue) == pytest.approx(want["F"], rel=1e-5)
    assert float(ft.df_denom) == pytest.approx(want["ddf"], rel=1e-5)
    assert float(ft.pvalue) == pytest.approx(want["p"], rel=1e-4)


@pytest.mark.parametrize("model", ["exam_factors", "sleep_rs", "oats_nested"])   # no interactions
def test_anova_matches_lmertest(model):
    formula, dataset, factors = MODELS[model]
    res = hlmext.mixedlm(formula, hlmext.datasets.load(dataset)).fit()
    table = res.anova(ddf="Kenward-Roger")
    want = REFS[model]["anova"]
    terms = [want["terms"]] if isinstance(want["terms"], str) else want["terms"]
    order = [terms.index(t[2:-1] if t.startswith("C(") else t) for t in table.index]
    np.testing.assert_array_equal(table["NumDF"], _vector(want["ndf"])[order])
    np.testing.assert_allclose(table["F value"], _vector(want["F"])[order], rtol=1e-5)
    np.testing.assert_allclose(table["DenDF"], _vector(want["ddf"])[order], rtol=1e-5)
    np.testing.assert_allclose(table["Pr(>F)"], _vector(want["p"])[order], rtol=1e-4)


def test_summary_with_kenward_roger():
    res = hlmext.mixedlm(MODELS["oats_nested"][0], hlmext.datasets.load("oats")).fit()
    nitro_se = REFS["oats_nested"]["coef"]["se"][REFS["oats_nested"]["fixed_names"].index("nitro")]
    for name in ("kenward-roger", "kroger", "Kenward-Roger"):
        text = str(res.summary(dfmethod=name))
        assert "P>|t|" in text and "Kenward-Roger adjusted standard errors and df" in text
        assert "%.6g" % nitro_se in text          # the adjusted SE (lmerTest's), as Stata prints it


def test_refusals(gcse_small):
    ml = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse_small).fit(reml=False)
    with pytest.raises(ModelError, match="needs a REML fit"):
        ml.t_test("lrt = 0", df="kenward-roger")
    weighted = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse_small.assign(w=2.0), weights="w").fit()
    with pytest.raises(ModelError, match="not available with weights"):
        weighted.summary(dfmethod="kroger")
    with pytest.raises(ValueError, match="'satterthwaite' or 'kenward-roger'"):
        weighted.t_test("lrt = 0", df="containment")


def test_blocks_too_large_for_dense_sums(monkeypatch, gcse_small):
    import hlmext.inference.kenward_roger as kr
    monkeypatch.setattr(kr, "MAX_BLOCK", 20)
    res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse_small).fit()
    with pytest.raises(ModelError, match="largest group of 'school' has"):
        KenwardRoger(res)


def test_chunked_fit_is_refused(gcse_small):
    chunks = [gcse_small.iloc[:2000], gcse_small.iloc[2000:]]
    res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", chunks).fit()
    with pytest.raises(ModelError, match="keeps only their statistics"):
        KenwardRoger(res)


@pytest.fixture(scope="module")
def gcse_small():
    return hlmext.datasets.load("gcse").query("nstu > 4")
