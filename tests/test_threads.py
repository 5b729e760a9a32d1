"""One model object fitted from several threads at once; the kernels' thread control."""
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

from functools import partial

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext import threads
from hlmext.threads import single_blas_thread


def _data(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 150, n)
    h = rng.integers(0, 25, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=150)[g] + 0.5 * x * rng.normal(size=150)[g] + rng.normal(size=25)[h] \
        + rng.normal(size=n)
    return pd.DataFrame(dict(y=y, b=(y > 1.2).astype(int), x=x, g=g, h=h, school=g // 10))


DF = _data()
LINEAR = ["y ~ x + (x | g)", "y ~ x + (1 | school/g)"]
LOGIT = ["b ~ x + (1 | g)", "b ~ x + (1 | school/g)", "b ~ x + (1 | g) + (1 | h)"]


def _key(res):
    return np.asarray(res.params).tobytes(), float(res.llf), np.asarray(res.bse).tobytes()


def _fit_concurrently(model, times=4):
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # a corrupted fit ends in ConvergenceWarning or RuntimeWarning
        with ThreadPoolExecutor(times) as ex:
            return [_key(f.result()) for f in [ex.submit(model.fit) for _ in range(times)]]


@pytest.mark.parametrize("formula", LINEAR)
def test_linear_model_fitted_from_four_threads_equals_serial_fit(formula):
    serial = _key(hlmext.mixedlm(formula, DF).fit())
    assert _fit_concurrently(hlmext.mixedlm(formula, DF)) == [serial] * 4


def test_linear_crossed_model_fitted_from_four_threads():
    # crossed factors: NumPy's small temporaries land at other alignments in other threads, which
    # moves the dense block's BLAS sums in the last bit; the fits themselves no longer interfere
    formula = "y ~ x + (1 | g) + (1 | h)"
    serial = hlmext.mixedlm(formula, DF).fit()
    model = hlmext.mixedlm(formula, DF)
    with ThreadPoolExecutor(4) as ex:
        fits = [f.result() for f in [ex.submit(model.fit) for _ in range(4)]]
    for res in fits:
        np.testing.assert_allclose(res.params, serial.params, rtol=1e-12)
        np.testing.assert_allclose(res.bse, serial.bse, rtol=1e-9)
        assert res.llf == pytest.approx(serial.llf, rel=1e-14)


@pytest.mark.parametrize("formula", LOGIT)
def test_glmm_fitted_from_four_threads_equals_serial_fit(formula):
    serial = _key(hlmext.melogit(formula, DF).fit(nagq=1))
    model = hlmext.melogit(formula, DF)
    with ThreadPoolExecutor(4) as ex:
        fits = [_key(f.result()) for f in [ex.submit(model.fit, nagq=1) for _ in range(4)]]
    assert fits == [serial] * 4


def test_different_models_in_threads_equal_serial_fits():
    makers = [lambda: hlmext.mixedlm(LINEAR[0], DF).fit(), lambda: hlmext.mixedlm(LINEAR[1], DF).fit(),
              lambda: hlmext.melogit(LOGIT[0], DF).fit(), lambda: hlmext.melogit(LOGIT[1], DF).fit()]
    serial = [_key(make()) for make in makers]
    with ThreadPoolExecutor(4) as ex:
        assert [_key(f.result()) for f in [ex.submit(make) for make in makers]] == serial


def test_refit_of_glmm_does_not_depend_on_the_previous_fit():
    model = hlmext.melogit(LOGIT[1], DF)
    assert _key(model.fit()) == _key(model.fit())


def test_loglike_from_two_threads():
    """loglike() is a pure function of its arguments: the same value in any thread and after
    any other evaluation (the GLMM's modes start from zero every time)."""
    res = hlmext.mixedlm(LINEAR[0], DF).fit(reml=False)
    cases = [(res.model.loglike, np.asarray(res.params))]
    for formula, nagq in ((LOGIT[0], 7), (LOGIT[1], 1), (LOGIT[2], 1)):
        glmm = hlmext.melogit(formula, DF).fit(nagq=nagq)
        cases.append((partial(glmm.model.loglike, nagq=nagq), np.asarray(glmm.params)))
    for loglike, params in cases:
        points = [params * (1 + 0.02 * k) for k in range(8)]
        serial = [loglike(p) for p in points]
        for _ in range(5):
            with ThreadPoolExecutor(2) as ex:
                assert list(ex.map(loglike, points)) == serial
            assert [loglike(p) for p in points[::-1]] == serial[::-1]


def test_blas_limit_restored_after_overlapping_fits_in_threads():
    from threadpoolctl import threadpool_info
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    first, second = single_blas_thread(), single_blas_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)           # the other fit still runs: one BLAS thread
    assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")
    second.__exit__(None, None, None)
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


# ------------------------------------------------------------------ thread control
@pytest.fixture
def no_request(monkeypatch):
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_env_checked", {})
    return monkeypatch


def test_env_threads_above_the_cores_are_capped_with_a_warning(no_request):
    no_request.setenv("HLMEXT_NUM_THREADS", "2000")
    with pytest.warns(RuntimeWarning, match="HLMEXT_NUM_THREADS=2000.*using %d threads" % threads.max_threads()):
        assert hlmext.get_num_threads() == threads.max_threads()


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_env_threads_not_a_positive_integer_is_an_error(no_request, value):
    no_request.setenv("HLMEXT_NUM_THREADS", value)
    with pytest.raises(ValueError, match="HLMEXT_NUM_THREADS=%r" % value):
        hlmext.get_num_threads()


def test_set_num_threads_overrides_the_environment(no_request):
    no_request.setenv("HLMEXT_NUM_THREADS", "1")
    hlmext.set_num_threads(2)
    assert hlmext.get_num_threads() == min(2, threads.max_threads())
    hlmext.set_num_threads(None)
    assert hlmext.get_num_threads() == 1


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), ("2", TypeError), (True, TypeError),
                                        (1.5, TypeError)])
def test_set_num_threads_rejects_bad_values(no_request, bad, error):
    with pytest.raises(error, match="set_num_threads"):
        hlmext.set_num_threads(bad)


def test_set_num_threads_caps_at_the_cores(no_request):
    with pytest.warns(RuntimeWarning, match="using %d threads" % threads.max_threads()):
        hlmext.set_num_threads(10 ** 6)
    assert hlmext.get_num_threads() == threads.max_threads()


def test_huge_thread_count_in_environment_fits_instead_of_crashing():
    code = ("import warnings, hlmext\n"
            "df = hlmext.datasets.load('contraception')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    res = hlmext.melogit('use ~ age + (1 | district)', df).fit(nagq=1)\n"
            "print(sum('HLMEXT_NUM_THREADS=2000' in str(x.message) for x in w), round(res.llf, 3))\n")
    env = dict(os.environ, HLMEXT_NUM_THREADS="2000")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "1"             # one warning, not one per likelihood evaluation


@pytest.mark.skipif(not hasattr(os, "fork") or threads.max_threads() < 2, reason="needs fork and two cores")
def test_forked_workers_fit_after_the_parent_ran_kernel_threads():
    # GNU OpenMP's pool does not survive fork: a child that started a parallel loop waited
    # for ever (the bootstrap's n_jobs after a fit on two threads did).
    code = ("import multiprocessing, hlmext\n"
            "df = hlmext.datasets.load('contraception')\n"
            "def fit(_):\n"
            "    return hlmext.get_num_threads(), round(hlmext.melogit('use ~ age + (1 | district)', df).fit().llf, 6)\n"
            "hlmext.set_num_threads(2)\n"
            "parent = fit(0)\n"
            "with multiprocessing.get_context('fork').Pool(2) as pool:\n"
            "    children = pool.map(fit, range(2))\n"
            "print(parent[0], [c[0] for c in children], parent[1] == children[0][1] == children[1][1])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "2 [1, 1] True"


def test_set_num_threads_in_a_forked_process_keeps_one_thread(no_request, monkeypatch):
    monkeypatch.setattr(threads, "_forked", True)
    with pytest.warns(RuntimeWarning, match="forked"):
        hlmext.set_num_threads(2)
    assert hlmext.get_num_threads() == 1
