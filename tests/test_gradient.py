"""The analytic gradient (``hlmext.models.gradient``) equals central differences of the deviance.

Nested chains of two and three levels with random slopes, crossed factors (with the
dense tail small and large enough for BLAS), frequency weights and every covariance
structure; ML and REML; and the gradient in ``(theta, sigma)`` used for the standard errors.
"""
import numpy as np
import pandas as pd
import pytest

import hlmext


def data(seed=1, n=3000):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 30, n)
    b = a * 10 + rng.integers(0, 10, n)
    c = b * 3 + rng.integers(0, 3, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = (1 + x + rng.normal(size=30)[a] + 0.7 * rng.normal(size=300)[b]
         + 0.5 * x * rng.normal(size=300)[b] + 0.4 * rng.normal(size=900)[c] + rng.normal(size=n))
    g1, g2, g3 = rng.integers(0, 40, n), rng.integers(0, 25, n), rng.integers(0, 70, n)
    y2 = y + rng.normal(size=40)[g1] + rng.normal(size=25)[g2] + rng.normal(size=70)[g3]
    return pd.DataFrame(dict(y=y, y2=y2, x=x, z=z, a=a, b=b, c=c, g1=g1, g2=g2, g3=g3))


FORMULAS = [
    "y ~ x + (x | b)",
    "y ~ x + z + (1 | a) + (x | a:b)",
    "y ~ x + (1 | a) + (1 | a:b) + (1 | a:b:c)",
    "y ~ x + (x | a) + (x | a:b)",
    "y2 ~ x + (1 | g1) + (1 | g2)",
    "y2 ~ x + (x | g1) + (1 | g2)",
    "y2 ~ x + (1 | g1) + (x | g2)",
    "y2 ~ x + (1 | g1) + (1 | g3)",             # tail of 71 columns: the BLAS path
    "y2 ~ x + (1 | g3) + (x | g2)",
    "y2 ~ x + (1 | g3) + (x | g1) + (1 | g2)",   # two crossed levels in the dense tail
    "y2 ~ x + (1 | a) + (1 | a:b) + (x | g1) + (1 | g2)",
]


def finite_differences(fun, x, h=1e-5):
    out = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        out[i] = (fun(x + e) - fun(x - e)) / (2 * e[i])
    return out


def check(model, theta, reml):
    value, grad = model.deviance_and_gradient(theta, reml)
    assert value == pytest.approx(model.deviance(theta, reml), rel=1e-13)
    fd = finite_differences(lambda t: model.deviance(t, reml), theta)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7 * max(1.0, np.max(np.abs(fd))))


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [False, True])
def test_gradient_nested_and_crossed(formula, reml):
    df = data()
    model = hlmext.mixedlm(formula, df)
    assert model.has_analytic_gradient()
    rng = np.random.default_rng(len(formula))
    theta = random_theta(model, rng)
    check(model, theta, reml)


def random_theta(model, rng):
    """Scaled start values times U(0.3, 1.5), and off-diagonal entries of Lambda drawn away
    from the start's zeros (so that Lambda and Lambda' differ)."""
    scale = model.theta_scale()
    theta = model.theta_start() * scale * rng.uniform(0.3, 1.5, model.k_re)
    off_diagonal = model.theta_start() == 0
    theta[off_diagonal] += 0.3 * scale[off_diagonal] * rng.uniform(-1, 1, off_diagonal.sum())
    return theta


@pytest.mark.parametrize("reml", [False, True])
def test_gradient_with_frequency_weights(reml):
    df = data()
    w = np.random.default_rng(3).integers(1, 4, len(df)).astype(float)
    model = hlmext.mixedlm("y ~ x + (1 | a) + (x | a:b)", df, weights=w)
    check(model, np.array([0.9, 0.6, 0.1, 0.4]), reml)


@pytest.mark.parametrize("cov", ["exchangeable", "independent", "identity"])
def test_gradient_of_structures(cov):
    model = hlmext.mixedlm("y ~ x + z + (x + z | b)", data(), cov=cov)
    theta = model.theta_start() * 0.8 + (0.1 if cov == "exchangeable" else 0.0)
    for reml in (False, True):
        check(model, theta, reml)


@pytest.mark.parametrize("reml", [False, True])
def test_gradient_at_fixed_sigma(reml):
    model = hlmext.mixedlm("y2 ~ x + (x | g1) + (1 | g2)", data())
    x0 = np.array([0.8, 0.1, 0.3, 0.9, 1.3])
    value, grad = model.deviance_at_and_gradient(x0[:-1], x0[-1], reml)
    fun = lambda x: model.deviance_at(x[:-1], x[-1], reml)     # noqa: E731
    assert value == pytest.approx(fun(x0), rel=1e-13)
    fd = finite_differences(fun, x0)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7 * np.max(np.abs(fd)))
