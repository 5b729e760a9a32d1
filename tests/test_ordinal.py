"""meologit / meoprobit: gradients, the response's categories, bad input, predictions, output."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import hlmext
from hlmext.exceptions import BoundaryWarning, DataError, FormulaError, ModelError


@pytest.fixture(scope="module")
def wine():
    return hlmext.datasets.load("wine")


@pytest.fixture(scope="module")
def fitted(wine):
    return hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=7)


def simulated(seed=0, G=30, m=8, sd=(1.0, 0.6), link="logit"):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    b = rng.normal(size=(G, 2)) * sd
    noise = rng.logistic(size=G * m) if link == "logit" else rng.normal(size=G * m)
    lat = 0.7 * x + b[g, 0] + b[g, 1] * x + noise
    y = np.digitize(lat, [-1.0, 0.2, 1.5]) + 1
    return pd.DataFrame({"y": y, "x": x, "g": g})


# ---------------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize("nagq", [1, 5])
@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (x | g)"])
def test_gradient_matches_central_differences(link, nagq, formula):
    df = simulated(link=link)
    build = hlmext.meologit if link == "logit" else hlmext.meoprobit
    model = build(formula, df)
    fe = np.array([0.5, -0.8, 0.3, 1.2])
    theta = np.array([0.9]) if model.k_re == 1 else np.array([0.8, 0.2, 0.5])
    ll, g = model.loglike_theta(fe, theta, nagq, grad=True)
    x = np.concatenate([fe, theta])
    num = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = 1e-5
        num[i] = (model.loglike_theta((x + e)[:4], (x + e)[4:], nagq)
                  - model.loglike_theta((x - e)[:4], (x - e)[4:], nagq)) / 2e-5
    assert np.isfinite(ll)
    assert np.allclose(g, num, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- response
def test_strings_are_ordered_by_sorting_and_ordered_categoricals_keep_their_order(wine):
    labels = np.array(["a_low", "b_mid", "c_mid", "d_high", "e_top"])
    sorted_strings = wine.assign(r=labels[wine.rating - 1])
    res = hlmext.meologit("r ~ temp + (1 | judge)", sorted_strings).fit(nagq=1)
    ref = hlmext.meologit("rating ~ temp + (1 | judge)", wine).fit(nagq=1)
    assert res.categories == list(labels)
    assert res.llf == pytest.approx(ref.llf, rel=1e-10)
    reverse = pd.Categorical(wine.rating, categories=[5, 4, 3, 2, 1], ordered=True)
    rev = hlmext.meologit("r ~ temp + (1 | judge)", wine.assign(r=reverse)).fit(nagq=1)
    assert rev.categories == [5, 4, 3, 2, 1]
    assert rev.llf == pytest.approx(ref.llf, rel=1e-8)
    assert rev.beta.iloc[0] == pytest.approx(-ref.beta.iloc[0], rel=1e-5)
    assert rev.cuts.to_numpy() == pytest.approx(-ref.cuts.to_numpy()[::-1], rel=1e-5)


def test_one_category_is_refused(wine):
    with pytest.raises(DataError, match="one category"):
        hlmext.meologit("r ~ temp + (1 | judge)", wine.assign(r=3))


def test_empty_categories_are_named(wine):
    r = pd.Categorical(wine.rating, categories=[1, 2, 3, 4, 5, 6, 7], ordered=True)
    with pytest.raises(DataError, match="categories 6, 7"):
        hlmext.meologit("r ~ temp + (1 | judge)", wine.assign(r=r))


def test_bad_input_gets_clear_errors(wine):
    with pytest.raises(FormulaError, match="intercept"):
        hlmext.meologit("rating ~ 0 + temp + (1 | judge)", wine)
    with pytest.raises(FormulaError, match="must be a column"):
        hlmext.meologit("np.log(rating) ~ temp + (1 | judge)", wine)
    with pytest.raises(ModelError, match="not crossed factors"):
        hlmext.meologit("rating ~ temp + (1 | judge) + (1 | bottle)", wine)
    with pytest.raises(DataError, match="cannot be sorted"):
        hlmext.meologit("r ~ temp + (1 | judge)", wine.assign(r=[1, "a"] * 36))


def test_unknown_keywords_are_refused(wine):
    with pytest.raises(TypeError, match="nAGQ"):
        hlmext.meologit("rating ~ temp + (1 | judge)", wine, nAGQ=7)
    model = hlmext.meoprobit("rating ~ temp + (1 | judge)", wine)
    with pytest.raises(TypeError, match="nagqq"):
        model.fit(nagqq=3)
    with pytest.raises(TypeError, match="trials"):
        hlmext.meologit("rating ~ temp + (1 | judge)", wine, trials="bottle")
    with pytest.raises(TypeError, match="hlmext.meoprobit fits the probit link"):
        hlmext.meologit("rating ~ temp + (1 | judge)", wine, link="probit")


@pytest.mark.parametrize("call", [lambda r, d: r.get_prediction(), lambda r, d: r.margins(d, dydx="temp"),
                                  lambda r, d: r.coef_table()])
def test_mean_predictions_margins_and_coefficient_tables_are_refused_by_name(fitted, wine, call):
    with pytest.raises(ModelError, match="ordinal model|ordinal models"):    # they failed inside with a TypeError
        call(fitted, wine)


def test_conf_int_names_an_unknown_keyword(fitted):
    with pytest.raises(TypeError, match="'level'; use alpha="):
        fitted.conf_int(level=0.9)


# ---------------------------------------------------------------------------------- fit
def test_boundary_llf_is_never_below_the_model_without_random_effects():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": np.repeat(np.arange(20), 6), "x": rng.normal(size=120)})
    df["y"] = np.digitize(0.5 * df.x + rng.logistic(size=120), [-1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundaryWarning)
        res = hlmext.meologit("y ~ x + (1 | g)", df).fit(nagq=7)
    assert res.llf >= res.null_llf - 1e-9
    assert res.re_params["estimate"].iloc[0] >= 0


def test_icc_on_the_latent_scale(fitted, wine):
    sd = fitted.re_params["estimate"].iloc[0]
    assert fitted.icc()["icc"].iloc[0] == pytest.approx(sd ** 2 / (sd ** 2 + np.pi ** 2 / 3))
    probit = hlmext.meoprobit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
    sd = probit.re_params["estimate"].iloc[0]
    assert probit.icc()["icc"].iloc[0] == pytest.approx(sd ** 2 / (sd ** 2 + 1))


def test_aic_bic_and_wald(fitted):
    k = 2 + 4 + 1
    assert fitted.aic == pytest.approx(-2 * fitted.llf + 2 * k)
    assert fitted.bic == pytest.approx(-2 * fitted.llf + np.log(72) * k)
    stat, df, _ = fitted.wald_chi2
    assert df == 2
    b, cov = fitted.beta.to_numpy(), fitted.cov_params().to_numpy()[:2, :2]
    assert stat == pytest.approx(b @ np.linalg.solve(cov, b))
    t = fitted.t_test("temp[T.warm] = contact[T.yes]")
    assert float(np.squeeze(t.effect)) == pytest.approx(b[0] - b[1])


# ---------------------------------------------------------------------------------- predict
def test_marginal_probabilities_integrate_over_the_random_effect(fitted, wine):
    rows = wine.iloc[[0, 6]]
    pred = fitted.predict(rows)
    assert list(pred.columns) == [1, 2, 3, 4, 5]
    assert np.allclose(pred.sum(axis=1), 1.0)
    sd = fitted.re_params["estimate"].iloc[0]
    cuts = np.concatenate([[-np.inf], fitted.cuts.to_numpy(), [np.inf]])
    eta = fitted.predict(rows, which="eta").to_numpy()
    for r in range(2):
        for k in range(5):
            p, _ = integrate.quad(lambda b: (stats.logistic.cdf(cuts[k + 1] - eta[r] - b)
                                             - stats.logistic.cdf(cuts[k] - eta[r] - b)) * stats.norm.pdf(b, 0, sd),
                                  -12 * sd, 12 * sd)
            assert pred.iloc[r, k] == pytest.approx(p, abs=1e-8)


def test_conditional_probabilities_use_the_predicted_effects(fitted, wine):
    cond = fitted.predict(conditional=True)
    assert cond.shape == (72, 5)
    b = fitted.random_effects["judge"]["Intercept"]
    eta = fitted.predict(which="eta", conditional=True)
    assert eta.to_numpy() == pytest.approx(fitted.predict(which="eta").to_numpy() + b.loc[wine.judge].to_numpy())
    F = stats.logistic.cdf(fitted.cuts.iloc[0] - eta.to_numpy())
    assert cond[1].to_numpy() == pytest.approx(F)
    new = fitted.predict(wine, conditional=True)
    assert np.allclose(new.to_numpy(), cond.to_numpy())
    with pytest.raises(ValueError, match="which"):
        fitted.predict(which="mu")


# ---------------------------------------------------------------------------------- output
def test_summary_shows_cut_points_not_exponentiated(fitted):
    text = str(fitted.summary(eform=True))
    assert "Odds Ratio" in text and "/cut1" in text and "LR test vs. ologit model" in text
    first = {s.split("|")[0].strip(): float(s.split("|")[1].split()[0]) for s in text.splitlines()
             if "|" in s and s.split("|")[1].split() and s.split("|")[1].split()[0][-1].isdigit()}
    assert first["/cut2"] == pytest.approx(fitted.cuts.iloc[1], rel=1e-6)
    assert first["temp[T.warm]"] == pytest.approx(np.exp(fitted.beta.iloc[0]), rel=1e-6)


def test_probit_has_no_odds_ratios(wine):
    probit = hlmext.meoprobit("rating ~ temp + (1 | judge)", wine).fit(nagq=1)
    assert "/cut4" in str(probit.summary())
    with pytest.raises(ValueError, match="probit"):
        probit.summary(eform=True)


def test_update_lrtest_and_quadrature_check(wine):
    big = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
    small = big.update(". ~ . - contact")
    assert small.nagq == 1 and list(small.beta.index) == ["temp[T.warm]"]
    assert hlmext.lrtest(small, big).statistic == pytest.approx(2 * (big.llf - small.llf))
    check = big.check_quadrature()
    assert list(check.table.index) == ["Laplace", "nagq=7", "nagq=15"]
    assert check.table.loc["nagq=7", "llf"] == pytest.approx(-81.53246, abs=1e-4)


def test_rows_with_missing_values_are_dropped(wine):
    w = wine.astype({"rating": float, "temp": object})
    w.loc[3, "rating"], w.loc[5, "temp"] = np.nan, None
    res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", w).fit(nagq=1)
    ref = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine.drop([3, 5])).fit(nagq=1)
    assert res.nobs == 70 and res.llf == pytest.approx(ref.llf, rel=1e-10)


def test_threads_give_the_same_fit():
    df = simulated(G=60)
    model = hlmext.meologit("y ~ x + (x | g)", df)
    before = hlmext.get_num_threads()
    try:
        hlmext.set_num_threads(1)
        one = model.loglike_theta([0.5, -0.8, 0.3, 1.2], [0.8, 0.2, 0.5], 5, grad=True)
        hlmext.set_num_threads(2)
        two = model.loglike_theta([0.5, -0.8, 0.3, 1.2], [0.8, 0.2, 0.5], 5, grad=True)
    finally:
        hlmext.set_num_threads(before)
    assert one[0] == pytest.approx(two[0], rel=1e-13)
    assert np.allclose(one[1], two[1], rtol=1e-11, atol=1e-12)


def test_commands_for_r_and_stata(fitted, wine):
    assert fitted.to_lme4().splitlines()[0] == ('clmm(rating ~ temp + contact + (1 | judge), data = df, '
                                                'link = "logit", nAGQ = 7)')
    assert fitted.to_stata().splitlines()[-1] == "meologit rating i.temp_n i.contact_n || judge:, intpoints(7)"
    slope = hlmext.meoprobit("y ~ x + (x | g)", simulated())
    assert slope.to_stata(nagq=1) == "meoprobit y x || g: x, covariance(unstructured) intmethod(laplace)"


def test_results_pickle(fitted):
    back = pickle.loads(pickle.dumps(fitted))
    assert back.llf == fitted.llf
    assert back.predict().to_numpy() == pytest.approx(fitted.predict().to_numpy())


def test_aghq_with_two_random_effects_matches_brute_force_integration():
    """An independent evaluator: each cluster's integral over (u1, u2) on a fine grid."""
    df = simulated(G=4, m=6)
    model = hlmext.meologit("y ~ x + (x | g)", df)
    fe, theta = np.array([0.6, -0.9, 0.2, 1.1]), np.array([1.1, 0.3, 0.7])
    lam = model.lams(theta)[0]
    grid = np.linspace(-7, 7, 561)
    u1, u2 = np.meshgrid(grid, grid, indexing="ij")
    u = np.stack([u1.ravel(), u2.ravel()], axis=1)
    prior = stats.norm.logpdf(u).sum(axis=1)
    cuts = np.concatenate([[-np.inf], fe[1:], [np.inf]])
    total = 0.0
    for _, rows in df.groupby("g"):
        Z = np.column_stack([np.ones(len(rows)), rows.x])
        eta = 0.6 * rows.x.to_numpy()[:, None] + Z @ lam @ u.T                 # (rows, grid)
        k = rows.y.to_numpy()[:, None]
        p = stats.logistic.cdf(cuts[k] - eta) - stats.logistic.cdf(cuts[k - 1] - eta)
        f = np.exp(np.log(p).sum(axis=0) + prior)
        total += np.log(f.sum() * (grid[1] - grid[0]) ** 2)
    assert model.loglike_theta(fe, theta, 15) == pytest.approx(total, rel=1e-7)
    assert abs(model.loglike_theta(fe, theta, 1) - total) > abs(model.loglike_theta(fe, theta, 15) - total)


def test_loglike_at_the_reported_parameters_and_fitted_rows(fitted, wine):
    assert fitted.model.loglike(np.asarray(fitted.params), nagq=7) == pytest.approx(fitted.llf, rel=1e-12)
    assert np.allclose(fitted.predict().to_numpy(), fitted.predict(wine).to_numpy())
    assert np.allclose(fitted.fittedvalues.to_numpy(), fitted.predict(conditional=True).to_numpy())
