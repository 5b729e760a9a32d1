"""Fits from a Dask DataFrame on a local cluster of two worker processes equal the in-memory fit.

Only per-cluster statistics travel from the workers; the client adds them in partition
order. Tolerances as in ``test_chunked.py`` (same reasons).
"""
import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import hlmext  # noqa: E402
from hlmext.design import chunked  # noqa: E402
from hlmext.exceptions import ModelError  # noqa: E402

from test_chunked import MODELS, assert_same_fit, two_level  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def shuffled(df, seed):
    return df.iloc[np.random.default_rng(seed).permutation(len(df))]


@pytest.mark.parametrize("model", list(MODELS))
def test_dask_fit_equals_in_memory_fit(client, model):
    formula, make, tol = MODELS[model]
    data = shuffled(make(seed=7), seed=7)
    ddf = dd.from_pandas(data, npartitions=5, sort=False)
    ref = hlmext.mixedlm(formula, data).fit(reml=False)
    res = hlmext.mixedlm(formula, ddf).fit(reml=False)
    assert_same_fit(res, ref, tol)
    resid = chunked.residuals(res, ddf).compute()
    assert len(resid) == len(ref.resid)
    np.testing.assert_allclose(resid.reindex(ref.resid.index), ref.resid, atol=1e-7)


def test_levels_absent_from_partitions_and_missing_values(client):
    data = shuffled(two_level(seed=8), seed=8)
    data = pd.concat([data[data.cat == "lo"].iloc[:300], data])      # the first partition lacks two levels
    ddf = dd.from_pandas(data.reset_index(drop=True), npartitions=4, sort=False)
    ref = hlmext.mixedlm("y ~ x + cat + (x | school)", data.reset_index(drop=True))
    model = hlmext.mixedlm("y ~ x + cat + (x | school)", ddf)
    assert model.exog_names == ref.exog_names and model.frame.n_dropped == ref.frame.n_dropped
    assert_same_fit(model.fit(reml=True), ref.fit(reml=True), 1e-10)


def test_user_functions_reach_the_workers_and_stateful_transforms_are_refused(client):
    data = shuffled(two_level(seed=9), seed=9)
    ddf = dd.from_pandas(data, npartitions=3, sort=False)

    def cube(v):
        return v ** 3
    ref = hlmext.mixedlm("y ~ cube(x) + (1 | school)", data).fit()
    assert_same_fit(hlmext.mixedlm("y ~ cube(x) + (1 | school)", ddf).fit(), ref, 1e-10)
    with pytest.raises(ModelError, match="stateful"):
        hlmext.mixedlm("y ~ center(x) + (1 | school)", ddf.dropna())
