"""Work a small formula fit no longer repeats: a formula string is parsed once; the model's
statsmodels arrays are read-only views of the design's arrays, made without pandas' conversion;
nested designs evaluate the deviance and its gradient without per-evaluation objects; the fixed
effects' covariance calls LAPACK directly. Every number the same, bit for bit."""
import numpy as np
import pandas as pd
import pytest
from scipy import linalg
from statsmodels.base.data import PandasData

import hlmext
from hlmext.formula import grammar
from hlmext.models import chain_evaluation
from hlmext.results.linear import _lower_inverse


@pytest.fixture(scope="module")
def sleep():
    return hlmext.datasets.load("sleepstudy")


def test_formula_parsed_once(sleep, monkeypatch):
    calls = []
    original = grammar.parse
    monkeypatch.setattr(grammar, "parse", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    formula = "Reaction ~ Days + (Days | Subject)   "          # a string no other test fits
    first = hlmext.mixedlm(formula, sleep).fit()
    again = hlmext.mixedlm(formula, sleep).fit()
    assert calls == [formula]
    assert np.array_equal(first.params, again.params) and first.llf == again.llf


def test_attached_arrays_are_read_only_views_of_the_design(sleep, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pandas' conversion of the model's Series and DataFrame")
    monkeypatch.setattr(PandasData, "_convert_endog_exog", refuse)
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    d = model.design
    for attached, own, original in [(model.exog, d.exog, model.data.orig_exog),
                                    (model.endog, d.endog, model.data.orig_endog)]:
        reference = np.asarray(original)            # what statsmodels' conversion gives
        assert not attached.flags.writeable and attached.strides == reference.strides
        assert np.shares_memory(attached, own) and np.array_equal(attached, reference)
    assert model.fit().converged


NESTED = [("sleepstudy", "Reaction ~ Days + (Days | Subject)"), ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
          ("gcse", "gcse ~ lrt + (lrt | school)"), ("pastes", "strength ~ 1 + (1 | batch/cask)")]


@pytest.mark.parametrize("name,formula", NESTED)
@pytest.mark.parametrize("reml", [True, False])
def test_nested_evaluation_without_objects_bit_for_bit(name, formula, reml, monkeypatch):
    model = hlmext.mixedlm(formula, hlmext.datasets.load(name))
    assert chain_evaluation.applies(model)
    rng = np.random.default_rng(1)
    thetas = [model.theta_start() * model.theta_scale(), *(rng.uniform(0.1, 2, model.k_re) for _ in range(3))]
    fast = [model.deviance_and_gradient(theta, reml) for theta in thetas]
    fitted = model.fit(reml=reml)
    monkeypatch.setattr(chain_evaluation, "applies", lambda m: False)     # the general path
    for theta, (value, grad) in zip(thetas, fast):
        general_value, general_grad = model.deviance_and_gradient(theta, reml)
        assert value == general_value and np.array_equal(grad, general_grad)
    general = model.fit(reml=reml)
    assert np.array_equal(fitted.params, general.params) and np.array_equal(fitted.bse, general.bse)
    assert fitted.llf == general.llf and fitted.converged == general.converged
    assert fitted.opt.n_evals == general.opt.n_evals


def test_crossed_levels_take_the_general_evaluation():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"y": rng.normal(size=120), "a": np.tile(np.arange(6), 20), "b": np.repeat(np.arange(10), 12)})
    model = hlmext.mixedlm("y ~ 1 + (1 | a) + (1 | b)", df)
    assert model.design.qd and not chain_evaluation.applies(model)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_fixed_effects_inverse_as_scipy_gives_it(p):
    rng = np.random.default_rng(p)
    block = np.tril(rng.normal(size=(p + 2, p + 2))) + 3 * np.eye(p + 2)
    for L in (block[1:p + 1, 1:p + 1], np.asfortranarray(block[:p, :p]), np.ascontiguousarray(block[:p, :p])):
        assert np.array_equal(_lower_inverse(L), linalg.solve_triangular(L, np.eye(p), lower=True))
    bad = np.ascontiguousarray(block[:p, :p])
    bad[-1, 0 if p > 1 else -1] = np.inf
    with pytest.raises(ValueError):
        _lower_inverse(bad)
