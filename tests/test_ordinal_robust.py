"""Cluster-robust standard errors of meologit / meoprobit (with sampling weights: tests/test_ordinal_weights.py).

The sandwich is checked against a brute-force computation here: each judge's
log-likelihood integrated over its random intercept on a fine grid, in x = (beta, cut
points, log sd); scores and the Hessian by central differences;
V = H^-1 (G/(G-1) sum_k s_k s_k') H^-1, the sd's standard error by the delta method.
"""
import numpy as np
import pytest
from scipy import stats

import hlmext

FORMULA = "rating ~ temp + contact + (1 | judge)"


@pytest.fixture(scope="module")
def wine():
    return hlmext.datasets.load("wine")


def cluster_logliks(model, x, cdf):
    """Each cluster's log-likelihood at x = (beta, cuts, log sd), by a 1-D grid over the intercept."""
    kb, kc = model.k_beta, model.k_cut
    beta, cuts, sd = x[:kb], x[kb:kb + kc], np.exp(x[-1])
    grid = np.linspace(-8, 8, 1601)
    logprior = stats.norm.logpdf(grid) + np.log(grid[1] - grid[0])
    edges = np.concatenate([[-np.inf], cuts, [np.inf]])
    X = model.exog[:, model._keep]
    y = np.asarray(model.endog, int)
    codes = np.empty(model.nobs, int)
    codes[model.design.order] = model.levels[0].codes
    out = []
    for g in range(model.levels[0].n_groups):
        rows = codes == g
        eta = (X[rows] @ beta)[:, None] + sd * grid[None, :]
        k = y[rows][:, None]
        p = cdf(edges[k + 1] - eta) - cdf(edges[k] - eta)
        out.append(np.logaddexp.reduce(np.log(p).sum(axis=0) + logprior))
    return np.array(out)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_cluster_robust_se_match_a_brute_force_sandwich(wine, link):
    build, cdf = (hlmext.meologit, stats.logistic.cdf) if link == "logit" else (hlmext.meoprobit, stats.norm.cdf)
    res = build(FORMULA, wine).fit(nagq=15, cov_type="cluster")
    model = res.model
    est = np.asarray(res.params, float)
    x0 = np.concatenate([est[:-1], [np.log(est[-1])]])
    k, h = x0.size, 1e-4
    G = model.levels[0].n_groups
    scores, H = np.empty((G, k)), np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        scores[:, i] = (cluster_logliks(model, x0 + e, cdf) - cluster_logliks(model, x0 - e, cdf)) / (2 * h)
        for j in range(k):
            f = np.zeros(k)
            f[j] = h
            H[i, j] = -(cluster_logliks(model, x0 + e + f, cdf).sum() - cluster_logliks(model, x0 + e - f, cdf).sum()
                        - cluster_logliks(model, x0 - e + f, cdf).sum()
                        + cluster_logliks(model, x0 - e - f, cdf).sum()) / (4 * h * h)
    Hinv = np.linalg.inv(H)
    V = Hinv @ (G / (G - 1) * scores.T @ scores) @ Hinv
    se = np.sqrt(np.diag(V))
    se[-1] *= est[-1]                             # sd = exp(log sd)
    np.testing.assert_allclose(np.asarray(res.bse, float), se, rtol=2e-3)
    assert res.cov_type.startswith("cluster (CR1, 9 clusters")
    plain = build(FORMULA, wine).fit(nagq=15)
    assert not np.allclose(plain.bse, res.bse, rtol=0.05)


def test_unknown_cov_type_is_refused_by_name(wine):
    with pytest.raises(ValueError, match="cov_type must be 'nonrobust' or 'cluster'"):
        hlmext.meologit(FORMULA, wine).fit(nagq=1, cov_type="hc0")
