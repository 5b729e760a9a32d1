"""Results of a linear fit compute the standard errors of the variance parameters and their
tables on first use: the same numbers in any order, after pickling, and from several threads."""
import pickle
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import BoundaryWarning, ConvergenceWarning
from hlmext.results import linear as linear_results

LAZY = ["re_params", "normalized_cov_params", "cov_params_default", "fe_params", "bse_fe", "cov_fe", "cov_re",
        "random_effects", "_cov_phi"]


@pytest.fixture(scope="module")
def sleep():
    return hlmext.datasets.load("sleepstudy")


def _fit(sleep, **kw):
    return hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit(**kw)


def _everything(res):
    """Every value a user reads, as plain arrays and frames, in the order given."""
    r = res._results
    return {"bse": np.asarray(res.bse), "cov_params": np.asarray(res.cov_params()),
            "re_params": r.re_params, "fe_params": r.fe_params, "bse_fe": r.bse_fe, "cov_fe": r.cov_fe,
            "cov_re": r.cov_re, "random_effects": r.random_effects, "random_effects_cov": r.random_effects_cov,
            "summary": res.summary().as_text(), "conf_int": np.asarray(res.conf_int())}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for level in x:
                pd.testing.assert_frame_equal(x[level], y[level], check_exact=True)
        elif isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(x, y, check_exact=True)
        elif isinstance(x, pd.Series):
            pd.testing.assert_series_equal(x, y, check_exact=True)
        elif isinstance(x, str):
            assert x == y
        else:
            np.testing.assert_array_equal(x, y)


def test_a_fit_leaves_the_tables_and_variance_standard_errors_for_later(sleep, monkeypatch):
    calls = []
    original = linear_results._cov_variance
    monkeypatch.setattr(linear_results, "_cov_variance", lambda *a, **k: calls.append(1) or original(*a, **k))
    res = _fit(sleep)
    assert calls == []
    assert not set(LAZY) & set(res._results.__dict__)
    res.bse
    assert calls == [1]
    res.re_params, res.summary()
    assert calls == [1]                   # computed once, then read


def test_lazy_values_do_not_depend_on_the_order_they_are_asked_for(sleep):
    first = _everything(_fit(sleep))
    res = _fit(sleep)
    r = res._results
    r.random_effects_cov, r.cov_re, r.random_effects, r.cov_fe        # the other way round
    _assert_same(first, _everything(res))


def test_lazy_values_survive_pickling_before_and_after_use(sleep):
    res = _fit(sleep)
    fresh = pickle.loads(pickle.dumps(res))          # nothing computed yet
    assert not set(LAZY) & set(fresh._results.__dict__)
    expected = _everything(res)
    _assert_same(expected, _everything(fresh))
    _assert_same(expected, _everything(pickle.loads(pickle.dumps(res))))


def test_threads_compute_each_lazy_value_once(sleep, monkeypatch):
    res = _fit(sleep)
    expected = _everything(_fit(sleep))
    calls = []
    original = linear_results._cov_variance
    monkeypatch.setattr(linear_results, "_cov_variance", lambda *a, **k: calls.append(1) or original(*a, **k))
    barrier, seen = threading.Barrier(6), []

    def read():
        barrier.wait()
        seen.append((np.asarray(res.bse), res._results.re_params))
    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    for bse, table in seen:
        np.testing.assert_array_equal(bse, expected["bse"])
        pd.testing.assert_frame_equal(table, expected["re_params"], check_exact=True)


def test_boundary_fit_warns_at_fit_and_computes_its_standard_errors_later(monkeypatch):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 6)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "x": rng.normal(size=g.size), "g": g})
    calls = []
    original = linear_results.inference.delta_cov
    monkeypatch.setattr(linear_results.inference, "delta_cov", lambda *a: calls.append(1) or original(*a))
    with pytest.warns(BoundaryWarning):
        res = hlmext.mixedlm("y ~ x + (1 | g)", df).fit(reml=False)
    assert res.on_boundary and calls == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(res.re_params["se"].iloc[0]) and res.re_params["se"].iloc[-1] > 0
    assert calls == [1]


def test_cluster_robust_fits_are_unchanged_by_the_lazy_tables(sleep):
    res = _fit(sleep, cov_type="cluster")
    r = res._results
    assert r.cov_type.startswith("cluster")
    np.testing.assert_array_equal(np.asarray(res.bse)[:2], r.bse_fe.to_numpy())
    model_based = _fit(sleep)
    np.testing.assert_array_equal(r.normalized_cov_params, model_based._results.normalized_cov_params)
    assert not np.array_equal(r.bse_fe.to_numpy(), model_based._results.bse_fe.to_numpy())


def test_missing_standard_errors_warn_at_the_line_that_asks_for_them(sleep, monkeypatch):
    res = _fit(sleep)
    nan = np.full((4, 4), np.nan)
    monkeypatch.setattr(linear_results, "_cov_variance", lambda *a, **k: (nan, nan))
    with pytest.warns(ConvergenceWarning, match="no standard errors") as record:
        res.bse                                            # through statsmodels' cov_params
    assert record[0].filename == __file__
    assert np.isnan(np.asarray(res.bse)[2:]).all() and np.isfinite(np.asarray(res.bse)[:2]).all()
