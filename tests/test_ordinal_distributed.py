"""meologit and meoprobit fitted on partitions (chunks, Parquet, Dask) equal the in-memory fit.

As for the other families (test_glmm_distributed.py): the rows are shuffled before they are
cut into chunks, so every cluster is spread over several chunks; the response's categories
come from all the data, and a partition may lack some of them.
"""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import DataError, ModelError

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

TOL = 1e-8
LABELS = ["low", "mid", "high", "top"]


def make(seed=7):
    """40 clusters, an ordered response of four categories (strings), one covariate."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(40), rng.integers(4, 12, 40))
    x = rng.normal(size=g.size)
    latent = 0.8 * x + rng.normal(size=40)[g] + rng.logistic(size=g.size)
    cat = np.digitize(latent, [-1.0, 0.5, 2.0])
    df = pd.DataFrame({"g": g, "x": x, "y": pd.Categorical.from_codes(cat, dtype=pd.CategoricalDtype(LABELS, ordered=True)),
                       "n": cat + 1})
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def chunks_of(df, size=90):
    return [df.iloc[i:i + size] for i in range(0, len(df), size)]


def assert_same_fit(res, ref, tol_se=TOL):
    assert res.nobs == ref.nobs and list(res.params.index) == list(ref.params.index)
    np.testing.assert_allclose(res.llf, ref.llf, rtol=TOL)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(ref.params), rtol=TOL)
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=tol_se)
    np.testing.assert_allclose(res.null_llf, ref.null_llf, rtol=TOL)
    assert res.model_label == ref.model_label and res.categories == ref.categories


@pytest.fixture(scope="module")
def data():
    return make()


@pytest.mark.parametrize("name, formula, nagq", [("meologit", "y ~ x + (1 | g)", 7),
                                                 ("meoprobit", "y ~ x + (1 | g)", 1),
                                                 ("meologit", "n ~ x + (x | g)", 1)])
def test_chunks_fit_equals_in_memory_fit(data, name, formula, nagq):
    fn = getattr(hlmext, name)
    ref = fn(formula, data).fit(nagq=nagq)
    model = fn(formula, chunks_of(data), npartitions=3)
    assert len(model.parts) == 3 and model.design.has_rows is False
    assert_same_fit(model.fit(nagq=nagq), ref)


def test_a_partition_without_some_categories(data):
    # every row of the top category in one chunk of its own clusters: other partitions lack it
    top = data["y"] == "top"
    groups = data.loc[top, "g"].unique()[:2]
    df = data[~top | data["g"].isin(groups)]
    ref = hlmext.meologit("y ~ x + (1 | g)", df).fit(nagq=1)
    model = hlmext.meologit("y ~ x + (1 | g)", chunks_of(df), npartitions=4)
    counts = [np.bincount(p.store.recipes["_y"][1], minlength=4) for p in model.parts.parts]
    assert any(c[3] == 0 for c in counts) and sum(counts)[3] > 0
    assert_same_fit(model.fit(nagq=1), ref)


def test_the_categories_come_from_all_chunks(data):
    # numbers: their sorted distinct values over all the chunks, whichever chunk holds them
    chunks = chunks_of(data.sort_values("n"), 120)
    assert chunks[0]["n"].nunique() < 4
    res = hlmext.meologit("n ~ x + (1 | g)", chunks).fit(nagq=1)
    assert res.categories == [1, 2, 3, 4]
    ref = hlmext.meologit("n ~ x + (1 | g)", data).fit(nagq=1)
    assert_same_fit(res, ref)


def test_parquet_and_dask_on_workers(data, client, tmp_path):
    ref = hlmext.meoprobit("y ~ x + (1 | g)", data).fit(nagq=7)
    for i, chunk in enumerate(chunks_of(data)):
        chunk.assign(y=chunk["y"].astype(str)).to_parquet(tmp_path / ("part-%d.parquet" % i))
    res = hlmext.meoprobit("y ~ x + (1 | g)", str(tmp_path), client=client, batch_size=50).fit(nagq=7)
    # strings: sorted ("high" < "low" < "mid" < "top"), as in memory for strings
    ref_str = hlmext.meoprobit("y ~ x + (1 | g)", data.assign(y=data["y"].astype(str))).fit(nagq=7)
    assert res.categories == ["high", "low", "mid", "top"]
    assert_same_fit(res, ref_str)
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    res = hlmext.meoprobit("y ~ x + (1 | g)", ddf, client=client).fit(nagq=7)
    assert_same_fit(res, ref)
    blups = client.compute(res.random_effects["g"]).result().sort_index()
    np.testing.assert_allclose(blups.to_numpy(), ref.random_effects["g"].to_numpy(), rtol=1e-6, atol=1e-8)


def test_results_from_the_sums_and_refusals(data):
    chunks = chunks_of(data)
    ref = hlmext.meologit("y ~ x + (1 | g)", data).fit(nagq=7, cov_type="cluster")
    res = hlmext.meologit("y ~ x + (1 | g)", chunks).fit(nagq=7, cov_type="cluster")
    # the sandwich's Hessian is a second difference of sums over clusters (test_glmm_distributed.py)
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=1e-5)
    res = hlmext.meologit("y ~ x + (1 | g)", chunks).fit(nagq=7)
    ref = hlmext.meologit("y ~ x + (1 | g)", data).fit(nagq=7)
    assert str(res.lr_test_vs_regression()) == str(ref.lr_test_vs_regression())
    assert "/cut3" in str(res.summary()) and res.cuts.size == 3
    new = data.head(5)
    np.testing.assert_allclose(res.predict(new).to_numpy(), ref.predict(new).to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(res.random_effects["g"].to_numpy(), ref.random_effects["g"].to_numpy(),
                               rtol=1e-6, atol=1e-8)
    for call in (lambda: res.bootstrap(n=5), lambda: res.profile_ci(), lambda: res.simulate(),
                 lambda: res.refit(data["y"])):
        with pytest.raises(ModelError, match="fit the model in memory"):
            call()
    with pytest.raises(ValueError, match="keeps no rows"):
        res.fittedvalues


def test_bad_input_is_refused_by_name(data):
    chunks = chunks_of(data)
    with pytest.raises(ModelError, match="one level of random effects"):
        hlmext.meologit("y ~ x + (1 | g) + (1 | x)", chunks)
    with pytest.raises(TypeError, match="npartition"):
        hlmext.meoprobit("y ~ x + (1 | g)", chunks, n_partitions=2)
    with pytest.raises(DataError, match="no rows in category top"):
        hlmext.meologit("y ~ x + (1 | g)", [c[c["y"] != "top"] for c in chunks])
    with pytest.raises(DataError, match="at least two categories"):
        hlmext.meologit("y ~ x + (1 | g)", [c.assign(y="low") for c in chunks])
    with pytest.raises(ModelError, match="nagq=0"):
        hlmext.meologit("y ~ x + (1 | g)", chunks).fit(nagq=0)
