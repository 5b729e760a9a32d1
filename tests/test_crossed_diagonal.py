"""The gradient of crossed factors with a dense coupling from the diagonal blocks of ``Sigma``
(``hlmext.models.gradient._diagonal_traces``): equal to the selected inverse's, which it replaces
where every ``Lambda_l`` is invertible; the kernel against NumPy; the layout makes no pattern it
would throw away."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext._kernels import diagonal as _diagonal
from hlmext.design import layout, sparse_coupling
from hlmext.models import gradient


def _data(seed=1, n=3000, na=60, nb=25, nc=None):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, na, n), "b": rng.integers(0, nb, n), "x": rng.normal(size=n)})
    df["c"] = rng.integers(0, nc or 2, n)
    df["y"] = (1 + 0.5 * df.x + rng.normal(size=na)[df.a] + 0.6 * rng.normal(size=nb)[df.b]
               + 0.3 * rng.normal(size=nb)[df.b] * df.x + rng.normal(size=n))
    return df


CASES = [
    ("y ~ x + (1 | a) + (1 | b)", {}),
    ("y ~ x + (1 | a) + (1 + x | b)", {}),
    ("y ~ x + (1 + x | a) + (1 | b)", {}),
    ("y ~ x + (1 | a) + (1 | b) + (1 | c)", {"nc": 7}),
]


@pytest.mark.parametrize("formula, extra", CASES)
@pytest.mark.parametrize("reml", [False, True])
def test_diagonal_traces_equal_the_selected_inverse(formula, extra, reml, monkeypatch):
    model = hlmext.mixedlm(formula, _data(**extra))
    d = model.design
    assert d.coupling is None and d.n_chain == 1 and d.qd     # the dense coupling this path serves
    theta = model.theta_start() * model.theta_scale() * np.linspace(0.6, 1.3, model.k_re)
    calls = []
    real = _diagonal.diagonal_sums
    monkeypatch.setattr(_diagonal, "diagonal_sums", lambda *a: calls.append(1) or real(*a))
    dev, grad = model.deviance_and_gradient(theta, reml)
    assert calls                                                # the diagonal blocks gave the traces
    monkeypatch.setattr(gradient, "DIAGONAL_MIN_INFORMATION", np.inf)    # the selected inverse
    dev0, grad0 = model.deviance_and_gradient(theta, reml)
    assert len(calls) == 1
    assert dev == dev0
    np.testing.assert_allclose(grad, grad0, rtol=1e-10, atol=1e-10 * np.max(np.abs(grad0)))


def test_a_level_at_zero_takes_the_selected_inverse(monkeypatch):
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", _data())
    monkeypatch.setattr(_diagonal, "diagonal_sums", None)       # must not be called
    for theta in (np.array([0.0, 0.5]), np.array([0.7, 0.0]), np.array([0.7, 1e-7])):
        dev, grad = model.deviance_and_gradient(theta, False)
        assert np.isfinite(dev) and np.isfinite(grad).all()


def test_digits_lost_fall_back_to_the_selected_inverse(monkeypatch):
    # the fraction of I left in I - Sigma_kk is checked after the sums: below the limit, the factor
    # is formed again and the selected inverse gives the traces
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", _data())
    theta = np.array([0.8, 0.6])
    monkeypatch.setattr(gradient, "DIAGONAL_MIN_INFORMATION", np.inf)
    dev0, grad0 = model.deviance_and_gradient(theta, False)
    monkeypatch.setattr(gradient, "DIAGONAL_MIN_INFORMATION", 1e-3)
    monkeypatch.setattr(gradient, "DIAGONAL_MIN_FRACTION", 2.0)
    dev, grad = model.deviance_and_gradient(theta, False)
    assert dev == dev0
    np.testing.assert_allclose(grad, grad0, rtol=1e-13)


@pytest.mark.parametrize("q, reml", [(1, False), (1, True), (2, False), (2, True)])
def test_diagonal_sums_against_numpy(q, reml):
    rng = np.random.default_rng(3)
    nclus, p, dense_q, dense_groups = 30, 2, np.array([1, 2]), np.array([6, 4])
    qd = int(dense_q @ dense_groups)
    t, ld, ldg = qd + (p if reml else 0), q + qd + p + 1, qd + p + 1
    work = np.zeros(nclus * q * ld)
    rows = work.reshape(nclus * q, ld)
    rows[:, q:] = rng.normal(size=(nclus * q, ld - q))
    factors = [np.tril(rng.normal(size=(q, q))) + 3 * np.eye(q) for _ in range(nclus)]
    for k, Lk in enumerate(factors):
        rows[k * q:(k + 1) * q, :q] = Lk
    A = rng.normal(size=(ldg, ldg))
    L = np.linalg.cholesky(A @ A.T + ldg * np.eye(ldg))
    sigma = np.linalg.inv(L[:t, :t] @ L[:t, :t].T)
    want = sum(np.linalg.inv(Lk).T @ (np.eye(q) + U @ sigma @ U.T) @ np.linalg.inv(Lk)
               for Lk, U in zip(factors, np.split(rows[:, q:q + t].copy(), nclus)))
    blocks, start = [], 0
    for qj, gj in zip(dense_q, dense_groups):
        blocks.append(sum(sigma[start + g * qj:start + (g + 1) * qj, start + g * qj:start + (g + 1) * qj]
                          for g in range(gj)).ravel())
        start += qj * gj
    chain_sum, dense_sum = np.zeros(q * q), np.zeros(int(np.sum(dense_q ** 2)))
    _diagonal.diagonal_sums(work, q, ld, nclus, L.ravel().copy(), ldg, t, dense_q, dense_groups, chain_sum,
                           dense_sum)
    np.testing.assert_allclose(chain_sum, want.ravel(), rtol=1e-12)
    np.testing.assert_allclose(dense_sum, np.concatenate(blocks), rtol=1e-12)
    with pytest.raises(ValueError, match="ldg > t"):
        _diagonal.diagonal_sums(work, q, ld, nclus, L.ravel().copy(), t, t, dense_q, dense_groups, chain_sum,
                               dense_sum)


def test_a_mostly_full_pattern_is_not_made(monkeypatch):
    # whether the coupling is mostly full follows from the elimination cost's counts: the pattern,
    # which the dense coupling would discard, is not built
    monkeypatch.setattr(sparse_coupling, "pattern", None)
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", _data())
    assert model.design.coupling is None
    monkeypatch.setattr(layout, "DENSE_FILL", 1.0)
    with pytest.raises(TypeError):                             # a sparse coupling still needs it
        hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", _data())
