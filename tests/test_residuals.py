"""Residual covariance structures (``mixedlm(..., residuals=...)``) against nlme, and their checks.

References: ``tests/reference/residuals/nlme_fits.R`` (nlme 3.1-162) wrote ``nlme_fits.json``
and the simulated ``sim_unstructured.csv``.
"""
import json
import pathlib
import pickle
import re

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import DataError, ModelError

HERE = pathlib.Path(__file__).parent / "reference" / "residuals"
REF = json.loads((HERE / "nlme_fits.json").read_text())
OVARY = hlmext.datasets.load("ovary")
BODY = hlmext.datasets.load("bodyweight")
ORTHO = hlmext.datasets.load("orthodont")
SIM = pd.read_csv(HERE / "sim_unstructured.csv")
OV = "follicles ~ sin2pi + cos2pi + (1 | Mare)"

CASES = {
    "ovary_ar1_REML": (lambda: hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion"), True),
    "ovary_ar1_ML": (lambda: hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion"), False),
    "ovary_exp_REML": (lambda: hlmext.mixedlm(OV, OVARY, residuals="exponential", time="Time"), True),
    "ovary_ar2_REML": (lambda: hlmext.mixedlm(OV, OVARY, residuals="ar2", time="occasion"), True),
    "ovary_ma1_REML": (lambda: hlmext.mixedlm(OV, OVARY, residuals="ma1", time="occasion"), True),
    "orthodont_exch_REML": (lambda: hlmext.mixedlm("distance ~ age + C(Sex) + (0 + age | Subject)", ORTHO,
                                                   residuals="exchangeable"), True),
    "bodyweight_by_REML": (lambda: hlmext.mixedlm("weight ~ Time * C(Diet) + (Time | Rat)", BODY,
                                                  residuals="independent", by="Diet"), True),
    "bodyweight_by_ML": (lambda: hlmext.mixedlm("weight ~ Time * C(Diet) + (Time | Rat)", BODY,
                                                residuals="independent", by="Diet"), False),
    "sim_unstructured_REML": (lambda: hlmext.mixedlm("y ~ x + occ + (1 | school)", SIM, residuals="unstructured",
                                                     time="occ", residual_group="student"), True),
}


def _r_name(name):
    """nlme's coefficient name in patsy's spelling."""
    name = name.replace("(Intercept)", "Intercept")
    name = re.sub(r"factor\((\w+)\)(\w+)", r"C(\1)[T.\2]", name)
    return re.sub(r"^Sex(\w+)$", r"C(Sex)[T.\1]", name)


def _nlme_variance(ref):
    """nlme's variance parameters in hlmext's reported order (after the levels' sd's)."""
    if "rho" in ref:
        return [ref["rho"]]
    if "phi" in ref:
        return list(np.atleast_1d(ref["phi"]))
    if "theta" in ref:
        return list(np.atleast_1d(ref["theta"]))
    sd = list(ref["sd_e"].values())
    if "corr" in ref:
        return sd[1:] + list(ref["corr"])
    return sd[:-1] + [sd[-1] / ref["sigma"] * ref["sigma"]]


_FITS = {}


def fitted(case):
    if case not in _FITS:
        build, reml = CASES[case]
        _FITS[case] = build().fit(reml=reml)
    return _FITS[case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_nlme(case):
    res, ref = fitted(case), REF[case]
    assert res.converged
    assert res.llf == pytest.approx(ref["llf"], rel=1e-6)
    fe_ref = pd.Series(ref["fe"]).rename(index=_r_name)
    se_ref = pd.Series(ref["se"]).rename(index=_r_name)
    fe, se = res.fe_params[fe_ref.index], res.bse_fe[se_ref.index]
    assert np.all(np.abs(fe - fe_ref) <= 0.01 * se_ref)
    np.testing.assert_allclose(se, se_ref, rtol=0.01)
    k = res.model.residual.n_params
    values = res.params.iloc[res.k_fe:].to_numpy()
    # the level's sd's, the residual structure's parameters and sigma, as nlme gives them
    level_sd = values[:-1 - k][~res.model.report_is_corr()[:-1 - k]]
    np.testing.assert_allclose(level_sd, list(ref["re_sd"].values()), rtol=1e-3)
    if "sd_e" in ref and "corr" not in ref:                 # by groups: every level's sd, sigma the last
        np.testing.assert_allclose(values[-1 - k:], list(ref["sd_e"].values()), rtol=1e-3)
    else:
        np.testing.assert_allclose(values[-1 - k:-1], _nlme_variance(ref), rtol=1e-3, atol=1e-6)
        assert values[-1] == pytest.approx(ref["sigma"], rel=1e-3)


def test_summary_in_stata_layout():
    res = fitted("ovary_ar1_ML")
    text = str(res.summary())
    assert "Residual: AR(1)" in text
    table = res.re_table
    assert list(table.loc["Residual"].index) == ["rho", "sd(e)"]
    assert np.all(np.isfinite(table["se"].to_numpy()))
    by = fitted("bodyweight_by_REML").re_table.loc["Residual"]
    assert list(by.index) == ["1: sd(e)", "2: sd(e)", "3: sd(e)"]
    un = fitted("sim_unstructured_REML").re_table.loc["Residual"]
    assert list(un.index[:4]) == ["sd(e1)", "sd(e2)", "sd(e3)", "sd(e4)"] and un.index[4] == "corr(e1,e2)"


def test_wcorrelation_is_the_model_implied_correlation():
    res = fitted("ovary_ar1_ML")
    tau2 = res.cov_re["Mare"].iloc[0, 0]
    sigma2, rho = res.scale, res.params["rho[Residual]"]
    w = res.wcorrelation(1)
    t = OVARY.occasion[w.index].to_numpy()
    expected = (tau2 + sigma2 * rho ** np.abs(t[:, None] - t[None, :])) / (tau2 + sigma2)
    np.testing.assert_allclose(w.to_numpy(), expected, rtol=1e-12)
    plain = hlmext.mixedlm(OV, OVARY).fit()
    icc = plain.cov_re["Mare"].iloc[0, 0] / (plain.cov_re["Mare"].iloc[0, 0] + plain.scale)
    assert plain.wcorrelation(1).iloc[0, 1] == pytest.approx(icc)
    with pytest.raises(KeyError, match="not a group"):
        res.wcorrelation(99)


def test_lr_test_between_residual_structures():
    ar1 = fitted("ovary_ar1_ML")
    plain = hlmext.mixedlm(OV, OVARY).fit(reml=False)
    lr = hlmext.lrtest(plain, ar1)
    # rho = 0 is inside the parameter space: the plain chi2(1) reference, not the boundary mixture
    assert (lr.df, lr.kind, lr.conservative) == (1, "chi2(1)", False)
    assert lr.statistic == pytest.approx(2 * (ar1.llf - plain.llf))
    ar2 = hlmext.mixedlm(OV, OVARY, residuals="ar2", time="occasion").fit(reml=False)
    assert hlmext.lrtest(ar1, ar2).kind == "chi2(1)"


def test_blups_and_fitted_values_use_the_structure():
    res = fitted("ovary_ar1_REML")
    plain = hlmext.mixedlm(OV, OVARY).fit()
    b = res.random_effects["Mare"].iloc[:, 0]
    assert not np.allclose(b, plain.random_effects["Mare"].iloc[:, 0], rtol=1e-3)
    fitted_values = res.fittedvalues
    marginal = res.predict()
    np.testing.assert_allclose(fitted_values - marginal, b[OVARY.Mare].to_numpy(), rtol=1e-12)


def test_pickles():
    res = fitted("ovary_ar1_REML")
    back = pickle.loads(pickle.dumps(res))
    assert back.llf == res.llf
    assert back.model.deviance(back.theta) == pytest.approx(-2 * res.llf)


def test_loglike_at_the_estimates():
    res = fitted("ovary_ar1_ML")
    assert res.model.loglike(res.params.to_numpy()) == pytest.approx(res.llf, rel=1e-10)


@pytest.mark.parametrize("kind", ["toeplitz1", "banded1", "ar1"])
def test_structures_that_nest_agree(kind):
    """Toeplitz(1) and AR(1) on consecutive occasions, banded(1) and unstructured: the likelihood at
    each structure's optimum is at least the independent model's (nested in all)."""
    df = ORTHO.assign(occ=(ORTHO.age - 8) // 2)
    base = hlmext.mixedlm("distance ~ age + C(Sex) + (0 + age | Subject)", df).fit(reml=False)
    res = hlmext.mixedlm("distance ~ age + C(Sex) + (0 + age | Subject)", df, residuals=kind, time="occ").fit(
        reml=False)
    assert res.llf >= base.llf - 1e-8
    independent = np.zeros(res.model.residual.n_params)       # psi = 0: independent errors of equal variance
    assert res.model.deviance(np.append(base.theta, independent), reml=False) == pytest.approx(-2 * base.llf)


# --------------------------------------------------------------------------- bad input

def test_unknown_structure_and_stray_keywords():
    with pytest.raises(ValueError, match="not a residual structure"):
        hlmext.mixedlm(OV, OVARY, residuals="ar(1)", time="occasion")
    with pytest.raises(TypeError, match="give residuals="):
        hlmext.mixedlm(OV, OVARY, time="occasion")
    with pytest.raises(ModelError, match="needs time="):
        hlmext.mixedlm(OV, OVARY, residuals="ar1")
    with pytest.raises(ModelError, match="by= applies"):
        hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion", by="Mare")


def test_duplicate_and_non_integer_times():
    dup = OVARY.assign(occasion=OVARY.occasion.where(OVARY.index != 1, 1))
    with pytest.raises(DataError, match="repeats the value 1 within a cluster"):
        hlmext.mixedlm(OV, dup, residuals="ar1", time="occasion")
    with pytest.raises(DataError, match="non-integer"):
        hlmext.mixedlm(OV, OVARY, residuals="ar1", time="Time")
    with pytest.raises(DataError, match="non-integer"):
        hlmext.mixedlm(OV, OVARY, residuals="ma1", time="Time")


def test_by_level_with_one_observation():
    df = BODY.assign(group=np.where(BODY.index == 0, "alone", "rest"))
    with pytest.raises(DataError, match="level 'alone' has 1 observation"):
        hlmext.mixedlm("weight ~ Time + (1 | Rat)", df, residuals="independent", by="group")


@pytest.mark.parametrize("kind, formula", [("exchangeable", "distance ~ age + (1 | Subject)"),
                                           ("unstructured", "distance ~ age + (0 + age | Subject)"),
                                           ("toeplitz", "distance ~ age + (1 | Subject)")])
def test_structures_not_identified_with_the_random_part(kind, formula):
    with pytest.raises(ModelError, match="not identified"):
        hlmext.mixedlm(formula, ORTHO, residuals=kind, time="age")


def test_weighted_and_robust_models_are_refused():
    with pytest.raises(ModelError, match="weights="):
        hlmext.mixedlm(OV, OVARY.assign(w=2.0), residuals="ar1", time="occasion", weights="w")
    with pytest.raises(ModelError, match="cov_type='cluster'"):
        hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion").fit(cov_type="cluster")


def test_residual_group_must_nest():
    with pytest.raises(DataError, match="does not nest"):
        hlmext.mixedlm("y ~ x + (1 | school)", SIM.assign(g=SIM.occ), residuals="exchangeable",
                       residual_group="g")


# --------------------------------------------------------------------------- Stata syntax

def test_stata_residuals_option_is_the_keyword_model():
    inline = hlmext.mixedlm("follicles ~ sin2pi + cos2pi || Mare:, residuals(ar 1, t(occasion))", OVARY).fit()
    assert inline.llf == pytest.approx(REF["ovary_ar1_REML"]["llf"], rel=1e-6)
    by = hlmext.mixedlm("weight ~ Time * C(Diet) || Rat: Time, cov(un) residuals(independent, by(Diet))", BODY)
    assert by.residual.label == "Independent, by Diet"
    un = hlmext.mixedlm("y ~ x + occ || school: || student:, noconstant residuals(un, t(occ))", SIM)
    fit = fitted("sim_unstructured_REML")                 # the keyword model's fit: the same likelihood
    assert un.deviance(fit.theta) == pytest.approx(-2 * fit.llf, rel=1e-12)
    with pytest.raises(TypeError, match="both give the residual structure"):
        hlmext.mixedlm("follicles ~ sin2pi || Mare:, residuals(ar 1, t(occasion))", OVARY, residuals="ma1")


def test_stata_crossed_syntax_fits_the_crossed_model():
    pen = hlmext.datasets.load("penicillin")
    stata = hlmext.mixedlm("diameter ~ 1 || _all: R.sample || plate:", pen).fit()
    lme4 = hlmext.mixedlm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen).fit()
    assert stata.llf == pytest.approx(lme4.llf, rel=1e-12)


@pytest.mark.parametrize("kind, time", [("ar1", "occasion"), ("exponential", "occasion")])
def test_statistics_without_a_pass_equal_the_whitened_rows(kind, time):
    """AR(1) and exponential with few distinct gaps combine statistics computed once; they equal those of
    the prewhitened rows (here with gaps: every third count dropped, nested in a made-up outer level)."""
    df = OVARY[OVARY.occasion % 3 != 0].assign(herd=OVARY.Mare // 4)
    model = hlmext.mixedlm("follicles ~ sin2pi + cos2pi + (1 | herd/Mare)", df, residuals=kind, time=time)
    d, structure = model.design, model.residual
    psi = np.array([0.55 if kind == "ar1" else 0.3])
    stats, G0, logdet = structure.statistics_at(psi, d, d.W)
    out = np.empty_like(d.W)
    assert structure.whiten(d.W, psi, out) == pytest.approx(logdet, rel=1e-12)
    expected = np.zeros(d.stat_size)
    hlmext._kernels.core.cross_products(out, d.zoff, d.level_first, d.row_start, d.row_end, d.stat_off, 0,
                                        expected, None)
    np.testing.assert_allclose(stats, expected, rtol=1e-10, atol=1e-9 * np.abs(expected).max())
    xy = out[:, d.zoff[-1]:]
    np.testing.assert_allclose(G0.reshape(xy.shape[1], -1), xy.T @ xy, rtol=1e-10)


# --------------------------------------------------------------------------- the same model elsewhere

def test_to_stata_and_nlme():
    ar1 = hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion")
    assert ar1.to_stata() == "mixed follicles sin2pi cos2pi || Mare:, residuals(ar 1, t(occasion)) reml"
    assert ar1.to_lme4(reml=False) == ("lme(follicles ~ sin2pi + cos2pi, random = ~ 1 | Mare, correlation = "
                                       "corAR1(form = ~ occasion | Mare), data = df, method = \"ML\")")
    un = hlmext.mixedlm("y ~ x + occ + (1 | school)", SIM, residuals="unstructured", time="occ",
                        residual_group="student")
    command = un.to_stata()
    assert command == "mixed y x occ || school: || student:, noconstant residuals(unstructured, t(occ)) reml"
    # the command, read back as a formula, is the same model
    back = hlmext.mixedlm("y ~ x + occ " + command.split("occ", 1)[1].replace(" reml", ""), SIM)
    assert back.residual.label == un.residual.label and back.residual.level == "student"
    assert "corSymm(form = ~ as.integer(factor(occ)) | school/student)" in un.to_lme4()
    by = hlmext.mixedlm("weight ~ Time + (Time | Rat)", BODY, residuals="independent", by="Diet")
    assert "residuals(independent, by(Diet))" in by.to_stata()
    assert "weights = varIdent(form = ~ 1 | Diet)" in by.to_lme4()


# --------------------------------------------------------------------------- precision weights

PW = json.loads((HERE / "lme4_precision_weights.json").read_text())


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_precision_weights_match_lme4(method):
    sleep = hlmext.datasets.load("sleepstudy")
    sleep["w"] = 0.5 + (sleep.Days % 4) / 2
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep, var_weights="w").fit(reml=method == "REML")
    ref = PW[method]
    assert res.llf == pytest.approx(ref["llf"], rel=1e-6)
    fe_ref, se_ref = pd.Series(ref["fe"]).rename(index=_r_name), pd.Series(ref["se"]).rename(index=_r_name)
    assert np.all(np.abs(res.fe_params[fe_ref.index] - fe_ref) <= 0.01 * se_ref)
    np.testing.assert_allclose(res.bse_fe[se_ref.index], se_ref, rtol=0.01)
    np.testing.assert_allclose(res.params.iloc[2:].to_numpy(), [ref["sd"][0], ref["sd"][1], ref["corr"],
                                                                ref["sigma"]], rtol=1e-3, atol=1e-3)
    assert "Residual:" not in str(res.summary())
    # the null of the LR test against the regression is the weighted regression
    X = res.model.design.exog
    w = res.model.var_weights
    y = res.model.design.endog
    beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    rss = np.sum(w * (y - X @ beta) ** 2)
    n = len(y)
    assert res.llnull == pytest.approx(-0.5 * (n * (1 + np.log(2 * np.pi * rss / n)) - np.sum(np.log(w))))


def test_weight_keywords():
    sleep = hlmext.datasets.load("sleepstudy").assign(w=2.0)
    f = "Reaction ~ Days + (1 | Subject)"
    assert hlmext.mixedlm(f, sleep, freq_weights="w").fit().llf == hlmext.mixedlm(f, sleep, weights="w").fit().llf
    with pytest.raises(TypeError, match="weights= and freq_weights= are the same"):
        hlmext.mixedlm(f, sleep, weights="w", freq_weights="w")
    with pytest.raises(DataError, match="var_weights must be positive"):
        hlmext.mixedlm(f, sleep.assign(w=sleep.Days - 1.0), var_weights="w")
    with pytest.raises(TypeError, match="did you mean"):
        hlmext.mixedlm(f, sleep, var_weight="w")
    # precision weights and AR(1) residuals together: Cov(e) = sigma^2 D R D
    both = hlmext.mixedlm(f, sleep, var_weights="w", residuals="ar1", time="Days").fit(reml=False)
    plain = hlmext.mixedlm(f, sleep, residuals="ar1", time="Days").fit(reml=False)
    # constant weights 2 only halve the residual variance
    assert both.params["sd(Residual)"] == pytest.approx(plain.params["sd(Residual)"] * np.sqrt(2), rel=1e-5)
    assert both.llf == pytest.approx(plain.llf, rel=1e-8)


def test_precision_weights_elsewhere():
    sleep = hlmext.datasets.load("sleepstudy").assign(w=1.5)
    m = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep, var_weights="w")
    assert m.to_lme4() == "lmer(Reaction ~ Days + (Days | Subject), weights = w, data = df)"
    assert m.to_stata().splitlines()[-1].startswith("// note: Stata's mixed has no precision weights")
    ar1 = hlmext.mixedlm("Reaction ~ Days + (1 | Subject)", sleep, var_weights="w", residuals="ar1", time="Days")
    assert "weights = varFixed(~ 1 / w)" in ar1.to_lme4()


def test_tools_not_yet_available_are_refused_by_name():
    res = hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion").fit()
    for call, what in [(lambda: res.profile_ci(), "profile_ci"), (lambda: res.bootstrap(n=2), "bootstrap"),
                       (lambda: res.simulate(), "simulate"), (lambda: res.icc(), "icc"),
                       (lambda: res.summary(dfmethod="satterthwaite"), "satterthwaite"),
                       (lambda: res.model.refit(res.model.design.endog), "refit")]:
        with pytest.raises(ModelError, match=what):
            call()


def test_results_without_their_rows_keep_working():
    res = hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion").fit()
    lr = res.lr_test_vs_regression().statistic
    res.remove_data()
    back = pickle.loads(pickle.dumps(res))
    assert back.lr_test_vs_regression().statistic == pytest.approx(lr)
    assert "Residual: AR(1)" in str(back.summary())
    with pytest.raises(ModelError, match="rows were removed"):
        back.model.deviance(back.theta + 0.01)


def _dense_loglike(res):
    """The ML log-likelihood from the marginal covariance of every innermost cluster, formed densely:
    V_j = Z_j G Z_j' + sigma^2 R_j (R_j from the structure's matrix, not from its whitening)."""
    model = res.model
    d = model.design
    psi = res.theta[model.k_theta:]
    r = d.endog - d.exog @ res.fe_params.to_numpy()
    G = res.cov_re[d.levels[0].name].to_numpy()
    out = 0.0
    for j in range(d.level_first[1]):
        rows = np.arange(d.row_start[j], d.row_end[j])
        Z = d.W[rows, :d.zoff[1]]
        V = Z @ G @ Z.T + res.scale * model.residual.matrix_for_rows(psi, rows)
        if model.var_weights is not None:
            s = 1 / np.sqrt(model.var_weights[rows])
            V = Z @ G @ Z.T + res.scale * s[:, None] * model.residual.matrix_for_rows(psi, rows) * s[None, :]
        _, logdet = np.linalg.slogdet(V)
        out += -0.5 * (logdet + r[rows] @ np.linalg.solve(V, r[rows]) + len(rows) * np.log(2 * np.pi))
    return out


@pytest.mark.filterwarnings("ignore")                 # some of these optima are on a boundary: the identity holds anyway
@pytest.mark.parametrize("kind", ["ar1", "ar2", "ma1", "toeplitz2", "banded1", "exponential", "exchangeable"])
def test_likelihood_equals_the_dense_marginal_likelihood(kind):
    """Every structure's ML fit against the likelihood computed from V_j directly (with gaps: some counts
    dropped; a random slope for exchangeable, which a random intercept would duplicate)."""
    df = ORTHO.assign(occ=(ORTHO.age - 8) // 2)
    df = df[~((df.occ == 2) & (df.Subject.str.endswith("1")))]
    formula = "distance ~ age + C(Sex) + (%s | Subject)" % ("0 + age" if kind == "exchangeable" else "1")
    res = hlmext.mixedlm(formula, df, residuals=kind, time="occ").fit(reml=False)
    assert res.llf == pytest.approx(_dense_loglike(res), rel=1e-10)


def test_by_groups_and_precision_weights_dense():
    df = ORTHO.assign(w=1 + (ORTHO.age - 8) / 4)
    for kwargs in (dict(residuals="independent", by="Sex"), dict(var_weights="w"),
                   dict(var_weights="w", residuals="ar1", time="age")):
        res = hlmext.mixedlm("distance ~ age + (1 | Subject)", df, **kwargs).fit(reml=False)
        assert res.llf == pytest.approx(_dense_loglike(res), rel=1e-10)


def test_frequency_and_precision_weights_together_are_refused():
    sleep = hlmext.datasets.load("sleepstudy").assign(w=2.0)
    with pytest.raises(ModelError, match="weights= together with var_weights="):
        hlmext.mixedlm("Reaction ~ Days + (1 | Subject)", sleep, var_weights="w", weights="w")


def _dense_loglike_all_rows(res):
    """The ML log-likelihood from the covariance of all rows at once (crossed levels make it one block)."""
    model = res.model
    d = model.design
    n = d.nobs
    V = np.zeros((n, n))
    for i, lv in enumerate(d.levels):
        Z = np.zeros((n, lv.n_groups * lv.q))
        for a in range(lv.q):
            Z[np.arange(n), lv.codes * lv.q + a] = d.z_of(i)[:, a]
        V += Z @ np.kron(np.eye(lv.n_groups), res.cov_re[lv.name].to_numpy()) @ Z.T
    R = model.residual.matrix_for_rows(res.theta[model.k_theta:], np.arange(n))
    if model.var_weights is not None:
        s = 1 / np.sqrt(model.var_weights)
        R = s[:, None] * R * s[None, :]
    V += res.scale * R
    r = d.endog - d.exog @ res.fe_params.to_numpy()
    return -0.5 * (np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r) + n * np.log(2 * np.pi))


@pytest.mark.parametrize("kwargs", [dict(residuals="ar1", time="t"), dict(residuals="toeplitz2", time="t"),
                                    dict(residuals="independent", by="sample"), dict(var_weights="w"),
                                    dict(residuals="ar1", time="t", var_weights="w")])
def test_crossed_random_effects_with_residual_structures(kwargs):
    """Plates crossed with samples: the residuals within plates enter Z' R^-1 D and D' R^-1 D (the
    likelihood against the dense covariance of all 144 rows)."""
    pen = hlmext.datasets.load("penicillin")
    pen = pen.assign(t=pen.groupby("plate").cumcount() + 1)
    pen = pen.assign(w=1 + (pen.t % 3) / 2)
    res = hlmext.mixedlm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, **kwargs).fit(reml=False)
    assert res.converged
    assert res.llf == pytest.approx(_dense_loglike_all_rows(res), rel=1e-10)
    if kwargs.get("residuals") == "ar1" and "var_weights" not in kwargs:
        stata = hlmext.mixedlm("diameter ~ 1 || _all: R.sample || plate:, residuals(ar 1, t(t))", pen)
        assert stata.deviance(res.theta, reml=False) == pytest.approx(-2 * res.llf, rel=1e-12)


def test_one_model_fitted_from_two_threads_at_once():
    # an evaluation puts the whitened statistics of its psi in place: fits of one model from several
    # threads must each be right (serialized), and equal to the serial fit bit for bit
    from concurrent.futures import ThreadPoolExecutor
    for structure, time in (("ar1", "occasion"), ("exponential", "Time")):
        serial = hlmext.mixedlm(OV, OVARY, residuals=structure, time=time).fit(reml=False)
        model = hlmext.mixedlm(OV, OVARY, residuals=structure, time=time)
        with ThreadPoolExecutor(2) as pool:
            fits = list(pool.map(lambda reml: model.fit(reml=reml), [False, True, False, True]))
        for res in fits[::2]:
            np.testing.assert_array_equal(res.params.to_numpy(), serial.params.to_numpy())
            assert res.llf == serial.llf
        reml = hlmext.mixedlm(OV, OVARY, residuals=structure, time=time).fit(reml=True)
        np.testing.assert_array_equal(fits[1].params.to_numpy(), reml.params.to_numpy())


def test_tools_of_independent_errors_refuse_residual_structures_and_precision_weights():
    ar1 = hlmext.mixedlm(OV, OVARY, residuals="ar1", time="occasion")
    weighted = hlmext.mixedlm(OV, OVARY, var_weights=np.linspace(1, 2, len(OVARY)))
    for model in (ar1, weighted):
        with pytest.raises(ModelError, match=r"fit_many\(\) is not available"):
            model.fit_many(np.c_[OVARY.follicles, OVARY.follicles * 2])
        res = model.fit()
        for call, what in ((lambda: res.hatvalues(), "hatvalues"), (lambda: res.cooks_distance(), "cooks_distance"),
                           (lambda: res.influence(), "influence"), (lambda: res.coef_table(), "coef_table"),
                           (lambda: res.residuals(kind="pearson"), "residuals"),
                           (lambda: res.get_prediction(), "get_prediction")):
            with pytest.raises(ModelError, match=what):
                call()
        pred = res.get_prediction(which="marginal")         # the fixed part: right whatever the errors
        X = res.model.exog
        np.testing.assert_allclose(pred.se_mean, np.sqrt(np.einsum("ij,jk,ik->i", X, res.cov_fe.to_numpy(), X)),
                                   rtol=1e-10)
        assert pred.se_obs is None and len(res.residuals()) == len(OVARY)
