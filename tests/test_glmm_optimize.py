"""The Laplace stage of generalized fits (``hlmext.models.glmm_optimize``): quasi-Newton steps
from the start, L-BFGS-B to a loose tolerance, Newton steps from a forward-difference Hessian;
the same optimum as the L-BFGS-B search of ``minimize_with_gradient`` for fewer deviance
evaluations, and the kernel's looser stopping rule on the modes."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.models import glmm, glmm_optimize
from hlmext.models.glm_start import glm_start, offset_shift
from hlmext.models.optimize import minimize_with_gradient


def _crossed_logit(seed=3, n=1500, n_a=60, n_b=25):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, n_a, n), "b": rng.integers(0, n_b, n), "x": rng.normal(size=n)})
    eta = -0.3 + 0.6 * df.x + 0.9 * rng.normal(size=n_a)[df.a] + 0.5 * rng.normal(size=n_b)[df.b]
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return df


def _problem(model):
    """The Laplace stage's objective, start, bounds and scale, as ``glmm.find_optimum`` sets them."""
    beta, se, _ = glm_start(model)
    shift = offset_shift(model)
    x0 = np.concatenate([beta + shift, model.theta_start() * model.theta_scale()])
    bounds = [(None, None)] * model.k_fe + model.theta_bounds()
    return glmm._Objective(model, 1, shift), x0, bounds, np.concatenate([se, model.theta_scale()])


@pytest.mark.parametrize("formula, fewer", [("y ~ x + (1 | a) + (1 | b)", True),
                                            ("y ~ x + (1 + x | a) + (1 | b)", False)])
def test_laplace_stage_reaches_the_same_optimum_in_fewer_evaluations(formula, fewer):
    model = hlmext.melogit(formula, _crossed_logit())
    obj, x0, bounds, scale = _problem(model)
    fast, _ = glmm_optimize.minimize_laplace(obj, x0, bounds, scale, 1000, glmm_optimize.diagonal_theta(model))
    obj_ref = glmm._Objective(model, 1, obj.shift)
    ref, _ = minimize_with_gradient(obj_ref, x0, bounds, scale, 1000)
    assert fast.converged and ref.converged
    assert fast.fun == pytest.approx(ref.fun, abs=1e-8)
    np.testing.assert_allclose(fast.end, ref.end, rtol=1e-6, atol=1e-7)
    assert obj.n_evals < obj_ref.n_evals if fewer else obj.n_evals <= obj_ref.n_evals
    np.testing.assert_array_equal(fast.start, x0)
    assert fast.attempts[0][0] == "Newton (start)"


def test_newton_start_keeps_the_sign_of_an_sd_across_negative_curvature():
    # even in z[1] (an sd's sign), with negative curvature at the start (z[1] = 0.2: the second
    # derivative in z[1] is 12 z^2 - 1 - z[0] < 0) and its minimum at |z[1]| = 0.73
    def f(z):
        return (z[0] - 1.0) ** 2 + (z[1] ** 2 - 0.25) ** 2 - 0.5 * z[0] * z[1] ** 2

    def grad(z):
        return np.array([2 * (z[0] - 1.0) - 0.5 * z[1] ** 2, 4 * z[1] * (z[1] ** 2 - 0.25) - z[0] * z[1]])

    seen = []

    def f_logged(z):
        seen.append(z.copy())
        return f(z)

    theta = np.array([False, True])
    lo, hi = np.array([-np.inf, 0.0]), np.full(2, np.inf)
    for start in (0.2, -0.2):
        z = glmm_optimize.newton_start(f_logged, grad, np.array([0.0, start]), lo, hi, theta)
        assert np.sign(z[1]) == np.sign(start)
        assert np.max(np.abs(grad(z))) < glmm_optimize.LOOSE_GTOL
        assert f(z) < f(np.array([0.0, start]))
    assert min(abs(z[1]) for z in seen) >= glmm_optimize.BOUND_MARGIN


def test_diagonal_theta_marks_the_sds_not_the_correlations():
    model = hlmext.melogit("y ~ x + (1 + x | a) + (1 | b)", _crossed_logit())
    mask = glmm_optimize.diagonal_theta(model)
    assert mask.size == model.k_fe + model.k_re
    assert not mask[:model.k_fe].any()
    assert mask[model.k_fe:].sum() == 3                   # two sds of a, one of b; one correlation


def test_modes_stop_earlier_with_the_same_loglikelihood(monkeypatch):
    model = hlmext.melogit("y ~ x + (1 | a) + (1 | b)", _crossed_logit())
    beta, theta = np.array([-0.3, 0.6]), np.array([0.8, 0.5])
    steps = []
    kernel = glmm._glmm_nested.nested_loglik

    def counted(*args, **kwargs):
        out = kernel(*args, **kwargs)
        steps.append(out[1])
        return out

    monkeypatch.setattr(glmm._glmm_nested, "nested_loglik", counted)
    values = {}
    for tol in (1e-10, glmm.MODE_TOL):
        monkeypatch.setattr(glmm, "MODE_TOL", tol)
        model._u[:] = 0.0
        values[tol] = model.loglike_theta(beta, theta, 1, grad=True)
    assert steps[1] < steps[0]
    assert values[glmm.MODE_TOL][0] == pytest.approx(values[1e-10][0], abs=1e-9)
    np.testing.assert_allclose(values[glmm.MODE_TOL][1], values[1e-10][1], rtol=1e-7, atol=1e-8)
