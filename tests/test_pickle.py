"""Models and results built from a formula survive pickle, save/load, deepcopy and joblib,
and ``remove_data`` keeps what a saved result is for (summary, tests, prediction)."""
import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import BoundaryWarning


def double(x):
    """A user function called in a formula (pickled by reference)."""
    return 2 * x


@pytest.fixture(scope="module")
def gcse():
    return hlmext.datasets.load("gcse").query("nstu > 4")


@pytest.fixture(scope="module")
def cbpp():
    return hlmext.datasets.load("cbpp")


def _nested_counts():
    rng = np.random.default_rng(3)
    a = np.repeat(np.arange(15), 12)
    b = np.repeat(np.arange(60), 3)
    x = rng.normal(size=a.size)
    eta = 0.3 + 0.4 * x + rng.normal(scale=0.5, size=15)[a] + rng.normal(scale=0.4, size=60)[b]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "a": a, "b": b % 4})


LINEAR = {
    "random slope": ("gcse", "gcse ~ lrt + (lrt | school)"),
    "stateful transforms, factor, user function": ("gcse", "gcse ~ center(np.log(lrt + 40)) + C(sex) + double(lrt)"
                                                           " + (1 | school)"),
    "nested": ("oats", "yld ~ nitro + C(Variety) + (1 | Block/Variety)"),
    "crossed": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
}


def _linear(name, gcse):
    data, formula = LINEAR[name]
    df = gcse if data == "gcse" else hlmext.datasets.load(data)
    return df, hlmext.mixedlm(formula, df).fit()


def _glmm(name, cbpp):
    if name == "logit":
        return cbpp, hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=7)
    df = _nested_counts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundaryWarning)
        return df, hlmext.mepoisson("y ~ x + (1 | a/b)", df).fit(nagq=1)


def assert_same(res, again, data, conditional="conditional"):
    assert type(again) is type(res)
    assert again.summary().as_text() == res.summary().as_text()
    np.testing.assert_array_equal(np.asarray(again.params), np.asarray(res.params))
    np.testing.assert_array_equal(again.predict(data.head(20)), res.predict(data.head(20)))
    name = res.model.exog_names[-1]
    new, old = again.t_test("%s = 0" % name), res.t_test("%s = 0" % name)
    for attr in ("effect", "sd", "pvalue"):
        np.testing.assert_array_equal(np.ravel(getattr(new, attr)), np.ravel(getattr(old, attr)))
    kw = {"which": "conditional"} if conditional == "conditional" else {"conditional": True}
    np.testing.assert_array_equal(again.predict(data.head(20), **kw), res.predict(data.head(20), **kw))


@pytest.mark.parametrize("name", list(LINEAR))
def test_linear_results_pickle_round_trip(name, gcse):
    data, res = _linear(name, gcse)
    assert_same(res, pickle.loads(pickle.dumps(res)), data)


@pytest.mark.parametrize("name", ["logit", "nested poisson"])
def test_glmm_results_pickle_round_trip(name, cbpp):
    data, res = _glmm(name, cbpp)
    assert_same(res, pickle.loads(pickle.dumps(res)), data, conditional="glmm")


def test_deepcopy_of_results(gcse, cbpp):
    data, res = _linear("random slope", gcse)
    assert_same(res, copy.deepcopy(res), data)
    data, res = _glmm("logit", cbpp)
    assert_same(res, copy.deepcopy(res), data, conditional="glmm")


def test_save_and_load(gcse, cbpp, tmp_path):
    data, res = _linear("nested", gcse)
    res.save(tmp_path / "linear.pickle")
    assert_same(res, hlmext.load(tmp_path / "linear.pickle"), data)
    assert_same(res, type(res._results).load(tmp_path / "linear.pickle"), data)   # statsmodels' classmethod
    data, res = _glmm("logit", cbpp)
    res.save(str(tmp_path / "glmm.pickle"))
    assert_same(res, hlmext.load(str(tmp_path / "glmm.pickle")), data, conditional="glmm")


def test_joblib_dump_and_load(gcse, tmp_path):
    joblib = pytest.importorskip("joblib")
    data, res = _linear("random slope", gcse)
    joblib.dump(res, tmp_path / "fit.joblib")
    assert_same(res, joblib.load(tmp_path / "fit.joblib"), data)


def test_unfitted_model_pickles_and_fits_the_same(gcse):
    model = hlmext.mixedlm("gcse ~ lrt + C(sex) + (lrt | school)", gcse)
    again = pickle.loads(pickle.dumps(model))
    assert again.fit().llf == model.fit().llf


def test_remove_data_keeps_summary_tests_and_prediction(gcse, cbpp):
    for data, res, conditional in [(*_linear("random slope", gcse), "conditional"), (*_glmm("logit", cbpp), "glmm")]:
        kept = pickle.loads(pickle.dumps(res))
        size = len(pickle.dumps(res))
        res.remove_data()
        assert len(pickle.dumps(res)) < (size / 5 if res.nobs > 1000 else size)     # the rows are gone
        assert_same(kept, res, data, conditional)
        assert res.llnull == kept.llnull
        pd.testing.assert_frame_equal(res.random_effects_cov[res.model.levels[-1].name],
                                      kept.random_effects_cov[kept.model.levels[-1].name])
        with pytest.raises(ValueError, match="remove_data"):
            res.fittedvalues
        assert_same(kept, pickle.loads(pickle.dumps(res)), data, conditional)


def test_save_with_remove_data(gcse, tmp_path):
    data, res = _linear("crossed", gcse)
    text = res.summary().as_text()
    res.save(tmp_path / "small.pickle", remove_data=True)
    again = hlmext.load(tmp_path / "small.pickle")
    assert again.summary().as_text() == text
    assert (tmp_path / "small.pickle").stat().st_size < 40_000


def test_chunked_results_pickle_round_trip(gcse):
    """A fit from chunks keeps of the caller's namespace only what its formula names, so it pickles
    like an in-memory fit."""
    chunks = [gcse.iloc[i:i + 1000] for i in range(0, len(gcse), 1000)]
    res = hlmext.mixedlm("gcse ~ double(lrt) + C(sex) + (lrt | school)", chunks).fit(reml=False)
    assert_same(res, pickle.loads(pickle.dumps(res)), gcse)
