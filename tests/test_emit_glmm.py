"""The Stata command and the R call of generalized mixed models of every family, with their
integration method."""
import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hlmext
from conftest import REFERENCE
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


# --------------------------------------------------------------------------- every family
EMITTED = json.loads((REFERENCE / "emit_glmm" / "emitted_fits.json").read_text())
L = sm.families.links


def _family_cases():
    cbpp = hlmext.datasets.load("cbpp")
    ticks = hlmext.datasets.load("grouseticks")
    mmmec = hlmext.datasets.load("mmmec")
    sim = {name: pd.read_csv(REFERENCE / "families" / (name + ".csv")) for name in ("gamma_sim", "gausslog_sim")}
    return {
        "logit_cbpp": (hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size"), "cbpp"),
        "poisson_mmmec": (hlmext.meglm("deaths ~ uvb + (1 | region)", mmmec, family=sm.families.Poisson(),
                                       exposure="expected"), "mmmec"),
        "nb1_grouse": (hlmext.menbreg("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", ticks, dispersion="constant"),
                       "grouseticks"),
        "gamma_log": (hlmext.meglm("y ~ x + (1 | g)", sim["gamma_sim"], family=sm.families.Gamma(L.Log())),
                      "gamma_sim"),
        "gaussian_log": (hlmext.meglm("y ~ x + (1 | g)", sim["gausslog_sim"],
                                      family=sm.families.Gaussian(L.Log())), "gausslog_sim"),
    }


@pytest.mark.parametrize("case", ["logit_cbpp", "poisson_mmmec", "nb1_grouse", "gamma_log", "gaussian_log"])
def test_emitted_r_call_fits_the_same_model(case):
    """The call to_lme4() writes is the one R ran (tests/reference/emit_glmm), and R's fit of it has
    this fit's log-likelihood."""
    model, data = _family_cases()[case]
    res = model.fit(nagq=1)
    assert res.to_lme4(data=data) == EMITTED[case]["call"]
    assert res.llf == pytest.approx(EMITTED[case]["loglik"], rel=1e-5)


def test_r_calls_of_every_family():
    cbpp = hlmext.datasets.load("cbpp")
    ticks = hlmext.datasets.load("grouseticks")
    probit = hlmext.meprobit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size")
    head = "glmer(cbind(incidence, size - incidence) ~ factor(period) + (1 | herd), data = df, "
    assert probit.to_lme4(nagq=7) == head + 'family = binomial(link = "probit"), nAGQ = 7)'
    laplace = probit.to_lme4(nagq=1).split("\n")
    assert laplace[0] == head + 'family = binomial(link = "probit"))'
    assert "non-canonical" in laplace[1] and 'glmmTMB(..., family = binomial(link = "probit"))' in laplace[1]
    assert probit.to_lme4(nagq=0) == head + 'family = binomial(link = "probit"), nAGQ = 0)'
    nb2 = hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)", ticks)
    assert nb2.to_lme4(nagq=7) == "glmer.nb(TICKS ~ cHEIGHT + (1 | BROOD), data = df, nAGQ = 7)"
    assert "family = nbinom2" in nb2.to_lme4(nagq=1)
    nested = hlmext.menbreg("TICKS ~ cHEIGHT + (1 | LOCATION/BROOD)", ticks).to_lme4(nagq=1).split("\n")
    assert nested[0] == "glmer.nb(TICKS ~ cHEIGHT + (1 | LOCATION/BROOD), data = df)"
    ig = hlmext.meglm("TICKS1 ~ cHEIGHT + (1 | BROOD)", ticks.assign(TICKS1=ticks["TICKS"] + 1),
                      family=sm.families.InverseGaussian())
    text = ig.to_lme4(nagq=1).split("\n")
    assert text[0] == "glmer(TICKS1 ~ cHEIGHT + (1 | BROOD), data = df, family = inverse.gaussian)"
    assert "moment estimate" in text[1]
    weighted = hlmext.meprobit("incidence ~ C(period) + (1 | herd)", cbpp.assign(w=1.0), trials="size",
                               pweights="w")
    assert "no sampling weights" in weighted.to_lme4(nagq=7)


def test_stata_commands_of_every_family():
    cbpp = hlmext.datasets.load("cbpp")
    ticks = hlmext.datasets.load("grouseticks")
    tail = " || herd:, binomial(size) intmethod(mvaghermite) intpoints(7)"
    assert hlmext.meprobit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").to_stata() == (
        "meprobit incidence i.period" + tail)
    assert hlmext.mecloglog("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").to_stata() == (
        "mecloglog incidence i.period" + tail)
    log_binomial = hlmext.meglm("incidence ~ 1 + (1 | herd)", cbpp, trials="size",
                                family=sm.families.Binomial(L.Log()))
    assert log_binomial.to_stata(nagq=1) == ("meglm incidence || herd:, family(binomial size) link(log) "
                                             "intmethod(laplace)")
    nb = hlmext.menbreg("TICKS ~ cHEIGHT + (1 | LOCATION/BROOD)", ticks)
    assert nb.to_stata() == "menbreg TICKS cHEIGHT || LOCATION: || BROOD:, intmethod(laplace)"
    gamma = hlmext.meglm("TICKS1 ~ cHEIGHT + (1 | BROOD)", ticks.assign(TICKS1=ticks["TICKS"] + 1),
                         family=sm.families.Gamma(L.Log()))
    assert gamma.to_stata(nagq=1) == "meglm TICKS1 cHEIGHT || BROOD:, family(gamma) link(log) intmethod(laplace)"
    bernoulli = hlmext.meglm("y ~ 1 + (1 | herd)", cbpp.assign(y=(cbpp["incidence"] > 0).astype(float)),
                             family=sm.families.Binomial(L.Probit()))
    assert bernoulli.to_stata(nagq=1) == "meprobit y || herd:, intmethod(laplace)"


@pytest.mark.parametrize("family, word", [(sm.families.Gamma(), "inverse link"),
                                          (sm.families.InverseGaussian(L.Log()), "InverseGaussian family"),
                                          (sm.families.Poisson(L.Sqrt()), "sqrt link")])
def test_stata_refuses_what_it_has_not(family, word):
    ticks = hlmext.datasets.load("grouseticks").assign(y=lambda d: d["TICKS"] + 1)
    model = hlmext.meglm("y ~ cHEIGHT + (1 | BROOD)", ticks, family=family)
    with pytest.raises(ValueError, match="Stata's meglm has no %s" % word):
        model.to_stata()
    assert model.to_lme4().startswith(("glmer(", "glmmTMB("))
