"""The negative binomial fit's kernel calls: the NB2 start by Newton steps on the rows
(``models.dispersion_glm``) against the Newton-IRLS start with alpha profiled, and the
Laplace stages that reach the same optimum with fewer evaluations."""
import numpy as np
import pytest

import hlmext
from hlmext._kernels import glmm as _glmm
from hlmext.models import dispersion_glm, glmm_optimize
from hlmext.models.glm_start import glm_start
from hlmext.models.mixed_family import LOG_PHI_BOUNDS

FORMULA = "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)"


@pytest.fixture(scope="module")
def ticks():
    df = hlmext.datasets.load("grouseticks")
    rng = np.random.default_rng(4)
    brood_w = dict(zip(df.BROOD.unique(), rng.uniform(0.5, 2.0, df.BROOD.nunique())))
    return df.assign(w=rng.uniform(0.5, 2.0, len(df)), wb=df.BROOD.map(brood_w).astype(float))


@pytest.mark.parametrize("pweights", [None, "w", {"obs": "w", "BROOD": "wb"}])
def test_nb2_start_is_the_profiled_glm_start(ticks, pweights):
    model = hlmext.menbreg(FORMULA, ticks, pweights=pweights)
    beta, se, ll = glm_start(model)
    log_alpha = model._log_phi
    model._set_log_phi(model._log_phi0)
    got = dispersion_glm.nb2_start(model, LOG_PHI_BOUNDS)
    np.testing.assert_allclose(got[0], beta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(got[1], se, rtol=1e-6)
    assert got[2] == pytest.approx(ll, rel=1e-12)
    assert model._log_phi == pytest.approx(log_alpha, abs=1e-7)
    assert model._buffers.get(model).log_phi_curvature < 0


def test_nb2_start_leaves_other_models_to_glm_start(ticks):
    nb1 = hlmext.menbreg(FORMULA, ticks, dispersion="constant")
    nested = hlmext.menbreg("TICKS ~ cHEIGHT + (1 | LOCATION/BROOD)", ticks)
    no_intercept = hlmext.menbreg("TICKS ~ 0 + C(YEAR) + (1 | BROOD)", ticks)
    for model in (nb1, nested, no_intercept):
        assert dispersion_glm.nb2_start(model, LOG_PHI_BOUNDS) is None


def test_nb2_fit_takes_fewer_kernel_calls(ticks, monkeypatch):
    """202 kernel calls before the NB2 start and the joint stage's Newton start (the optimum
    against glmmTMB: test_families)."""
    calls = []
    original = _glmm.cluster_loglik
    monkeypatch.setattr(_glmm, "cluster_loglik", lambda *a, **k: calls.append(1) or original(*a, **k))
    res = hlmext.menbreg(FORMULA, ticks).fit(nagq=1)
    assert len(calls) <= 130
    assert res.converged


def test_newton_start_forms_no_hessian_where_the_gradient_is_small():
    grads = []

    def grad(z):
        grads.append(1)
        return 2 * (z - 1.0)
    z = glmm_optimize.newton_start(lambda z: float(np.sum((z - 1.0) ** 2)), grad, np.full(3, 1.0 + 1e-4),
                                   np.full(3, -np.inf), np.full(3, np.inf), np.zeros(3, bool))
    assert len(grads) == 1
    np.testing.assert_array_equal(z, np.full(3, 1.0 + 1e-4))
