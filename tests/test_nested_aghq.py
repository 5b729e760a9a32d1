"""Adaptive quadrature for two nested levels against independent brute-force integration."""
import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln
from scipy.special import log_ndtr as ndtr_log

import hlmext
from hlmext.models.quadrature import MAX_NODES


def simulate(seed, family, outer=5, inner=3, rows=4):
    rng = np.random.default_rng(seed)
    out = []
    for a in range(outer):
        va = rng.normal(0, 0.7, 2)
        for b in range(inner):
            ub = rng.normal(0, 0.9)
            for _ in range(rows):
                x = rng.normal()
                eta = 0.3 + 0.5 * x + va[0] + 0.4 * va[1] * x + ub
                y = rng.poisson(np.exp(eta)) if family == "poisson" else rng.binomial(1, 1 / (1 + np.exp(-eta)))
                out.append((a, "%d_%d" % (a, b), x, float(y)))
    return pd.DataFrame(out, columns=["a", "b", "x", "y"])


def row_loglik(family, y, eta):
    """Log-density of every row, with its constant (independent of the package's kernels)."""
    if family == "poisson":
        return y * eta - np.exp(eta) - gammaln(y + 1)
    if family == "probit":
        return np.where(y > 0, ndtr_log(eta), ndtr_log(-eta))
    return y * eta - np.logaddexp(0.0, eta)


def brute_grid(df, family, beta, sd_outer, sd_inner, K):
    """Nested Gauss-Legendre integration over +-10 sd with K points per level (one effect per
    level): a fixed, non-adaptive grid that resolves the integrands' peaks."""
    x, w = np.polynomial.legendre.leggauss(K)
    total = 0.0
    for _, da in df.groupby("a"):
        v, wv = 10 * sd_outer * x, 10 * sd_outer * w * np.exp(-0.5 * x ** 2 * 100) / (np.sqrt(2 * np.pi) * sd_outer)
        u, wu = 10 * sd_inner * x, 10 * sd_inner * w * np.exp(-0.5 * x ** 2 * 100) / (np.sqrt(2 * np.pi) * sd_inner)
        eta = beta[0] + beta[1] * da.x.values
        logi = np.zeros(K)
        for b in np.unique(da.b):
            sel = da.b.values == b
            e = eta[None, None, sel] + v[:, None, None] + u[None, :, None]          # (K outer, K inner, rows)
            logi += np.log(np.exp(row_loglik(family, da.y.values[sel], e).sum(-1)) @ wu)
        total += np.log(np.exp(logi) @ wv)
    return total


def brute_gh(df, family, beta, sd_outer, sd_slope, sd_inner, K):
    """Non-adaptive Gauss-Hermite with K points per dimension: outer (intercept, slope) and inner
    intercept, all independent normal effects."""
    x, w = np.polynomial.hermite.hermgauss(K)
    nodes, wts = np.sqrt(2) * x, w / np.sqrt(np.pi)
    g1, g2 = np.meshgrid(nodes, nodes, indexing="ij")
    w_out = np.outer(wts, wts).ravel()
    total = 0.0
    for _, da in df.groupby("a"):
        xa = da.x.values
        v = (sd_outer * g1.ravel())[:, None] + (sd_slope * g2.ravel())[:, None] * xa[None, :]   # (K^2, rows)
        eta = beta[0] + beta[1] * xa + v
        logi = np.zeros(len(w_out))
        for b in np.unique(da.b):
            sel = da.b.values == b
            e = eta[:, None, sel] + sd_inner * nodes[None, :, None]                 # (K^2, K, rows)
            logi += np.log(np.exp(row_loglik(family, da.y.values[sel], e).sum(-1)) @ wts)
        total += np.log(np.exp(logi) @ w_out)
    return total


def test_nested_aghq_of_a_probit_model_uses_the_probit_link():
    df = simulate(2, "binomial")
    model = hlmext.meprobit("y ~ x + (1 | a/b)", df)
    params = np.array([0.2, 0.4, 0.6, 0.8])
    exact = brute_grid(df, "probit", params[:2], params[2], params[3], K=300)
    assert abs(model.loglike(params, nagq=21) - exact) < 1e-6


def gamma_data(seed=4, shape=4.0):
    """``simulate``'s layout with a Gamma response (log link, mean exp(eta), shape ``shape``)."""
    df = simulate(seed, "poisson")
    rng = np.random.default_rng(seed)
    eta = 0.3 + 0.5 * df.x + np.repeat(rng.normal(0, 0.7, 5), 12) + np.repeat(rng.normal(0, 0.9, 15), 4)
    return df.assign(y=rng.gamma(shape, np.exp(eta) / shape))


def gamma_brute_grid(df, beta, sd_outer, sd_inner, shape, K):
    """``brute_grid`` for the Gamma family with the log link at the given shape."""
    def logf(y, e):
        mu = np.exp(e)
        return shape * np.log(shape / mu) + (shape - 1) * np.log(y) - shape * y / mu - gammaln(shape)
    x, w = np.polynomial.legendre.leggauss(K)
    total = 0.0
    for _, da in df.groupby("a"):
        v, wv = 10 * sd_outer * x, 10 * sd_outer * w * np.exp(-0.5 * x ** 2 * 100) / (np.sqrt(2 * np.pi) * sd_outer)
        u, wu = 10 * sd_inner * x, 10 * sd_inner * w * np.exp(-0.5 * x ** 2 * 100) / (np.sqrt(2 * np.pi) * sd_inner)
        eta = beta[0] + beta[1] * da.x.values
        logi = np.zeros(K)
        for b in np.unique(da.b):
            sel = da.b.values == b
            e = eta[None, None, sel] + v[:, None, None] + u[None, :, None]
            logi += np.log(np.exp(logf(da.y.values[sel], e).sum(-1)) @ wu)
        total += np.log(np.exp(logi) @ wv)
    return total


def test_nested_aghq_of_a_dispersion_family_approaches_brute_force_integration():
    import statsmodels.api as sm
    df = gamma_data()
    gamma = hlmext.meglm("y ~ x + (1 | a/b)", df, family=sm.families.Gamma(link=sm.families.links.Log()))
    beta, report, shape = np.array([0.3, 0.5]), np.array([0.7, 0.9]), 3.0     # sd[a], sd[a:b]
    theta = gamma.theta_from_report(report)
    exact = gamma_brute_grid(df, beta, *report, shape, K=300)
    assert abs(gamma_brute_grid(df, beta, *report, shape, K=200) - exact) < 1e-10
    err = [abs(gamma.loglike_at(beta, theta, np.log(shape), nagq=k) - exact) for k in (1, 5, 11, 21)]
    assert err[0] > 1e-4 and all(b < a for a, b in zip(err, err[1:])), err
    assert err[-1] < 1e-7, err
    res = gamma.fit(nagq=7)                           # the dispersion profiled on the nested quadrature
    assert res.nagq == 7 and res.to_stata().endswith("family(gamma) link(log) intmethod(mvaghermite) intpoints(7)")
    t = res.dispersion["estimate"].iloc[0]
    assert res.llf == pytest.approx(gamma.loglike_at(res.fe_params.to_numpy(), res.theta, t, nagq=7), abs=1e-8)
    for step in (-1e-3, 1e-3):                       # log shape at its maximum on the 7-point likelihood
        assert gamma.loglike_at(res.fe_params.to_numpy(), res.theta, t + step, nagq=7) < res.llf
    fast = gamma.fit(nagq=0)                          # log shape a coordinate of nagq=0's optimizer
    t0 = fast.dispersion["estimate"].iloc[0]
    assert fast.converged and fast.nagq == 0
    assert fast.llf == pytest.approx(gamma.loglike_at(fast.fe_params.to_numpy(), fast.theta, t0, nagq=1), abs=1e-9)
    assert gamma.fit(nagq=1).llf > fast.llf           # Laplace maximizes the same likelihood over beta too


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_nested_aghq_approaches_brute_force_integration(family):
    df = simulate(1 if family == "poisson" else 2, family)
    model = (hlmext.mepoisson if family == "poisson" else hlmext.melogit)("y ~ x + (1 | a/b)", df)
    params = np.array([0.3, 0.5, 0.7, 0.9])          # beta, sd[a], sd[a:b]
    exact = brute_grid(df, family, params[:2], params[2], params[3], K=300)
    assert abs(brute_grid(df, family, params[:2], params[2], params[3], K=200) - exact) < 1e-10   # converged
    err = [abs(model.loglike(params, nagq=k) - exact) for k in (1, 5, 11, 21)]
    # Gauss-Hermite with k points integrates polynomials of degree 2k - 1 exactly: the error
    # of the adaptive rule falls geometrically with k (the grid's own error is below 1e-10)
    assert err[0] > 1e-3 and all(b < a for a, b in zip(err, err[1:])), err
    assert err[-1] < 1e-7, err


def test_nested_aghq_two_outer_effects_approach_brute_force():
    df = simulate(3, "binomial")
    model = hlmext.melogit("y ~ x + (x || a) + (1 | a:b)", df)
    assert [lv.q for lv in model.levels] == [1, 2] and model.design.n_chain == 2
    params = np.array([0.3, 0.5, 0.7, 0.6, 0.9])       # beta, sd(Intercept)[a], sd(x)[a], sd[a:b]
    exact = brute_gh(df, "binomial", params[:2], *params[2:], K=60)
    assert abs(brute_gh(df, "binomial", params[:2], *params[2:], K=40) - exact) < 1e-9   # converged
    err = [abs(model.loglike(params, nagq=k) - exact) for k in (1, 3, 9)]
    assert err[0] > 1e-3 and err[1] < err[0] and err[2] < err[1] and err[2] < 1e-6, err


@pytest.mark.parametrize("formula,theta", [("y ~ x + (1 | a/b)", [0.8, 0.6]),
                                           ("y ~ x + (1 | a) + (x | a:b)", [0.8, 0.2, 0.3, 0.6])],
                         ids=["intercepts", "inner slope"])
def test_nested_aghq_with_one_point_is_laplace(formula, theta):
    df = simulate(4, "poisson")
    model = hlmext.mepoisson(formula, df)
    beta, theta = np.array([0.2, 0.4]), np.array(theta)
    laplace = model.loglike_theta(beta, theta, 1)
    from hlmext.models import nested_aghq
    assert nested_aghq.loglik(model, beta, theta, 1) == pytest.approx(laplace, abs=1e-9)


def test_nested_aghq_fit_on_grouseticks():
    df = hlmext.datasets.load("grouseticks")
    model = hlmext.mepoisson("TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)", df)
    lap, agq = model.fit(nagq=1), model.fit(nagq=7)
    assert agq.converged and agq.nagq == 7
    # the quadrature adds to the Laplace likelihood; estimates move by a fraction of an SE
    assert agq.llf > lap.llf and agq.llf - lap.llf < 1.0
    np.testing.assert_array_less(np.abs(agq.params - lap.params), 0.2 * lap.bse)
    np.testing.assert_allclose(agq.bse, lap.bse, rtol=0.02)
    # the fixed effects' standard errors are those of the deviance's curvature: an independent
    # second-difference Hessian in (beta, log sd) at another step gives them to 1e-4
    p, beta, sd = 4, agq.fe_params.values, np.asarray(agq.theta)
    x0, h = np.concatenate([beta, np.log(sd)]), 1e-2 * np.concatenate([lap.bse.values[:4], [1.0, 1.0]])
    dev = lambda x: -2 * model.loglike_theta(x[:p], np.exp(x[p:]), 7)
    E = np.diag(h)
    H = np.array([[(dev(x0 + E[i] + E[j]) - dev(x0 + E[i] - E[j]) - dev(x0 - E[i] + E[j]) + dev(x0 - E[i] - E[j]))
                   / (4 * h[i] * h[j]) for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(agq.bse.values[:p], np.sqrt(np.diag(2 * np.linalg.inv(H)))[:p], rtol=1e-4)
    # the optimum: the nested AGHQ likelihood at 15 points moves little, and the fit's
    # gradient (finite differences) is near zero
    assert abs(model.loglike(agq.params.values, nagq=15) - agq.llf) < 0.01
    _, g = model.loglike_theta(agq.fe_params.values, agq.theta, 7, grad=True)
    assert np.max(np.abs(g)) < 0.05
    assert "Integration method: mvaghermite" in str(agq.summary())


def test_nested_aghq_refusals():
    df = simulate(5, "poisson")
    df["c"] = np.arange(len(df)) % 2
    three = hlmext.mepoisson("y ~ x + (1 | a/b/c)", df)
    with pytest.raises(hlmext.ModelError, match="one or two nested levels; this model has 3"):
        three.fit(nagq=3)
    crossed = hlmext.mepoisson("y ~ x + (1 | a) + (1 | c)", df)
    with pytest.raises(hlmext.ModelError, match="not crossed factors.*pass nagq=1"):
        crossed.fit(nagq=3)
    df["pw"] = 1.0 + (df["a"] % 2)
    weighted = hlmext.mepoisson("y ~ x + (1 | a/b)", df, pweights="pw")
    with pytest.raises(hlmext.ModelError, match="sampling weights, nested models are fitted by the Laplace"):
        weighted.fit(nagq=3)
    big = hlmext.mepoisson("y ~ x + (x | a) + (x | a:b)", df)
    k = int(MAX_NODES ** 0.25) + 1
    with pytest.raises(hlmext.ModelError, match=r"needs %d quadrature points per inner cluster.*nagq=%d or fewer"
                       % (k ** 4, k - 1)):
        big.fit(nagq=k)


def test_check_quadrature_of_two_nested_levels():
    df = simulate(6, "poisson", outer=8)
    res = hlmext.mepoisson("y ~ x + (1 | a/b)", df).fit(nagq=1)
    check = res.check_quadrature()
    assert list(check.table.index) == ["Laplace", "nagq=7", "nagq=15"]
    assert check.table["llf"].iloc[2] == pytest.approx(check.table["llf"].iloc[1], abs=1e-3)


def test_nested_aghq_is_the_same_on_any_number_of_threads(monkeypatch):
    df = simulate(7, "binomial", outer=9)
    model = hlmext.melogit("y ~ x + (1 | a/b)", df)
    values = []
    for threads in ("1", "2", "2"):
        monkeypatch.setenv("HLMEXT_NUM_THREADS", threads)
        values.append(model.loglike(np.array([0.3, 0.5, 0.7, 0.9]), nagq=7))
    assert values[0] == values[1] == values[2]         # and bit for bit on a repeated run


def test_nested_aghq_refit_uses_the_new_response():
    df = simulate(8, "poisson", outer=8)
    res = hlmext.mepoisson("y ~ x + (1 | a/b)", df).fit(nagq=3)
    y2 = simulate(9, "poisson", outer=8)["y"].to_numpy()        # another draw, same layout
    again = res.refit(y2)
    fresh = hlmext.mepoisson("y ~ x + (1 | a/b)", df.assign(y=y2)).fit(nagq=3)
    assert again.llf == pytest.approx(fresh.llf, abs=1e-6) and again.llf != pytest.approx(res.llf, abs=1e-3)
    np.testing.assert_allclose(again.params, fresh.params, atol=1e-4)
