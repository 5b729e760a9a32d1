"""One model fitted to many responses (``LinearMixed.fit_many``): every column's numbers are
those of fitting it alone, missing responses drop rows of their column only."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import DataError, ModelError

REF = Path(__file__).parent / "reference" / "many"
FORMULA = "~ condition + age + (1 | donor)"


def simulated(n_groups=20, per=8, ncol=50, missing=0.06, seed=3):
    rng = np.random.default_rng(seed)
    n = n_groups * per
    codes = np.repeat(np.arange(n_groups), per)
    data = pd.DataFrame({"donor": ["d%d" % g for g in codes], "condition": rng.choice(["a", "b", "c"], n),
                         "age": rng.normal(50, 10, n_groups)[codes]})
    sd = rng.uniform(0, 1.2, ncol)
    sd[:2] = 0.0                                      # likely on the boundary
    Y = (rng.normal(size=(n, ncol)) + rng.normal(size=(n_groups, ncol))[codes] * sd
         + 0.5 * (data.condition == "b").to_numpy()[:, None] + 5.0)
    Y[rng.random((n, ncol)) < missing] = np.nan
    if ncol > 5:
        Y[:, 4] = Y[:, 5]
        Y[:30, 4] = np.nan                            # whole groups missing in one column
    return data, pd.DataFrame(Y, columns=["gene%d" % j for j in range(ncol)])


def single(data, y, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hlmext.mixedlm("y " + FORMULA, data.assign(y=y)).fit(reml=reml)


@pytest.fixture(scope="module")
def fifty():
    data, Y = simulated()
    return data, Y, hlmext.mixedlm(FORMULA, data).fit_many(Y)


def test_every_column_as_fitted_alone(fifty):
    data, Y, many = fifty
    tidy, var = many.tidy, many.variances
    assert list(tidy.columns) == ["response", "term", "estimate", "se", "t", "df", "pvalue"]
    assert len(tidy) == 4 * Y.shape[1] and var.converged.all()
    assert (var.status == "boundary").sum() >= 1
    for j, name in enumerate(Y.columns):
        res = single(data, Y[name])
        rows = tidy[tidy.response == name]
        assert rows.term.tolist() == list(res.fe_params.index)
        b = res.fe_params.to_numpy()
        np.testing.assert_allclose(rows.estimate, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
        np.testing.assert_allclose(var.llf[j], res.llf, rtol=1e-12)
        assert var.nobs[j] == res.nobs and var.n_groups[j] == res.n_groups["donor"]
        # the single fit stops when its Newton steps in theta fall below 1e-10 (fit_many's root is
        # exact to rounding): what depends on theta directly agrees to about that
        np.testing.assert_allclose(rows.se, res.bse_fe, rtol=1e-9)
        np.testing.assert_allclose(rows.t, b / res.bse_fe.to_numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(var.iloc[j][["sd(Intercept)[donor]", "sd(Residual)"]].astype(float),
                                   res.params.iloc[-2:], rtol=1e-9, atol=1e-10)


def test_satterthwaite_df_as_a_single_fit(fifty):
    data, Y, many = fifty
    tidy = many.tidy
    for name in ["gene0", "gene4", "gene7", "gene30"]:
        res = single(data, Y[name])
        tt = res.t_test(np.eye(4), df="satterthwaite")
        rows = tidy[tidy.response == name]
        # the single fit's df are central differences (step 1e-3): accurate to about 1e-7
        np.testing.assert_allclose(rows.df, tt.df_denom, rtol=1e-6)
        np.testing.assert_allclose(rows.pvalue, tt.pvalue.ravel(), rtol=1e-6, atol=1e-12)


def test_lmertest_reference():
    data = pd.read_csv(REF / "data.csv")
    ref = json.loads((REF / "lmertest.json").read_text())
    genes = [c for c in data.columns if c.startswith("gene")]
    many = hlmext.mixedlm(FORMULA, data[["donor", "condition", "age"]]).fit_many(data[genes])
    for name in genes:
        r = ref[name]
        rows = many.tidy[many.tidy.response == name]
        np.testing.assert_allclose(rows.estimate, r["estimate"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(rows.se, r["se"], rtol=1e-5)
        np.testing.assert_allclose(rows.df, r["df"], rtol=1e-4)
        np.testing.assert_allclose(rows.pvalue, r["pvalue"], rtol=1e-4, atol=1e-10)
        v = many.variances.set_index("response").loc[name]
        np.testing.assert_allclose(v["sd(Intercept)[donor]"], r["sd_donor"], atol=1e-5)
        np.testing.assert_allclose(v.llf, r["loglik"], rtol=1e-9)
        assert v.nobs == r["nobs"]


def test_ml_fits():
    data, Y = simulated(ncol=6, seed=5)
    many = hlmext.mixedlm(FORMULA, data).fit_many(Y, reml=False)
    assert not many.reml
    for j, name in enumerate(Y.columns):
        res = single(data, Y[name], reml=False)
        rows = many.tidy[many.tidy.response == name]
        np.testing.assert_allclose(rows.estimate, res.fe_params, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(rows.se, res.bse_fe, rtol=1e-10)
        np.testing.assert_allclose(many.variances.llf[j], res.llf, rtol=1e-12)


def test_result_is_the_single_fit(fifty):
    data, Y, many = fifty
    res = many.result("gene4")
    ref = single(data, Y["gene4"])
    assert res.model.endog_names == "gene4"
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-12)
    assert res.nobs == Y["gene4"].notna().sum()
    with pytest.raises(KeyError, match="no response 'nope'"):
        many.result("nope")


def test_variance_partition(fifty):
    _, _, many = fifty
    vp, var = many.variance_partition, many.variances
    assert list(vp.columns) == ["response", "donor", "Residual"]
    np.testing.assert_allclose(vp.donor + vp.Residual, 1.0)
    sd_g, sd_e = var["sd(Intercept)[donor]"], var["sd(Residual)"]
    np.testing.assert_allclose(vp.donor, sd_g ** 2 / (sd_g ** 2 + sd_e ** 2), rtol=1e-12)


def test_array_input_and_two_sided_formula():
    data, Y = simulated(ncol=4, seed=7)
    ref = hlmext.mixedlm(FORMULA, data).fit_many(Y)
    arr = hlmext.mixedlm(FORMULA, data).fit_many(Y.to_numpy())
    assert arr.names == [0, 1, 2, 3]
    np.testing.assert_array_equal(arr.tidy.estimate, ref.tidy.estimate)
    # a response on the left is ignored, and so are its missing values
    left = data.assign(other=np.where(np.arange(len(data)) % 3 == 0, np.nan, np.arange(len(data))))
    two = hlmext.mixedlm("other " + FORMULA, left).fit_many(Y)
    np.testing.assert_array_equal(two.tidy.estimate, ref.tidy.estimate)
    np.testing.assert_allclose(arr.result(2).params, ref.result("gene2").params, rtol=1e-12)


def test_rows_dropped_for_missing_covariates():
    data, Y = simulated(ncol=3, seed=9)
    data = data.set_axis(np.arange(len(data)) * 2 + 10)     # any unique index
    data.loc[data.index[[3, 50, 51]], "age"] = np.nan
    many = hlmext.mixedlm(FORMULA, data).fit_many(Y)
    for name in Y.columns:
        res = single(data, Y[name].to_numpy())
        rows = many.tidy[many.tidy.response == name]
        np.testing.assert_allclose(rows.estimate, res.fe_params, rtol=1e-10, atol=1e-10)


def test_same_results_on_any_number_of_threads():
    data, Y = simulated(ncol=1000, seed=11)
    try:
        hlmext.set_num_threads(1)
        one = hlmext.mixedlm(FORMULA, data).fit_many(Y).tidy
        hlmext.set_num_threads(2)
        two = hlmext.mixedlm(FORMULA, data).fit_many(Y).tidy
    finally:
        hlmext.set_num_threads(None)
    pd.testing.assert_frame_equal(one, two)


def test_columns_without_a_fit():
    data, Y = simulated(ncol=4, seed=13)
    Y["flat"] = 2.0
    Y["empty"] = np.nan
    Y["few"] = np.where(np.arange(len(Y)) < 4, 1.0 * np.arange(len(Y)), np.nan)      # 4 rows, 4 fixed effects
    Y["one group"] = np.where(np.arange(len(Y)) < 8, 1.0 * np.arange(len(Y)), np.nan)  # age is constant
    many = hlmext.mixedlm(FORMULA, data).fit_many(Y)
    var = many.variances.set_index("response")
    assert var.loc["flat", "status"] == "constant response"
    assert var.loc["empty", "status"] == "too few rows" and var.loc["few", "status"] == "too few rows"
    assert var.loc["one group", "status"] == "singular X"
    assert not var.loc[["flat", "empty", "few", "one group"], "converged"].any()
    bad = many.tidy[many.tidy.response.isin(["flat", "empty", "few", "one group"])]
    assert bad[["estimate", "se", "df", "pvalue"]].isna().all().all()
    assert var.converged.sum() == 4


def test_one_sided_model_does_not_fit():
    data, _ = simulated(ncol=1)
    with pytest.raises(ModelError, match="one-sided"):
        hlmext.mixedlm(FORMULA, data).fit()


def test_bad_input():
    data, Y = simulated(ncol=3)
    model = hlmext.mixedlm(FORMULA, data)
    with pytest.raises(DataError, match="Y has 159 rows"):
        model.fit_many(Y.iloc[1:])
    with pytest.raises(DataError, match="numeric"):
        model.fit_many(Y.assign(gene1="x"))
    with pytest.raises(DataError, match="duplicate column names"):
        model.fit_many(Y.set_axis(["a", "a", "b"], axis=1))
    with pytest.raises(TypeError, match="method"):
        model.fit_many(Y, method="x")
    with pytest.raises(ModelError, match="random intercept"):
        hlmext.mixedlm("~ condition + (age | donor)", data).fit_many(Y)
    with pytest.raises(ModelError, match="weights"):
        hlmext.mixedlm(FORMULA, data.assign(w=2.0), weights="w").fit_many(Y)


def test_without_an_intercept_and_default_reml():
    data, Y = simulated(ncol=3, seed=15)
    formula = "~ 0 + condition + age + (1 | donor)"
    many = hlmext.mixedlm(formula, data).fit_many(Y, reml=None)        # None: REML, as fit()
    assert many.reml
    for name in Y.columns:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = hlmext.mixedlm("y " + formula, data.assign(y=Y[name])).fit()
        rows = many.tidy[many.tidy.response == name]
        assert rows.term.tolist() == list(res.fe_params.index)
        np.testing.assert_allclose(rows.estimate, res.fe_params, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(rows.se, res.bse_fe, rtol=1e-9)


def test_pickled_tables(fifty):
    import pickle
    _, _, many = fifty
    back = pickle.loads(pickle.dumps(many))
    pd.testing.assert_frame_equal(back.tidy, many.tidy)
    pd.testing.assert_frame_equal(back.variances, many.variances)
    with pytest.raises(ValueError, match="unpickled"):
        back.result("gene1")
