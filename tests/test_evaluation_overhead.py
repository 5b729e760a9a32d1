"""The deviance's gradient read off the gradient's sums where every dLambda/dtheta is one
entry equal to 1: the same numbers, bit for bit, as the sums over every entry."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.models.gradient import GradientParts


def _general(model, theta, reml):
    """The gradient as the sums ``2 tr(T'E)`` and ``-2 sum(E * N)`` over every entry of E."""
    f = model.factorize(theta)                       # its own buffers; consumed as in the fit
    parts = GradientParts(model, f, reml, consume=True)
    dof = model.nobs - model.k_fe if reml else model.nobs
    return np.array([parts.dlogdet(i, E) + dof * parts.dprss(i, E) / f.prss
                     for i, E in model._lam_derivatives(theta)])


def _crossed_data():
    rng = np.random.default_rng(3)
    n = 400
    a, b = rng.integers(0, 12, n), rng.integers(0, 9, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=12)[a] + (0.5 + 0.3 * rng.normal(size=9))[b] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


CASES = [("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
         ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
         ("gcse", "gcse ~ lrt + (lrt | school)"),
         ("crossed", "y ~ x + (1 | a) + (x | b)"),
         ("pastes", "strength ~ 1 + (1 | batch/cask)")]


@pytest.mark.parametrize("name,formula", CASES)
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_bit_for_bit(name, formula, reml):
    data = _crossed_data() if name == "crossed" else hlmext.datasets.load(name)
    model = hlmext.mixedlm(formula, data)
    assert model._unit_derivatives() is not None
    rng = np.random.default_rng(0)
    for theta in [model.theta_start() * model.theta_scale(), *(rng.uniform(0.2, 2, model.k_re) for _ in range(3))]:
        value, grad = model.deviance_and_gradient(theta, reml)
        assert value == model.deviance(theta, reml)
        assert np.array_equal(grad, _general(model, theta, reml))


def test_structures_with_varying_derivatives_keep_the_sums():
    sleep = hlmext.datasets.load("sleepstudy")
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep, cov="exchangeable")
    assert model._unit_derivatives() is None
    theta = model.theta_start() * 0.7
    assert np.array_equal(model.deviance_and_gradient(theta, True)[1], _general(model, theta, True))
