"""Fits of crossed factors: the Newton steps' evaluations, and the refusal of a dense tail too
large to fit."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.design import layout, sparse_coupling
from hlmext import threads
from hlmext.models import optimize


def _three_crossed(seed=2, n=3000):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, 300, n), "b": rng.integers(0, 60, n), "c": rng.integers(0, 6, n)})
    df["x"] = rng.normal(size=n)
    df["y"] = df.x + rng.normal(size=300)[df.a] + 0.7 * rng.normal(size=60)[df.b] \
        + 0.5 * rng.normal(size=6)[df.c] + rng.normal(size=n)
    return df


def test_newton_steps_from_the_moments_take_few_evaluations():
    """A first Hessian by forward differences of the gradient (k evaluations) and BFGS updates
    along the steps: the whole fit, with the final Hessian of the standard errors (2k), stays
    within 1 + k + 10 + 2k evaluations (32 with central differences and new Hessians)."""
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b) + (1 | c)", _three_crossed())
    res = model.fit(reml=False)
    k = res.theta.size
    assert res.converged and res.opt.attempts[0][0] == "Newton" and len(res.opt.attempts) == 1
    assert res.opt.n_evals <= 1 + k + 10 + 2 * k


def test_newton_steps_reach_the_optimum_of_the_quasi_newton_search():
    df = _three_crossed()
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b) + (1 | c)", df)
    newton = model.fit(reml=False)
    lbfgs = model.fit(reml=False, start=model.theta_start() * model.theta_scale())
    assert lbfgs.opt.attempts[0][0] == "L-BFGS-B"
    np.testing.assert_allclose(newton.theta, lbfgs.theta, rtol=1e-7)
    np.testing.assert_allclose(newton.bse, lbfgs.bse, rtol=1e-6)


def test_bfgs_update_keeps_the_hessian_without_curvature_information():
    H = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert optimize._bfgs_update(H, np.array([1e-9, 0.0]), np.array([1.0, 0.0])) is H
    assert optimize._bfgs_update(H, np.array([1.0, 0.0]), np.array([-1.0, 0.0])) is H
    s, y = np.array([0.1, -0.2]), np.array([0.3, -0.1])
    new = optimize._bfgs_update(H, s, y)
    np.testing.assert_allclose(new @ s, y)                 # the secant equation
    np.testing.assert_allclose(new, new.T)


def test_a_crossed_block_below_thousands_of_columns_fits_on_one_blas_thread():
    class Design:
        qd = 1142                                  # InstEval's instructors and departments
    assert isinstance(threads.blas_threads_for(Design()), threads._SingleBlasThread)


def test_a_dense_tail_too_large_to_fit_in_minutes_is_refused_before_the_rows_are_sorted(monkeypatch):
    rng = np.random.default_rng(0)
    n = 14000
    df = pd.DataFrame({"a": np.repeat(np.arange(7000), 2), "b": rng.permutation(np.arange(n) % 6500),
                       "x": rng.normal(size=n), "y": rng.normal(size=n)})

    def no_sorting(*args, **kwargs):
        raise AssertionError("the rows were sorted before the refusal")
    monkeypatch.setattr(layout, "_row_order", no_sorting)
    with pytest.raises(hlmext.ModelError, match=r"6503 columns.*GB.*operations per evaluation.*"
                                                r"allow_large_crossed=True"):
        hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", df)


def test_allow_large_crossed_builds_the_model(monkeypatch):
    monkeypatch.setattr(sparse_coupling, "TAIL_LIMIT", 20)
    df = _three_crossed(n=400)
    with pytest.raises(hlmext.ModelError, match="'b' \\(60 groups\\), 'c' \\(6 groups\\)"):
        hlmext.mixedlm("y ~ x + (1 | a) + (1 | b) + (1 | c)", df)
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b) + (1 | c)", df, allow_large_crossed=True)
    assert model.design.qd == 66
    assert hlmext.mixedlm("y ~ x + (1 | a)", df).design.qd == 0      # no crossed factors: nothing to refuse


def test_moment_start_holds_few_arrays_of_the_coupling_pattern():
    """The moments read every (cluster, group) block of a sparse coupling; they hold a few arrays
    of the selected entries at once, not one array per step over the whole pattern."""
    import tracemalloc
    rng = np.random.default_rng(1)
    n = 100_000
    df = pd.DataFrame({"a": rng.integers(0, 2000, n), "b": rng.integers(0, 1000, n), "x": rng.normal(size=n)})
    df["y"] = df.x + rng.normal(size=2000)[df.a] + rng.normal(size=1000)[df.b] + rng.normal(size=n)
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", df)
    nnz = len(model.design.coupling.cols)
    tracemalloc.start()
    try:
        theta = model.theta_moments()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert theta is not None and peak < 5 * 8 * nnz
