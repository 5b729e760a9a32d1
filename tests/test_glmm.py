"""GLMM kernels against their NumPy twins, gradients against finite differences, and behaviour."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from glmm_helpers import DATA, random_clusters
from hlmext._kernels import glmm as _glmm, reference as _reference
from hlmext.design.layout import LevelSpec, MixedDesign
from hlmext.models.glmm import gauss_hermite_rule
from hlmext.public import MixedLogit, MixedPoisson
from hlmext.results.glmm import _nested_cond_cov

SIZES = {"size 1": [1] * 9, "size 2": [2] * 8, "ragged": [1, 2, 7, 3, 1, 15, 4]}


def kernel(family, Z, y, ntr, eta0, starts, ends, lam, nagq):
    n, q = Z.shape
    G = len(starts)
    nodes, logw = gauss_hermite_rule(nagq, q)
    u, ll, chol = np.zeros((G, q)), np.empty(G), np.empty((G, q, q))
    e, glam = np.empty(n), np.empty((q, q))
    fails, _ = _glmm.cluster_loglik(family, Z, y, ntr, eta0, starts, ends, lam, nodes, logw, u, ll, chol,
                                    np.empty((n, q)), np.empty(n), np.empty(n), np.empty(n), np.empty(n),
                                    np.empty(nodes.shape), np.empty(len(logw)), np.empty(nodes.shape),
                                    np.empty((n, q)), e, glam, True)
    assert fails == 0
    return ll, u, chol, e, glam


@pytest.mark.parametrize("sizes", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("family", [0, 1], ids=["binomial", "poisson"])
@pytest.mark.parametrize("q,nagq", [(1, 1), (1, 9), (2, 1), (2, 5)])
def test_cluster_kernel_matches_twin(sizes, family, q, nagq):
    rng = np.random.default_rng(len(sizes) + 10 * family + 100 * q + nagq)
    Z, X, y, ntr, starts, ends = random_clusters(rng, sizes, q, family)
    lam = np.tril(rng.normal(size=(q, q))) + np.eye(q)
    eta0 = X @ np.array([-0.2, 0.4])
    ll, u, chol, _, _ = kernel(family, Z, y, ntr, eta0, starts, ends, lam, nagq)
    for j, (a, b) in enumerate(zip(starts, ends)):
        ZL = Z[a:b] @ lam
        twin = (_reference.glmm_laplace(family, ZL, y[a:b], ntr[a:b], eta0[a:b]) if nagq == 1 else
                _reference.glmm_aghq(family, ZL, y[a:b], ntr[a:b], eta0[a:b], nagq))
        assert ll[j] == pytest.approx(twin, abs=1e-10)
        u_twin, _, H = _reference.glmm_mode(family, ZL, y[a:b], ntr[a:b], eta0[a:b])
        np.testing.assert_allclose(u[j], u_twin, atol=1e-9)
        np.testing.assert_allclose(np.tril(chol[j]) @ np.tril(chol[j]).T, H, atol=1e-9)


def test_one_point_rule_is_laplace():
    rng = np.random.default_rng(1)
    Z, X, y, ntr, starts, ends = random_clusters(rng, SIZES["ragged"], 2, 0)
    ZL = Z[:7] @ np.array([[1.0, 0], [0.3, 0.5]])
    args = (0, ZL, y[:7], ntr[:7], X[:7] @ [0.1, 0.2])
    assert _reference.glmm_aghq(*args, 1) == pytest.approx(_reference.glmm_laplace(*args), abs=1e-12)
    nodes, logw = gauss_hermite_rule(1, 2)
    assert np.all(nodes == 0) and logw == pytest.approx([0.0], abs=1e-15)


def nested_design(rng, family, sizes=(5, 9, 1, 12, 6, 3), inner=3, q=(1, 2)):
    n = int(np.sum(sizes))
    outer = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(outer)
    groups = outer * 100 + rng.integers(0, inner, size=n)
    zo = np.column_stack([np.ones(n), rng.normal(size=(n, q[0] - 1))])
    zi = np.column_stack([np.ones(n), rng.normal(size=(n, q[1] - 1))])
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = X @ [0.2, 0.5] + rng.normal(size=len(sizes))[outer]
    ntr = rng.integers(1, 4, size=n).astype(float) if family == 0 else np.ones(n)
    y = (rng.binomial(ntr.astype(int), 1 / (1 + np.exp(-eta))) if family == 0 else rng.poisson(np.exp(eta)))
    levels = [LevelSpec("g", outer, zo, [("unstructured", list(range(q[0])))], ["a%d" % i for i in range(q[0])]),
              LevelSpec("g:h", groups, zi, [("unstructured", list(range(q[1])))], ["b%d" % i for i in range(q[1])])]
    return MixedDesign(y.astype(float), X, ["Intercept", "x"], levels), ntr


@pytest.mark.parametrize("family", [0, 1], ids=["binomial", "poisson"])
def test_nested_kernel_matches_dense_twin(family):
    rng = np.random.default_rng(7 + family)
    d, ntr = nested_design(rng, family)
    cls = MixedLogit if family == 0 else MixedPoisson
    model = cls(design=d, trials=ntr if family == 0 else None)
    theta = np.array([0.5, 0.8, 0.2, 0.6])        # inner level (q=2) first, then the outer one
    beta = np.array([0.1, 0.4])
    lams = model.lams(theta)
    ZL = np.hstack([(d.z_of(i) * (lv.codes == g)[:, None]) @ lams[i]            # dense Z Lambda
                    for i, lv in enumerate(d.levels) for g in range(lv.n_groups)])
    twin = _reference.glmm_laplace(family, ZL, d.endog, model.trials, d.exog @ beta) + model._const
    assert model.loglike_theta(beta, theta, 1) == pytest.approx(twin, abs=1e-9)
    u, S = model.modes(beta, theta)                 # modes and conditional variances
    u_twin, _, H = _reference.glmm_mode(family, ZL, d.endog, model.trials, d.exog @ beta)
    np.testing.assert_allclose(u, u_twin, atol=1e-9)
    hinv = np.linalg.inv(H)
    for i, (lv, own) in enumerate(zip(d.levels, _nested_cond_cov(model._tree, S))):
        for g in range(lv.n_groups):
            k = d.u_off[lv.first + g]
            np.testing.assert_allclose(own[g], hinv[k:k + lv.q, k:k + lv.q], atol=1e-10)


def check_against_dense_twin(model, family, beta, theta):
    """The Laplace log-likelihood and its gradient against the dense twin and central
    differences; returns the twin's H^{-1} and the kernel's diagonal blocks of it."""
    d = model.design
    lams = model.lams(theta)
    ZL = np.hstack([(d.z_of(i) * (lv.codes == g)[:, None]) @ lams[i]
                    for i, lv in enumerate(d.levels) for g in range(lv.n_groups)])
    twin = _reference.glmm_laplace(family, ZL, d.endog, model.trials, d.exog @ beta) + model._const
    ll, g = model.loglike_theta(beta, theta, 1, grad=True)
    assert ll == pytest.approx(twin, abs=1e-9)
    p = beta.size
    fd = fd_gradient(lambda z: model.loglike_theta(z[:p], z[p:], 1), np.concatenate([beta, theta]))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    u, S = model.modes(beta, theta)
    hinv = np.linalg.inv(_reference.glmm_mode(family, ZL, d.endog, model.trials, d.exog @ beta)[2])
    return hinv, _nested_cond_cov(model._tree, S)


@pytest.mark.parametrize("family", [0, 1], ids=["binomial", "poisson"])
@pytest.mark.parametrize("n,n_a,n_b", [(90, 12, 5), (600, 60, 40)],
                         ids=["small crossed block", "crossed block by LAPACK"])
def test_crossed_levels_match_dense_twin(family, n, n_a, n_b):
    rng = np.random.default_rng(5 + family)
    a, b = rng.integers(0, n_a, size=n), rng.integers(0, n_b, size=n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    za = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = X @ [0.1, 0.3] + rng.normal(size=n_a)[a] + rng.normal(size=n_b)[b]
    ntr = rng.integers(1, 4, size=n).astype(float) if family == 0 else None
    y = rng.binomial(ntr.astype(int), 1 / (1 + np.exp(-eta))) if family == 0 else rng.poisson(np.exp(eta))
    d = MixedDesign(y.astype(float), X, ["Intercept", "x"], [
        LevelSpec("a", a, za, [("unstructured", [0, 1])], ["a0", "a1"]),
        LevelSpec("b", b, np.ones((n, 1)), [("identity", [0])], ["b0"])])
    assert d.n_chain == 1 and d.n_levels == 2
    model = (MixedLogit if family == 0 else MixedPoisson)(design=d, trials=ntr)
    hinv, own = check_against_dense_twin(model, family, np.array([0.2, 0.1]), np.array([0.6, 0.2, 0.5, 0.8]))
    np.testing.assert_allclose(own[0][3], hinv[6:8, 6:8], atol=1e-10)        # group 3 of 'a' (q = 2)
    np.testing.assert_allclose(own[1][0], hinv[2 * n_a:, 2 * n_a:], atol=1e-10)   # the crossed block
    with pytest.raises(hlmext.ModelError, match="pass nagq=1"):
        model.fit(nagq=7)
    if n_b == 5:                                  # the default for crossed factors: Laplace
        default, laplace = model.fit(), model.fit(nagq=1)
        assert default.llf == laplace.llf


@pytest.mark.parametrize("family", [0, 1], ids=["binomial", "poisson"])
def test_crossed_slopes_and_two_crossed_factors_match_dense_twin(family):
    """A random slope on a crossed factor (two columns of the crossed block per group) and a
    third, crossed factor: every row has its own columns of two crossed levels."""
    rng = np.random.default_rng(21 + family)
    n = 300
    a, b, c = rng.integers(0, 40, size=n), rng.integers(0, 8, size=n), rng.integers(0, 6, size=n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    eta = X @ [0.1, 0.3] + rng.normal(size=40)[a] + rng.normal(size=8)[b] * (1 + 0.5 * x) + rng.normal(size=6)[c]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))) if family == 0 else rng.poisson(np.exp(eta))
    d = MixedDesign(y.astype(float), X, ["Intercept", "x"], [
        LevelSpec("a", a, np.ones((n, 1)), [("identity", [0])], ["a0"]),
        LevelSpec("b", b, X.copy(), [("unstructured", [0, 1])], ["b0", "b1"]),
        LevelSpec("c", c, np.ones((n, 1)), [("identity", [0])], ["c0"])])
    assert d.n_chain == 1 and d.n_levels == 3
    model = (MixedLogit if family == 0 else MixedPoisson)(design=d)
    hinv, own = check_against_dense_twin(model, family, np.array([0.2, 0.1]), np.array([0.7, 0.6, -0.3, 0.4, 0.5]))
    np.testing.assert_allclose(own[1][0], hinv[40:, 40:], atol=1e-10)          # the crossed block


def test_nested_kernel_with_one_level_equals_cluster_kernel():
    rng = np.random.default_rng(3)
    d, ntr = nested_design(rng, 1)
    one = MixedPoisson(design=MixedDesign(d.endog, d.exog, d.exog_names, [
        LevelSpec("g", d.levels[0].codes, d.W[:, :2], [("unstructured", [0, 1])], ["b0", "b1"])]))
    theta, beta = np.array([0.7, 0.1, 0.4]), np.array([0.2, -0.1])
    ll, g = one.loglike_theta(beta, theta, 1, grad=True)
    one.nested = True                  # route the same model through the nested kernel
    one._workspace()
    ll2, g2 = one.loglike_theta(beta, theta, 1, grad=True)
    assert ll2 == pytest.approx(ll, abs=1e-10)
    np.testing.assert_allclose(g2, g, atol=1e-8)


def fd_gradient(f, x, h=1e-5):
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])


@pytest.mark.parametrize("family", [0, 1], ids=["binomial", "poisson"])
@pytest.mark.parametrize("nested,nagq", [(False, 1), (False, 5), (True, 1)], ids=["one level", "AGHQ", "nested"])
def test_gradient_matches_finite_differences(family, nested, nagq):
    rng = np.random.default_rng(11 + family)
    d, ntr = nested_design(rng, family)
    if not nested:        # the inner level alone, on the sorted rows
        ntr = ntr[d.order]
        d = MixedDesign(d.endog, d.exog, d.exog_names, [
            LevelSpec("g", d.levels[0].codes, d.W[:, :2], [("unstructured", [0, 1])], ["b0", "b1"])])
    cls = MixedLogit if family == 0 else MixedPoisson
    model = cls(design=d, trials=ntr if family == 0 else None)
    x = np.concatenate([[0.1, 0.3], 0.3 + rng.uniform(size=model.k_re)])
    p = model.k_fe
    ll, g = model.loglike_theta(x[:p], x[p:], nagq, grad=True)
    fd = fd_gradient(lambda z: model.loglike_theta(z[:p], z[p:], nagq), x)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


def test_evaluation_does_not_depend_on_history():
    df = hlmext.datasets.load("cbpp")
    model = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size")
    beta, theta = np.array([-1.4, -1.0, -1.1, -1.6]), np.array([0.64])
    first = model.loglike_theta(beta, theta, 7)
    model.loglike_theta(beta + 3, theta * 5, 7)       # move the warm-started modes far away
    assert model.loglike_theta(beta, theta, 7) == pytest.approx(first, abs=1e-8)


# ------------------------------------------------------------------ API and results

@pytest.fixture(scope="module")
def cbpp():
    return hlmext.datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=7)


def test_results_attributes(cbpp_fit):
    res = cbpp_fit
    assert list(res.params.index)[-1] == "sd(Intercept)[herd]"
    assert res.k_params == 5 and res.reml is False and res.n_groups == {"herd": 15}
    assert res.cov_params().shape == (5, 5) and np.all(np.isfinite(res.bse))
    assert res.random_effects["herd"].shape == (15, 1)
    assert np.all(res.random_effects_cov["herd"].to_numpy() > 0)
    assert res.model.loglike(res.params.to_numpy(), nagq=7) == pytest.approx(res.llf, abs=1e-9)
    text = str(res.summary())
    assert "Mixed-effects logistic regression" in text and "mvaghermite" in text and "Integration pts." in text
    assert "Odds Ratio" in str(res.summary(eform=True))
    assert "<table" in res._repr_html_()
    icc = res.icc()
    sd = res.params["sd(Intercept)[herd]"]
    assert icc["icc"].iloc[0] == pytest.approx(sd ** 2 / (sd ** 2 + np.pi ** 2 / 3))


def test_predict(cbpp, cbpp_fit):
    res = cbpp_fit
    eta = res.predict(which="eta", conditional=True)
    np.testing.assert_allclose(res.predict(conditional=True), 1 / (1 + np.exp(-eta)))
    np.testing.assert_allclose(res.fittedvalues, cbpp["size"] * res.predict(conditional=True))
    new = cbpp.head(3).assign(herd=[1, 2, 999])
    pred = res.predict(new, which="eta", conditional=True)
    b = res.random_effects["herd"]["Intercept"]
    np.testing.assert_allclose(pred, res.predict(new, which="eta") + [b.loc[1], b.loc[2], 0.0])   # new herd: b = 0
    assert pred.iloc[0] == pytest.approx(eta.iloc[0])


def test_lrtest_and_lr_vs_regression(cbpp, cbpp_fit):
    lr = cbpp_fit.lr_test_vs_regression()
    assert lr.kind == "chibar2(01)" and lr.versus == "logistic regression"
    small = hlmext.melogit("incidence ~ 1 + (1 | herd)", cbpp, trials="size").fit(nagq=7)
    test = hlmext.lrtest(small, cbpp_fit)
    assert test.df == 3 and test.statistic == pytest.approx(2 * (cbpp_fit.llf - small.llf))


def test_row_order_and_array_arguments(cbpp, cbpp_fit):
    shuffled = cbpp.sample(frac=1.0, random_state=1)
    res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", shuffled, trials=shuffled["size"].to_numpy()).fit(nagq=7)
    assert res.llf == pytest.approx(cbpp_fit.llf, abs=1e-7)
    np.testing.assert_allclose(res.params, cbpp_fit.params, rtol=1e-5, atol=1e-7)


def test_missing_trials_dropped_with_the_formula_rows(cbpp):
    df = cbpp.astype({"size": float, "period": float})
    df.loc[3, "size"] = np.nan
    df.loc[7, "period"] = np.nan
    model = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size")
    assert model.nobs == 54 and model.frame.n_dropped == 2
    assert 3 not in model.frame.row_labels and 7 not in model.frame.row_labels
    ref = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df.drop(index=[3, 7]), trials="size")
    assert model.loglike_theta(np.zeros(4), [0.5], 1) == pytest.approx(ref.loglike_theta(np.zeros(4), [0.5], 1))
    with pytest.raises(hlmext.DataError, match="trials 'size'"):
        hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size", missing="raise")


def test_exposure_is_a_log_offset():
    df = pd.read_csv(DATA / "mmmec.csv")
    a = hlmext.mepoisson("deaths ~ uvb + (1 | region)", df, exposure="expected")
    b = hlmext.mepoisson("deaths ~ uvb + (1 | region)", df, offset=np.log(df["expected"]))
    x = np.array([0.1, -0.03])
    assert a.loglike_theta(x, [0.4], 7) == pytest.approx(b.loglike_theta(x, [0.4], 7), abs=1e-10)
    res = a.fit(nagq=1)
    assert res.predict(df.head(2)).to_numpy() == pytest.approx(
        np.exp(res.fe_params["Intercept"] + res.fe_params["uvb"] * df.uvb[:2]) * df.expected[:2])
    assert "IRR" in str(res.summary(eform=True))
    with pytest.raises(hlmext.DataError, match="exposure 'expected' must be positive"):
        hlmext.mepoisson("deaths ~ uvb + (1 | region)", df.assign(expected=df.expected - 40), exposure="expected")


@pytest.mark.parametrize("change,match", [
    (dict(y=[0, 2, 1, 0, 1, 1, 0, 1]), "must be 0 or 1"),
])
def test_logit_response_without_trials(change, match):
    df = pd.DataFrame({"g": list("aabbccdd"), "x": np.arange(8.0), **change})
    with pytest.raises(hlmext.DataError, match=match):
        hlmext.melogit("y ~ x + (1 | g)", df)


@pytest.mark.parametrize("y,n,match", [
    ([1, 5, 2, 0], [3, 3, 3, 3], "exceeds trials 'n'"),
    ([1, -1, 2, 0], [3, 3, 3, 3], "must not be negative"),
    ([1, 0.5, 2, 0], [3, 3, 3, 3], "whole numbers"),
    ([1, 1, 2, 0], [3, 0, 3, 3], "must be positive"),
])
def test_binomial_counts_errors(y, n, match):
    df = pd.DataFrame({"g": list("aabb") * 2, "x": np.arange(8.0), "y": y * 2, "n": n * 2})
    with pytest.raises(hlmext.DataError, match=match):
        hlmext.melogit("y ~ x + (1 | g)", df, trials="n")


@pytest.mark.parametrize("y", [[1, -2, 0, 3], [1, 2.5, 0, 3]])
def test_poisson_counts_errors(y):
    df = pd.DataFrame({"g": list("aabb") * 2, "x": np.arange(8.0), "y": y * 2})
    with pytest.raises(hlmext.DataError, match="non-negative whole-number count"):
        hlmext.mepoisson("y ~ x + (1 | g)", df)


def test_separation_is_detected():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "z": rng.normal(size=60), "x": np.tile([0, 1], 30)})
    df["y"] = np.where(df.x == 1, 1, (rng.uniform(size=60) < 0.4).astype(int))
    with pytest.raises(hlmext.ModelError, match="separation: 'x'"):
        hlmext.melogit("y ~ z + x + (1 | g)", df).fit(nagq=1)
    counts = df.assign(y=np.where(df.x == 1, 0, rng.poisson(3, size=60)))
    with pytest.raises(hlmext.ModelError, match="separation: 'x'"):
        hlmext.mepoisson("y ~ z + x + (1 | g)", counts).fit(nagq=1)


def test_bad_nagq_and_missing_column(cbpp):
    model = hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size")
    with pytest.raises(ValueError, match="non-negative integer"):
        model.fit(nagq=-1)
    with pytest.raises(hlmext.DataError, match="trials column 'sizes' is not in the data"):
        hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="sizes")


def test_threads_give_the_same_fit(monkeypatch):
    """The kernel's loop over clusters runs on several threads: the same fit on 1 and 2
    threads (up to the order of the gradient's sums), and bit for bit on repeated runs."""
    df = hlmext.datasets.load("contraception")
    fits = {}
    for threads in ("1", "2", "2"):
        monkeypatch.setenv("HLMEXT_NUM_THREADS", threads)
        res = hlmext.melogit("use ~ age + urban + (urban | district)", df).fit(nagq=3)
        fits.setdefault(threads, []).append(res)
    one, two, again = fits["1"][0], fits["2"][0], fits["2"][1]
    assert two.llf == pytest.approx(one.llf, rel=1e-12)
    np.testing.assert_allclose(two.params, one.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(two.params, again.params)
    assert two.llf == again.llf
