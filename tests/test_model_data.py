"""A model of a float64 response and design attaches statsmodels' data objects without
statsmodels' data handling, with the attributes that handling gives."""
import numpy as np
import pandas as pd
import pytest
from statsmodels.base import model as sm_model
from statsmodels.base.model import LikelihoodModel

import hlmext


@pytest.fixture(scope="module")
def sleep():
    return hlmext.datasets.load("sleepstudy")


def _reference(model):
    """The same Series and DataFrame through statsmodels' own ``LikelihoodModel.__init__``."""
    ref = LikelihoodModel.__new__(type(model))
    LikelihoodModel.__init__(ref, model.data.orig_endog, model.data.orig_exog, hasconst=False)
    return ref


def _assert_same(a, b):
    assert set(a) == set(b)
    for key in a:
        x, y = a[key], b[key]
        assert type(x) is type(y), key
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), key
        elif isinstance(x, (pd.Series, pd.DataFrame)):
            assert x.equals(y) and x.index.equals(y.index), key
        else:
            assert x == y, key


def test_formula_model_skips_statsmodels_data_handling(sleep, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("statsmodels' handle_data called for a float64 design")
    monkeypatch.setattr(sm_model, "handle_data", refuse)
    model = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep)
    assert model.fit().converged


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)", "Reaction ~ 0 + Days + (1 | Subject)"])
def test_attached_data_as_statsmodels_attaches_it(sleep, formula):
    model = hlmext.mixedlm(formula, sleep)
    ref = _reference(model)
    set_after = ("data", "k_constant")            # the model sets these after statsmodels' part
    _assert_same({k: v for k, v in vars(model).items() if k in vars(ref) and k not in set_after},
                 {k: v for k, v in vars(ref).items() if k not in set_after})
    data = model.data
    _assert_same(vars(data), {**vars(ref.data), "_param_names": data._param_names,
                              "k_constant": data.k_constant, "const_idx": data.const_idx})
    assert model.data.row_labels.equals(ref.data.row_labels)
    assert model.data.xnames == ref.data.xnames and model.data.ynames == ref.data.ynames
