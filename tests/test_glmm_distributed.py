"""Mixed logit / Poisson fitted on partitions (chunks, Parquet, Dask) equal the in-memory fit.

The data are shuffled before they are cut into chunks, so every cluster's rows are spread
over several chunks (and Dask partitions) and the fit has to bring them together. The
log-likelihood, the estimates and the (model-based) standard errors agree to 1e-8
relative: the same kernels see the same clusters, only the order of the sums differs.
"""
import os

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import DataError, ModelError

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

TOL = 1e-8


def make(seed=3, nested=True):
    """Schools of three classes each, 0/1 and count responses, an exposure."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(30), 3)
    cls = np.arange(school.size)
    b_school, b_class = 0.8 * rng.normal(size=30), 0.5 * rng.normal(size=cls.size)
    rows = np.repeat(cls, rng.integers(3, 9, cls.size))
    n = rows.size
    x = rng.normal(size=n)
    expo = rng.integers(1, 5, n).astype(float)
    eta = 0.2 + 0.4 * x + b_school[school[rows]] + (b_class[rows] if nested else 0.0)
    df = pd.DataFrame({"school": school[rows], "cls": rows % 3, "x": x, "expo": expo,
                       "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))), "yp": rng.poisson(expo * np.exp(0.5 * eta))})
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def chunks_of(df, size=150):
    return [df.iloc[i:i + size] for i in range(0, len(df), size)]


def assert_same_fit(res, ref, tol=TOL):
    assert res.nobs == ref.nobs
    np.testing.assert_allclose(res.llf, ref.llf, rtol=tol)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(ref.params), rtol=tol)
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=tol)
    assert list(res.params.index) == list(ref.params.index)


MODELS = {
    "logit, one level": (hlmext.melogit, "yb ~ x + (1 | school)", {}),
    "logit, two levels": (hlmext.melogit, "yb ~ x + (1 | school/cls)", {}),
    "poisson, one level, slope": (hlmext.mepoisson, "yp ~ x + (x | school)", {"exposure": "expo"}),
    "poisson, two levels": (hlmext.mepoisson, "yp ~ x + (1 | school/cls)", {"offset": "expo"}),
}


@pytest.fixture(scope="module")
def data():
    return make()


@pytest.mark.parametrize("name", list(MODELS))
def test_chunks_fit_equals_in_memory_fit(data, name):
    fn, formula, kw = MODELS[name]
    ref = fn(formula, data, **kw).fit()
    model = fn(formula, chunks_of(data), npartitions=3, **kw)
    assert len(model.parts) == 3 and model.design.has_rows is False
    assert_same_fit(model.fit(), ref)


@pytest.mark.parametrize("name", ["logit, one level"])
def test_dask_fit_on_workers_equals_in_memory_fit(data, client, name):
    fn, formula, kw = MODELS[name]
    ref = fn(formula, data, **kw).fit()
    ddf = dd.from_pandas(data, npartitions=4, sort=False)
    res = fn(formula, ddf, client=client, **kw).fit()
    assert_same_fit(res, ref)
    blups = res.random_effects["school"]                     # computed on the workers, lazily
    assert isinstance(blups, dd.DataFrame)
    np.testing.assert_allclose(client.compute(blups).result().sort_index().to_numpy(), ref.random_effects["school"].to_numpy(),
                               rtol=1e-6, atol=1e-8)


def test_dask_without_a_client_runs_in_this_process(data):
    fn, formula, kw = MODELS["poisson, two levels"]
    res = fn(formula, dd.from_pandas(data, npartitions=3, sort=False), client=None, **kw).fit()
    assert res.model.parts.client is None
    assert_same_fit(res, fn(formula, data, **kw).fit())


def test_parquet_directory_on_workers(data, client, tmp_path):
    for i, chunk in enumerate(chunks_of(data, 200)):
        chunk.to_parquet(tmp_path / ("part-%d.parquet" % i))
    ref = hlmext.mepoisson("yp ~ x + (1 | school)", data, exposure="expo").fit(nagq=7)
    res = hlmext.mepoisson("yp ~ x + (1 | school)", str(tmp_path), exposure="expo", client=client,
                           batch_size=100).fit(nagq=7)
    assert_same_fit(res, ref)


def test_robust_standard_errors_lr_test_and_blups(data):
    chunks = chunks_of(data)
    ref = hlmext.melogit("yb ~ x + (1 | school)", data).fit(cov_type="cluster")
    res = hlmext.melogit("yb ~ x + (1 | school)", chunks).fit(cov_type="cluster")
    assert res.cov_type == ref.cov_type
    # the sandwich's Hessian is a second difference (steps 1e-4) of sums over clusters: the order
    # in which they are added moves it at about 1e-7, in memory as here
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=1e-5)
    assert not np.allclose(np.asarray(res.bse), np.asarray(hlmext.melogit("yb ~ x + (1 | school)", chunks).fit().bse),
                           rtol=1e-3)
    small = hlmext.melogit("yb ~ 1 + (1 | school)", chunks).fit()
    big = hlmext.melogit("yb ~ x + (1 | school)", chunks).fit()
    ref_small = hlmext.melogit("yb ~ 1 + (1 | school)", data).fit()
    ref_big = hlmext.melogit("yb ~ x + (1 | school)", data).fit()
    np.testing.assert_allclose(hlmext.lrtest(small, big).statistic, hlmext.lrtest(ref_small, ref_big).statistic,
                               rtol=1e-6)
    np.testing.assert_allclose(big.random_effects["school"].to_numpy(), ref_big.random_effects["school"].to_numpy(),
                               rtol=1e-6, atol=1e-8)
    assert big.random_effects["school"].index.equals(ref_big.random_effects["school"].index)
    assert "Mixed-effects logistic regression" in str(big.summary())
    again = big.update(". ~ . - x")                  # rebuilt by melogit from the same chunks
    assert again.model.design.has_rows is False
    np.testing.assert_allclose(again.llf, ref_small.llf, rtol=TOL)


def test_row_methods_refuse_naming_the_in_memory_fit(data):
    res = hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data)).fit(nagq=1)
    for call in (lambda: res.bootstrap(n=10), lambda: res.profile_ci(), lambda: res.simulate(),
                 lambda: res.get_prediction(data.head(3)), lambda: res.predict(data.head(3), which="marginal"),
                 lambda: res.margins(data), lambda: res.residuals(), lambda: res.influence(),
                 lambda: res.coef_table()):
        with pytest.raises(ModelError, match="fit the model in memory"):
            call()
    with pytest.raises(ValueError, match="keeps no rows"):
        res.fittedvalues


def test_bad_input_is_refused(data):
    chunks = chunks_of(data)
    with pytest.raises(TypeError, match="npartition"):
        hlmext.melogit("yb ~ x + (1 | school)", chunks, n_partitions=2)
    with pytest.raises(TypeError, match="column name"):
        hlmext.mepoisson("yp ~ x + (1 | school)", chunks, exposure=data["expo"].to_numpy())
    with pytest.raises(ModelError, match="crossed"):
        hlmext.melogit("yb ~ x + (1 | school) + (1 | cls)", chunks)
    with pytest.raises(ValueError, match="npartitions"):
        hlmext.melogit("yb ~ x + (1 | school)", chunks, npartitions=0)
    with pytest.raises(DataError, match="lack the column"):
        hlmext.mepoisson("yp ~ x + (1 | school)", chunks, exposure="nope")


def test_checks_on_all_rows_not_on_a_partition(data):
    # one partition may see a constant response or a single group: only the whole data count
    skewed = data.assign(yb=np.where(data.school < 15, 0, data.yb))
    ref = hlmext.melogit("yb ~ x + (1 | school)", skewed).fit(nagq=1)
    res = hlmext.melogit("yb ~ x + (1 | school)", chunks_of(skewed), npartitions=7).fit(nagq=1)
    assert_same_fit(res, ref)
    with pytest.raises(DataError, match="same value"):
        hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data.assign(yb=0)))
    with pytest.raises(ModelError, match="single group"):
        hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data.assign(school=1)))
    one_each = data.drop_duplicates("cls").drop_duplicates("school")
    with pytest.raises(ModelError, match="has one observation"):
        hlmext.mepoisson("yp ~ x + (x | school)", chunks_of(one_each, 10))


def test_progress_is_reported_per_evaluation(data, capsys):
    hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data), progress=True).fit(nagq=1)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "evaluation" in ln]
    assert len(lines) > 5 and "log-likelihood" in lines[-1]


def test_a_lost_worker_is_an_error_not_a_partial_result(data, client):
    model = hlmext.melogit("yb ~ x + (1 | school)", dd.from_pandas(data, npartitions=4, sort=False), client=client)
    victim = sorted(client.scheduler_info()["workers"])[0]
    try:
        client.run(os._exit, 1, workers=[victim])      # the worker process dies with its partitions' models
    except Exception:                                   # noqa: BLE001 - it cannot answer
        pass
    with pytest.raises(ModelError, match="lost with a worker"):
        model.fit(nagq=1)


class Counts(hlmext.MixedPoisson):
    """A family defined outside the package: its class, labels and kernels are the ones used."""
    model_label = "Mixed-effects count regression"


def test_the_family_comes_from_the_model_class(data):
    from hlmext.models.glmm_distributed import from_formula
    from hlmext.public import DistributedGLM
    model = from_formula(DistributedGLM, Counts, "yp ~ x + (1 | school)", chunks_of(data), {"exposure": "expo"})
    res = model.fit(nagq=1)
    ref = Counts.from_formula("yp ~ x + (1 | school)", data, exposure="expo").fit(nagq=1)
    assert res.model.model_label == "Mixed-effects count regression" and res.model_label == ref.model_label
    assert_same_fit(res, ref)


def test_variance_on_the_boundary_as_in_memory():
    # no cluster effect in the data: the optimum is the GLM (sd = 0), llf >= the GLM's, as in memory
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(40), 6)
    x = rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "x": x, "y": rng.binomial(1, 1 / (1 + np.exp(-0.3 * x)))}).sample(frac=1.0,
                                                                                                  random_state=1)
    with pytest.warns(hlmext.exceptions.BoundaryWarning):
        ref = hlmext.melogit("y ~ x + (1 | g)", df).fit(nagq=1)
    with pytest.warns(hlmext.exceptions.BoundaryWarning):
        res = hlmext.melogit("y ~ x + (1 | g)", chunks_of(df, 50)).fit(nagq=1)
    assert res.on_boundary == ref.on_boundary == ["sd(Intercept)[g]"]
    assert res.llf >= res.null_llf
    np.testing.assert_allclose([res.llf, res.null_llf], [ref.llf, ref.null_llf], rtol=TOL)
    np.testing.assert_allclose(np.asarray(res.fe_params), np.asarray(ref.fe_params), rtol=TOL)


def test_a_partition_keeps_its_rows_once_and_work_arrays_only_during_a_call(data):
    model = hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data), npartitions=2)
    model.fit(nagq=1)
    for part in model.parts.parts:
        m = part.model
        buffers = m._buffers.get(m)
        assert all(getattr(buffers, name) is None for name in ("e", "eta", "mu", "w", "dw", "zl", "ubar"))
        assert m.endog is None and m.exog is None and m._row_const is None
        assert np.any(m._u != 0)                     # the modes are kept: the next call warm-starts from them
        assert m._X.flags.c_contiguous and m.design.W is None     # X once, alone


def _row_arrays(part):
    """What a call on a partition sees, and its model's response and trials between calls."""
    with part.lock:
        m = part.model
        seen = {name: np.array(getattr(m, name)) for name in ("_y", "_ky", "trials", "_kn", "offset", "_koff", "_Z")}
        seen["_ky is _y"] = m._ky is m._y
    return seen


def test_a_partition_keeps_the_rows_in_their_smallest_exact_form(data):
    # 0/1 response: int8; trials of 1, zero offset, the intercept's column of Z: nothing held
    model = hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data), npartitions=2)
    part = model.parts.parts[0]
    m, store = part.model, part.store
    assert all(getattr(m, name) is None for name in ("_y", "_ky", "trials", "_kn", "offset", "_koff", "_Z"))
    assert store.recipes["_y"][1].dtype == np.int8
    assert store.nbytes == m.nobs * (1 + 8 * m.k_fe)          # X and one byte a row
    seen = _row_arrays(part)
    assert seen["_ky is _y"] and seen["_y"].dtype == np.float64 and set(np.unique(seen["_y"])) <= {0.0, 1.0}
    assert np.all(seen["trials"] == 1.0) and np.all(seen["offset"] == 0.0) and np.all(seen["_Z"] == 1.0)
    assert m._y is None and m._Z is None           # made again for every call, dropped after it


def test_a_random_slope_is_read_from_x_and_a_count_offset_kept(data):
    model = hlmext.mepoisson("yp ~ x + (x | school)", chunks_of(data), exposure="expo", npartitions=2)
    part = model.parts.parts[1]
    store = part.store
    assert store.recipes["_Z"][1][1] == [("one",), ("x", 1)]
    assert store.recipes["offset"][0] == "float" and store.recipes["_y"][1].dtype == np.int8
    seen = _row_arrays(part)
    np.testing.assert_array_equal(seen["_Z"][:, 1], part.model._X[:, 1])
    np.testing.assert_array_equal(seen["offset"], seen["_koff"])
    assert seen["offset"].any()


def test_partitions_of_a_bounded_number_of_rows_by_default(data, monkeypatch):
    from hlmext.models import glmm_distributed
    monkeypatch.setattr(glmm_distributed, "PART_ROWS", 100)
    model = hlmext.melogit("yb ~ x + (1 | school)", chunks_of(data))
    assert len(model.parts) == -(-len(data) // 100) > 4
    assert max(p.model.nobs for p in model.parts.parts) < 2 * 100


def test_nested_levels_keep_no_row_codes_between_calls(data):
    model = hlmext.melogit("yb ~ x + (1 | school/cls)", chunks_of(data), npartitions=2)
    part = model.parts.parts[0]
    assert part.model._cl is None and part.model._Z is None
    with part.lock:
        cl = part.model._cl
        d = part.model.design
        assert cl.shape == (part.model.nobs, 2) and np.all(np.diff(cl, axis=0) >= 0)
        assert np.array_equal(np.bincount(cl[:, 0] - d.levels[0].first), d.levels[0].sizes)
