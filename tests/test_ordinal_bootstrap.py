"""Simulation, refits and the parametric bootstrap of meologit / meoprobit fits.

Checks: simulated responses are the model's categories, reproducible; each category's
simulated frequency is its marginal probability (Monte Carlo against ``predict``, within 4
Monte Carlo standard errors); a replicate is a fresh fit of the simulated response, the
same for any number of processes, and never below the ordinal regression without random
effects of its own response; a response with an empty category gives a NaN replicate.
"""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import ModelError
from hlmext.inference.bootstrap import bootstrap_lrtest

FORMULA = "rating ~ temp + contact + (1 | judge)"


@pytest.fixture(scope="module")
def wine():
    return hlmext.datasets.load("wine")


@pytest.fixture(scope="module")
def fitted(wine):
    return hlmext.meologit(FORMULA, wine).fit(nagq=1)


def small_sd_data(seed=4, G=12, m=8):
    """Ordinal data with a weak judge effect: many replicates end on the boundary (sd = 0)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    lat = 0.8 * x + 0.1 * rng.normal(size=G)[g] + rng.normal(size=G * m)
    return pd.DataFrame({"y": np.digitize(lat, [-0.8, 0.3, 1.2]), "x": x, "g": g})


def test_simulated_responses_are_the_models_categories_and_reproducible(fitted, wine):
    sims = fitted.simulate(n=20, seed=3)
    assert sims.shape == (len(wine), 20) and sims.index.equals(wine.index)
    assert all(sims[c].cat.ordered and list(sims[c].cat.categories) == [1, 2, 3, 4, 5] for c in sims)
    assert not sims.isna().any().any()
    pd.testing.assert_frame_equal(sims, fitted.simulate(n=20, seed=3))
    assert not sims.equals(fitted.simulate(n=20, seed=4))


def test_simulated_frequencies_are_the_marginal_probabilities(fitted):
    n_sim = 3000
    sims = fitted.simulate(n=n_sim, seed=11)
    codes = np.column_stack([sims[c].cat.codes for c in sims])
    expected = fitted.predict().to_numpy().sum(axis=0)               # rows per category, marginal
    for k in range(5):
        per_sim = (codes == k).sum(axis=0)
        se = per_sim.std(ddof=1) / np.sqrt(n_sim)
        assert abs(per_sim.mean() - expected[k]) < 4 * se


def test_a_replicate_is_a_fresh_fit_of_the_simulated_response(fitted, wine):
    boot = fitted.bootstrap(n=3, seed=5, n_jobs=1)
    y = fitted.simulate(n=3, seed=5)["sim_2"]
    fresh = hlmext.meologit(FORMULA, wine.assign(rating=y)).fit(nagq=1)
    np.testing.assert_allclose(boot.replicates.iloc[1], fresh.params, rtol=1e-5, atol=1e-5)
    assert boot.deviance[1] == pytest.approx(-2 * fresh.llf, rel=1e-8)
    again = fitted.refit(y)
    np.testing.assert_allclose(again.params, fresh.params, rtol=1e-5, atol=1e-5)
    assert again.llf == pytest.approx(fresh.llf, rel=1e-9)


def test_replicates_do_not_depend_on_processes(wine):
    res = hlmext.meoprobit(FORMULA, wine).fit(nagq=3)
    a = res.bootstrap(n=6, seed=2, n_jobs=1)
    b = res.bootstrap(n=6, seed=2, n_jobs=2)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)


def test_a_replicate_is_never_below_the_regression_without_random_effects():
    df = small_sd_data()
    res = hlmext.meologit("y ~ x + (1 | g)", df).fit(nagq=5)
    boot = res.bootstrap(n=8, seed=1, n_jobs=1)
    sims = res.simulate(n=8, seed=1)
    on_boundary = 0
    for i, col in enumerate(sims):
        model = hlmext.meologit("y ~ x + (1 | g)", df.assign(y=sims[col]))
        null_llf = model.null_fit()[1]
        assert boot.deviance[i] <= -2 * null_llf + 1e-8
        on_boundary += boot.replicates.iloc[i, -1] == 0
    assert on_boundary >= 1                       # the floor was reached, not only passed


def test_an_empty_category_gives_a_nan_replicate():
    rng = np.random.default_rng(0)
    df = small_sd_data()
    df.loc[rng.choice(len(df), 2, replace=False), "y"] = 4          # a rare top category
    res = hlmext.meologit("y ~ x + (1 | g)", df).fit(nagq=1)
    boot = res.bootstrap(n=10, seed=3, n_jobs=1)
    sims = res.simulate(n=10, seed=3)
    empty = np.array([sims[c].value_counts().min() == 0 for c in sims])
    assert empty.any() and not empty.all()
    assert np.all(boot.replicates[empty].isna()) and not boot.converged[empty].any()
    assert np.all(np.isfinite(boot.replicates[~empty])) and np.all(np.isfinite(boot.conf_int()))
    with pytest.raises(hlmext.exceptions.DataError, match="no rows in category 4"):
        res.refit(sims.loc[:, empty].iloc[:, 0])


def test_conf_int_method_bootstrap(fitted):
    boot = fitted.bootstrap(n=5, seed=7, n_jobs=1)
    ci = fitted.conf_int(method="bootstrap", n=5, seed=7, n_jobs=1)
    np.testing.assert_allclose(ci.to_numpy(), boot.conf_int().to_numpy())
    assert list(ci.index) == list(fitted.params.index)
    np.testing.assert_allclose(fitted.conf_int(method="bootstrap", bootstrap=boot).to_numpy(),
                               boot.conf_int().to_numpy())


def test_bootstrap_lr_test_of_a_fixed_effect(wine):
    small = hlmext.meologit("rating ~ temp + (1 | judge)", wine).fit(nagq=1)
    big = hlmext.meologit(FORMULA, wine).fit(nagq=1)
    test = bootstrap_lrtest(small, big, n=4, seed=1, n_jobs=1)
    assert test.statistic == pytest.approx(2 * (big.llf - small.llf))
    assert test.n == 4 and np.all(test.replicates >= 0)


def test_refit_refuses_values_that_are_not_categories(fitted, wine):
    with pytest.raises(hlmext.exceptions.DataError, match="categories"):
        fitted.refit(wine.rating + 10)
    with pytest.raises(ModelError, match="observations"):
        fitted.refit(wine.rating.iloc[:10])
