"""The Stata command of mixed logit and Poisson fits, with their integration method."""
import numpy as np
import pytest

import hlmext
from hlmext.output.emit_glmm import glmm_to_stata


@pytest.fixture(scope="module")
def cbpp():
    return hlmext.datasets.load("cbpp")


def test_to_stata_says_the_integration_method(cbpp):
    model = hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size")
    head = "melogit incidence i.period || herd:, binomial(size) "
    assert model.fit(nagq=7).to_stata() == head + "intmethod(mvaghermite) intpoints(7)"
    assert model.fit(nagq=1).to_stata() == head + "intmethod(laplace)"
    fast = model.fit(nagq=0).to_stata().split("\n")
    assert fast[0] == head + "intmethod(laplace)" and "nagq=0" in fast[1] and fast[1].startswith("// note:")
    assert glmm_to_stata(model, nagq=15) == head + "intmethod(mvaghermite) intpoints(15)"


def test_to_stata_of_poisson_models():
    ticks = hlmext.datasets.load("grouseticks")
    nested = hlmext.mepoisson("TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)", ticks)
    assert glmm_to_stata(nested) == "mepoisson TICKS i.YEAR cHEIGHT || LOCATION: || BROOD:, intmethod(laplace)"
    assert glmm_to_stata(nested, nagq=5).endswith("|| BROOD:, intmethod(mvaghermite) intpoints(5)")
    mmmec = hlmext.datasets.load("mmmec")
    expo = hlmext.mepoisson("deaths ~ uvb + (1 | region)", mmmec, exposure="expected")
    assert glmm_to_stata(expo) == ("mepoisson deaths uvb || region:, exposure(expected) intmethod(mvaghermite) "
                                   "intpoints(7)")
    free = hlmext.mepoisson("deaths ~ 0 + uvb + (1 | region)", mmmec, offset=np.log(mmmec["expected"]))
    text = glmm_to_stata(free).split("\n")
    assert text[0] == "mepoisson deaths uvb, noconstant || region:, intmethod(mvaghermite) intpoints(7)"
    assert "offset or exposure was given as an array" in text[1]


def test_to_stata_needs_a_formula():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 5)
    model = hlmext.MixedPoisson(rng.poisson(2, 50), np.ones((50, 1)), g)
    with pytest.raises(ValueError, match="needs a model built from a formula"):
        glmm_to_stata(model)


def test_docstring_examples_of_the_module():
    import doctest
    from hlmext.output import emit_glmm
    result = doctest.testmod(emit_glmm, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0
