"""meglm, meprobit, mecloglog and menbreg: the families and links beyond logit and log-Poisson.

References (R: lme4 glmer, glmmTMB; script ``tests/reference/families/make_refs.R``): glmmTMB for
the Laplace approximation (its Hessian is exact; glmer's uses the expected weights of its IRLS,
which differ with a non-canonical link), glmer for nagq = 7 with the saturated log-density its
AGQ log-likelihood leaves out added back.
"""
import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import hlmext
from conftest import REFERENCE
from hlmext._kernels import glmm as _glmm
from hlmext.exceptions import DataError, ModelError
from hlmext.models import links

FAMILIES = REFERENCE / "families"
L = sm.families.links


def ref(name):
    with open(FAMILIES / (name + ".json")) as fh:
        return json.load(fh)


def cbpp():
    return hlmext.datasets.load("cbpp")


def grouse():
    return hlmext.datasets.load("grouseticks")


def simulated(name):
    return pd.read_csv(FAMILIES / name)


FORMULA_CBPP = "incidence ~ C(period) + (1 | herd)"
FORMULA_GROUSE = "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)"


def fit_case(name):
    r = ref(name)
    if r["dataset"] == "cbpp":
        fn = hlmext.meprobit if r["link"] == "probit" else hlmext.mecloglog
        return r, fn(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=r["nagq"])
    if r["dataset"] == "grouseticks":
        disp = "mean" if r["family"] == "nbinom2" else "constant"
        return r, hlmext.menbreg(FORMULA_GROUSE, grouse(), dispersion=disp).fit(nagq=r["nagq"])
    fam = sm.families.Gamma(link=L.Log()) if r["family"] == "Gamma" else sm.families.Gaussian(link=L.Log())
    return r, hlmext.meglm(r["formula"], simulated(r["dataset"]), family=fam).fit(nagq=r["nagq"])


CASES = ["cbpp_probit_laplace", "cbpp_probit_agq7", "cbpp_cloglog_laplace", "cbpp_cloglog_agq7",
         "grouse_nb2_laplace", "grouse_nb1_laplace", "gamma_log_laplace", "gausslog_laplace"]


@pytest.mark.parametrize("name", CASES)
def test_reference_fit(name):
    r, res = fit_case(name)
    assert res.llf == pytest.approx(r["loglik"], rel=1e-4)
    for f in r["fixed"]:
        nm = f["name"].replace("period", "C(period)[T.").replace("YEAR", "C(YEAR)[T.")
        nm = {"(Intercept)": "Intercept"}.get(nm, nm if "[T." not in nm else nm + "]")
        assert abs(res.fe_params[nm] - f["estimate"]) < 0.02 * f["se"], nm
        assert res.bse_fe[nm] == pytest.approx(f["se"], rel=0.02), nm
    sd = float(res.re_params["estimate"].iloc[0])
    assert sd == pytest.approx(r["sd"], rel=1e-3)
    if "log_sd" in r:                             # glmmTMB: the se of log sd
        assert float(res.re_params["se"].iloc[0]) / sd == pytest.approx(r["log_sd"]["se"], rel=0.02)


@pytest.mark.parametrize("name, scale", [("grouse_nb2_laplace", -1.0), ("grouse_nb1_laplace", 1.0),
                                         ("gamma_log_laplace", 1.0), ("gausslog_laplace", 2.0)])
def test_dispersion_matches_glmmtmb(name, scale):
    """glmmTMB's log dispersion is -ln(alpha) (nbinom2), ln(delta), ln(shape), 2 ln(sigma)."""
    r, res = fit_case(name)
    log_phi = res.dispersion.iloc[0]
    assert scale * log_phi["estimate"] == pytest.approx(r["disp"]["estimate"], abs=0.02 * r["disp"]["se"])
    assert abs(scale) * log_phi["se"] == pytest.approx(r["disp"]["se"], rel=0.02)
    row = res.dispersion.iloc[1]
    assert row["estimate"] == pytest.approx(np.exp(log_phi["estimate"]))
    assert row["lower"] == pytest.approx(np.exp(log_phi["lower"]))


@pytest.mark.parametrize("name, dispersion", [("grouse_nb2_nested_laplace", "mean"),
                                              ("grouse_nb1_nested_laplace", "constant")])
def test_nested_negative_binomial_matches_glmmtmb(name, dispersion):
    """Broods within locations: the nested kernel's damped Newton steps reach the NB1 modes."""
    r = ref(name)
    res = hlmext.menbreg("TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)", grouse(),
                         dispersion=dispersion).fit(nagq=1)
    assert res.llf == pytest.approx(r["loglik"], rel=1e-6)
    sds = {d["level"]: d["sd"] for d in r["sds"]}
    assert res.params["sd(Intercept)[LOCATION]"] == pytest.approx(sds["LOCATION"], rel=1e-3)
    assert res.params["sd(Intercept)[LOCATION:BROOD]"] == pytest.approx(sds["BROOD:LOCATION"], rel=1e-3)
    assert np.exp(res.dispersion["estimate"].iloc[0]) == pytest.approx(
        r["sigma"] if dispersion == "constant" else 1 / r["sigma"], rel=1e-3)


def test_log_binomial_stops_at_the_edge_of_its_domain():
    """A log-binomial GLM whose maximum has a fitted probability of 1: the start and the fit keep a
    finite likelihood (the step that would cross the edge is not taken) and say they stopped."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=400)
    y = (rng.wald(np.exp(0.5 + 0.3 * x + 0.3 * rng.normal(size=40)[g]), 4.0) > 1.5) * 1
    fam = sm.families.Binomial(link=L.Log())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = hlmext.meglm("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family=fam).fit(nagq=1)
    assert any(issubclass(w.category, hlmext.ConvergenceWarning) for w in caught)
    assert np.isfinite(res.llf) and res.llf >= res.null_llf
    assert np.max(res.predict()) <= 1.0


def test_glmer_laplace_differs_with_a_noncanonical_link():
    """glmer's Laplace uses expected weights: below the exact Laplace (glmmTMB, ours) for probit."""
    r_exact, r_glmer = ref("cbpp_probit_laplace"), ref("cbpp_probit_laplace_glmer")
    res = hlmext.meprobit(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=1)
    assert res.llf == pytest.approx(r_exact["loglik"], rel=1e-6)
    assert abs(res.llf - r_glmer["loglik"]) > 0.01


# ------------------------------------------------------------------ the row function and gradients

ROWS = [((0, links.PROBIT, 1.0), "binomial", (-2, 2)), ((0, links.CLOGLOG, 1.0), "binomial", (-2, 1)),
        ((0, links.CAUCHIT, 1.0), "binomial", (-3, 3)), ((0, links.LOG, 1.0), "binomial", (-3, -0.1)),
        ((1, links.IDENTITY, 1.0), "count", (0.5, 4)), ((1, links.SQRT, 1.0), "count", (0.5, 2)),
        ((2, links.LOG, 2.5), "positive", (-1, 2)), ((2, links.INVERSE, 2.5), "positive", (0.2, 2)),
        ((3, links.IDENTITY, 1.3), "real", (-1, 3)), ((3, links.LOG, 1.3), "real", (-1, 2)),
        ((4, links.LOG, 0.7), "count", (-1, 3)), ((4, links.LOG, 1e-7), "count", (-1, 3)),
        ((5, links.LOG, 0.7), "count", (-1, 3)), ((5, links.LOG, 0.7), "large count", (4, 6)),
        ((6, links.INVERSE_SQUARED, 2.0), "positive", (0.2, 2)), ((6, links.LOG, 2.0), "positive", (-1, 1))]


def _rows(kind, n, rng):
    return {"binomial": lambda: rng.integers(0, 6, n).astype(float), "count": lambda: rng.integers(0, 30, n) * 1.0,
            "large count": lambda: rng.integers(150, 400, n) * 1.0, "positive": lambda: rng.gamma(2, 1, n),
            "real": lambda: rng.normal(2, 1, n)}[kind]()


@pytest.mark.parametrize("code, kind, span", ROWS)
def test_row_derivatives_match_finite_differences(code, kind, span):
    """row_loglik's score (y - mu), observed weight w = -l'' and dw = -l''' against differences."""
    rng = np.random.default_rng(3)
    y = _rows(kind, 40, rng)
    ntr = np.full(40, 5.0 if kind == "binomial" else 1.0)
    eta = rng.uniform(*span, 40)
    ll, mu, w, dw = _glmm.row_values(code, y, ntr, eta)
    h = 1e-5
    up, down = _glmm.row_values(code, y, ntr, eta + h), _glmm.row_values(code, y, ntr, eta - h)
    for value, k in ((y - mu, 0), (w, 1), (dw, 2)):
        fd = (up[k] - down[k]) / (2 * h)
        assert np.allclose(value, fd, rtol=1e-6, atol=1e-6)


def test_row_loglik_is_the_density_with_the_data_constant():
    rng = np.random.default_rng(4)
    y, eta = rng.integers(0, 20, 10).astype(float), rng.uniform(-1, 2, 10)
    mu, one = np.exp(eta), np.ones(10)

    def full(family, link, phi, yy, n=one, e=eta):
        spec = links.FamilySpec(family, link)
        return _glmm.row_values((family, link, phi), yy, n, e)[0] + spec.row_constant(yy, n)

    assert np.allclose(full(4, 1, 0.6, y), stats.nbinom.logpmf(y, 1 / 0.6, 1 / (1 + 0.6 * mu)))
    assert np.allclose(full(5, 1, 0.6, y), stats.nbinom.logpmf(y, mu / 0.6, 1 / 1.6))
    yg = rng.gamma(2, 1, 10)
    assert np.allclose(full(2, 1, 2.5, yg), stats.gamma.logpdf(yg, 2.5, scale=mu / 2.5))
    assert np.allclose(full(3, 1, 1.3, yg), stats.norm.logpdf(yg, mu, 1.3))
    assert np.allclose(full(6, 1, 2.0, yg), stats.invgauss.logpdf(yg, mu / 2.0, scale=2.0))
    yb, n5 = rng.integers(0, 6, 10).astype(float), np.full(10, 5.0)
    assert np.allclose(full(0, 2, 1.0, yb, n5, eta - 1), stats.binom.logpmf(yb, 5, stats.norm.cdf(eta - 1)))


def _fd_gradient(model, beta, theta, nagq, h=1e-6):
    x = np.concatenate([beta, theta])
    g = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        fp = model.loglike_theta(*np.split(x + e, [beta.size]), nagq)
        fm = model.loglike_theta(*np.split(x - e, [beta.size]), nagq)
        g[i] = (fp - fm) / (2 * h)
    return g


def _models():
    gt = grouse()
    gam = simulated("gamma_sim.csv")
    gsl = simulated("gausslog_sim.csv")
    return {
        "probit": hlmext.meprobit(FORMULA_CBPP, cbpp(), trials="size"),
        "cloglog slope": hlmext.mecloglog("incidence ~ C(period) + (1 + p2 | herd)",
                                          cbpp().assign(p2=lambda d: (d.period == 2) * 1.0), trials="size"),
        "nb2": hlmext.menbreg(FORMULA_GROUSE, gt),
        "nb1": hlmext.menbreg(FORMULA_GROUSE, gt, dispersion="constant"),
        "gamma inverse": hlmext.meglm("y ~ x + (1 | g)", gam, family=sm.families.Gamma()),
        "gaussian log": hlmext.meglm("y ~ x + (1 | g)", gsl, family=sm.families.Gaussian(link=L.Log())),
        "poisson sqrt": hlmext.meglm(FORMULA_GROUSE, gt, family=sm.families.Poisson(link=L.Sqrt())),
    }


@pytest.mark.parametrize("name", ["probit", "cloglog slope", "nb2", "nb1", "gamma inverse", "gaussian log",
                                  "poisson sqrt"])
@pytest.mark.parametrize("nagq", [1, 5])
def test_gradient_matches_finite_differences(name, nagq):
    """The kernels' Laplace and AGHQ gradients with the observed weights of non-canonical links
    (and, for the dispersion families, at the profiled dispersion: the envelope theorem)."""
    model = _models()[name]
    from hlmext.models.glm_start import glm_start
    beta = glm_start(model)[0]
    theta = 0.6 * np.ones(model.k_re) if model.k_re == 1 else np.array([0.5, 0.1, 0.3])
    beta = beta + 0.01
    ll, g = model.loglike_theta(beta, theta, nagq, grad=True)
    fd = _fd_gradient(model, beta, theta, nagq)
    assert np.allclose(g, fd, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(fd).max())), (g, fd)


def test_nested_laplace_gradient_probit():
    df = cbpp().assign(half=lambda d: (d.period.astype(int) > 2).astype(int))
    model = hlmext.meprobit("incidence ~ C(period) + (1 | herd/half)", df, trials="size")
    beta, theta = np.array([-0.8, -0.5, -0.6, -0.8]), np.array([0.2, 0.3])
    ll, g = model.loglike_theta(beta, theta, 1, grad=True)
    assert np.allclose(g, _fd_gradient(model, beta, theta, 1), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ what the results offer


def test_icc_on_the_links_latent_scale():
    for fn, latent in ((hlmext.meprobit, 1.0), (hlmext.mecloglog, np.pi ** 2 / 6), (hlmext.melogit, np.pi ** 2 / 3)):
        res = fn(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=1)
        v = float(res.re_params["estimate"].iloc[0]) ** 2
        assert float(res.icc()["icc"].iloc[0]) == pytest.approx(v / (v + latent))
    res = hlmext.menbreg(FORMULA_GROUSE, grouse()).fit(nagq=1)
    with pytest.raises(ValueError, match="logit, probit and cloglog"):
        res.icc()


def test_predict_uses_the_link():
    res = hlmext.meprobit(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=1)
    eta = res.predict(which="eta")
    assert np.allclose(res.predict(), stats.norm.cdf(eta))
    assert np.allclose(res.fittedvalues, stats.norm.cdf(res.predict(which="eta", conditional=True)) * cbpp()["size"])
    gam = hlmext.meglm("y ~ x + (1 | g)", simulated("gamma_sim.csv"),
                       family=sm.families.Gamma(link=L.Log())).fit(nagq=1)
    assert np.allclose(gam.predict(conditional=True), np.exp(gam.predict(which="eta", conditional=True)))


def test_summary_shows_the_dispersion_and_its_lr_test():
    res = hlmext.menbreg(FORMULA_GROUSE, grouse()).fit(nagq=1)
    text = str(res.summary(eform=True))
    assert "Mixed-effects nbinomial regression" in text and "IRR" in text
    assert "/lnalpha |  -1.195" in text and "alpha |   .30243" in text
    assert "LR test of alpha=0: chibar2(01) = 197.67" in text
    assert res.dispersion_lr["llf_poisson"] == pytest.approx(
        hlmext.mepoisson(FORMULA_GROUSE, grouse()).fit(nagq=1).llf, rel=1e-8)
    logit = hlmext.melogit(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=1)
    assert logit.dispersion is None and "/ln" not in str(logit.summary())


@pytest.mark.filterwarnings("ignore::hlmext.BoundaryWarning")
def test_dispersion_counts_as_a_parameter():
    """AIC and BIC count alpha (as glmmTMB's); LR tests refuse fits of different families or links."""
    nb = hlmext.menbreg(FORMULA_GROUSE, grouse()).fit(nagq=1)
    assert nb.k_params == 6 and nb.aic == pytest.approx(-2 * nb.llf + 12)
    probit = hlmext.meprobit(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=1)
    cloglog = hlmext.mecloglog("incidence ~ C(period) + (1 | herd) + (1 | period)", cbpp(), trials="size")
    with pytest.raises(ModelError, match="different families or links"):
        hlmext.lrtest(probit, cloglog.fit(nagq=1))


def test_nb_alpha_at_zero_is_the_poisson_model():
    """Poisson data: alpha goes to its lower end, the fit is the Poisson model's, the LR test 0."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=400)
    df = pd.DataFrame({"y": rng.poisson(np.exp(0.5 + 0.3 * x + 0.5 * rng.normal(size=40)[g])), "x": x, "g": g})
    nb = hlmext.menbreg("y ~ x + (1 | g)", df).fit(nagq=1)
    pois = hlmext.mepoisson("y ~ x + (1 | g)", df).fit(nagq=1)
    assert nb.llf == pytest.approx(pois.llf, abs=1e-4)
    assert nb.dispersion_lr["chibar2"] < 1e-3 and nb.dispersion_lr["pvalue"] > 0.45
    assert nb.dispersion.loc["alpha", "estimate"] < 1e-4


def test_simulate_and_bootstrap_draw_from_the_family():
    nb = hlmext.menbreg(FORMULA_GROUSE, grouse()).fit(nagq=1)
    sims = nb.simulate(n=200, seed=1).to_numpy()
    assert np.all(sims >= 0) and np.all(sims == np.round(sims))
    mu = nb.predict().to_numpy()
    # the NB2 variance exceeds the Poisson's: alpha mu^2 plus the random effects' share
    assert sims.var(axis=1).mean() > 2 * sims.mean(axis=1).mean()
    assert sims.mean() == pytest.approx(mu.mean() * np.exp(nb.re_params["estimate"].iloc[0] ** 2 / 2), rel=0.15)
    gam = hlmext.meglm("y ~ x + (1 | g)", simulated("gamma_sim.csv"), family=sm.families.Gamma(link=L.Log()))
    boot = gam.fit(nagq=1).bootstrap(n=4, seed=2, n_jobs=1)
    assert boot.replicates.shape == (4, 3) and np.all(np.isfinite(boot.replicates.to_numpy()))


def test_pickle_keeps_the_family_and_dispersion():
    res = hlmext.menbreg(FORMULA_GROUSE, grouse(), dispersion="constant").fit(nagq=1)
    back = pickle.loads(pickle.dumps(res))
    assert back.llf == res.llf and back.model.spec == res.model.spec
    pd.testing.assert_frame_equal(back.dispersion, res.dispersion)
    assert back.model.loglike(res.params.to_numpy(), nagq=1) == pytest.approx(res.llf, rel=1e-10)


def test_robust_se_and_weights():
    """Probit with cluster-robust standard errors and sampling weights (the dispersion families:
    ``test_family_robust.py``)."""
    df = cbpp()
    res = hlmext.meprobit(FORMULA_CBPP, df, trials="size").fit(nagq=1, cov_type="cluster")
    plain = hlmext.meprobit(FORMULA_CBPP, df, trials="size").fit(nagq=1)
    assert np.allclose(res.params, plain.params, atol=1e-5) and not np.allclose(res.bse, plain.bse)
    # observation weights of 2: each row counts twice in its herd, as the data with every row twice
    twice = hlmext.meprobit(FORMULA_CBPP, df.assign(w=2.0), trials="size", pweights="w").fit(nagq=1)
    doubled = hlmext.meprobit(FORMULA_CBPP, pd.concat([df, df]), trials="size").fit(nagq=1)
    assert np.allclose(twice.params, doubled.params, atol=1e-4)
    assert twice.llf == pytest.approx(doubled.llf, rel=1e-8)


def test_profile_interval_and_update():
    res = hlmext.meprobit(FORMULA_CBPP, cbpp(), trials="size").fit(nagq=1)
    ci = res.profile_ci(cols=["sd(Intercept)[herd]"])
    lo, hi = ci.loc["sd(Intercept)[herd]"]
    assert lo < 0.3386 < hi
    small = res.update(". ~ . - C(period)")
    assert small.model.spec.link == links.PROBIT and small.llf < res.llf
    assert hlmext.lrtest(small, res).statistic > 0


def test_boundary_invariant_per_family():
    """The fit is never below its GLM without random effects (statsmodels' GLM for fixed phi)."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(30), 6)
    x = rng.normal(size=180)
    y = (rng.uniform(size=180) < stats.norm.cdf(0.3 * x)).astype(float)      # no cluster effect
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    for fam in (sm.families.Binomial(link=L.Probit()), sm.families.Binomial(link=L.CLogLog())):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = hlmext.meglm("y ~ x + (1 | g)", df, family=fam).fit(nagq=3)
        glm = sm.GLM(y, sm.add_constant(x), family=fam).fit()
        assert res.llf >= glm.llf - 1e-6 * abs(glm.llf)


# ------------------------------------------------------------------ bad input


def test_unsupported_family_or_link_lists_what_is():
    df = cbpp()
    with pytest.raises(ValueError, match=r"Tweedie.*Binomial \(logit, probit, cloglog, cauchit, log\)"):
        hlmext.meglm(FORMULA_CBPP, df, family=sm.families.Tweedie())
    with pytest.raises(ValueError, match="Binomial family does not take the LogLog link; its links are logit, probit"):
        hlmext.meglm("incidence ~ 1 + (1 | herd)", df, family=sm.families.Binomial(link=L.LogLog()), trials="size")
    with pytest.raises(ValueError, match="menbreg"):
        hlmext.meglm("incidence ~ 1 + (1 | herd)", df, family=sm.families.NegativeBinomial(alpha=1.0))
    with pytest.raises(TypeError, match="instance"):
        hlmext.meglm("incidence ~ 1 + (1 | herd)", df, family=sm.families.Gamma)
    with pytest.raises(ValueError, match="'mean'.*'constant'"):
        hlmext.menbreg(FORMULA_GROUSE, grouse(), dispersion="nb2")


@pytest.mark.parametrize("fn, kwargs", [(hlmext.meglm, {"family": sm.families.Poisson()}), (hlmext.meprobit, {}),
                                        (hlmext.mecloglog, {}), (hlmext.menbreg, {})])
def test_unknown_keywords_are_refused(fn, kwargs):
    with pytest.raises(TypeError, match="nAGQ"):
        fn("TICKS ~ 1 + (1 | BROOD)", grouse(), nAGQ=7, **kwargs)


def test_bad_responses():
    gt = grouse()
    with pytest.raises(DataError, match="non-negative whole-number count.*negative binomial"):
        hlmext.menbreg("y ~ 1 + (1 | BROOD)", gt.assign(y=gt.TICKS - 0.5))
    with pytest.raises(DataError, match="non-negative whole-number count"):
        hlmext.menbreg("y ~ 1 + (1 | BROOD)", gt.assign(y=gt.TICKS - 1))
    with pytest.raises(DataError, match="must be positive for a Gamma model; .* rows are <= 0"):
        hlmext.meglm("TICKS ~ 1 + (1 | BROOD)", gt, family=sm.families.Gamma(link=L.Log()))
    with pytest.raises(DataError, match="must be 0 or 1 for a binomial \\(probit\\) model without trials"):
        hlmext.meprobit("incidence ~ 1 + (1 | herd)", cbpp())
    with pytest.raises(DataError, match="exceeds trials"):
        hlmext.mecloglog("incidence ~ 1 + (1 | herd)", cbpp().assign(size=1), trials="size")
    with pytest.raises(DataError, match="trials apply to the binomial family only"):
        hlmext.meglm("incidence ~ 1 + (1 | herd)", cbpp(), family=sm.families.Poisson(), trials="size")
