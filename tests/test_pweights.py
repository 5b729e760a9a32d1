"""Sampling weights (pweights): the pseudo-likelihood of Rabe-Hesketh & Skrondal (2006).

References in tests/reference/weights (make_refs.R): lme4 fits of data replicated by integer
weights (equal to the pseudo-likelihood) and an independent dense R sandwich at those estimates.
Tolerances: linear models log-likelihood 1e-6 relative, estimates within 1% of their standard
error, standard errors 1%; mixed logit and Poisson models log-likelihood 1e-4 absolute,
estimates within 2% of the standard error, standard errors 2% (as tests/test_glmm_reference.py).
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext._kernels import reference as _reference

REF = json.loads((Path(__file__).parent / "reference" / "weights" / "weights.json").read_text())


def _data(case):
    ref = REF[case]
    if case.startswith("exam"):
        df = hlmext.datasets.load("gcse").query("nstu > 4").reset_index(drop=True)
        pw = {"obs": "wobs", "school": "wsch"}
        cols = {"wobs": "wobs", "wsch": "wsch"}
    elif case.startswith("egsingle"):
        df = hlmext.datasets.load("egsingle")
        pw = {"obs": "wobs", "schoolid": "wsch", "schoolid:childid": "wch"}
        cols = {"wobs": "wobs", "wsch": "wsch", "wch": "wch"}
    elif case.startswith("grouseticks"):
        df = hlmext.datasets.load("grouseticks")
        pw = {"obs": "wobs", "BROOD": "wb"}
        cols = {"wobs": "wobs", "wb": "wb"}
    elif case.startswith("guimmun"):
        df = hlmext.datasets.load("guimmun")
        pw = {"obs": "wobs", "comm": "wc", "comm:mom": "wm"}
        cols = {"wobs": "wobs", "wc": "wc", "wm": "wm"}
    else:
        df = hlmext.datasets.load("contraception")
        pw = {"obs": "wobs", "district": "wd"}
        cols = {"wobs": "wobs", "wd": "wd"}
    if not ref["weighted"]:
        return df, None
    df = df.copy()
    for col in cols:
        df[col] = np.asarray(ref[col], float)
    return df, pw


LMM_CASES = [c for c in REF if c.startswith(("exam", "egsingle")) and REF[c]["weighted"]]
GLMM_CASES = [c for c in REF if c.startswith(("contraception", "guimmun", "grouseticks")) and REF[c]["weighted"]]


@pytest.fixture(scope="module", params=LMM_CASES)
def lmm_case(request):
    case = request.param
    df, pw = _data(case)
    return REF[case], hlmext.mixedlm(REF[case]["formula"], df, pweights=pw).fit()


def test_lmm_pseudo_likelihood_equals_replicated_lme4(lmm_case):
    ref, res = lmm_case
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)
    assert list(res.params.index) == ref["names"]
    se = np.asarray(ref["se_robust"])
    assert np.all(np.abs(res.params.to_numpy() - ref["estimates"]) < 0.01 * se)


def test_lmm_pweights_robust_se_match_dense_r_sandwich(lmm_case):
    ref, res = lmm_case
    np.testing.assert_allclose(res.bse.to_numpy(), ref["se_robust"], rtol=0.01)
    assert res.cov_type.startswith("cluster (CR1, %d clusters" % ref["n_clusters"])
    assert res.nobs == len(ref["wobs"])


@pytest.mark.parametrize("case", GLMM_CASES)
def test_glmm_pseudo_likelihood_equals_replicated_lme4(case):
    ref = REF[case]
    df, pw = _data(case)
    fit = hlmext.mepoisson if ref.get("family") == "poisson" else hlmext.melogit
    res = fit(ref["formula"], df, pweights=pw).fit(nagq=ref["nagq"])
    assert res.llf == pytest.approx(ref["loglik"], abs=1e-4)
    assert res.cov_type.startswith("cluster (CR1, %d clusters" % ref["n_clusters"])
    assert list(res.params.index) == ref["names"]
    se = res.bse.to_numpy()
    assert np.all(np.abs(res.params.to_numpy() - ref["estimates"]) < 0.02 * se)
    np.testing.assert_allclose(se, ref["se_robust"], rtol=0.02)


# ------------------------------------------------------------------ the kernel against its twin

def _random_nested(seed, sizes_inner, n_outer):
    rng = np.random.default_rng(seed)
    rows = []
    for o in range(n_outer):
        for c in range(rng.integers(3, 6)):
            for i in range(rng.choice(sizes_inner)):
                rows.append((o, "%d-%d" % (o, c)))
    df = pd.DataFrame(rows, columns=["outer", "inner"])
    n = len(df)
    df["x"] = rng.normal(size=n)
    df["y"] = 1 + 0.5 * df.x + rng.normal(size=n_outer)[df.outer] + rng.normal(size=n)
    df["wo"] = rng.uniform(0.5, 3, size=n)
    df["wout"] = rng.uniform(1, 4, size=n_outer)[df.outer]
    codes = pd.factorize(df.inner)[0]
    df["win"] = rng.uniform(0.5, 2, size=codes.max() + 1)[codes]
    return df


SLOPE = ("y ~ x + (x | outer)", {"obs": "wo", "outer": "wout"})
NESTED = ("y ~ x + (1 | outer/inner)", {"obs": "wo", "outer": "wout", "outer:inner": "win"})


@pytest.mark.parametrize("seed,sizes,spec", [(0, [1], SLOPE), (1, [2], SLOPE), (2, [1, 2, 5, 9], SLOPE),
                                             (1, [2], NESTED), (2, [1, 2, 5, 9], NESTED)])
def test_factorize_with_cluster_weights_matches_numpy_twin(seed, sizes, spec):
    df = _random_nested(seed, sizes, 8)
    formula, pw = spec
    if True:
        model = hlmext.mixedlm(formula, df, pweights=pw)
        d = model.design
        theta = model.theta_start() * 0.7 + 0.1
        f = model.factorize(theta)
        level_w = np.ones(d.n_clusters)
        for lv in d.levels:
            if lv.name in model.sampling.levels:
                level_w[lv.first:lv.first + lv.n_groups] = model.sampling.levels[lv.name][d.order[lv._starts]]
        logdet, prss, beta, n_eff = _reference.pseudo_deviance_parts(d, model.lams(theta),
                                                                     model.sampling.obs[d.order], level_w)
        assert f.logdet == pytest.approx(logdet, rel=1e-10)
        assert f.prss == pytest.approx(prss, rel=1e-10)
        np.testing.assert_allclose(f._w, beta, rtol=1e-9, atol=1e-12)
        assert model.nobs == pytest.approx(n_eff, rel=1e-12)


def test_unweighted_factorize_unchanged():
    df = _random_nested(3, [1, 3], 10)
    ones = df.assign(one=1.0)
    plain = hlmext.mixedlm("y ~ x + (1 | outer/inner)", df)
    weighted = hlmext.mixedlm("y ~ x + (1 | outer/inner)", ones,
                              pweights={"obs": "one", "outer": "one", "outer:inner": "one"})
    theta = np.array([0.4, 0.8])
    a, b = plain.factorize(theta), weighted.factorize(theta)
    assert a.logdet == pytest.approx(b.logdet, rel=1e-12)
    assert a.prss == pytest.approx(b.prss, rel=1e-12)


# ------------------------------------------------------------------ invariances (non-integer weights)

@pytest.fixture(scope="module")
def survey():
    df = _random_nested(7, [2, 4, 6], 30)
    return df


def _fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hlmext.mixedlm("y ~ x + (1 | outer)", df, **kw).fit()


def test_scaling_top_level_weights_changes_nothing_but_the_likelihood(survey):
    a = _fit(survey, pweights={"obs": "wo", "outer": "wout"})
    b = _fit(survey.assign(wout=survey.wout * 3.7), pweights={"obs": "wo", "outer": "wout"})
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-4)
    assert b.llf == pytest.approx(3.7 * a.llf, rel=1e-8)


@pytest.mark.parametrize("pwscale", ["size", "effective", "gk"])
def test_pwscale_makes_observation_weights_scale_free(survey, pwscale):
    a = _fit(survey, pweights={"obs": "wo", "outer": "wout"}, pwscale=pwscale)
    b = _fit(survey.assign(wo=survey.wo * 5.0), pweights={"obs": "wo", "outer": "wout"}, pwscale=pwscale)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-4)
    # gk moves the observation weights into the level weights, which scale the pseudo-likelihood
    assert b.llf == pytest.approx(a.llf * (5.0 if pwscale == "gk" else 1.0), rel=1e-10)


def test_pwscale_rules():
    from hlmext.design.sampling_weights import rescale
    w, codes, lev = np.array([1.0, 3.0, 2.0, 2.0]), np.array([0, 0, 1, 1]), np.array([2.0, 2.0, 5.0, 5.0])
    np.testing.assert_allclose(rescale(w, codes, lev, "size")[0], [0.5, 1.5, 1.0, 1.0])
    np.testing.assert_allclose(rescale(w, codes, lev, "effective")[0], [0.4, 1.2, 1.0, 1.0])
    obs, level = rescale(w, codes, lev, "gk")
    np.testing.assert_allclose(obs, 1.0)
    np.testing.assert_allclose(level, [4.0, 4.0, 10.0, 10.0])


def test_results_do_not_depend_on_row_order(survey):
    a = _fit(survey, pweights={"obs": "wo", "outer": "wout"})
    shuffled = survey.sample(frac=1.0, random_state=3)
    b = _fit(shuffled, pweights={"obs": "wo", "outer": "wout"})
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-5)
    assert a.llf == pytest.approx(b.llf, rel=1e-10)


def test_obs_weights_alone_as_a_column_name(survey):
    a = _fit(survey, pweights="wo")
    b = _fit(survey, pweights={"obs": survey.wo.to_numpy()})
    assert a.llf == pytest.approx(b.llf, rel=1e-12)


def test_summary_says_pseudolikelihood_and_robust(survey):
    res = _fit(survey, pweights={"obs": "wo", "outer": "wout"})
    text = str(res.summary())
    assert "Log pseudolikelihood" in text
    assert "Sampling weights (obs, outer)" in text
    assert "adjusted for 30 clusters in outer (CR1)" in text
    assert "LR test" not in text
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.lr_test_vs_regression()


# ------------------------------------------------------------------ bad input

def test_bad_pweights(survey):
    f = "y ~ x + (1 | outer)"
    with pytest.raises(hlmext.DataError, match="constant within its groups"):
        hlmext.mixedlm(f, survey, pweights={"outer": "wo"})
    with pytest.raises(hlmext.DataError, match="positive"):
        hlmext.mixedlm(f, survey.assign(wo=survey.wo - 1.0), pweights="wo")
    with pytest.raises(hlmext.DataError, match="unknown level"):
        hlmext.mixedlm(f, survey, pweights={"school": "wout"})
    with pytest.raises(hlmext.ModelError, match="not both"):
        hlmext.mixedlm(f, survey, weights="wo", pweights="wo")
    with pytest.raises(ValueError, match="pwscale"):
        hlmext.mixedlm(f, survey, pweights="wo", pwscale="sum")
    with pytest.raises(hlmext.ModelError, match="two-level"):
        hlmext.mixedlm("y ~ x + (1 | outer/inner)", survey, pweights="wo", pwscale="size")
    model = hlmext.mixedlm(f, survey, pweights="wo")
    with pytest.raises(hlmext.ModelError, match="reml=False"):
        model.fit(reml=True)
    with pytest.raises(hlmext.ModelError, match="robust"):
        model.fit(cov_type="nonrobust")


def test_nan_weights_rows_are_dropped_or_refused(survey):
    bad = survey.assign(wo=survey.wo.where(survey.index != 3))
    with pytest.raises(hlmext.DataError):
        hlmext.mixedlm("y ~ x + (1 | outer)", bad, pweights="wo", missing="raise")
    assert hlmext.mixedlm("y ~ x + (1 | outer)", bad, pweights="wo").design.nobs == len(survey) - 1


def test_crossed_levels_refused():
    pen = hlmext.datasets.load("penicillin").assign(w=1.0)
    with pytest.raises(hlmext.ModelError, match="nested"):
        hlmext.mixedlm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, pweights="w")


def test_glmm_crossed_pweights_refused():
    df = _random_nested(5, [3], 10).assign(yb=lambda d: (d.y > 1).astype(float), c=lambda d: np.arange(len(d)) % 4)
    with pytest.raises(hlmext.ModelError, match="nested"):
        hlmext.melogit("yb ~ x + (1 | outer) + (1 | c)", df, pweights="wo")


def test_poisson_pweights_equal_replicated_rows():
    df = hlmext.datasets.load("grouseticks").reset_index(drop=True)
    df = df.assign(w=1.0 + (np.arange(len(df)) % 2))
    a = hlmext.mepoisson("TICKS ~ cHEIGHT + (1 | BROOD)", df, pweights="w").fit(nagq=1)
    rep = df.loc[df.index.repeat(df.w.astype(int))]
    b = hlmext.mepoisson("TICKS ~ cHEIGHT + (1 | BROOD)", rep).fit(nagq=1)
    assert a.llf == pytest.approx(b.llf, abs=1e-6)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-4)


def test_conditional_variances_are_those_of_each_cluster_integrand(survey):
    res = _fit(survey, pweights={"obs": "wo", "outer": "wout"})
    sd_u, sigma = res.params["sd(Intercept)[outer]"], res.params["sd(Residual)"]
    sum_w = survey.groupby("outer").wo.sum().sort_index().to_numpy()
    expected = 1.0 / (1.0 / sd_u ** 2 + sum_w / sigma ** 2)
    got = res.random_effects_cov["outer"].sort_index().iloc[:, 0].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_likelihood_based_inference_refused(survey):
    res = _fit(survey, pweights={"obs": "wo", "outer": "wout"})
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.conf_int(method="profile")
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.bootstrap(n=2)
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.t_test("x = 0", df="satterthwaite")
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        hlmext.lrtest(res, res)
    assert np.all(np.isfinite(res.conf_int()))


@pytest.mark.parametrize("nagq", [1, 5])
@pytest.mark.parametrize("family", ["logit", "poisson"])
def test_weighted_glmm_gradient_matches_finite_differences(family, nagq):
    df = _random_nested(11, [2, 4, 7], 15)
    rng = np.random.default_rng(2)
    df["yb"] = (df.y > 1.2).astype(float) if family == "logit" else rng.poisson(np.exp(0.3 * df.x))
    fit = hlmext.melogit if family == "logit" else hlmext.mepoisson
    model = fit("yb ~ x + (x | outer)", df, pweights={"obs": "wo", "outer": "wout"})
    x0 = np.array([0.1, 0.4, 0.6, 0.2, 0.3])
    ll, g = model.loglike_theta(x0[:2], x0[2:], nagq, grad=True)
    num = np.empty(x0.size)
    for i in range(x0.size):
        e = np.zeros(x0.size)
        e[i] = 1e-6
        num[i] = (model.loglike_theta((x0 + e)[:2], (x0 + e)[2:], nagq)
                  - model.loglike_theta((x0 - e)[:2], (x0 - e)[2:], nagq)) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_weighted_glmm_loglik_matches_numpy_twin():
    df = _random_nested(12, [3, 5], 10).assign(yb=lambda d: (d.y > 1).astype(float))
    model = hlmext.melogit("yb ~ x + (1 | outer)", df, pweights={"obs": "wo", "outer": "wout"})
    beta, theta = np.array([0.2, 0.5]), np.array([0.8])
    d = model.design
    w, cw = model.sampling.obs[d.order], model.sampling.cluster_weights(d)
    eta0 = model._X @ beta
    total = 0.0
    for j in range(d.levels[0].n_groups):
        rows = slice(d.row_start[j], d.row_end[j])
        ZL = model._Z[rows] * theta[0]
        total += cw[j] * _reference.glmm_aghq(0, ZL, w[rows] * model._y[rows], w[rows], eta0[rows], 5)
    assert model.loglike_theta(beta, theta, 5) == pytest.approx(total, rel=1e-9)
