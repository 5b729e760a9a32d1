"""Work a small formula fit no longer repeats: a formula string is parsed once, and the model's
statsmodels arrays are read-only views of the design's arrays, made without pandas' conversion."""
import numpy as np
import pytest
from statsmodels.base.data import PandasData

import hlmext
from hlmext.formula import grammar


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
