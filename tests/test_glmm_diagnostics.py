"""Residuals, hat values and Cook's distance of generalized mixed models.

References: ``tests/reference/glmm_diagnostics/glmm_diagnostics.R`` (lme4 1.1-31 ``hatvalues``,
``cooks.distance``, ``residuals(type = "pearson" / "deviance")`` of ``glmer`` fits by Laplace:
the cbpp logit, a Poisson model of grouseticks with one level and with broods nested in
locations) and the penalized system formed densely.
"""
import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm

import hlmext
from conftest import load_reference

REF = load_reference("glmm_diagnostics", "glmm_diagnostics")
TOL = 1e-4


def _agree(got, want):
    want = np.asarray(want, float)
    np.testing.assert_allclose(np.asarray(got, float), want, rtol=TOL, atol=TOL * np.abs(want).max())


@pytest.fixture(scope="module")
def cbpp():
    df = hlmext.datasets.load("cbpp")
    return df, hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)


@pytest.fixture(scope="module")
def ticks():
    return hlmext.datasets.load("grouseticks")


def _check(res, ref):
    _agree(res.fe_params, ref["fixef"])
    _agree(res.hatvalues(), ref["hat"])
    _agree(res.residuals("pearson"), ref["pearson"])
    _agree(res.residuals("deviance"), ref["deviance"])
    _agree(res.cooks_distance(), ref["cooks"])


def test_logit_matches_lme4(cbpp):
    _check(cbpp[1], REF["cbpp"])


@pytest.mark.parametrize("formula, key", [("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", "ticks"),
                                          ("TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)", "ticks_nested")])
def test_poisson_matches_lme4(ticks, formula, key):
    _check(hlmext.mepoisson(formula, ticks).fit(nagq=1), REF[key])


def _dense(res, df, groups, weights, fixed):
    """c' M^{-1} c of every row, M = C'WC + blockdiag(Sigma^{-1}, 0), formed densely."""
    X = np.asarray(patsy.dmatrix(fixed, df))
    labels = np.sort(df[groups].unique())
    Z = (df[groups].to_numpy()[:, None] == labels[None, :]).astype(float)
    C = np.hstack([Z, X])
    M = C.T @ (C * weights[:, None])
    M[:len(labels), :len(labels)] += np.eye(len(labels)) / float(res.cov_re[groups].iloc[0, 0])
    return np.einsum("ij,ji->i", C, np.linalg.solve(M, C.T))


def test_standardized_residuals_use_the_working_weight_leverage(cbpp):
    df, res = cbpp
    n, y = df["size"].to_numpy(), df["incidence"].to_numpy()
    p = res.predict(which="mu", conditional=True).to_numpy()
    w = n * p * (1 - p)
    quad = _dense(res, df, "herd", w, "C(period)")
    np.testing.assert_allclose(res.hatvalues(), n * quad, rtol=1e-8)
    pearson = (y - n * p) / np.sqrt(w)
    np.testing.assert_allclose(res.residuals("standardized"), pearson / np.sqrt(1 - w * quad), rtol=1e-8)
    assert (w * quad < 1).all()
    with pytest.raises(ValueError, match="use which='conditional'"):
        res.residuals("standardized", "marginal")


def test_family_with_dispersion_scales_by_phi():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(25), 8)
    x = rng.normal(size=g.size)
    mu = np.exp(0.5 + 0.3 * x + rng.normal(scale=0.4, size=25)[g])
    shape = 4.0
    df = pd.DataFrame({"y": rng.gamma(shape, mu / shape), "x": x, "g": g})
    res = hlmext.meglm("y ~ x + (1 | g)", df, family=sm.families.Gamma(link=sm.families.links.Log())).fit()
    k = float(np.exp(res.model.fitted_log_phi))
    m = res.predict(which="mu", conditional=True).to_numpy()
    w = k * np.ones_like(m)                          # (d mu / d eta)^2 / (phi V) = mu^2 k / mu^2
    quad = _dense(res, df, "g", w, "x")
    h = k * quad                                     # lme4: prior / phi = shape
    np.testing.assert_allclose(res.hatvalues(), h, rtol=1e-7)
    pearson = (df["y"].to_numpy() - m) / m
    np.testing.assert_allclose(res.residuals("pearson"), pearson, rtol=1e-8)
    np.testing.assert_allclose(res.cooks_distance(), (pearson / (1 - h)) ** 2 * h * k / 2, rtol=1e-7)
    dev = sm.families.Gamma().resid_dev(df["y"].to_numpy(), m)
    np.testing.assert_allclose(res.residuals("deviance"), dev, rtol=1e-8)


def test_nb1_pearson_uses_its_own_variance():
    df = hlmext.datasets.load("grouseticks")
    res = hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)", df, dispersion="constant").fit()
    delta = float(np.exp(res.model.fitted_log_phi))
    m = res.predict(which="mu", conditional=True).to_numpy()
    np.testing.assert_allclose(res.residuals("pearson"), (df["TICKS"] - m) / np.sqrt(m * (1 + delta)), rtol=1e-8)
    with pytest.raises(ValueError, match="use kind='pearson'"):
        res.residuals("deviance")


def test_sampling_weights_are_refused_by_name():
    df = hlmext.datasets.load("cbpp").assign(w=lambda d: 1.0 + d.herd % 3)
    res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size", pweights="w").fit()
    for method in (lambda: res.residuals("standardized"), res.hatvalues, res.cooks_distance):
        with pytest.raises(ValueError, match="fit without pweights="):
            method()
    assert np.isfinite(res.residuals("pearson")).all()
