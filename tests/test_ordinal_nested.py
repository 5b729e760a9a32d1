"""Ordinal models with nested levels (``meologit y x || school: || class:``).

References: ``tests/reference/ordinal_nested/clmm_nested.R`` (ordinal::clmm, Laplace) on the
simulated three-level design it writes beside itself; nested adaptive quadrature against an
independent brute-force integration in NumPy.
"""
import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hlmext
from hlmext.exceptions import DataError, ModelError
from hlmext.inference.ordinal_bootstrap import OrdinalSource
from hlmext.models import ordinal_nested
from hlmext.models.ordinal import MixedOrdinal
from hlmext.results.ordinal import category_probabilities

HERE = os.path.join(os.path.dirname(__file__), "reference", "ordinal_nested")
FORMULA = "y ~ x + z + (1 | school/class)"


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(os.path.join(HERE, "nested.csv"))


@pytest.fixture(scope="module")
def ref():
    with open(os.path.join(HERE, "clmm_nested.json")) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def fits(data):
    return {"logit": hlmext.meologit(FORMULA, data).fit(), "probit": hlmext.meoprobit(FORMULA, data).fit()}


def _clmm_order(res, r):
    """clmm's coefficients (cut points first) in the order of ``res.params``."""
    k = len(res.cuts)
    return np.concatenate([r["coef"][k:], r["coef"][:k]]), np.concatenate([r["se"][k:], r["se"][:k]])


def _check_against_clmm(res, r, sds):
    coef, se = _clmm_order(res, r)
    p = len(coef)
    assert res.llf == pytest.approx(r["llf"], rel=1e-4)
    bse = np.asarray(res.bse)[:p]
    assert np.all(np.abs(np.asarray(res.params)[:p] - coef) <= 0.02 * se)
    np.testing.assert_allclose(bse, se, rtol=0.02)
    np.testing.assert_allclose(np.asarray(res.params)[p:p + len(sds)], sds, rtol=0.02)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_nested_intercepts_match_clmm(fits, ref, link):
    res, r = fits[link], ref[link]
    assert res.nagq == 1 and res.model.nested
    _check_against_clmm(res, r, [r["sd_school"], r["sd_class"]])
    assert list(res.params.index[-2:]) == ["sd(Intercept)[school]", "sd(Intercept)[school:class]"]


def test_random_slope_across_schools_matches_clmm(data, ref):
    df = data.assign(y=data["y2"])
    res = hlmext.meologit("y ~ x + z + (1 + x | school) + (1 | school:class)", df).fit()
    r = ref["slope"]
    _check_against_clmm(res, r, r["sd_school"])
    values = res.params
    assert values["corr(Intercept,x)[school]"] == pytest.approx(r["corr_school"], abs=0.02)
    assert values["sd(Intercept)[school:class]"] == pytest.approx(r["sd_class"], rel=0.02)


def _difference_gradient(model, fe, theta, h=1e-5):
    x = np.concatenate([fe, theta])
    out = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        out.append((model.loglike_theta(*np.split(x + e, [fe.size]), 1)
                    - model.loglike_theta(*np.split(x - e, [fe.size]), 1)) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("formula", [FORMULA.replace("class)", "class/room)"),
                                     "y ~ x + z + (1 + x | school) + (1 | school:class)"])
def test_laplace_gradient_is_the_derivative_of_the_loglikelihood(data, formula):
    df = data.assign(room=np.arange(len(data)) % 2)
    model = hlmext.meoprobit(formula, df)
    fe = np.array([0.4, -0.2, -0.7, 0.2, 1.1])
    theta = np.linspace(0.3, 0.9, model.k_re)
    ll, g = model.loglike_theta(fe, theta, 1, grad=True)
    assert np.isfinite(ll)
    np.testing.assert_allclose(g, _difference_gradient(model, fe, theta), rtol=1e-6, atol=1e-6)
    # the cut points' part: the kernel's rows' d/dA and d/dB add up to d/d eta (the kernel's e)
    model.loglike_theta(fe, theta, 1, grad=True)
    gA, gB = ordinal_nested.row_gradients(model, fe[2:])
    np.testing.assert_allclose(-(gA + gB), model._e, rtol=1e-9, atol=1e-12)


def test_outer_variance_zero_is_the_one_level_model(data):
    """The nested kernel's ordinal rows against the one-level ordinal kernel."""
    nested = hlmext.meologit(FORMULA, data)
    one = hlmext.meologit("y ~ x + z + (1 | school:class)", data)
    fe = np.array([0.5, -0.4, -1.1, 0.4, 1.8])
    assert nested.loglike_theta(fe, np.array([0.7, 0.0]), 1) == pytest.approx(
        one.loglike_theta(fe, np.array([0.7]), 1), rel=1e-12)


def _brute_force_loglik(df, beta, cuts, sd_class, sd_school, link, points=60):
    """sum over schools of log int phi(v) prod_classes int phi(u) prod_rows P(y | v, u) du dv, by a
    fixed (not adaptive) Gauss-Hermite rule of ``points`` points per level."""
    F = stats.logistic.cdf if link == "logit" else stats.norm.cdf
    x, w = np.polynomial.hermite.hermgauss(points)
    nodes, logw = np.sqrt(2.0) * x, np.log(w / np.sqrt(np.pi))
    upper = np.append(cuts, np.inf)
    lower = np.insert(cuts, 0, -np.inf)
    total = 0.0
    for _, school in df.groupby("school"):
        outer = logw.copy()                                   # log of each outer node's term
        for _, cls in school.groupby("class"):
            k = cls["y"].to_numpy() - 1
            eta = cls[["x", "z"]].to_numpy() @ beta
            e = (eta[:, None, None] + sd_school * nodes[None, :, None] + sd_class * nodes[None, None, :])
            p = F(upper[k][:, None, None] - e) - F(lower[k][:, None, None] - e)
            with np.errstate(divide="ignore"):                 # p underflows at the far nodes
                inner = np.sum(np.log(p), axis=0) + logw[None, :]   # (outer node, inner node)
            outer += np.logaddexp.reduce(inner, axis=1)
        total += np.logaddexp.reduce(outer)
    return total


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_nested_quadrature_moves_toward_brute_force_integration(data, link):
    df = data[data["school"] <= 4]
    model = (hlmext.meologit if link == "logit" else hlmext.meoprobit)(FORMULA, df)
    beta, cuts, sds = np.array([0.7, -0.4]), np.array([-1.0, 0.4, 1.8]), np.array([1.2, 0.9])  # school, class
    exact = _brute_force_loglik(df, beta, cuts, sds[1], sds[0], link)
    theta = model.theta_from_report(sds)
    errors = [abs(model.loglike_theta(np.concatenate([beta, cuts]), theta, nagq) - exact) for nagq in (1, 3, 7, 11)]
    assert errors[0] > 1e-3                                   # Laplace is visibly off here
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-6 * abs(exact)


def test_nested_quadrature_fit(data):
    df = data[data["school"] <= 8]
    lap = hlmext.meologit(FORMULA, df).fit(nagq=1)
    res = hlmext.meologit(FORMULA, df).fit(nagq=5)
    assert res.nagq == 5 and res.converged and "mvaghermite" in res.integration
    assert res.llf == pytest.approx(res.model.loglike(np.asarray(res.params), nagq=5), rel=1e-10)
    assert abs(res.llf - lap.llf) < 0.5 and np.all(np.isfinite(res.bse))


def test_bad_input_is_refused_by_name(data):
    with pytest.raises(ModelError, match="not crossed factors"):
        hlmext.meologit("y ~ x + (1 | school) + (1 | class)", data)
    three = hlmext.meologit(FORMULA.replace("class)", "class/room)"), data.assign(room=np.arange(len(data)) % 2))
    with pytest.raises(ModelError, match="two nested levels"):
        three.fit(nagq=7)
    w = data.assign(w=1.0 + (data["school"] % 3))
    with pytest.raises(ModelError, match="no sampling weights"):
        MixedOrdinal._from_formula(FORMULA, w.assign(y=w["y"] - 1.0), {}, pweights="w", categories=[1, 2, 3, 4])
    with pytest.raises(DataError, match="one category"):
        hlmext.meologit(FORMULA, data.assign(y=3))
    with pytest.raises(DataError, match="no rows in category 2"):
        hlmext.meologit(FORMULA, data.assign(y=pd.Categorical(data["y"].replace(2, 1), categories=[1, 2, 3, 4],
                                                             ordered=True)))


def test_results_of_a_nested_fit(fits, data):
    res = fits["logit"]
    text = str(res.summary())
    assert "school:class" in text and "/cut3" in text
    # marginal probabilities average over both levels' effects (their variances add)
    sd = np.sqrt(res.params["sd(Intercept)[school]"] ** 2 + res.params["sd(Intercept)[school:class]"] ** 2)
    eta = data[["x", "z"]].to_numpy()[:5] @ res.beta.to_numpy()
    want = category_probabilities(eta, np.full(5, sd), res.cuts.to_numpy(), "logit")
    np.testing.assert_allclose(res.predict(data.iloc[:5]).to_numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(res.predict().to_numpy()[:5], want, rtol=1e-12)
    cond = res.predict(data.iloc[:5], conditional=True).to_numpy()
    np.testing.assert_allclose(cond, res.predict(conditional=True).to_numpy()[:5], rtol=1e-12)
    assert res.to_stata() == "meologit y x z || school: || class:, intmethod(laplace)"
    assert res.to_lme4().splitlines()[0] == ('clmm(y ~ x + z + (1 | school) + (1 | school:class), data = df, '
                                             'link = "logit")')
    one = hlmext.meologit("y ~ x + z + (1 | school)", data).fit(nagq=1)
    lr = hlmext.lrtest(one, res)
    assert lr.df == 1 and lr.statistic == pytest.approx(2 * (res.llf - one.llf), rel=1e-9)
    robust = hlmext.meologit(FORMULA, data).fit(cov_type="cluster")
    assert "30 clusters of 'school'" in robust.cov_type and np.all(np.isfinite(robust.bse))


class _Ones:
    """A generator whose every normal draw is 1: every effect is its level's Lambda."""

    def standard_normal(self, size):
        return np.ones(size)


def test_simulation_draws_every_level(fits):
    res = fits["probit"]
    m = res.model
    latent = m._Xb @ res.beta.to_numpy() + sum(float(lam[0, 0]) for lam in m.lams(res.theta)) + 1.0
    draw = OrdinalSource(res).draw(_Ones())
    np.testing.assert_array_equal(draw, np.searchsorted(res.cuts.to_numpy(), latent))
