"""The wide-step Hessian of the standard errors is formed when standard errors are first
asked for; convergence and the Newton decrement come from the Newton steps' own Hessian."""
import pickle
import threading

import numpy as np
import pytest

import hlmext
from hlmext import threads
from hlmext.models import optimize


@pytest.fixture(scope="module")
def sleep():
    return hlmext.datasets.load("sleepstudy")


def _counted(model):
    calls = [0]
    inner = model.deviance_and_gradient

    def counting(*args, **kwargs):
        calls[0] += 1
        return inner(*args, **kwargs)
    model.deviance_and_gradient = counting
    return calls


def test_the_fit_forms_no_hessian_for_standard_errors(sleep):
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    calls = _counted(model)
    res = model.fit()
    assert res.converged and calls[0] == res.opt.n_evals
    res.bse
    assert calls[0] == res.opt.n_evals + 2 * res.theta.size     # central differences, on first use
    res.bse, res.opt.hessian
    assert calls[0] == res.opt.n_evals + 2 * res.theta.size


def test_standard_errors_use_the_wide_step_hessian(sleep):
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    res = model.fit()
    scale = model.theta_scale()
    z = res.opt.end / scale
    with threads.single_blas_thread():
        H = _wide(model, z, scale)
    np.testing.assert_array_equal(res.opt.hessian, H / np.outer(scale, scale))


def _wide(model, z, scale):
    def f_and_g(x):
        value, grad = model.deviance_and_gradient(x * scale, True)
        return value, grad * scale
    return optimize._jacobian_of_gradient(f_and_g, z, np.ones(z.size, bool), step=1e-3)


def test_pickles_hold_the_hessian_not_a_function(sleep):
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit()
    again = pickle.loads(pickle.dumps(res))
    assert "hessian" in again.opt.__dict__ and "_hessian_fn" not in again.opt.__dict__
    np.testing.assert_array_equal(again.opt.hessian, res.opt.hessian)
    np.testing.assert_array_equal(again.bse, res.bse)


def test_threads_form_the_hessian_once(sleep):
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    res = model.fit()
    calls = _counted(model)
    barrier = threading.Barrier(4)
    seen = []

    def ask():
        barrier.wait()
        seen.append(res.opt.hessian)
    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls[0] == 2 * res.theta.size and all(h is seen[0] for h in seen)


def test_no_hessian_without_standard_errors(sleep):
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    calls = _counted(model)
    scale = model.theta_scale()
    opt = optimize.minimize(lambda th: model.deviance(th, True), model.theta_start() * scale,
                            model.theta_bounds(), scale=scale,
                            fun_and_grad=lambda th: model.deviance_and_gradient(th, True),
                            newton_start=model.theta_moments(), se_hessian=False)
    assert opt.converged and opt.hessian is None and calls[0] == opt.n_evals
