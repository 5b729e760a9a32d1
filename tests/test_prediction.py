"""get_prediction, population-averaged means, margins and coef_table (issue: prediction and margins).

References: ``tests/reference/prediction/prediction.R`` (lme4 1.1-31 has no ``predict(se.fit=TRUE)``:
conditional standard errors are checked against Henderson's mixed-model equations formed
densely here; emmeans for marginal means and pairwise contrasts); population-averaged means
against numerical integration.
"""
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

import hlmext
from conftest import load_reference

REF = load_reference("prediction", "prediction")


@pytest.fixture(scope="module")
def sleep():
    df = hlmext.datasets.load("sleepstudy")
    return df, hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()


@pytest.fixture(scope="module")
def cbpp():
    df = hlmext.datasets.load("cbpp")
    return df, hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)


@pytest.fixture(scope="module")
def exam():
    df = hlmext.datasets.load("exam")
    return df, hlmext.mixedlm("normexam ~ standLRT + C(schgend) + (1 | school)", df).fit()


def henderson(df, res):
    """Dense prediction-error covariance of (beta, b) of the sleepstudy fit: sigma^2 C^{-1}."""
    subjects = np.sort(df["Subject"].unique())
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    Z = np.zeros((len(df), 2 * len(subjects)))
    g = np.searchsorted(subjects, df["Subject"])
    Z[np.arange(len(df)), 2 * g] = 1.0
    Z[np.arange(len(df)), 2 * g + 1] = df["Days"]
    S = res.cov_re["Subject"].to_numpy()
    Ginv = np.kron(np.eye(len(subjects)), np.linalg.inv(S))
    s2 = res.scale
    M = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + s2 * Ginv]])
    return X, Z, s2 * np.linalg.inv(M), subjects


def test_conditional_se_is_hendersons_prediction_error(sleep):
    df, res = sleep
    X, Z, C, _ = henderson(df, res)
    W = np.hstack([X, Z])
    want = np.sqrt(np.einsum("ij,jk,ik->i", W, C, W))
    frame = res.get_prediction().summary_frame()
    np.testing.assert_allclose(frame["mean_se"], want, rtol=1e-6)
    np.testing.assert_allclose(frame["mean"], res.fittedvalues, rtol=1e-10)
    np.testing.assert_allclose(res.get_prediction(df.iloc[::7]).se_mean, want[::7], rtol=1e-6)
    obs = frame["obs_ci_upper"] - frame["mean"]
    np.testing.assert_allclose(obs, 1.959963984540054 * np.sqrt(want ** 2 + res.scale), rtol=1e-6)


def test_marginal_se_is_from_the_fixed_effects(sleep):
    df, res = sleep
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    pred = res.get_prediction(which="marginal")
    np.testing.assert_allclose(pred.predicted_mean, X @ res.fe_params, rtol=1e-10)
    np.testing.assert_allclose(pred.se_mean, np.sqrt(np.einsum("ij,jk,ik->i", X, res.cov_fe, X)), rtol=1e-10)
    np.testing.assert_allclose(res.get_prediction(X[:3], which="marginal").se_mean, pred.se_mean[:3], rtol=1e-10)


def test_new_groups_error_or_population_variance(sleep):
    df, res = sleep
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": [999, 999]})
    with pytest.raises(ValueError, match="new_groups='population'"):
        res.get_prediction(new)
    pred = res.get_prediction(new, new_groups="population").summary_frame()
    X = np.column_stack([np.ones(2), new["Days"]])
    Z = X
    var = np.einsum("ij,jk,ik->i", X, res.cov_fe, X) + np.einsum("ij,jk,ik->i", Z, res.cov_re["Subject"], Z)
    np.testing.assert_allclose(pred["mean"], X @ res.fe_params, rtol=1e-10)
    np.testing.assert_allclose(pred["mean_se"], np.sqrt(var), rtol=1e-10)


def test_marginal_predictions_need_no_grouping_column(sleep, cbpp):
    df, res = sleep
    days = pd.DataFrame({"Days": [0.0, 3.0]})
    np.testing.assert_allclose(res.get_prediction(days, which="marginal").predicted_mean,
                               res.fe_params["Intercept"] + days["Days"] * res.fe_params["Days"], rtol=1e-12)
    with pytest.raises(hlmext.FormulaError, match="'Subject'"):
        res.get_prediction(days)
    df, lg = cbpp
    periods = pd.DataFrame({"period": [1, 2]})
    assert np.all(lg.predict(periods, which="marginal") > lg.predict(periods))


def test_bad_arguments_are_named(sleep):
    df, res = sleep
    with pytest.raises(ValueError, match="which must be one of"):
        res.get_prediction(which="mu")
    with pytest.raises(ValueError, match="new_groups must be"):
        res.get_prediction(new_groups="zero")
    with pytest.raises(TypeError, match="'level'"):
        res.get_prediction(level=0.9)
    with pytest.raises(ValueError, match="obs=True"):
        hlmext.melogit("incidence ~ 1 + (1 | herd)", hlmext.datasets.load("cbpp"),
                       trials="size").fit(nagq=1).get_prediction().conf_int(obs=True)


def test_glmm_conditional_mean_by_delta_method(cbpp):
    df, res = cbpp
    lin = res.get_prediction(which="linear")
    mu = res.get_prediction()
    eta = lin.predicted_mean.to_numpy()
    np.testing.assert_allclose(eta, res.predict(which="eta", conditional=True), rtol=1e-10)
    p = special.expit(eta)
    np.testing.assert_allclose(mu.predicted_mean, p, rtol=1e-10)
    np.testing.assert_allclose(mu.se_mean, p * (1 - p) * lin.se_mean, rtol=1e-10)
    np.testing.assert_allclose(mu.conf_int(), special.expit(lin.conf_int()), rtol=1e-10)


def test_glmm_conditional_se_against_joint_laplace_covariance(cbpp):
    """Linear-predictor se = sqrt((x - E'z)'V(x - E'z) + z'C z) with E, C from the Laplace Hessian."""
    df, res = cbpp
    herds = np.sort(df["herd"].unique())
    X = np.column_stack([np.ones(len(df))] + [(df["period"] == k).to_numpy(float) for k in (2, 3, 4)])
    g = np.searchsorted(herds, df["herd"])
    b = res.random_effects["herd"]["Intercept"].to_numpy()[g]
    p = special.expit(X @ res.fe_params.to_numpy() + b)
    w = df["size"].to_numpy() * p * (1 - p)
    s = res.cov_re["herd"].to_numpy()[0, 0]
    H = np.bincount(g, w) + 1 / s                        # b-scale precision of each herd's effect
    E = np.array([np.bincount(g, w * X[:, j]) for j in range(4)]).T / H[:, None]
    a = X - E[g]
    want = np.sqrt(np.einsum("ij,jk,ik->i", a, res.cov_fe.to_numpy(), a) + 1 / H[g])
    np.testing.assert_allclose(res.get_prediction(which="linear").se_mean, want, rtol=1e-6)


def _brute(eta0, sd, inverse):
    return integrate.quad(lambda s: inverse(eta0 + sd * s) * np.exp(-s * s / 2) / np.sqrt(2 * np.pi),
                          -40, 40, epsabs=1e-13, epsrel=1e-12)[0]


def test_population_averaged_logit_mean_by_integration(cbpp):
    df, res = cbpp
    sd = float(np.sqrt(res.cov_re["herd"].iloc[0, 0]))
    eta0 = res.predict(which="eta")
    want = [_brute(e, sd, special.expit) for e in eta0[:8]]
    np.testing.assert_allclose(res.predict(df, which="marginal")[:8], want, rtol=1e-4)
    np.testing.assert_allclose(res.predict(which="marginal")[:8], want, rtol=1e-4)
    assert abs(res.predict(df, which="marginal")[0] - special.expit(eta0[0])) > 1e-3   # not the b = 0 mean


def test_population_averaged_mean_with_a_slope_and_large_variance():
    from hlmext.results.marginal_means import population_mean
    from statsmodels.genmod.families import links
    for eta0, v in [(-1.0, 0.3), (2.0, 9.0), (0.5, 25.0), (-3.0, 36.0), (4.0, 100.0), (-8.0, 0.01)]:
        np.testing.assert_allclose(population_mean(links.Logit(), eta0, v), _brute(eta0, np.sqrt(v), special.expit),
                                   rtol=1e-9)
        np.testing.assert_allclose(population_mean(links.Log(), eta0, v), _brute(eta0, np.sqrt(v), np.exp),
                                   rtol=1e-9)


def test_poisson_marginal_mean_closed_form_and_delta_se():
    df = hlmext.datasets.load("grouseticks")
    res = hlmext.mepoisson("TICKS ~ YEAR + (1 | BROOD)", df).fit(nagq=1)
    pred = res.get_prediction(df.head(3), which="marginal")
    s2 = res.cov_re["BROOD"].iloc[0, 0]
    eta0 = res.predict(df.head(3), which="eta")
    np.testing.assert_allclose(pred.predicted_mean, np.exp(eta0 + s2 / 2), rtol=1e-10)
    # delta method by hand: d mu / d beta = mu x, d mu / d sd = mu sd
    X = np.column_stack([np.ones(3), df["YEAR"].head(3)])
    mu = pred.predicted_mean.to_numpy()
    sd = np.sqrt(s2)
    J = np.column_stack([mu[:, None] * X, mu * sd])
    C = np.asarray(res.cov_params())
    np.testing.assert_allclose(pred.se_mean, np.sqrt(np.einsum("ij,jk,ik->i", J, C, J)), rtol=1e-5)
    lo, hi = pred.conf_int().T
    assert np.all(lo > 0) and np.all(lo < mu) and np.all(mu < hi)


def test_margins_match_emmeans_linear(exam):
    df, res = exam
    m = res.margins(df, at={"schgend": [1, 2, 3]})
    np.testing.assert_allclose(m["margin"], REF["exam_emm"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(m["se"], REF["exam_emm"]["se"], rtol=1e-6)
    pw = res.margins(df, at={"schgend": [1, 2, 3]}, contrast="pairwise")
    np.testing.assert_allclose(pw["contrast"], REF["exam_pairs"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(pw["se"], REF["exam_pairs"]["se"], rtol=1e-6)
    # a p-value of 0.015 moves 10 times more (relative) than its z statistic: rtol 1e-5
    np.testing.assert_allclose(pw["pvalue"], REF["exam_pairs"]["p"], rtol=1e-5)
    tukey = res.margins(df, at={"schgend": [1, 2, 3]}, contrast="pairwise", adjust="tukey")
    np.testing.assert_allclose(tukey["pvalue"], REF["exam_pairs_tukey"]["p"], rtol=1e-5)


def test_margins_match_emmeans_logit(cbpp):
    df, res = cbpp
    np.testing.assert_allclose(res.fe_params, REF["cbpp_fixef"], rtol=1e-4)
    m = res.margins(df, at={"period": [1, 2, 3, 4]})
    np.testing.assert_allclose(m["margin"], REF["cbpp_emm"]["prob"], rtol=1e-4)
    np.testing.assert_allclose(m["se"], REF["cbpp_emm"]["se"], rtol=1e-4)
    pw = res.margins(df, at={"period": [1, 2, 3, 4]}, contrast="pairwise")
    np.testing.assert_allclose(pw["contrast"], REF["cbpp_pairs"]["estimate"], rtol=1e-4)
    np.testing.assert_allclose(pw["se"], REF["cbpp_pairs"]["se"], rtol=1e-4)
    np.testing.assert_allclose(pw["pvalue"], REF["cbpp_pairs"]["p"], rtol=1e-4)


def test_average_marginal_effect_and_population_averaged_margins(cbpp, exam):
    df, res = exam
    ame = res.margins(df, dydx="standLRT")
    np.testing.assert_allclose(ame["dydx"].iloc[0], res.fe_params["standLRT"], rtol=1e-6)
    np.testing.assert_allclose(ame["se"].iloc[0], res.bse_fe["standLRT"], rtol=1e-5)
    by = res.margins(df, at={"schgend": [1, 2]}, over="sex")
    assert by.index.names == ["sex", "schgend"] and len(by) == 4
    df, lg = cbpp
    pa = lg.margins(df, at={"period": [1, 2]}, population_averaged=True)
    np.testing.assert_allclose(pa["margin"].iloc[0], lg.predict(df[df.period == 1].head(1), which="marginal")[0],
                               rtol=1e-8)
    with pytest.raises(ValueError, match="not numeric"):
        res.margins(exam[0], dydx="sex")
    with pytest.raises(ValueError, match="adjust must be"):
        lg.margins(df, at={"period": [1, 2]}, contrast="pairwise", adjust="scheffe")


def test_coef_table_se_is_prediction_error_of_beta_plus_b(sleep):
    df, res = sleep
    X, Z, C, subjects = henderson(df, res)
    table = res.coef_table()
    np.testing.assert_allclose(table["estimate"].to_numpy().reshape(-1, 2), res.coef().to_numpy(), rtol=1e-10)
    for i in (0, 5, 17):
        for j in range(2):
            v = np.zeros(C.shape[0])
            v[j] = v[2 + 2 * i + j] = 1.0
            se = table.loc[(subjects[i], ["Intercept", "Days"][j]), "se"]
            np.testing.assert_allclose(se, np.sqrt(v @ C @ v), rtol=1e-6)


def test_nested_levels_conditional_se_is_hendersons():
    pastes = hlmext.datasets.load("pastes")
    res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit()
    pred = res.get_prediction()
    np.testing.assert_allclose(pred.predicted_mean, res.fittedvalues, rtol=1e-12)
    n = len(pastes)
    batches = np.sort(pastes["batch"].unique())
    key = pastes["batch"].astype(str) + ":" + pastes["cask"].astype(str)
    casks = np.sort(key.unique())
    Z = np.zeros((n, len(batches) + len(casks)))
    Z[np.arange(n), np.searchsorted(batches, pastes["batch"])] = 1.0
    Z[np.arange(n), len(batches) + np.searchsorted(casks, key)] = 1.0
    prec = np.r_[np.full(len(batches), 1 / res.cov_re["batch"].iloc[0, 0]),
                 np.full(len(casks), 1 / res.cov_re["batch:cask"].iloc[0, 0])]
    W = np.hstack([np.ones((n, 1)), Z])
    M = W.T @ W
    M[1:, 1:] += res.scale * np.diag(prec)
    want = np.sqrt(np.einsum("ij,jk,ik->i", W, res.scale * np.linalg.inv(M), W))
    np.testing.assert_allclose(pred.se_mean, want, rtol=1e-6)
    # a cask the fit did not see in a batch it did: the batch's effect, the cask's variance added
    new = res.get_prediction(pd.DataFrame({"batch": ["A"], "cask": ["z"]}), new_groups="population")
    v = np.zeros(W.shape[1])
    v[0] = v[1 + np.searchsorted(batches, "A")] = 1.0      # intercept + batch A's effect
    var = v @ (res.scale * np.linalg.inv(M)) @ v + res.cov_re["batch:cask"].iloc[0, 0]
    np.testing.assert_allclose(new.se_mean.iloc[0], np.sqrt(var), rtol=1e-6)
    np.testing.assert_allclose(new.predicted_mean.iloc[0],
                               res.fe_params.iloc[0] + res.random_effects["batch"].loc["A"].iloc[0], rtol=1e-12)
    # group-level coefficients: each level's own effect (lme4's coef()), its prediction error
    table = res.coef_table()
    np.testing.assert_allclose(table["batch"].loc[("A", "Intercept"), "se"],
                               np.sqrt(v @ (res.scale * np.linalg.inv(M)) @ v), rtol=1e-6)
    w = np.zeros(W.shape[1])
    w[0] = w[1 + len(batches) + np.searchsorted(casks, "A:b")] = 1.0
    np.testing.assert_allclose(table["batch:cask"].loc[("A:b", "Intercept"), "se"],
                               np.sqrt(w @ (res.scale * np.linalg.inv(M)) @ w), rtol=1e-6)
    np.testing.assert_allclose(table["batch:cask"]["estimate"].to_numpy(), res.coef()["batch:cask"]["Intercept"],
                               rtol=1e-12)


def test_results_pickle_after_predictions():
    import pickle
    pastes = hlmext.datasets.load("pastes")
    res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit()
    se = res.get_prediction().se_mean
    again = pickle.loads(pickle.dumps(res))
    np.testing.assert_allclose(again.get_prediction(pastes).se_mean, se, rtol=1e-12)


def test_whole_system_route_equals_one_level_blocks(cbpp):
    from hlmext.results import predict_levels, rowsets
    df, res = cbpp
    eta, var = predict_levels.levels_eta(res, rowsets.fitted_rows(res), False)
    lin = res.get_prediction(which="linear")
    np.testing.assert_allclose(eta, lin.predicted_mean, rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(var), lin.se_mean, rtol=1e-10)
