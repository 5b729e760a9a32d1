"""Simulation, refits and the parametric bootstrap of mixed logit and Poisson fits.

Checks: draws are valid responses, reproducible and independent of the number of
processes; a replicate equals a fresh fit of the same model to the simulated response; the
simulated responses have the model's marginal mean (Monte Carlo against Gauss-Hermite
integrals, within 4 Monte Carlo standard errors); percentile intervals cover the truth on
simulated data (fast check: 20 data sets x 39 replicates, at least 14 of 20 for the fixed
effects: with a true coverage near 0.9, 13 or fewer has probability ~1%); the bootstrap se
of the fixed effects is within 20% of the Wald se; the bootstrap LR test reproduces the
observed statistic and refuses what the asymptotic test refuses.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.inference.bootstrap import bootstrap_lrtest


@pytest.fixture(scope="module")
def cbpp():
    df = hlmext.datasets.load("cbpp")
    res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
    return df, res


@pytest.fixture(scope="module")
def mmmec():
    df = hlmext.datasets.load("mmmec")
    res = hlmext.mepoisson("deaths ~ uvb + (1 | region)", df, exposure="expected").fit(nagq=7)
    return df, res


def test_simulated_counts_are_valid_and_reproducible(cbpp, mmmec):
    df, res = cbpp
    sims = res.simulate(n=20, seed=3)
    assert sims.shape == (len(df), 20) and sims.index.equals(df.index)
    y = sims.to_numpy()
    assert np.all((y >= 0) & (y <= df[["size"]].to_numpy()) & (y == np.round(y)))
    pd.testing.assert_frame_equal(sims, res.simulate(n=20, seed=3))
    assert not sims.equals(res.simulate(n=20, seed=4))
    df2, res2 = mmmec
    y2 = res2.simulate(n=5, seed=1).to_numpy()
    assert np.all((y2 >= 0) & (y2 == np.round(y2)))


def test_simulated_mean_is_the_marginal_mean(cbpp):
    """E[y_i] = n_i E[expit(eta_i + b)], b ~ N(0, sd^2), by 40-point Gauss-Hermite."""
    df, res = cbpp
    n_sim = 4000
    y = res.simulate(n=n_sim, seed=11).to_numpy()
    eta = res.model.exog @ res.fe_params.to_numpy()
    sd = res.re_params["estimate"].iloc[0]
    x, w = np.polynomial.hermite.hermgauss(40)
    p = (w / np.sqrt(np.pi) * (1 / (1 + np.exp(-(eta[:, None] + np.sqrt(2) * sd * x))))).sum(axis=1)
    expected = df["size"].to_numpy() * p
    total = y.sum(axis=0)                                   # per simulation, over rows
    se = total.std(ddof=1) / np.sqrt(n_sim)
    assert abs(total.mean() - expected.sum()) < 4 * se


def test_a_replicate_is_a_fresh_fit_of_the_simulated_response(cbpp):
    df, res = cbpp
    boot = res.bootstrap(n=3, seed=5, n_jobs=1)
    y = res.simulate(n=3, seed=5)["sim_2"]
    fresh = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df.assign(incidence=y),
                           trials="size").fit(nagq=1)
    np.testing.assert_allclose(boot.replicates.iloc[1], fresh.params, rtol=1e-5, atol=1e-6)
    again = res.refit(y.to_numpy())
    np.testing.assert_allclose(again.params, fresh.params, rtol=1e-6, atol=1e-7)
    assert again.llf == pytest.approx(fresh.llf, rel=1e-9)


def test_replicates_do_not_depend_on_processes(mmmec):
    _, res = mmmec
    a = res.bootstrap(n=12, seed=2, n_jobs=1)
    b = res.bootstrap(n=12, seed=2, n_jobs=2)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)
    assert a.converged.all()


def small_logit(seed, G=40, m=10, beta=(-0.5, 1.0), sd=0.8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    eta = beta[0] + beta[1] * x + sd * rng.normal(size=G)[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_percentile_coverage_fast():
    truth = {"Intercept": -0.5, "x": 1.0}
    hits = []
    for k in range(20):
        df = small_logit(200 + k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = hlmext.melogit("y ~ x + (1 | g)", df).fit(nagq=1)
            ci = res.bootstrap(n=39, seed=k, n_jobs=2).conf_int()
        hits.append({p: ci.loc[p, "lower"] <= v <= ci.loc[p, "upper"] for p, v in truth.items()})
    cov = pd.DataFrame(hits).mean()
    assert (cov >= 0.7).all(), cov


def test_bootstrap_se_matches_wald_se(cbpp):
    _, res = cbpp
    boot = res.bootstrap(n=200, seed=8, n_jobs=2)
    ratio = boot.bse[res.fe_params.index] / res.bse_fe
    assert np.all(np.abs(ratio - 1) < 0.2), ratio


def test_bootstrap_lr_test_of_a_random_slope():
    df = small_logit(7)
    ri = hlmext.melogit("y ~ x + (1 | g)", df).fit(nagq=1)
    rs = hlmext.melogit("y ~ x + (x | g)", df).fit(nagq=1)
    test = bootstrap_lrtest(ri, rs, n=19, seed=1, n_jobs=2)
    assert test.statistic == pytest.approx(2 * (rs.llf - ri.llf), abs=1e-9)
    assert 0 < test.pvalue <= 1 and test.n == 19 and np.all(test.replicates >= 0)
    again = bootstrap_lrtest(ri, rs, n=19, seed=1, n_jobs=1)
    np.testing.assert_allclose(again.replicates, test.replicates)


def test_sampling_weights_refuse_simulation_and_profiles():
    df = hlmext.datasets.load("cbpp")
    df = df.assign(w=1.0 + df["herd"].astype("category").cat.codes % 3)
    res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size", pweights={"herd": "w"}).fit(nagq=1)
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.bootstrap(n=5, seed=1, n_jobs=1)
    with pytest.raises(hlmext.ModelError, match="pseudo-likelihood"):
        res.profile_ci()
