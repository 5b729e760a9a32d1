"""Fits from chunks (lists of DataFrames, chunk factories, Parquet) equal the in-memory fit.

Tolerance 1e-10 relative for every quantity (log-likelihood, fixed effects and their
standard errors, variance estimates and their standard errors) in every design: the
optimizer and the standard errors use the analytic gradient (``hlmext.models.gradient``), so
only the rounding of the sums differs between the chunked and the in-memory fit.
"""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext._kernels import core as _core
from hlmext.design import chunked
from hlmext.exceptions import DataError, ModelError


# --------------------------------------------------------------------------- data

def two_level(seed=0, n=2500, G=100):
    """Random intercept and slope by school (string ids), a categorical covariate with a
    rare level, missing values, and a level seen only in rows that are dropped."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, n)
    x = rng.normal(size=n)
    cat = rng.choice(["lo", "mid", "hi"], n, p=[0.47, 0.47, 0.06]).astype(object)
    b0, b1 = rng.normal(size=G), 0.5 * rng.normal(size=G)
    y = 2 + 0.5 * x + 0.3 * (cat == "hi") + b0[g] + b1[g] * x + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "cat": cat, "school": ["s%03d" % v for v in g]})
    df.loc[rng.choice(n, 30, replace=False), "x"] = np.nan
    df.loc[rng.choice(n, 30, replace=False), "y"] = np.nan
    df.loc[rng.choice(n, 15, replace=False), "cat"] = None
    df.loc[np.flatnonzero(df.y.isna())[:2], "cat"] = "unused"
    return df


def nested(seed=0, n=2500, A=25, B=6):
    """Schools numbered 0..5 within each district: nested through the combination."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, A, n), rng.integers(0, B, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=A)[a] + 0.7 * rng.normal(size=(A, B))[a, b] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "district": ["d%02d" % v for v in a], "school": b})


def nested_slopes(seed=0, n=3000, A=30, B=6):
    """Random intercepts and slopes at both levels."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, A, n), rng.integers(0, B, n)
    x = rng.normal(size=n)
    u = rng.normal(size=(A, 2)) @ [[1.0, 0.3], [0.0, 0.5]]
    v = rng.normal(size=(A, B, 2)) * [0.7, 0.4]
    y = 1 + x + u[a, 0] + u[a, 1] * x + v[a, b, 0] + v[a, b, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "district": ["d%02d" % v for v in a], "school": b})


def crossed(seed=0, n=2500, A=60, B=20):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, A, n), rng.integers(0, B, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=A)[a] + 0.7 * rng.normal(size=B)[b] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "worker": ["w%02d" % v for v in a], "item": b})


def split(df, k, seed=0):
    """Shuffled rows cut into k chunks of random sizes (every cluster spread over chunks)."""
    rng = np.random.default_rng(seed)
    df = df.iloc[rng.permutation(len(df))]
    cuts = np.sort(rng.choice(np.arange(1, len(df)), k - 1, replace=False))
    return [df.iloc[i:j] for i, j in zip(np.r_[0, cuts], np.r_[cuts, len(df)])]


MODELS = {
    "two-level": ("y ~ x + cat + (x | school)", two_level, 1e-10),
    "nested": ("y ~ x + (1 | district/school)", nested, 1e-10),
    "nested-slopes": ("y ~ x + (x | district) + (x | district:school)", nested_slopes, 1e-10),
    "crossed": ("y ~ x + (1 | worker) + (1 | item)", crossed, 1e-10),
}


def assert_same_fit(res, ref, tol):
    assert res.nobs == ref.nobs
    assert res.n_groups == ref.n_groups
    assert res.llf == pytest.approx(ref.llf, rel=1e-10, abs=0)
    np.testing.assert_allclose(res.fe_params, ref.fe_params, rtol=1e-10)
    assert list(res.fe_params.index) == list(ref.fe_params.index)
    np.testing.assert_allclose(res.bse_fe, ref.bse_fe, rtol=tol)
    np.testing.assert_allclose(res.re_params["estimate"], ref.re_params["estimate"], rtol=tol)
    np.testing.assert_allclose(res.re_params.iloc[:, 1], ref.re_params.iloc[:, 1], rtol=tol)
    for name, blups in ref.random_effects.items():
        assert res.random_effects[name].index.equals(blups.index)
        np.testing.assert_allclose(res.random_effects[name], blups, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(res.random_effects_cov[name], ref.random_effects_cov[name], rtol=1e-10)


# --------------------------------------------------------------------------- the kernel

def scatter_twin(W, zoff, cluster, stat_off, qd, size):
    """NumPy twin of ``_core.scatter_cross_products`` (np.add.at over rows)."""
    stats = np.zeros(size)
    m, Q = W.shape[1], zoff[-1]
    for l in range(len(zoff) - 1):
        z0, q = zoff[l], zoff[l + 1] - zoff[l]
        D = m - z0 + qd
        cols = np.r_[np.arange(Q - z0), np.arange(Q - z0, m - z0) + qd]
        for a in range(q):
            idx = stat_off[cluster[:, l]][:, None] + a * D + cols
            np.add.at(stats, idx, W[:, z0 + a][:, None] * W[:, z0:])
    return stats


@pytest.mark.parametrize("sizes", [[1, 1, 1], [2, 2], [1, 5, 2, 3]])
@pytest.mark.parametrize("qd", [0, 3])
def test_scatter_kernel_matches_twin_and_sorted_kernel(sizes, qd):
    rng = np.random.default_rng(len(sizes) + qd)
    inner = np.repeat(np.arange(len(sizes)), sizes)          # level 0 clusters 0..k-1
    outer = len(sizes) + inner // 2                          # level 1: pairs of inner clusters
    n = inner.size
    zoff = np.array([0, 2, 3], dtype=np.intp)
    W = rng.normal(size=(n, 3 + 2 + 1))
    W[rng.random(W.shape) < 0.1] = 0.0
    n_clusters = outer.max() + 1
    widths = np.r_[np.full(len(sizes), 2 * (6 + qd)), np.full(n_clusters - len(sizes), 1 * (4 + qd))]
    stat_off = np.r_[0, np.cumsum(widths)[:-1]].astype(np.intp)
    cluster = np.column_stack([inner, outer]).astype(np.intp)
    perm = rng.permutation(n)
    got = np.zeros(widths.sum())
    for rows in np.array_split(perm, 3):                     # unsorted rows in chunks
        _core.scatter_cross_products(np.ascontiguousarray(W[rows]), zoff, np.ascontiguousarray(cluster[rows]),
                                     stat_off, qd, got)
    np.testing.assert_allclose(got, scatter_twin(W, zoff, cluster, stat_off, qd, widths.sum()), rtol=1e-13)
    level_first = np.array([0, len(sizes), n_clusters], dtype=np.intp)
    change = [np.flatnonzero(np.diff(c) != 0) + 1 for c in (inner, outer)]
    starts = np.concatenate([np.r_[0, c] for c in change])
    ends = np.concatenate([np.r_[c, n] for c in change])
    want = np.zeros(widths.sum())
    _core.cross_products(W, zoff, level_first, starts.astype(np.intp), ends.astype(np.intp), stat_off, qd, want)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------- fits

@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("model", list(MODELS))
def test_chunked_fit_equals_in_memory_fit(model, reml):
    formula, make, tol = MODELS[model]
    chunks = split(make(seed=1), 6, seed=1)
    ref = hlmext.mixedlm(formula, pd.concat(chunks)).fit(reml=reml)
    res = hlmext.mixedlm(formula, chunks).fit(reml=reml)
    assert res.model.design.has_rows is False
    assert_same_fit(res, ref, tol)


def test_missing_values_and_levels_follow_the_in_memory_rule():
    df = two_level(seed=2)
    chunks = split(df, 5, seed=2)
    chunks.insert(2, df.iloc[:0])                                       # an empty chunk
    chunks.insert(4, df.assign(y=np.nan).iloc[:40])                     # a chunk with no usable row
    chunks.insert(0, df[df.cat.isin(["lo"])].iloc[:50])                 # levels absent from this chunk
    data = pd.concat(chunks)
    ref = hlmext.mixedlm("y ~ x + cat + (x | school)", data)
    model = hlmext.mixedlm("y ~ x + cat + (x | school)", chunks)
    assert model.frame.n_dropped == ref.frame.n_dropped > 0
    assert model.exog_names == ref.exog_names == ["Intercept", "cat[T.lo]", "cat[T.mid]", "x"]   # no 'unused'
    assert_same_fit(model.fit(reml=False), ref.fit(reml=False), 1e-10)
    with pytest.raises(DataError, match="missing"):
        hlmext.mixedlm("y ~ x + cat + (x | school)", chunks, missing="raise")


def test_chunk_factory_parquet_and_categories(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    formula = "y ~ x + cat + (x | school)"
    chunks = split(two_level(seed=3), 4, seed=3)
    ref = hlmext.mixedlm(formula, pd.concat(chunks)).fit(reml=False)
    assert_same_fit(hlmext.mixedlm(formula, lambda: iter(chunks)).fit(reml=False), ref, 1e-10)
    folder = tmp_path / "data"
    folder.mkdir()
    for i, chunk in enumerate(chunks):                       # several files, several row groups
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), folder / ("part%d.parquet" % i),
                       row_group_size=200)
    assert_same_fit(hlmext.mixedlm(formula, str(folder), batch_size=300).fit(reml=False), ref, 1e-10)
    # given categories skip the pass over the data for the levels (and are the levels, as a
    # pandas Categorical is in memory); a value outside them is an error, not a missing value
    with pytest.raises(DataError, match="not among the categories"):
        hlmext.mixedlm(formula, chunks, categories={"cat": ["hi", "lo", "mid"]})
    clean = [c[c.cat != "unused"] for c in chunks]
    given = hlmext.mixedlm(formula, clean, categories={"cat": ["hi", "lo", "mid"]})
    assert given.exog_names == ref.model.exog_names
    assert_same_fit(given.fit(reml=False), hlmext.mixedlm(formula, pd.concat(clean)).fit(reml=False), 1e-10)


def test_blups_residuals_and_predictions_from_a_chunked_fit():
    formula = "y ~ x + (1 | district/school)"
    chunks = split(nested(seed=4), 5, seed=4)
    data = pd.concat(chunks)
    ref = hlmext.mixedlm(formula, data).fit()
    res = hlmext.mixedlm(formula, chunks).fit()
    resid = pd.concat(chunked.residuals(res, chunks))
    assert len(resid) == len(ref.resid)
    np.testing.assert_allclose(resid.reindex(ref.resid.index), ref.resid, atol=1e-7)
    fitted = pd.concat(chunked.fittedvalues(res, chunks))
    np.testing.assert_allclose(fitted.reindex(ref.fittedvalues.index), ref.fittedvalues, atol=1e-7)
    np.testing.assert_allclose(res.predict(chunks[0], which="conditional"), fitted.loc[chunks[0].index], atol=1e-12)
    np.testing.assert_allclose(res.predict(chunks[0]), ref.predict(chunks[0]), atol=1e-7)
    for attr in ("resid", "fittedvalues"):
        with pytest.raises(ValueError, match="chunk by chunk"):
            getattr(res, attr)
    assert "district:school" in str(res.summary())


def test_lr_test_and_summary_from_statistics():
    chunks = split(two_level(seed=5), 4, seed=5)
    data = pd.concat(chunks)
    small = hlmext.mixedlm("y ~ x + cat + (1 | school)", chunks).fit(reml=False)
    big = hlmext.mixedlm("y ~ x + cat + (x | school)", chunks).fit(reml=False)
    ref = hlmext.lrtest(hlmext.mixedlm("y ~ x + cat + (1 | school)", data).fit(reml=False),
                        hlmext.mixedlm("y ~ x + cat + (x | school)", data).fit(reml=False))
    assert hlmext.lrtest(small, big).statistic == pytest.approx(ref.statistic, rel=1e-8)
    assert big.lr_test_vs_regression().statistic == pytest.approx(
        hlmext.mixedlm("y ~ x + cat + (x | school)", data).fit(reml=False).lr_test_vs_regression().statistic,
        rel=1e-8)


def test_errors_name_the_problem():
    chunks = split(two_level(seed=6), 3, seed=6)
    with pytest.raises(DataError, match="read only once"):
        hlmext.mixedlm("y ~ x + (1 | school)", iter(chunks))
    with pytest.raises(DataError, match="same value"):
        hlmext.mixedlm("y ~ x + (1 | school)", [c.assign(y=1.0) for c in chunks])
    with pytest.raises(ModelError, match="single group"):
        hlmext.mixedlm("y ~ x + (1 | school)", [c.assign(school="a") for c in chunks])
    with pytest.raises(ModelError, match="rank deficient"):
        hlmext.mixedlm("y ~ x + x2 + (1 | school)", [c.assign(x2=2 * c.x) for c in chunks])
    calls = []

    def changing():                  # a source that does not return the same rows every time
        calls.append(1)
        return iter(chunks if len(calls) < 3 else [c.assign(school=c.school + "x") for c in chunks])
    with pytest.raises(DataError, match="changed between passes"):
        hlmext.mixedlm("y ~ x + (1 | school)", changing)
    calls.clear()

    def shrinking():
        calls.append(1)
        return iter(chunks if len(calls) < 3 else chunks[1:])
    with pytest.raises(DataError, match="changed between passes"):
        hlmext.mixedlm("y ~ x + (1 | school)", shrinking)
    with pytest.raises(TypeError, match="chunked data only"):
        hlmext.mixedlm("y ~ x + (1 | school)", pd.concat(chunks), batch_size=10)


def test_stateful_transform_reads_every_chunk():
    chunks = split(nested(seed=5), 4, seed=5)
    formula = "y ~ center(x) + (1 | district/school)"
    assert_same_fit(hlmext.mixedlm(formula, chunks).fit(), hlmext.mixedlm(formula, pd.concat(chunks)).fit(), 2e-9)


def test_bootstrap_needs_the_rows():
    import hlmext
    df = hlmext.datasets.load("sleepstudy")
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", [df.iloc[:90], df.iloc[90:]]).fit(reml=False)
    with pytest.raises(hlmext.ModelError, match="need the rows"):
        res.simulate(2, seed=1)
    with pytest.raises(hlmext.ModelError, match="need the rows"):
        res.bootstrap(n=2, seed=1, n_jobs=1)
