"""Cluster-robust standard errors and sampling weights of the families with a dispersion
parameter (Gamma, negative binomial), against a sandwich built here by brute force: every
cluster's log-likelihood integrated on a fine grid, its scores and the Hessian of the sum
by central differences in (beta, log sd, log dispersion), and ``H^-1 B H^-1`` with Stata's
G / (G - 1)."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import gammaln, logsumexp

import hlmext
from conftest import REFERENCE

GRID = np.linspace(-9.0, 9.0, 1201)
LOG_PRIOR = -0.5 * GRID ** 2 - 0.5 * np.log(2 * np.pi) + np.log(GRID[1] - GRID[0])


def gamma_logf(y, mu, log_phi):
    k = np.exp(log_phi)
    return k * log_phi - k * np.log(mu) + (k - 1) * np.log(y) - k * y / mu - gammaln(k)


def nb2_logf(y, mu, log_phi):
    a = np.exp(log_phi)
    return (gammaln(y + 1 / a) - gammaln(1 / a) - gammaln(y + 1) + y * np.log(a * mu / (1 + a * mu))
            - np.log1p(a * mu) / a)


def cluster_logliks(x, X, y, codes, w, logf):
    """Each cluster's log-likelihood at x = (beta, log sd, log phi), random intercept, log link."""
    p = X.shape[1]
    eta = (X @ x[:p])[:, None] + np.exp(x[p]) * GRID[None, :]
    rows = w[:, None] * logf(y[:, None], np.exp(eta), x[p + 1])
    one_hot = (codes[None, :] == np.arange(codes.max() + 1)[:, None]).astype(float)
    return logsumexp(one_hot @ rows + LOG_PRIOR, axis=1)


def brute_force_sandwich(x0, contrib, h=1e-4):
    k = x0.size
    scores, H = np.empty((contrib(x0).size, k)), np.empty((k, k))
    E = np.eye(k) * h
    for i in range(k):
        scores[:, i] = (contrib(x0 + E[i]) - contrib(x0 - E[i])) / (2 * h)
        for j in range(k):
            H[i, j] = -(contrib(x0 + E[i] + E[j]).sum() - contrib(x0 + E[i] - E[j]).sum()
                        - contrib(x0 - E[i] + E[j]).sum() + contrib(x0 - E[i] - E[j]).sum()) / (4 * h * h)
    G = scores.shape[0]
    Hinv = np.linalg.inv(H)
    return Hinv @ (scores.T @ scores * G / (G - 1)) @ Hinv


def check_against_brute_force(res, data, group, logf, w=None):
    model = res.model
    order = np.argsort(model.design.order)           # the model's rows back in the data's order
    X = model._X[order]
    y = data[model.endog_names].to_numpy(float)
    codes = pd.factorize(data[group])[0]
    p = X.shape[1]
    sd = float(res.params.iloc[p])
    x0 = np.concatenate([res.fe_params.to_numpy(), [np.log(sd), res.dispersion["estimate"].iloc[0]]])
    V = brute_force_sandwich(x0, lambda x: cluster_logliks(x, X, y, codes, np.ones(y.size) if w is None else w,
                                                            logf))
    se = np.sqrt(np.diag(V))
    np.testing.assert_allclose(res.bse_fe.to_numpy(), se[:p], rtol=2e-3)
    assert float(res.bse.iloc[p]) == pytest.approx(sd * se[p], rel=2e-3)
    assert res.dispersion["se"].iloc[0] == pytest.approx(se[p + 1], rel=2e-3)
    assert res.cov_type.startswith("cluster (CR1")


def test_gamma_cluster_robust_matches_brute_force():
    data = pd.read_csv(REFERENCE / "families" / "gamma_sim.csv")
    gamma = sm.families.Gamma(link=sm.families.links.Log())
    model = hlmext.meglm("y ~ x + (1 | g)", data, family=gamma)
    res = model.fit(nagq=9, cov_type="cluster")
    plain = model.fit(nagq=9)
    np.testing.assert_allclose(res.params, plain.params, atol=1e-6)
    assert res.dispersion["estimate"].iloc[0] == pytest.approx(plain.dispersion["estimate"].iloc[0], abs=1e-6)
    assert not np.isclose(res.dispersion["se"].iloc[0], plain.dispersion["se"].iloc[0], rtol=1e-3)
    check_against_brute_force(res, data, "g", gamma_logf)


def test_negative_binomial_sampling_weights_match_brute_force():
    ticks = hlmext.datasets.load("grouseticks")
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(ticks))
    res = hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)", ticks.assign(w=w), pweights="w").fit(nagq=9)
    assert "Sampling weights" in " ".join(res.notes)
    check_against_brute_force(res, ticks, "BROOD", nb2_logf, w=w)


def test_weights_of_two_are_the_data_twice():
    ticks = hlmext.datasets.load("grouseticks")
    formula = "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)"
    twice = hlmext.menbreg(formula, ticks.assign(w=2.0), dispersion="constant", pweights="w").fit(nagq=1)
    doubled = hlmext.menbreg(formula, pd.concat([ticks, ticks]), dispersion="constant").fit(nagq=1)
    assert twice.llf == pytest.approx(doubled.llf, rel=1e-8)
    np.testing.assert_allclose(twice.params, doubled.params, atol=1e-5)
    assert twice.dispersion["estimate"].iloc[0] == pytest.approx(doubled.dispersion["estimate"].iloc[0], abs=1e-5)
