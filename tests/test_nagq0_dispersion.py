"""fit(nagq=0) of the families with a dispersion parameter: log phi a coordinate of the outer
optimizer (glmer.nb(nAGQ = 0) for NB2; a direct computation for the Gamma, where glmer is not ML)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize
from scipy.special import gammaln

import hlmext
from conftest import load_reference
from glmm_helpers import patsy_name
from hlmext.models import nagq0, nagq0_dispersion

GAMMA_CSV = Path(__file__).parent / "reference" / "families" / "gamma_sim.csv"
GAUSSLOG_CSV = Path(__file__).parent / "reference" / "families" / "gausslog_sim.csv"


def grouse_nb2(formula="TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)"):
    return hlmext.menbreg(formula, hlmext.datasets.load("grouseticks"))


def gamma_model():
    gamma = sm.families.Gamma(link=sm.families.links.Log())
    return hlmext.meglm("y ~ x + (1 | g)", pd.read_csv(GAMMA_CSV), family=gamma)


def test_nb2_nagq0_matches_glmer_nb():
    ref = load_reference("grouse_nb2_nagq0", "nagq0")
    res = grouse_nb2().fit(nagq=0)
    assert res.converged and res.nagq == 0
    # glmer's Laplace uses the expected weights of NB2 in its log-determinant (ours the observed
    # ones, as for its Laplace fit): the optima differ a little, within the tolerances of nagq=0
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-4)
    names = [patsy_name(f["name"]) for f in ref["fixed"]]
    est = np.array([f["estimate"] for f in ref["fixed"]])
    se = np.array([f["se"] for f in ref["fixed"]])
    np.testing.assert_array_less(np.abs(res.fe_params[names].values - est), 0.02 * se)
    np.testing.assert_allclose(res.bse_fe[names].values, se, rtol=0.02)
    assert res.params["sd(Intercept)[BROOD]"] == pytest.approx(ref["random"][0]["sd"], rel=1e-3)
    disp = res.dispersion
    assert abs(disp.loc["alpha", "estimate"] - ref["alpha"]) < 0.02 * disp.loc["alpha", "se"]
    assert "Integration method: Laplace (nagq=0)" in str(res.summary())


def test_nb2_nagq0_joint_mode_and_loglik_are_glmer_nb_s():
    """At glmer.nb's (theta, alpha) the joint mode is its beta, and its logLik is the Laplace
    value at that mode with the expected weights mu / (1 + alpha mu) in log det H."""
    ref = load_reference("grouse_nb2_nagq0", "nagq0")
    model = grouse_nb2()
    theta, alpha = np.array([ref["random"][0]["sd"]]), ref["alpha"]
    model._set_log_phi(np.log(alpha))
    prof = nagq0._Profile(model, theta, np.zeros(model.k_fe))
    np.testing.assert_allclose(prof.beta, [f["estimate"] for f in ref["fixed"]], atol=1e-7)
    model._u[:] = prof.u
    model._kernel(prof.beta, theta, 1, False)
    mu = np.exp(model._eta)
    logdet = np.sum(np.log1p(np.add.reduceat(model._zl[:, 0] ** 2 * mu / (1 + alpha * mu), model._rows[0])))
    assert prof.h + model._const - 0.5 * logdet == pytest.approx(ref["loglik"], abs=1e-5)


def _gamma_laplace(y, X, g, theta, t, beta0):
    """An independent evaluator: the joint mode of (beta, u) of the Gamma (log link, shape e^t)
    by Newton's method on the dense system, and the Laplace log-likelihood there."""
    shape, G, p = np.exp(t), g.max() + 1, X.shape[1]
    Z = np.zeros((y.size, G))
    Z[np.arange(y.size), g] = theta
    A = np.hstack([X, Z])
    x = np.concatenate([beta0, np.zeros(G)])
    pen = np.concatenate([np.zeros(p), np.ones(G)])
    for _ in range(50):
        mu = np.exp(A @ x)
        grad = A.T @ (shape * (y / mu - 1)) - pen * x
        hess = A.T @ (A * (shape * y / mu)[:, None]) + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        x += step
        if np.max(np.abs(step)) < 1e-12:
            break
    mu = np.exp(A @ x)
    ll = np.sum(shape * np.log(shape * y / mu) - shape * y / mu - np.log(y) - gammaln(shape))
    w = shape * y / mu
    logdet = np.sum(np.log1p(theta ** 2 * np.bincount(g, weights=w)))
    return ll - 0.5 * x[p:] @ x[p:] - 0.5 * logdet, x[:p]


def test_gamma_nagq0_is_the_maximum_of_a_direct_computation():
    """glmer(family = Gamma, nAGQ = 0) is not ML in the shape (its penalized IRLS leaves the shape
    out; tests/reference/nagq0/gamma_log_nagq0.json): the fit is checked against an independent
    evaluator of the Laplace likelihood at the joint mode, maximized over (theta, log shape)."""
    df = pd.read_csv(GAMMA_CSV)
    y, X, g = df["y"].to_numpy(), np.column_stack([np.ones(len(df)), df["x"]]), df["g"].to_numpy() - 1
    res = gamma_model().fit(nagq=0)
    assert res.converged and res.nagq == 0
    theta, t = res.theta[0], res.dispersion.loc["/lnshape", "estimate"]
    ll, beta = _gamma_laplace(y, X, g, theta, t, np.zeros(2))
    assert res.llf == pytest.approx(ll, abs=1e-8)
    np.testing.assert_allclose(res.fe_params.to_numpy(), beta, atol=1e-8)
    best = optimize.minimize(lambda v: -_gamma_laplace(y, X, g, v[0], v[1], beta)[0], [theta + 0.05, t - 0.05],
                             method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-11})
    assert res.llf >= -best.fun - 1e-9
    np.testing.assert_allclose(best.x, [theta, t], atol=2e-4)
    laplace = gamma_model().fit(nagq=1)               # the same likelihood maximized over beta too
    assert laplace.llf > res.llf
    ref = load_reference("gamma_log_nagq0", "nagq0")  # glmer's: another estimator
    assert abs(res.params["sd(Intercept)[g]"] - ref["random"][0]["sd"]) > 0.05


def other_model(case):
    if case == "nb1":
        return hlmext.menbreg("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", hlmext.datasets.load("grouseticks"),
                              dispersion="constant")
    df = pd.read_csv(GAUSSLOG_CSV)
    fam = {"gausslog": sm.families.Gaussian(link=sm.families.links.Log()),
           "invgauss": sm.families.InverseGaussian(link=sm.families.links.Log())}[case]
    return hlmext.meglm("y ~ x + (1 | g)", df, family=fam)


@pytest.mark.parametrize("case", ["nb2", "gamma", "nb2_nested", "nb1", "gausslog", "invgauss"])
def test_nagq0_dispersion_gradient_matches_finite_differences(case):
    model = {"nb2": grouse_nb2, "gamma": gamma_model,
             "nb2_nested": lambda: grouse_nb2("TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)")}.get(
        case, lambda: other_model(case))()
    obj = nagq0_dispersion._Objective(model, np.zeros(model.k_fe))
    x = np.append(np.full(model.k_re, 0.6), {"gamma": 1.0, "gausslog": 0.5, "invgauss": 2.0}.get(case, -0.8))
    g = obj.grad(x)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = 1e-4
        fd = (obj.value(x + e) - obj.value(x - e)) / 2e-4
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-5)


def test_nagq0_dispersion_evaluations_are_at_the_fitted_dispersion():
    model = grouse_nb2()
    res = model.fit(nagq=0)
    beta, theta, t = res.fe_params.to_numpy(), res.theta, res.dispersion.loc["/lnalpha", "estimate"]
    assert res.llf == pytest.approx(model.loglike_at(beta, theta, t, nagq=1), abs=1e-9)
    assert model.loglike_theta(beta, theta, 0) == pytest.approx(res.llf, abs=1e-9)
    assert model.loglike_theta(beta, theta, 1) > res.llf      # nagq >= 1: log alpha profiled at fixed beta
    assert res.dispersion_lr["chibar2"] > 100                 # against the Poisson nagq=0 fit
    with pytest.raises(ValueError, match="start must have 1 values"):
        model.fit(nagq=0, start=[0.1, 0.2])


def test_nagq0_dispersion_sd_se_is_the_laplace_information_with_the_dispersion_estimated():
    """The sd's standard error: the Laplace information in (beta, log sd, log alpha) at the
    estimates (log alpha profiled there), not the information conditional on alpha."""
    model = grouse_nb2()
    res = model.fit(nagq=0)
    beta, sd = res.fe_params.to_numpy(), res.params["sd(Intercept)[BROOD]"]
    t = model.profile_dispersion(beta, res.theta, 1)
    x0, p = np.concatenate([beta, [np.log(sd), t]]), beta.size
    f = lambda x: model.loglike_at(x[:p], model.theta_from_report(np.exp(x[p:p + 1])), x[-1], nagq=1)  # noqa: E731
    h = 1e-3 * np.append(res.bse_fe.to_numpy(), [0.1, 0.1])
    H = np.empty((x0.size, x0.size))
    for i in range(x0.size):
        for j in range(x0.size):
            ei, ej = np.eye(x0.size)[i] * h[i], np.eye(x0.size)[j] * h[j]
            H[i, j] = (f(x0 + ei + ej) - f(x0 + ei - ej) - f(x0 - ei + ej) + f(x0 - ei - ej)) / (4 * h[i] * h[j])
    full = sd * np.sqrt(np.linalg.inv(-H)[p, p])
    conditional = sd * np.sqrt(np.linalg.inv(-H[:-1, :-1])[p, p])
    assert res.bse["sd(Intercept)[BROOD]"] == pytest.approx(full, rel=1e-4)
    assert abs(full - conditional) > 1e-3 * full


@pytest.mark.parametrize("case", ["nb1", "gausslog", "invgauss"])
def test_nagq0_other_dispersion_families_fit(case):
    model = other_model(case)
    fast, laplace = model.fit(nagq=0), model.fit(nagq=1)
    assert fast.converged and np.max(np.abs(fast.opt.gradient)) < 1e-3
    t = fast.dispersion["estimate"].iloc[0]
    assert fast.llf == pytest.approx(model.loglike_at(fast.fe_params.to_numpy(), fast.theta, t, nagq=1), abs=1e-9)
    assert laplace.llf >= fast.llf - 1e-9             # the same likelihood, maximized over beta too
    # the dispersion is the maximum of the nagq=0 objective in log phi: moving it lowers the value
    obj = nagq0_dispersion._Objective(model, fast.fe_params.to_numpy())
    f0 = obj.value(np.append(fast.theta, t))
    assert f0 == pytest.approx(-2 * fast.llf, abs=1e-8)
    assert all(obj.value(np.append(fast.theta, t + d)) > f0 for d in (-1e-3, 1e-3))
