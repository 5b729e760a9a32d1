"""Crossed factors from chunks, Parquet and Dask: the sparse coupling of the chain's clusters to
the crossed block and the crossed block's cross-products in parts, as in memory.

The pattern comes from the distinct key combinations of pass 2 and the values are added into
its slots chunk by chunk, so a chunked crossed fit has the statistics, and uses the kernels,
of the in-memory fit; every cluster's rows are spread over several chunks.
"""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.design import layout as design_layout
from hlmext.design.tail_gram import TailGram

from test_chunked import assert_same_fit, split


def ratings(seed=0, n=3000, A=300, B=150, C=8):
    """Rating-like data: every subject meets a few of many items (skewed popularity), a third
    crossed factor with few groups, and a covariate with random slopes."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, A, n)
    b = np.minimum(rng.zipf(1.3, n) - 1, B - 1) if seed % 2 else rng.integers(0, B, n)
    c = rng.integers(0, C, n)
    x = rng.normal(size=n)
    u, v = rng.normal(size=(A, 2)) * [1.0, 0.4], rng.normal(size=(B, 2)) * [0.7, 0.3]
    y = 1 + x + u[a, 0] + u[a, 1] * x + v[b, 0] + v[b, 1] * x + 0.5 * rng.normal(size=C)[c] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "subj": ["s%03d" % k for k in a], "item": b, "rater": c})


MODELS = {
    "two": "y ~ x + (1 | subj) + (1 | item)",
    "three": "y ~ x + (1 | subj) + (1 | item) + (1 | rater)",
    "slope": "y ~ x + (1 | subj) + (1 + x | item)",
    "slopes": "y ~ x + (1 + x | subj) + (1 + x | item)",
}


def same_statistics(model, ref):
    """The chunked design holds the in-memory pattern and values (own blocks, coupling, tail)."""
    d, r = model.design, ref.design
    assert d.coupling is not None and r.coupling is not None
    np.testing.assert_array_equal(d.coupling.ptr, r.coupling.ptr)
    np.testing.assert_array_equal(d.coupling.cols, r.coupling.cols)
    assert d.stat_size == r.stat_size and d.stat_qd == r.stat_qd == 0
    np.testing.assert_allclose(model._stats, ref._stats, rtol=1e-10, atol=1e-9)
    assert isinstance(model._tail, TailGram)
    np.testing.assert_allclose(model._tail.dense(), ref._tail.dense(), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("name", list(MODELS))
def test_chunked_crossed_fit_uses_the_sparse_coupling_and_equals_in_memory(name, reml):
    chunks = split(ratings(seed=1), 7, seed=2)
    data = pd.concat(chunks)
    ref = hlmext.mixedlm(MODELS[name], data)
    model = hlmext.mixedlm(MODELS[name], chunks)
    same_statistics(model, ref)
    assert_same_fit(model.fit(reml=reml), ref.fit(reml=reml), 1e-8)


def test_the_chain_is_chosen_by_cost_as_in_memory():
    # items with random slopes meet most subjects: eliminating the items (fewer groups) costs less
    formula = "y ~ x + (1 | subj) + (1 + x | item)"
    chunks = split(ratings(seed=4, n=2400, A=60, B=40), 5, seed=3)
    ref = hlmext.mixedlm(formula, pd.concat(chunks))
    model = hlmext.mixedlm(formula, chunks)
    assert [lv.name for lv in ref.design.levels] == ["item", "subj"]
    assert [lv.name for lv in model.design.levels] == ["item", "subj"]
    assert_same_fit(model.fit(reml=False), ref.fit(reml=False), 1e-8)


def test_sparse_or_dense_coupling_by_the_in_memory_rule(monkeypatch):
    chunks = split(ratings(seed=1), 4, seed=4)
    assert hlmext.mixedlm(MODELS["slope"], chunks).design.coupling is not None
    monkeypatch.setattr(design_layout, "DENSE_FILL", 0.0)      # every pattern counts as full
    ref = hlmext.mixedlm(MODELS["slope"], pd.concat(chunks))
    model = hlmext.mixedlm(MODELS["slope"], chunks)
    assert model.design.coupling is None and ref.design.coupling is None
    assert model.design.stat_qd == model.design.qd
    assert_same_fit(model.fit(reml=False), ref.fit(reml=False), 1e-8)


def test_sparse_coupling_holds_fewer_values_than_the_dense_one(monkeypatch):
    chunks = split(ratings(seed=1), 4, seed=5)
    sparse = hlmext.mixedlm(MODELS["two"], chunks).design
    monkeypatch.setattr(design_layout, "SPARSE_COUPLING", False)
    dense = hlmext.mixedlm(MODELS["two"], chunks).design
    assert dense.coupling is None
    assert sparse.stat_size < dense.stat_size / 5


def test_parquet_crossed_fit_equals_in_memory(tmp_path):
    pytest.importorskip("pyarrow")
    data = ratings(seed=5)
    data = data.iloc[np.random.default_rng(5).permutation(len(data))].reset_index(drop=True)
    data.to_parquet(tmp_path / "r.parquet", row_group_size=500)
    ref = hlmext.mixedlm(MODELS["three"], data)
    model = hlmext.mixedlm(MODELS["three"], str(tmp_path / "r.parquet"), batch_size=400)
    same_statistics(model, ref)
    assert_same_fit(model.fit(reml=True), ref.fit(reml=True), 1e-8)


@pytest.mark.parametrize("name", ["three", "slopes"])
def test_dask_crossed_fit_equals_in_memory(client, name):
    dd = pytest.importorskip("dask.dataframe")
    data = ratings(seed=6)
    data = data.iloc[np.random.default_rng(6).permutation(len(data))].reset_index(drop=True)
    ref = hlmext.mixedlm(MODELS[name], data)
    with client.as_current():
        model = hlmext.mixedlm(MODELS[name], dd.from_pandas(data, npartitions=5, sort=False))
    same_statistics(model, ref)
    assert_same_fit(model.fit(reml=False), ref.fit(reml=False), 1e-8)
