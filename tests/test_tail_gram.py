"""The tail ``[D X y]'[D X y]`` of crossed factors in parts (``hlmext.design.tail_gram``): equal to
the dense global block, scaled into the factorization's buffer as the dense one was, and a fit
never forms the dense block."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.design import layout
from hlmext.design.tail_gram import TailGram
from hlmext.models.factorization import scale_dense


def _data(seed=4, n=2500):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, 70, n), "b": rng.integers(0, 30, n), "c": rng.integers(0, 9, n),
                       "x": rng.normal(size=n), "w": rng.integers(1, 4, n).astype(float)})
    df["y"] = (df.x + rng.normal(size=70)[df.a] + rng.normal(size=30)[df.b] * (1 + 0.5 * df.x)
               + rng.normal(size=9)[df.c] + rng.normal(size=n))
    return df


CASES = [
    ("y ~ x + (1 | a) + (1 | b)", None),
    ("y ~ x + (1 | a) + (1 + x | b)", None),
    ("y ~ x + (1 | a) + (1 + x | b) + (1 | c)", None),
    ("y ~ x + (1 | a) + (1 | b) + (x | c)", None),
    ("y ~ x + (1 | a) + (1 | b)", "w"),
]


@pytest.mark.parametrize("formula, weights", CASES)
def test_parts_equal_the_dense_block(formula, weights):
    df = _data()
    model = hlmext.mixedlm(formula, df, weights=weights)
    d, tail = model.design, model._tail
    assert isinstance(tail, TailGram) and "_G0" not in model.__dict__
    dense = d.global_block()                                    # the dense block from the rows
    np.testing.assert_allclose(tail.dense().reshape(dense.shape), dense, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(model._G0, dense.ravel(), rtol=1e-12, atol=1e-9)
    assert model._yy() == pytest.approx(dense[-1, -1], rel=1e-14)
    for lv in d.crossed:
        seg = slice(lv.doff, lv.doff + lv.n_groups * lv.q)
        ng, q = lv.n_groups, lv.q
        want = dense[seg, seg].reshape(ng, q, ng, q)[np.arange(ng), :, np.arange(ng), :]
        np.testing.assert_allclose(tail.diagonal_blocks(lv), want, rtol=1e-12, atol=1e-9)
    lams = [np.tril(np.full((lv.q, lv.q), 0.3)) + 0.4 * np.eye(lv.q) for lv in d.crossed]
    scaled = tail.scale_into(np.full(tail.size, np.nan), d, lams).reshape(dense.shape)
    want = scale_dense(dense.ravel(), d, lams, out=np.empty(dense.size)).reshape(dense.shape)
    np.testing.assert_allclose(np.tril(scaled), np.tril(want), rtol=1e-12, atol=1e-9)
    assert not np.triu(scaled, 1).any()


@pytest.mark.parametrize("formula, weights", CASES[:2] + [CASES[4], ("y ~ x + (1 | a) + (1 | b) + (1 | c)", None)])
def test_a_fit_never_forms_the_dense_block(formula, weights, monkeypatch):
    # (the second ends on the boundary, a correlation of 1: there the selected inverse gives the traces)
    df = _data()
    monkeypatch.setattr(layout, "DENSE_FILL", 1.0)
    sparse = hlmext.mixedlm(formula, df, weights=weights).fit(reml=False)
    monkeypatch.setattr(layout, "DENSE_FILL", 0.0)
    dense_coupling = hlmext.mixedlm(formula, df, weights=weights).fit(reml=False)
    monkeypatch.setattr(TailGram, "dense", None)                # must not be called
    for value in (0.0, 1.0):
        monkeypatch.setattr(layout, "DENSE_FILL", value)
        res = hlmext.mixedlm(formula, df, weights=weights).fit(reml=False)
        assert res.llf == pytest.approx(sparse.llf, rel=1e-12)
    assert dense_coupling.llf == pytest.approx(sparse.llf, rel=1e-12)


def test_assigning_the_dense_block_replaces_the_parts():
    model = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", _data())
    before = model.deviance(np.array([0.6, 0.4]), False)
    G0 = model._G0.copy()
    model._G0 = G0                                              # e.g. the bootstrap's copies
    assert "_tail" not in model.__dict__ and model._G0 is G0
    assert model.deviance(np.array([0.6, 0.4]), False) == pytest.approx(before, rel=1e-12)


@pytest.mark.parametrize("formula, weights", CASES)
@pytest.mark.parametrize("reml", [False, True])
def test_selected_inverse_traces_from_the_parts(formula, weights, reml, monkeypatch):
    # where the diagonal blocks do not serve (a nearly singular Lambda), the crossed groups' traces
    # are summed from the parts, as they were from the dense block
    from hlmext.models import gradient
    monkeypatch.setattr(gradient, "DIAGONAL_MIN_INFORMATION", np.inf)
    model = hlmext.mixedlm(formula, _data(), weights=weights)
    theta = model.theta_start() * model.theta_scale() * np.linspace(0.7, 1.2, model.k_re)
    dense = hlmext.mixedlm(formula, _data(), weights=weights)
    dense._G0 = dense._G0.copy()
    want = dense.deviance_and_gradient(theta, reml)
    monkeypatch.setattr(TailGram, "dense", None)                # must not be called
    got = model.deviance_and_gradient(theta, reml)
    assert got[0] == pytest.approx(want[0], rel=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-10 * np.max(np.abs(want[1])))
