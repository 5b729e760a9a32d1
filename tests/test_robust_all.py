"""Robust (sandwich) standard errors of every parameter: linear models by ML, mixed logit.

References in tests/reference/weights (make_refs.R, cases with ``weighted: false``): the sandwich
H^-1 B H^-1 computed in R at the lme4 estimates from dense per-cluster marginal likelihoods
(mvtnorm) or adaptive Gauss-Hermite integrals (statmod), scores and Hessian by numDeriv.
Tolerance: standard errors 1%.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import hlmext
from hlmext.results.sandwich import glmm_cluster_loglik, lmm_cluster_loglik

REF = json.loads((Path(__file__).parent / "reference" / "weights" / "weights.json").read_text())


@pytest.fixture(scope="module")
def exam():
    return hlmext.datasets.load("gcse").query("nstu > 4")


@pytest.fixture(scope="module")
def exam_robust(exam):
    return hlmext.mixedlm("gcse ~ lrt + (lrt | school)", exam).fit(reml=False, cov_type="cluster")


def test_lmm_robust_se_of_every_parameter_match_r(exam_robust):
    ref = REF["exam_rs"]
    res = exam_robust
    assert list(res.params.index) == ref["names"]
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)
    np.testing.assert_allclose(res.bse.to_numpy(), ref["se_robust"], rtol=0.01)
    assert res.re_params["se"].to_numpy() == pytest.approx(res.bse.to_numpy()[2:])


def test_lmm_three_levels_robust_se_match_r():
    ref = REF["egsingle_3lev"]
    res = hlmext.mixedlm(ref["formula"], hlmext.datasets.load("egsingle")).fit(reml=False, cov_type="cluster")
    assert list(res.params.index) == ref["names"]
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)
    np.testing.assert_allclose(res.bse.to_numpy(), ref["se_robust"], rtol=0.01)


@pytest.mark.parametrize("case", ["contraception_agq7", "contraception_laplace", "guimmun_nested_laplace"])
def test_glmm_robust_se_of_every_parameter_match_r(case):
    ref = REF[case]
    df = hlmext.datasets.load(case.split("_")[0])
    res = hlmext.melogit(ref["formula"], df).fit(nagq=ref["nagq"], cov_type="cluster")
    assert list(res.params.index) == ref["names"]
    assert res.llf == pytest.approx(ref["loglik"], abs=1e-4)
    np.testing.assert_allclose(res.bse.to_numpy(), ref["se_robust"], rtol=0.01)
    top = ref["names"][-1 if case.startswith("contraception") else -2].split("[")[1][:-1]
    assert res.cov_type == "cluster (CR1, %d clusters of %r)" % (ref["n_clusters"], top)
    assert "Std. Err. of all parameters adjusted for %d clusters in %s (CR1)" % (ref["n_clusters"], top) \
        in str(res.summary())


def test_cluster_contributions_add_up_to_the_log_likelihood(exam):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eg = hlmext.datasets.load("egsingle")
        for model, reml in [(hlmext.mixedlm("gcse ~ lrt + (lrt | school)", exam), False),
                            (hlmext.mixedlm("math ~ year + (1 | schoolid/childid)", eg), False),
                            (hlmext.mixedlm("gcse ~ lrt + (1 | school)", exam.assign(w=1.0 + exam.sex.eq("F")),
                                            weights="w"), False)]:
            res = model.fit(reml=reml)
            theta, sigma = model.theta_from_report(res.params.to_numpy()[model.k_fe:])
            parts = lmm_cluster_loglik(model, res.fe_params.to_numpy(), theta, sigma)
            assert parts.size == model.levels[-1].n_groups
            assert parts.sum() == pytest.approx(res.llf, rel=1e-10)
    con = hlmext.datasets.load("contraception")
    model = hlmext.melogit("use ~ age + urban + (1 | district)", con)
    res = model.fit(nagq=3)
    parts = glmm_cluster_loglik(model, res.fe_params.to_numpy(), res.theta, 3)
    assert parts.sum() == pytest.approx(res.llf, rel=1e-10)


def test_inference_uses_the_robust_covariance(exam_robust):
    res = exam_robust
    cov = res.cov_params()
    assert np.sqrt(np.diag(cov)) == pytest.approx(res.bse.to_numpy())
    ci = res.conf_int()
    assert ((ci[1] - ci[0]) / (2 * 1.959964)).to_numpy()[:2] == pytest.approx(res.bse.to_numpy()[:2], rel=1e-5)
    t = res.t_test("lrt = 0")
    assert float(np.squeeze(t.sd)) == pytest.approx(res.bse["lrt"])
    w = res.wald_test("lrt = 0", scalar=True)
    assert float(w.statistic) == pytest.approx((res.params["lrt"] / res.bse["lrt"]) ** 2, rel=1e-8)
    assert not np.allclose(cov.iloc[:2, 2:], 0.0)            # the sandwich is not block diagonal
    assert res.bse_fe.to_numpy() == pytest.approx(res.bse.to_numpy()[:2])


def test_cr0_is_cr1_without_the_small_sample_factor(exam):
    model = hlmext.mixedlm("gcse ~ lrt + (1 | school)", exam)
    cr1 = model.fit(reml=False, cov_type="cluster")
    cr0 = model.fit(reml=False, cov_type="cluster", cov_kwds={"correction": "CR0"})
    G = cr1.n_groups["school"]
    np.testing.assert_allclose(cr1.bse, cr0.bse * np.sqrt(G / (G - 1)), rtol=1e-6)


def test_reml_keeps_fixed_effects_only_robust():
    s = hlmext.datasets.load("sleepstudy")
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", s)
    plain, robust = model.fit(), model.fit(cov_type="cluster")
    np.testing.assert_allclose(robust.bse.to_numpy()[2:], plain.bse.to_numpy()[2:])
    assert "Std. Err. of the fixed effects adjusted for 18 clusters" in str(robust.summary())
    with pytest.raises(ValueError, match="scope"):
        model.fit(cov_type="cluster", cov_kwds={"scope": "all"})


def test_robust_with_boundary_variance_leaves_it_out():
    pen = hlmext.datasets.load("pastes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pen).fit(reml=False, cov_type="cluster")
    assert np.isfinite(res.bse["Intercept"])
    assert np.all(np.isfinite(res.bse) | np.isin(res.params.index, res.on_boundary))


def test_glmm_robust_needs_nested_levels():
    df = hlmext.datasets.load("guimmun").assign(c=lambda d: np.arange(len(d)) % 4)
    model = hlmext.melogit("immun ~ kid2p + (1 | comm) + (1 | c)", df)
    with pytest.raises(hlmext.ModelError, match="crossed"):
        model.fit(nagq=1, cov_type="cluster")


def test_robust_needs_the_rows(exam):
    chunked = hlmext.mixedlm("gcse ~ lrt + (1 | school)", [exam.iloc[:2000], exam.iloc[2000:]])
    with pytest.raises(hlmext.ModelError, match="need the rows"):
        chunked.fit(reml=False, cov_type="cluster")


def test_bad_cov_kwds(exam):
    model = hlmext.mixedlm("gcse ~ lrt + (1 | school)", exam)
    with pytest.raises(ValueError, match="cov_kwds takes"):
        model.fit(reml=False, cov_type="cluster", cov_kwds={"correctoin": "CR0"})
    with pytest.raises(ValueError, match="CR0"):
        model.fit(reml=False, cov_type="cluster", cov_kwds={"correction": "HC3"})
