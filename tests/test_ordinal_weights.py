"""Sampling weights of meologit / meoprobit (the pseudo-likelihood of Rabe-Hesketh & Skrondal 2006).

No R function fits this pseudo-likelihood, so it is checked by what it must equal:
integer weights give the fit of the data with the rows (observation weights) and the
judges (judge weights) replicated; a brute-force grid integration over each judge's
random intercept gives the weighted log-likelihood, and its finite-difference scores and
Hessian the robust (sandwich) standard errors; the scaling rules are those of the other
models' pweights (tests/test_pweights.py).
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hlmext
from hlmext._kernels import ordinal as _ordinal
from hlmext.exceptions import DataError, ModelError

FORMULA = "rating ~ temp + contact + (1 | judge)"
BUILD = {"logit": (hlmext.meologit, stats.logistic.cdf), "probit": (hlmext.meoprobit, stats.norm.cdf)}


@pytest.fixture(scope="module")
def wine():
    """The wine data with whole-number weights (1-3) per row (``w``) and per judge (``wj``), and
    non-integer ones (``v``, ``vj``)."""
    df = hlmext.datasets.load("wine")
    rng = np.random.default_rng(1)
    judges = sorted(df.judge.unique())
    wj = dict(zip(judges, rng.integers(1, 4, len(judges)).astype(float)))
    vj = dict(zip(judges, rng.uniform(0.5, 3.0, len(judges))))
    return df.assign(w=rng.integers(1, 4, len(df)).astype(float), wj=df.judge.map(wj).astype(float),
                     v=rng.uniform(0.3, 2.5, len(df)), vj=df.judge.map(vj).astype(float))


def replicated(df):
    """Every row repeated ``w`` times, then every judge's rows ``wj`` times as new judges."""
    rows = df.loc[df.index.repeat(df.w.astype(int))]
    parts = [g.assign(judge="%s_%d" % (j, c)) for j, g in rows.groupby("judge", observed=True)
             for c in range(int(g.wj.iloc[0]))]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("nagq", [1, 7])
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_integer_weights_equal_the_fit_of_replicated_rows_and_judges(wine, link, nagq):
    build = BUILD[link][0]
    a = build(FORMULA, wine, pweights={"obs": "w", "judge": "wj"}).fit(nagq=nagq)
    b = build(FORMULA, replicated(wine)).fit(nagq=nagq)
    assert a.llf == pytest.approx(b.llf, rel=1e-10)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-8, atol=1e-8)
    x = np.asarray(a.params, float)
    fe, theta = x[:a.model.k_fe], a.model.theta_from_report(x[a.model.k_fe:])
    assert a.model.loglike_theta(fe, theta, nagq) == pytest.approx(b.model.loglike_theta(fe, theta, nagq),
                                                                   rel=1e-12)


def test_unit_weights_give_the_unweighted_fit_bit_for_bit(wine):
    plain = hlmext.meologit(FORMULA, wine).fit(nagq=7, cov_type="cluster")
    ones = hlmext.meologit(FORMULA, wine.assign(one=1.0), pweights={"obs": "one", "judge": "one"}).fit(nagq=7)
    assert ones.llf == plain.llf
    assert np.array_equal(np.asarray(ones.params), np.asarray(plain.params))
    assert np.array_equal(np.asarray(ones.bse), np.asarray(plain.bse))
    m = plain.model
    args = lambda: (m._link_code, m._Z, m._yk, np.array([-1.5, 1.5, 4.2, 6.0]), m._Xb @ np.array([3.0, 1.8]),  # noqa
                    *m._rows, np.array([[1.1]]), *m._rule(5)[:2])
    out = []
    for weights in ({}, {"wobs": np.ones(m.nobs), "cweight": np.ones(9)}):
        u, ll, chol = np.zeros((9, 1)), np.empty(9), np.empty((9, 1, 1))
        gab, glam = np.empty((m.nobs, 2)), np.empty((1, 1))
        _ordinal.cluster_loglik(*args(), u, ll, chol, np.empty((m.nobs, 1)), np.empty(m.nobs),
                                np.empty((m.nobs, 8)), np.empty((m.nobs, 1)), gab, glam, True, **weights)
        out.append(np.concatenate([ll, u.ravel(), gab.ravel(), glam.ravel()]))
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("nagq", [1, 5])
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_weighted_gradient_matches_finite_differences(wine, link, nagq):
    model = BUILD[link][0]("rating ~ temp + contact + (1 + contact | judge)", wine,
                           pweights={"obs": "v", "judge": "vj"})
    x0 = np.array([2.5, 1.5, -1.4, 1.3, 4.0, 6.1, 0.9, 0.3, 0.6])
    ll, g = model.loglike_theta(x0[:6], x0[6:], nagq, grad=True)
    num = np.empty(x0.size)
    for i in range(x0.size):
        e = np.zeros(x0.size)
        e[i] = 1e-6
        num[i] = (model.loglike_theta((x0 + e)[:6], (x0 + e)[6:], nagq)
                  - model.loglike_theta((x0 - e)[:6], (x0 - e)[6:], nagq)) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def judge_logliks(model, wine, x, cdf):
    """Each judge's weighted log integral at x = (beta, cuts, log sd), by a fine grid over its intercept
    (in the model's judge order), and the judges' weights."""
    kb, kc = model.k_beta, model.k_cut
    beta, cuts, sd = x[:kb], x[kb:kb + kc], np.exp(x[-1])
    grid = np.linspace(-8, 8, 1601)
    logprior = stats.norm.logpdf(grid) + np.log(grid[1] - grid[0])
    edges = np.concatenate([[-np.inf], cuts, [np.inf]])
    X = np.column_stack([(wine.temp == "warm").astype(float), (wine.contact == "yes").astype(float)])
    y = wine.rating.astype(int).to_numpy() - 1
    out, cw = [], []
    for j in sorted(wine.judge.unique()):
        rows = (wine.judge == j).to_numpy()
        eta = (X[rows] @ beta)[:, None] + sd * grid[None, :]
        k = y[rows][:, None]
        logp = np.log(cdf(edges[k + 1] - eta) - cdf(edges[k] - eta))
        out.append(np.logaddexp.reduce(wine.v.to_numpy()[rows] @ logp + logprior))
        cw.append(wine.vj.to_numpy()[rows][0])
    return np.array(cw) * np.array(out)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_pweights_robust_se_match_a_brute_force_sandwich(wine, link):
    build, cdf = BUILD[link]
    res = build(FORMULA, wine, pweights={"obs": "v", "judge": "vj"}).fit(nagq=15)
    assert res.cov_type.startswith("cluster (CR1, 9 clusters")
    model = res.model
    est = np.asarray(res.params, float)
    x0 = np.concatenate([est[:-1], [np.log(est[-1])]])
    assert res.llf == pytest.approx(judge_logliks(model, wine, x0, cdf).sum(), rel=1e-7)
    k, h = x0.size, 1e-4
    f = lambda x: judge_logliks(model, wine, x, cdf)    # noqa: E731
    scores, H = np.empty((9, k)), np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        scores[:, i] = (f(x0 + e) - f(x0 - e)) / (2 * h)
        for j in range(i + 1):
            d = np.zeros(k)
            d[j] = h
            H[i, j] = H[j, i] = -(f(x0 + e + d).sum() - f(x0 + e - d).sum() - f(x0 - e + d).sum()
                                  + f(x0 - e - d).sum()) / (4 * h * h)
    Hinv = np.linalg.inv(H)
    se = np.sqrt(np.diag(Hinv @ (9 / 8 * scores.T @ scores) @ Hinv))
    se[-1] *= est[-1]                             # sd = exp(log sd)
    np.testing.assert_allclose(np.asarray(res.bse, float), se, rtol=2e-3)


def test_scaling_the_judge_weights_changes_nothing_but_the_likelihood(wine):
    a = hlmext.meologit(FORMULA, wine, pweights={"obs": "v", "judge": "vj"}).fit(nagq=7)
    b = hlmext.meologit(FORMULA, wine.assign(vj=wine.vj * 3.7), pweights={"obs": "v", "judge": "vj"}).fit(nagq=7)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-4)
    assert b.llf == pytest.approx(3.7 * a.llf, rel=1e-8)


@pytest.mark.parametrize("pwscale", ["size", "effective", "gk"])
def test_pwscale_makes_observation_weights_scale_free(wine, pwscale):
    kw = dict(pweights={"obs": "v", "judge": "vj"}, pwscale=pwscale)
    a = hlmext.meoprobit(FORMULA, wine, **kw).fit(nagq=7)
    b = hlmext.meoprobit(FORMULA, wine.assign(v=wine.v * 5.0), **kw).fit(nagq=7)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-4)
    # gk moves the observation weights into the level weights, which scale the pseudo-likelihood
    assert b.llf == pytest.approx(a.llf * (5.0 if pwscale == "gk" else 1.0), rel=1e-10)
    plain = hlmext.meoprobit(FORMULA, wine, pweights={"obs": "v", "judge": "vj"}).fit(nagq=7)
    assert not np.allclose(plain.params, a.params, rtol=1e-3)


def test_bad_pweights(wine):
    with pytest.raises(DataError, match="constant within its groups"):
        hlmext.meologit(FORMULA, wine, pweights={"judge": "v"})
    with pytest.raises(DataError, match="positive"):
        hlmext.meologit(FORMULA, wine.assign(v=wine.v - 1.0), pweights="v")
    with pytest.raises(DataError, match="unknown level"):
        hlmext.meoprobit(FORMULA, wine, pweights={"bottle": "vj"})
    with pytest.raises(DataError, match="missing or non-finite"):
        hlmext.meologit(FORMULA, wine.assign(v=wine.v.where(wine.index != 3)), pweights="v", missing="raise")
    assert hlmext.meologit(FORMULA, wine.assign(v=wine.v.where(wine.index != 3)), pweights="v").nobs == 71
    with pytest.raises(ValueError, match="pwscale"):
        hlmext.meologit(FORMULA, wine, pweights="v", pwscale="sum")
    with pytest.raises(ModelError, match="robust"):
        hlmext.meologit(FORMULA, wine, pweights="v").fit(nagq=1, cov_type="nonrobust")


def test_likelihood_based_inference_refused_and_output_says_weights(wine):
    res = hlmext.meologit(FORMULA, wine, pweights={"obs": "v", "judge": "vj"}).fit(nagq=1)
    for call in (res.lr_test_vs_regression, lambda: res.profile_ci(), lambda: res.bootstrap(n=2),
                 lambda: res.simulate(), lambda: hlmext.lrtest(res, res)):
        with pytest.raises(ModelError, match="pseudo-likelihood"):
            call()
    text = str(res.summary())
    assert "Log pseudolikelihood" in text and "LR test" not in text
    assert "Sampling weights (obs, judge)" in text
    assert "adjusted for 9 clusters in judge (CR1)" in text
    assert "sampling weights are not written" in res.to_stata()
    assert "clmm has no sampling weights" in res.to_lme4()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(res.conf_int()))
