"""The Laplace log-likelihood's derivative in the log dispersion (``models.dispersion_laplace``)
against central differences of the kernel's value, and the fit that uses it."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hlmext
from conftest import REFERENCE
from hlmext._kernels import glmm as _glmm
from hlmext.models import dispersion_laplace, links

L = sm.families.links


def _models():
    ticks = hlmext.datasets.load("grouseticks")
    gamma = pd.read_csv(REFERENCE / "families" / "gamma_sim.csv")
    rng = np.random.default_rng(0)
    gamma["z"] = rng.normal(size=len(gamma))
    return {
        "nb2": hlmext.menbreg("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", ticks),
        "nb1": hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)", ticks, dispersion="constant"),
        "gamma_slope": hlmext.meglm("y ~ x + (1 + z | g)", gamma, family=sm.families.Gamma(L.Log())),
        "gaussian_log": hlmext.meglm("y ~ x + (1 | g)", gamma, family=sm.families.Gaussian(L.Log())),
        "nb2_weighted": hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)",
                                       ticks.assign(w=rng.uniform(0.5, 2.0, len(ticks))), pweights="w"),
    }


@pytest.mark.parametrize("name", ["nb2", "nb1", "gamma_slope", "gaussian_log", "nb2_weighted"])
def test_derivative_matches_differences_of_the_kernel(name):
    model = _models()[name]
    beta = np.zeros(model.k_fe)
    beta[0] = np.log(np.mean(model._y))
    theta = 0.7 * model.theta_start() * model.theta_scale()
    t, h = model._log_phi0 + 0.3, 1e-4

    def f(log_phi):
        model._set_log_phi(log_phi)
        return model._kernel(beta, theta, 1, False)
    numeric = (f(t + h) - f(t - h)) / (2 * h)
    f(t)
    assert dispersion_laplace.laplace_dlogphi(model, beta, theta) == pytest.approx(numeric, rel=1e-6, abs=1e-6)


def test_nb2_closed_form_matches_differences_of_the_rows():
    rng = np.random.default_rng(1)
    y, n, eta = rng.poisson(3, 60).astype(float), rng.uniform(0.5, 2, 60), rng.normal(1, 0.5, 60)
    nb2 = links.FamilySpec(links.NB2, links.LOG)
    closed = dispersion_laplace.row_derivatives(nb2, y, n, eta, -0.3)
    h = 1e-5
    plus, minus = (_glmm.row_values((links.NB2, links.LOG, float(np.exp(-0.3 + s))), y, n, eta) for s in (h, -h))
    numeric = ((plus[0] - minus[0]) / (2 * h), -(plus[1] - minus[1]) / (2 * h), (plus[2] - minus[2]) / (2 * h),
               0.5 * (plus[3] + minus[3]))
    for a, b in zip(closed, numeric):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_joint_stage_reaches_the_profiled_optimum():
    """The fit (joint Laplace stage, then the profiled polish) and a fit from a given start,
    which runs on the profile likelihood alone, find the same maximum."""
    model = _models()["nb2"]
    res = model.fit(nagq=1)
    start = np.concatenate([[res.fe_params.iloc[0]], np.zeros(model.k_fe - 1),
                            model.theta_start() * model.theta_scale()])
    profiled = model.fit(nagq=1, start=start)
    assert res.llf == pytest.approx(profiled.llf, abs=1e-6)
    np.testing.assert_allclose(res.params, profiled.params, atol=1e-4)
    assert res.dispersion["estimate"].iloc[0] == pytest.approx(profiled.dispersion["estimate"].iloc[0], abs=1e-4)
