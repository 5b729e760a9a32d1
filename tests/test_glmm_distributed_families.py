"""meglm, meprobit, mecloglog and menbreg fitted on partitions (chunks, Dask) equal the in-memory fit.

As for the mixed logit and Poisson (test_glmm_distributed.py): the rows are shuffled before
they are cut into chunks, so every cluster is spread over several chunks. A family with a
dispersion parameter has it profiled out on the driver, each value of the profile a sum over
the partitions.
"""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hlmext
from hlmext.exceptions import DataError, ModelError

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

TOL = 1e-8
# The standard errors of a family with a dispersion parameter come from forward differences
# (steps of 1e-5) of gradients, each taken at the dispersion profiled to its root; that is
# their precision (about 1e-5 relative), in memory with the rows in another order
# (test_dispersion_standard_errors_move_with_the_row_order below) as on partitions.
TOL_SE_DISPERSION = 1e-5
links = sm.families.links


def make(seed=5):
    """Schools of three classes: a 0/1, a count and a positive continuous response, an exposure."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(30), 3)
    cls = np.arange(school.size)
    b_school, b_class = 0.7 * rng.normal(size=30), 0.4 * rng.normal(size=cls.size)
    rows = np.repeat(cls, rng.integers(3, 9, cls.size))
    n = rows.size
    x = rng.normal(size=n)
    expo = rng.integers(1, 5, n).astype(float)
    eta = 0.2 + 0.4 * x + b_school[school[rows]] + b_class[rows]
    mu = expo * np.exp(0.5 * eta)
    df = pd.DataFrame({"school": school[rows], "cls": rows % 3, "x": x, "expo": expo,
                       "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                       "yn": rng.negative_binomial(2.0, 2.0 / (2.0 + mu)),
                       "yc": rng.gamma(4.0, np.exp(0.3 + 0.2 * x + 0.3 * b_school[school[rows]]) / 4.0)})
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def chunks_of(df, size=150):
    return [df.iloc[i:i + size] for i in range(0, len(df), size)]


def assert_same_fit(res, ref, tol_se=TOL):
    assert res.nobs == ref.nobs
    assert list(res.params.index) == list(ref.params.index)
    np.testing.assert_allclose(res.llf, ref.llf, rtol=TOL)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(ref.params), rtol=TOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=tol_se)
    assert res.model_label == ref.model_label and res.k_params == ref.k_params
    np.testing.assert_allclose(res.aic, ref.aic, rtol=TOL)


MODELS = {
    "probit, one level": (hlmext.meprobit, "yb ~ x + (1 | school)", {}),
    "cloglog, two levels": (hlmext.mecloglog, "yb ~ x + (1 | school/cls)", {}),
    "meglm poisson sqrt link, slope": (hlmext.meglm, "yn ~ x + (x | school)",
                                       {"family": sm.families.Poisson(link=links.Sqrt())}),
}
DISPERSION_MODELS = {
    "gamma log link, one level": (hlmext.meglm, "yc ~ x + (1 | school)",
                                  {"family": sm.families.Gamma(link=links.Log())}),
    "gaussian log link, two levels": (hlmext.meglm, "yc ~ x + (1 | school/cls)",
                                      {"family": sm.families.Gaussian(link=links.Log())}),
    "nb2, one level": (hlmext.menbreg, "yn ~ x + (1 | school)", {"exposure": "expo"}),
    "nb1, two levels": (hlmext.menbreg, "yn ~ x + (1 | school/cls)", {"dispersion": "constant", "offset": "expo"}),
}


@pytest.fixture(scope="module")
def data():
    return make()


def fit_both(data, name, models, **fit):
    fn, formula, kw = models[name]
    ref = fn(formula, data, **kw).fit(**fit)
    model = fn(formula, chunks_of(data), npartitions=3, **kw)
    assert len(model.parts) == 3 and model.design.has_rows is False
    return model.fit(**fit), ref


@pytest.mark.filterwarnings("ignore::hlmext.exceptions.BoundaryWarning")
@pytest.mark.parametrize("name", list(MODELS))
def test_family_and_link_on_chunks_equal_in_memory(data, name):
    res, ref = fit_both(data, name, MODELS)
    assert_same_fit(res, ref)


@pytest.mark.filterwarnings("ignore::hlmext.exceptions.BoundaryWarning")
@pytest.mark.parametrize("name", list(DISPERSION_MODELS))
def test_dispersion_families_on_chunks_equal_in_memory(data, name):
    res, ref = fit_both(data, name, DISPERSION_MODELS)
    assert_same_fit(res, ref, tol_se=TOL_SE_DISPERSION)
    assert list(res.dispersion.index) == list(ref.dispersion.index)
    np.testing.assert_allclose(res.dispersion.to_numpy(), ref.dispersion.to_numpy(), rtol=1e-6)
    if ref.dispersion_lr is None:
        assert res.dispersion_lr is None
    else:                                     # the Poisson model fitted on the same partitions
        np.testing.assert_allclose(res.dispersion_lr["llf_poisson"], ref.dispersion_lr["llf_poisson"], rtol=TOL)
        np.testing.assert_allclose(res.dispersion_lr["chibar2"], ref.dispersion_lr["chibar2"], rtol=1e-6)
    assert "/ln" in str(res.summary())


def test_dispersion_standard_errors_move_with_the_row_order(data):
    # why TOL_SE_DISPERSION: the in-memory fit of the same rows in another order
    fn, formula, kw = DISPERSION_MODELS["gamma log link, one level"]
    a = fn(formula, data, **kw).fit()
    b = fn(formula, data.sample(frac=1.0, random_state=11), **kw).fit()
    np.testing.assert_allclose(np.asarray(a.bse), np.asarray(b.bse), rtol=TOL_SE_DISPERSION)
    np.testing.assert_allclose(np.asarray(a.params), np.asarray(b.params), rtol=TOL)


def test_dispersion_profiled_from_dask_on_workers(data, client):
    fn, formula, kw = DISPERSION_MODELS["gamma log link, one level"]
    ref = fn(formula, data, **kw).fit(nagq=1)
    res = fn(formula, dd.from_pandas(data, npartitions=4, sort=False), client=client, **kw).fit(nagq=1)
    assert_same_fit(res, ref, tol_se=TOL_SE_DISPERSION)
    np.testing.assert_allclose(res.dispersion.to_numpy(), ref.dispersion.to_numpy(), rtol=1e-6)


def test_robust_standard_errors_of_a_link(data):
    fn, formula, kw = MODELS["probit, one level"]
    ref = fn(formula, data, **kw).fit(nagq=7, cov_type="cluster")
    res = fn(formula, chunks_of(data), **kw).fit(nagq=7, cov_type="cluster")
    assert res.cov_type == ref.cov_type
    # the sandwich's Hessian is a second difference of sums over clusters (test_glmm_distributed.py)
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=1e-5)
    np.testing.assert_allclose(res.llf, ref.llf, rtol=TOL)


def test_update_keeps_the_family(data):
    fn, _, kw = MODELS["meglm poisson sqrt link, slope"]
    res = fn("yn ~ x + (1 | school)", chunks_of(data), **kw).fit(nagq=1)
    again = res.update(". ~ . - x")
    assert again.model.design.has_rows is False and again.model.spec == res.model.spec
    ref = fn("yn ~ 1 + (1 | school)", data, **kw).fit(nagq=1)
    np.testing.assert_allclose(again.llf, ref.llf, rtol=TOL)


def test_bad_input_is_refused_before_the_data_are_read(data):
    chunks = chunks_of(data)
    with pytest.raises(ValueError, match="not supported"):
        hlmext.meglm("yc ~ x + (1 | school)", chunks, family=sm.families.Tweedie())
    with pytest.raises(TypeError, match="npartition"):
        hlmext.menbreg("yn ~ x + (1 | school)", chunks, n_partitions=2)
    with pytest.raises(TypeError, match="column name"):
        hlmext.meprobit("yb ~ x + (1 | school)", chunks, offset=data["x"].to_numpy())
    with pytest.raises(ModelError, match="cov_type='nonrobust'"):
        hlmext.menbreg("yn ~ x + (1 | school)", chunks).fit(nagq=1, cov_type="cluster")
    with pytest.raises(ModelError, match="nested adaptive quadrature"):
        hlmext.menbreg("yn ~ x + (1 | school/cls)", chunks).fit(nagq=3)
    with pytest.raises(DataError, match="positive"):
        hlmext.meglm("x ~ 1 + (1 | school)", chunks, family=sm.families.Gamma(link=links.Log()))
