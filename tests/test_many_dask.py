"""fit_many of a Dask array or DataFrame (responses larger than memory) equals the in-memory fit."""
import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

import hlmext  # noqa: E402
from hlmext.exceptions import DataError  # noqa: E402
from hlmext.models import many as _many  # noqa: E402

from test_many import FORMULA, simulated  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    data, Y = simulated(ncol=30, seed=21)
    model = hlmext.mixedlm(FORMULA, data)
    return data, Y, model, model.fit_many(Y)


def test_dask_array_in_blocks(fitted):
    data, Y, model, ref = fitted
    arr = da.from_array(Y.to_numpy(), chunks=(50, 7))          # row and column chunks
    many = model.fit_many(arr)
    assert many.names == list(range(30))
    np.testing.assert_array_equal(many.tidy.estimate, ref.tidy.estimate)
    np.testing.assert_array_equal(many.tidy.df, ref.tidy.df)
    design = _many.ManyDesign(model, len(data))
    fit, names = _many.fit_dask(design, arr, block_bytes=8 * len(data) * 4)    # blocks of 4 columns
    np.testing.assert_array_equal(fit["beta"].ravel(), ref.tidy.estimate)
    np.testing.assert_allclose(many.result(3).params, ref.result("gene3").params, rtol=1e-12)


def test_dask_dataframe(fitted):
    data, Y, model, ref = fitted
    many = model.fit_many(dd.from_pandas(Y, npartitions=3))
    pd.testing.assert_frame_equal(many.tidy, ref.tidy)
    pd.testing.assert_frame_equal(many.variances, ref.variances)
    np.testing.assert_allclose(many.result("gene5").params, ref.result("gene5").params, rtol=1e-12)


def test_dask_bad_input(fitted):
    data, Y, model, _ = fitted
    with pytest.raises(DataError, match="rows"):
        model.fit_many(da.from_array(Y.to_numpy()[1:]))
    with pytest.raises(DataError, match="numeric"):
        model.fit_many(dd.from_pandas(Y.assign(gene2="x"), npartitions=2))


def test_on_distributed_workers(fitted):
    """Blocks fitted in other processes give the same numbers, bit for bit (the kernel's sums
    do not depend on the machine's BLAS)."""
    distributed = pytest.importorskip("distributed")
    data, Y, model, ref = fitted
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with cluster, distributed.Client(cluster):
        many = model.fit_many(da.from_array(Y.to_numpy(), chunks=(len(data), 8)))
    np.testing.assert_array_equal(many.tidy.estimate, ref.tidy.estimate)
    np.testing.assert_array_equal(many.variances.llf, ref.variances.llf)
