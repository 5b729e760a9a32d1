"""A Laplace fit's standard errors from the Hessian of its last Newton steps
(``glmm_optimize.LaplaceHessian``), the deviance objective's kept points and the exact
derivatives of Lambda in the gradient."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.models import glmm
from hlmext.models.glm_start import glm_start
from hlmext.models.glmm_optimize import LaplaceHessian
from hlmext.results import glmm as glmm_results


def _crossed_logit(seed=3, n=1500, n_a=60, n_b=25):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, n_a, n), "b": rng.integers(0, n_b, n), "x": rng.normal(size=n)})
    eta = -0.3 + 0.6 * df.x + 0.9 * rng.normal(size=n_a)[df.a] + 0.5 * rng.normal(size=n_b)[df.b]
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return df


def _information_at_optimum(model, res):
    """The standard errors from forward differences of the gradient at the optimum itself."""
    values = model.report_from_theta(res.theta)
    is_corr = np.concatenate([lv.cov.is_corr() for lv in model.levels[::-1]])
    cov, _ = glmm_results._information_cov(model, np.asarray(res.fe_params, float), values, is_corr,
                                           np.zeros(values.size, dtype=bool), 1, glm_start(model)[1])
    return np.sqrt(np.diag(cov))


@pytest.mark.parametrize("formula, seed", [("y ~ x + (1 | a) + (1 | b)", 3), ("y ~ x + (1 | a) + (1 | b)", 6),
                                           ("y ~ x + (1 | a)", 8)])
def test_laplace_standard_errors_take_the_newton_hessian(monkeypatch, formula, seed):
    model = hlmext.melogit(formula, _crossed_logit(seed))
    calls = []
    monkeypatch.setattr(glmm_results, "_information_cov", lambda *a: calls.append(a))
    res = model.fit(nagq=1)
    assert calls == []                            # no differences of the gradient after the search
    assert res.opt.laplace_hessian.at(res.params.values[:model.k_fe].tolist() + list(res.theta)) is not None
    monkeypatch.undo()
    # as the differences at the optimum, to about their own error (1e-5 relative)
    np.testing.assert_allclose(res.bse.values, _information_at_optimum(model, res), rtol=5e-5)


def test_laplace_hessian_applies_only_close_to_its_point():
    H = np.array([[4.0, 1.0], [1.0, 9.0]])
    scale = np.array([0.5, 2.0])
    newton = LaplaceHessian(H, np.array([1.0, 3.0]), scale)
    near = np.array([1.0 + 0.25 * LaplaceHessian.REUSE_DISTANCE, 3.0])
    np.testing.assert_allclose(newton.at(near), H / np.outer(scale, scale))
    assert newton.at(np.array([1.0, 3.0 + 4.0 * LaplaceHessian.REUSE_DISTANCE])) is None
    assert newton.at(np.array([1.0, 3.0, 0.0])) is None
    shifted = newton.shifted(np.array([0.25]), 1)
    np.testing.assert_array_equal(shifted.x, [0.75, 3.0])


def test_objective_returns_to_kept_points_without_the_kernel():
    model = hlmext.melogit("y ~ x + (1 | a) + (1 | b)", _crossed_logit())
    obj = glmm._Objective(model, 1)
    xs = [np.array([-0.3, 0.6, 0.8 + 0.01 * i, 0.5]) for i in range(3)]
    first = [(obj.value(x), obj.grad(x).copy()) for x in xs]
    assert obj.n_evals == 3
    for x, (f, g) in zip(xs, first):              # the line search's start, a Hessian's centre
        assert obj.value(x) == f
        np.testing.assert_array_equal(obj.grad(x), g)
    assert obj.n_evals == 3
    fresh = glmm._Objective(model, 1)
    assert fresh.value(xs[0]) == pytest.approx(first[0][0], rel=1e-12)


def test_gradient_takes_the_exact_derivatives_of_lambda():
    model = hlmext.melogit("y ~ x + (1 + x | a) + (1 | b)", _crossed_logit())
    theta = np.array([0.7, 0.1, 0.3, 0.4])
    out = model._dlam_dtheta(theta)
    k = 0
    for lv, jac in zip(model.levels, out):
        exact = lv.cov.lam_derivatives(theta[k:k + lv.cov.n_theta])
        assert len(jac) == len(exact)
        for d, e in zip(jac, exact):
            np.testing.assert_array_equal(d, e)
        k += lv.cov.n_theta
