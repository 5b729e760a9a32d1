"""Crossed factors with a sparse coupling: the chain's clusters store their coupling to the
crossed block only on the groups their rows touch; every result equals the dense coupling's
and the NumPy twins'."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext._kernels import reference
from hlmext.design import layout
from hlmext.design.level_structure import chain_and_crossed
from hlmext.models.gradient import GradientParts


def _crossed_slopes(seed=1, n_subj=30, n_item=12, seen=None):
    """Subjects x items, each subject sees ``seen`` items (half of them by default); slopes on both."""
    rng = np.random.default_rng(seed)
    rows = [(s, i) for s in range(n_subj) for i in rng.choice(n_item, seen or n_item // 2, replace=False)]
    df = pd.DataFrame(rows, columns=["subj", "item"])
    df["x"] = rng.choice([-0.5, 0.5], size=len(df))
    bs, bi = rng.normal(size=(n_subj, 2)), rng.normal(size=(n_item, 2))
    df["y"] = (1 + 0.5 * df.x + bs[df.subj, 0] + bs[df.subj, 1] * df.x + 0.7 * bi[df.item, 0]
               + 0.4 * bi[df.item, 1] * df.x + rng.normal(size=len(df)))
    df["subj"], df["item"] = "s" + df.subj.astype(str), "i" + df.item.astype(str)
    return df


def _three_crossed(seed=2, n=400):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, 40, n), "b": rng.integers(0, 15, n), "c": rng.integers(0, 6, n)})
    df["x"] = rng.normal(size=n)
    df["y"] = df.x + rng.normal(size=40)[df.a] + rng.normal(size=15)[df.b] + rng.normal(size=6)[df.c] \
        + rng.normal(size=n)
    return df


CASES = [
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: hlmext.datasets.load("penicillin")),
    ("y ~ x + (1 + x | subj) + (1 + x | item)", _crossed_slopes),
    ("y ~ x + (1 | a) + (1 | b) + (1 | c)", _three_crossed),
    ("y ~ x + (1 | a) + (x | b) + (1 | c)", _three_crossed),
    # clusters touching 60 columns: their products go through BLAS
    ("y ~ x + (1 + x | subj) + (1 + x | item)", lambda: _crossed_slopes(seed=6, n_subj=30, n_item=30, seen=30)),
]


def test_wide_case_has_clusters_wider_than_the_blas_threshold(monkeypatch):
    model = _model(CASES[-1][0], CASES[-1][1](), True, monkeypatch)
    assert model.design.coupling.max_columns >= 48      # BLAS_WIDTH in _kernels/crossed.pyx


def _model(formula, data, sparse, monkeypatch):
    monkeypatch.setattr(layout, "SPARSE_COUPLING", sparse)
    monkeypatch.setattr(layout, "DENSE_FILL", 1.0)       # sparse when asked, however full the pattern
    return hlmext.mixedlm(formula, data)


def test_a_mostly_full_pattern_keeps_the_dense_coupling():
    rng = np.random.default_rng(5)
    n = 4000
    full = pd.DataFrame({"a": rng.integers(0, 20, n), "b": rng.integers(0, 30, n), "x": rng.normal(size=n)})
    full["y"] = full.x + rng.normal(size=n)
    thin = full.assign(b=rng.integers(0, 3000, n))          # each a-cluster meets few of 3000 groups
    assert hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", full).design.coupling is None
    sparse = hlmext.mixedlm("y ~ x + (1 | a) + (1 | b)", thin).design
    assert sparse.coupling is not None and sparse.stat_qd == 0


def _theta(model, seed=3):
    rng = np.random.default_rng(seed)
    return model.theta_start() * (1 + 0.3 * rng.uniform(size=model.k_re))


@pytest.mark.parametrize("formula, make", CASES)
def test_sparse_coupling_holds_only_the_touched_groups(formula, make, monkeypatch):
    model = _model(formula, make(), True, monkeypatch)
    d = model.design
    c = d.coupling
    assert c is not None and len(c.cols) <= d.levels[0].n_groups * d.qd      # penicillin is fully crossed
    values = model._stats[c.offset:]
    for k, (cols, block) in enumerate(reference.crossed_coupling(d)):
        np.testing.assert_array_equal(c.cols[c.ptr[k]:c.ptr[k + 1]], cols)
        np.testing.assert_allclose(values[c.q * c.ptr[k]:c.q * c.ptr[k + 1]].reshape(c.q, -1), block,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("formula, make", CASES)
def test_sparse_factor_equals_dense_factor_and_twin(formula, make, monkeypatch):
    data = make()
    sparse, dense = _model(formula, data, True, monkeypatch), _model(formula, data, False, monkeypatch)
    assert sparse.design.coupling is not None and dense.design.coupling is None
    assert [lv.name for lv in sparse.design.levels] == [lv.name for lv in dense.design.levels]
    th = _theta(sparse)
    fs, fd = sparse.factorize(th), dense.factorize(th)
    twin = reference.deviance_parts(sparse.design, sparse.lams(th))
    for f in (fs, fd):
        np.testing.assert_allclose([f.logdet, f.logdet_rx, f.prss], twin[:3], rtol=1e-10)
    np.testing.assert_allclose(fs.beta, fd.beta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fs.modes(sparse), fd.modes(dense), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fs.modes(sparse), twin[4], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("formula, make", CASES)
def test_sparse_gradient_equals_dense_gradient(formula, make, reml, monkeypatch):
    data = make()
    sparse, dense = _model(formula, data, True, monkeypatch), _model(formula, data, False, monkeypatch)
    th = _theta(sparse)
    ds, gs = sparse.deviance_and_gradient(th, reml)
    dd, gd = dense.deviance_and_gradient(th, reml)
    assert ds == pytest.approx(dd, rel=1e-12)
    np.testing.assert_allclose(gs, gd, rtol=1e-10, atol=1e-10)
    ps = GradientParts(sparse, sparse.factorize(th), reml)
    pd_ = GradientParts(dense, dense.factorize(th), reml)
    for a, b in zip(ps.trace + ps.resid, pd_.trace + pd_.resid):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("formula, make", CASES[:3] + CASES[4:])
def test_sparse_fit_equals_dense_fit(formula, make, monkeypatch):
    data = make()
    rs = _model(formula, data, True, monkeypatch).fit(reml=False)
    rd = _model(formula, data, False, monkeypatch).fit(reml=False)
    assert rs.llf == pytest.approx(rd.llf, abs=1e-8)
    np.testing.assert_allclose(rs.params, rd.params, rtol=1e-6, atol=1e-8)
    th = rs.theta
    fs = rs.model.factorize(th)
    fd = rd.model.factorize(th)
    np.testing.assert_allclose(fs.modes(rs.model), fd.modes(rd.model), rtol=1e-10, atol=1e-10)
    for name in rs.random_effects_cov:         # BLUP conditional variances from the selected inverse
        np.testing.assert_allclose(rs.random_effects_cov[name], rd.random_effects_cov[name], rtol=1e-5, atol=1e-9)


def test_bootstrap_refit_on_a_sparse_coupling(monkeypatch):
    from hlmext.inference.bootstrap import with_endog
    data = _crossed_slopes()
    rng = np.random.default_rng(5)
    y = rng.normal(size=len(data))
    out = []
    for sparse in (True, False):
        model = _model(CASES[1][0], data, sparse, monkeypatch)
        new = with_endog(model, y[model.design.order])
        out.append(new.deviance(_theta(model), True))
    assert out[0] == pytest.approx(out[1], rel=1e-10)


def test_moment_start_uses_the_touched_groups(monkeypatch):
    data = _three_crossed()
    sparse = _model(CASES[2][0], data, True, monkeypatch)
    dense = _model(CASES[2][0], data, False, monkeypatch)
    np.testing.assert_allclose(sparse.theta_moments(), dense.theta_moments(), rtol=1e-10)


def test_chain_chosen_by_elimination_cost():
    # a: 300 groups with one random effect; b: 200 groups with four. As the chain, a would leave a
    # tail of 800 columns (cost ~ 3.6e8), b a tail of 300 (~ 8e7): b is eliminated cluster by cluster
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 300, 5000), rng.integers(0, 200, 5000)
    a[:300], b[:200] = np.arange(300), np.arange(200)
    assert chain_and_crossed([a, b]) == ([0], [1])            # by size alone
    assert chain_and_crossed([a, b], [1, 4], 1) == ([1], [0])


def test_design_beyond_the_dense_coupling_limit_fits(monkeypatch):
    # 260,000 subjects x 1,000 items in 520,000 rows: a dense coupling of 2.6e8 values (2.1 GB) is
    # refused; the sparse one holds one value per distinct (subject, item) pair
    rng = np.random.default_rng(4)
    n_subj, n_item = 260_000, 1_000
    df = pd.DataFrame({"subj": np.repeat(np.arange(n_subj), 2), "item": rng.integers(0, n_item, 2 * n_subj)})
    df.loc[:n_item - 1, "item"] = np.arange(n_item)
    df["y"] = rng.normal(size=n_item)[df.item] + rng.normal(size=len(df))
    formula = "y ~ 1 + (1 | subj) + (1 | item)"
    with pytest.raises(hlmext.ModelError, match="coupling matrix"):
        _model(formula, df, False, monkeypatch)
    model = _model(formula, df, True, monkeypatch)
    d = model.design
    assert d.levels[0].name == "subj"
    assert d.coupling.size == len(np.unique(df.subj.to_numpy() * n_item + df.item.to_numpy()))
    assert d.stat_size < 3 * len(df)
    assert np.isfinite(model.deviance(np.array([0.5, 0.5]), False))


@pytest.mark.parametrize("reml", [False, True])
def test_wide_sparse_clusters_with_the_other_factor_as_chain(reml, monkeypatch):
    # subjects as the chain (forced): each touches 60 of the 300 item columns, so their
    # products go through BLAS on the cluster's columns (neither the scalar nor the dense rows)
    from hlmext.design import sparse_coupling
    monkeypatch.setattr(sparse_coupling, "elimination_cost", lambda codes, qs, k_fe, touched=None: [0.0, 1.0])
    data = _crossed_slopes(seed=7, n_subj=30, n_item=150, seen=30)
    sparse, dense = _model(CASES[1][0], data, True, monkeypatch), _model(CASES[1][0], data, False, monkeypatch)
    assert sparse.design.levels[0].name == "subj" and sparse.design.coupling.max_columns == 60
    th = _theta(sparse)
    fs = sparse.factorize(th)
    twin = reference.deviance_parts(sparse.design, sparse.lams(th))
    np.testing.assert_allclose([fs.logdet, fs.logdet_rx, fs.prss], twin[:3], rtol=1e-10)
    assert [lv.name for lv in dense.design.levels] == ["item", "subj"]     # the dense chain: most groups
    swap = np.r_[3:6, 0:3]
    ds, gs = sparse.deviance_and_gradient(th, reml)
    dd, gd = dense.deviance_and_gradient(th[swap], reml)
    assert ds == pytest.approx(dd, rel=1e-12)
    np.testing.assert_allclose(gs[swap], gd, rtol=1e-10, atol=1e-10)


def test_frequency_weights_on_a_sparse_coupling(monkeypatch):
    data = _three_crossed()
    w = np.random.default_rng(8).integers(0, 4, len(data)).astype(float)
    out = []
    for sparse in (True, False):
        monkeypatch.setattr(layout, "SPARSE_COUPLING", sparse)
        model = hlmext.mixedlm(CASES[3][0], data, weights=w)
        th = _theta(model)
        out.append((model.deviance_and_gradient(th, False), model.factorize(th).modes(model)))
    (ds, gs), us = out[0]
    (dd, gd), ud = out[1]
    assert ds == pytest.approx(dd, rel=1e-12)
    np.testing.assert_allclose(gs, gd, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(us, ud, rtol=1e-10, atol=1e-10)
