"""Work a small fit does once, or not at all: a formula of the intercept and numeric columns is
built by patsy once (later models of the same formula and column types reuse its design info;
other column types build their own); bootstrap replicates form no Hessian for standard errors."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.formula import frames, plain_frame
from hlmext.formula.grammar import parse
from hlmext.inference import bootstrap as boot
from hlmext.models import optimize


def _data(seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=60), "x": rng.normal(size=60), "k": np.tile([0, 1, 2], 20),
                         "g": np.repeat(np.arange(12), 5)})


def test_numeric_design_info_reused(monkeypatch):
    first = hlmext.mixedlm("y ~ x + k + (x | g)", _data(1))
    built = []
    original = frames.patsy.incr_dbuilder
    monkeypatch.setattr(frames.patsy, "incr_dbuilder", lambda *a, **k: built.append(a[0]) or original(*a, **k))
    again = hlmext.mixedlm("y ~ x + k + (x | g)", _data(2))
    assert built == []
    assert again.frame.fixed_design_info.column_names == first.frame.fixed_design_info.column_names
    assert again.frame.random[0].design_info is frames._PLAIN_INFOS[("1 + x", (("x", "float64"),))]
    res, new = again.fit(), _data(5)
    X = np.column_stack([np.ones(60), new.x, new.k])
    np.testing.assert_allclose(res.predict(new), X @ res.fe_params.to_numpy(), rtol=1e-14)
    np.testing.assert_array_equal(np.sort(again.exog[:, 1]), np.sort(_data(2).x.to_numpy()))


def test_other_column_types_build_their_own_design():
    hlmext.mixedlm("y ~ x + k + (1 | g)", _data(1))
    df = _data(3).assign(k=lambda d: d.k.map({0: "a", 1: "b", 2: "c"}))     # now a factor
    model = hlmext.mixedlm("y ~ x + k + (1 | g)", df)
    assert model.exog_names == ["Intercept", "k[T.b]", "k[T.c]", "x"]



def _same_frame(a, b):
    for name in ("endog", "exog"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.flags.c_contiguous == y.flags.c_contiguous
        np.testing.assert_array_equal(x, y)
    assert (a.endog_name, a.exog_names, a.n_dropped) == (b.endog_name, b.exog_names, b.n_dropped)
    assert a.row_labels.equals(b.row_labels) and type(a.row_labels) is type(b.row_labels)
    for ra, rb in zip(a.random, b.random, strict=True):
        assert (ra.term, ra.names) == (rb.term, rb.names) and ra.exog_re.strides == rb.exog_re.strides
        np.testing.assert_array_equal(ra.exog_re, rb.exog_re)
        assert ra.groups.dtype == rb.groups.dtype
        np.testing.assert_array_equal(ra.groups, rb.groups)


@pytest.mark.parametrize("formula", ["y ~ x + k + (x | g)", "y ~ 1 + x + (1 | g) + (0 + k | g)", "y ~ x + (1 | g/k)"])
def test_known_numeric_formula_is_framed_from_the_columns(monkeypatch, formula):
    """A formula of numeric columns whose design infos are known reads the columns directly:
    no patsy, no general model frame, and the same frame as the general one."""
    df = _data(4).assign(g=lambda d: ["s%d" % v for v in d.g]).set_index(np.arange(60) * 2 + 7)
    general = frames.model_frame_with_columns(parse(formula), df, {})[0]
    monkeypatch.setattr(frames, "model_frame", lambda *a, **k: pytest.fail("the general model frame was built"))
    _same_frame(plain_frame.model_frame_with_columns(parse(formula), df, {})[0], general)
    assert hlmext.mixedlm(formula, df).nobs == 60


@pytest.mark.parametrize("change", [
    lambda d: d.assign(x=np.where(np.arange(60) == 3, np.nan, d.x)),          # a row to drop
    lambda d: d.assign(g=np.where(np.arange(60) == 5, None, d.g.astype(object))),
    lambda d: d.assign(x=d.x.astype("Float64")),                              # another column type
    lambda d: d.assign(k=d.k.astype(str)),                                   # a factor
])
def test_other_data_take_the_general_model_frame(change):
    hlmext.mixedlm("y ~ x + k + (x | g)", _data(1))
    df = change(_data(6))
    parsed = parse("y ~ x + k + (x | g)")
    assert plain_frame.plain_frame(parsed, df) is None
    _same_frame(plain_frame.model_frame_with_columns(parsed, df, {})[0], frames.model_frame(parsed, df))


def _counting(monkeypatch, module, name):
    calls, original = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_bootstrap_replicates_form_no_standard_error_hessian_and_equal_full_refits(monkeypatch):
    sleep = hlmext.datasets.load("sleepstudy")
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit()
    sims = res.simulate(4, seed=3)
    refit = boot._Refit(res._results)
    order = res.model.design.order
    full = []
    for i in range(4):                                     # full searches, with the wide-step Hessian
        m = refit.model
        boot.set_endog_statistics(m, sims.iloc[:, i].to_numpy()[order])
        opt = boot.optimize_theta(m, refit.reml, refit.start, refit.bounds, refit.scale)
        assert opt.hessian is not None
        full.append((opt.end, opt.fun, opt.converged))
    finishes = _counting(monkeypatch, optimize, "_finish")
    b = res.bootstrap(n=4, seed=3, n_jobs=1)
    assert finishes == []
    for i, (end, fun, converged) in enumerate(full):      # the same optimum, to the optimizer's precision
        assert b.deviance[i] == pytest.approx(fun, rel=1e-14) and bool(b.converged[i]) == converged
        m = refit.model
        boot.set_endog_statistics(m, sims.iloc[:, i].to_numpy()[order])
        f = m.factorize(end)
        np.testing.assert_allclose(b.replicates.iloc[i].to_numpy()[:2], f.beta, rtol=1e-9)


def test_bootstrap_replicates_start_newton_steps_from_the_fits_hessian(monkeypatch):
    """Each replicate takes Newton steps from the fit's own Hessian at its optimum (formed once, before
    the replicates), not an L-BFGS-B search followed by a new Hessian: far fewer evaluations."""
    sleep = hlmext.datasets.load("sleepstudy")
    res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit()
    res.opt.hessian
    evals = _counting(monkeypatch, type(res.model), "deviance_and_gradient")
    searches = _counting(monkeypatch, optimize.optimize, "minimize")
    b = res.bootstrap(n=20, seed=3, n_jobs=1)
    assert b.converged.all()
    assert len(searches) <= 2 and len(evals) <= 14 * 20


