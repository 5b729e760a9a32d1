"""hlmext.output.emit: the same model as an lme4 call and a Stata command.

Exact strings for the seed models (SEED_TABLES.md writes their Stata commands), nested and
crossed models; factor coding, interactions and transforms; notes for what cannot be
expressed; and round trips: the emitted lme4 formula and Stata command, read back by
hlmext's own parser, give the same model.
"""
import re

import numpy as np
import pytest

import hlmext
from hlmext.output.emit import to_lme4, to_stata
from hlmext.formula.grammar import parse


@pytest.fixture(scope="module")
def gcse():
    return hlmext.datasets.load("gcse").query("nstu > 4")


SEED = [
    # (hlmext formula, cov, Stata as in SEED_TABLES.md (canonical spelling), lme4)
    ("gcse ~ lrt + (1 | school)", None,
     "mixed gcse lrt || school:, mle",
     "lmer(gcse ~ lrt + (1 | school), data = df, REML = FALSE)"),
    ("gcse ~ lrt || school:", None,
     "mixed gcse lrt || school:, mle",
     "lmer(gcse ~ lrt + (1 | school), data = df, REML = FALSE)"),
    ("gcse ~ lrt + (lrt | school)", None,
     "mixed gcse lrt || school: lrt, covariance(unstructured) mle",
     "lmer(gcse ~ lrt + (lrt | school), data = df, REML = FALSE)"),
    ("gcse ~ lrt || school: lrt", "unstructured",
     "mixed gcse lrt || school: lrt, covariance(unstructured) mle",
     "lmer(gcse ~ lrt + (lrt | school), data = df, REML = FALSE)"),
    ("gcse ~ lrt || school: lrt", None,
     "mixed gcse lrt || school: lrt, covariance(independent) mle",
     "lmer(gcse ~ lrt + (lrt || school), data = df, REML = FALSE)"),
    ("gcse ~ C(schgend) * lrt + (lrt | school)", None,
     "mixed gcse i.schgend##c.lrt || school: lrt, covariance(unstructured) mle",
     "lmer(gcse ~ factor(schgend) * lrt + (lrt | school), data = df, REML = FALSE)"),
]


@pytest.mark.parametrize("formula, cov, stata, lme4", SEED)
def test_seed_models(gcse, formula, cov, stata, lme4):
    model = hlmext.mixedlm(formula, gcse, cov=cov)
    assert to_stata(model, reml=False) == stata
    assert to_lme4(model, reml=False) == lme4
    assert model.to_stata(reml=False) == stata
    assert model.to_lme4(reml=False) == lme4


def test_reml_flag_and_results(gcse):
    model = hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse)
    assert model.to_lme4() == "lmer(gcse ~ lrt + (1 | school), data = df)"
    assert model.to_stata().endswith("|| school:, reml")
    assert model.to_lme4(data="exam") == "lmer(gcse ~ lrt + (1 | school), data = exam)"
    res = model.fit(reml=False)                      # a fit passes its own method
    assert to_lme4(res).endswith("REML = FALSE)")
    assert to_stata(res).endswith(", mle")
    assert to_stata(res, reml=True).endswith(", reml")


def test_nested():
    pastes = hlmext.datasets.load("pastes")
    m = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes)
    assert m.to_lme4() == "lmer(strength ~ 1 + (1 | batch/cask), data = df)"
    assert m.to_stata() == "mixed strength || batch: || cask:, reml"
    # the unique cask id: nesting found from the data, Stata writes it the same way
    m = hlmext.mixedlm("strength ~ 1 + (1 | batch) + (1 | sample)", pastes)
    assert m.to_stata() == "mixed strength || batch: || sample:, reml"
    assert m.to_lme4() == "lmer(strength ~ 1 + (1 | batch) + (1 | sample), data = df)"


def test_nested_three_levels_stata_style():
    eg = hlmext.datasets.load("egsingle")
    m = hlmext.mixedlm("math ~ year + black || schoolid: || childid: year", eg)
    assert m.to_stata(reml=False) == "mixed math year black || schoolid: || childid: year, covariance(independent) mle"
    assert m.to_lme4(reml=False) == ("lmer(math ~ year + black + (1 | schoolid) + (year || schoolid:childid), "
                                     "data = df, REML = FALSE)")
    m = hlmext.mixedlm("math ~ year + (year | childid) + (1 | schoolid)", eg)
    assert m.to_stata() == "mixed math year || schoolid: || childid: year, covariance(unstructured) reml"


def test_crossed():
    pen = hlmext.datasets.load("penicillin")
    m = hlmext.mixedlm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    assert m.to_stata() == "mixed diameter || _all: R.sample || plate:, reml"
    assert m.to_lme4() == "lmer(diameter ~ 1 + (1 | plate) + (1 | sample), data = df)"
    scots = hlmext.datasets.load("scotssec")
    m = hlmext.mixedlm("attain ~ verbal + (1 | primary) + (1 | second)", scots)
    assert m.to_stata(reml=False) == "mixed attain verbal || _all: R.second || primary:, mle"


def test_crossed_random_slope_is_noted():
    scots = hlmext.datasets.load("scotssec")
    m = hlmext.mixedlm("attain ~ verbal + (1 | primary) + (verbal | second)", scots)
    lines = m.to_stata().split("\n")
    assert lines[0] == "mixed attain verbal || _all: R.second || primary:, reml"
    assert lines[1].startswith("// note: crossed level 'second'") and "verbal" in lines[1]
    assert m.to_lme4() == "lmer(attain ~ verbal + (1 | primary) + (verbal | second), data = df)"


def test_factors_interactions_transforms(gcse):
    m = hlmext.mixedlm("gcse ~ lrt:schavg + C(vr, Treatment(reference=2)) + (1 | school)", gcse)
    assert m.to_stata() == "mixed gcse ib2.vr c.lrt#c.schavg || school:, reml"
    assert m.to_lme4() == 'lmer(gcse ~ lrt:schavg + relevel(factor(vr), ref = "2") + (1 | school), data = df)'
    m = hlmext.mixedlm("gcse ~ C(schgend):lrt + lrt + (1 | school)", gcse)
    assert m.to_stata() == "mixed gcse lrt i.schgend#c.lrt || school:, reml"
    m = hlmext.mixedlm("gcse ~ lrt * schavg + (1 | school)", gcse)
    assert m.to_stata() == "mixed gcse c.lrt##c.schavg || school:, reml"
    assert m.to_lme4() == "lmer(gcse ~ lrt * schavg + (1 | school), data = df)"
    m = hlmext.mixedlm("gcse ~ 0 + C(schgend) + lrt + (0 + lrt | school)", gcse)
    assert m.to_stata() == "mixed gcse ibn.schgend lrt, noconstant || school: lrt, noconstant reml"
    assert m.to_lme4() == "lmer(gcse ~ 0 + factor(schgend) + lrt + (0 + lrt | school), data = df)"
    m = hlmext.mixedlm("gcse ~ C(sex) + np.log(lrt + 40) + I(lrt ** 2) + (1 | school)", gcse)
    assert m.to_stata().split("\n") == ["encode sex, generate(sex_n)", "generate log_lrt_40 = ln(lrt + 40)",
                                        "generate lrt_2 = (lrt ^ 2)",
                                        "mixed gcse i.sex_n log_lrt_40 lrt_2 || school:, reml"]
    assert m.to_lme4() == "lmer(gcse ~ factor(sex) + log(lrt + 40) + I(lrt ^ 2) + (1 | school), data = df)"


def test_combination_grouping_needs_egen():
    scots = hlmext.datasets.load("scotssec")
    m = hlmext.mixedlm("attain ~ verbal + (1 | primary:second)", scots)
    assert m.to_stata().split("\n") == ["egen primary_second = group(primary second)",
                                        "mixed attain verbal || primary_second:, reml"]
    assert m.to_lme4() == "lmer(attain ~ verbal + (1 | primary:second), data = df)"


def test_blocks_on_one_grouping(gcse):
    m = hlmext.mixedlm("gcse ~ lrt + (1 | school) + (0 + lrt | school)", gcse)
    assert m.to_stata() == "mixed gcse lrt || school: || school: lrt, noconstant reml"
    assert m.to_lme4() == "lmer(gcse ~ lrt + (1 | school) + (0 + lrt | school), data = df)"


def test_structures_lme4_cannot_express(gcse):
    m = hlmext.mixedlm("gcse ~ lrt + (lrt + schavg | school)", gcse, cov="exchangeable")
    assert m.to_stata() == "mixed gcse lrt || school: lrt schavg, covariance(exchangeable) reml"
    call, note = m.to_lme4().split("\n")
    assert call == "lmer(gcse ~ lrt + (lrt + schavg | school), data = df)"
    assert note.startswith("# note:") and "exchangeable" in note
    m = hlmext.mixedlm("gcse ~ lrt || school: lrt schavg, cov(id)", gcse)
    assert m.to_stata() == "mixed gcse lrt || school: lrt schavg, covariance(identity) reml"
    assert "identity" in m.to_lme4().split("\n")[1]


def test_factor_in_random_part_is_noted(gcse):
    m = hlmext.mixedlm("gcse ~ lrt + (0 + C(sex) | school)", gcse, cov="independent")
    stata = m.to_stata()
    assert "|| school: ibn.sex_n, covariance(independent) noconstant reml" in stata
    assert "// note: level 'school': Stata does not take factor variables" in stata
    assert "does not separate the columns of a factor" in m.to_lme4()


def test_unsupported_models():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(10), 5)
    y = rng.normal(size=50)
    arrays = hlmext.LinearMixed(y, np.ones((50, 1)), g)
    with pytest.raises(ValueError, match="built from a formula"):
        to_lme4(arrays)
    with pytest.raises(ValueError, match="built from a formula"):
        arrays.to_stata()
    if hasattr(hlmext, "melogit"):
        logit = hlmext.melogit("incidence ~ C(period) + (1 | herd)", hlmext.datasets.load("cbpp"), trials="size")
        with pytest.raises(ValueError, match="linear mixed models"):
            to_stata(logit)


def _stata_to_hlmext(command):
    """A Stata ``mixed`` command of numeric variables read back as an hlmext formula."""
    body = command[len("mixed "):]
    body = re.sub(r",? (mle|reml)$", "", body)
    fixed, _, random = body.partition(" || ")
    depvar, *indep = fixed.split()
    return "%s ~ %s || %s" % (depvar, " + ".join(indep) or "1", random)


ROUND_TRIP = [
    ("gcse", "gcse ~ lrt + (lrt | school)", None),
    ("gcse", "gcse ~ lrt + schavg + (lrt || school)", None),
    ("gcse", "gcse ~ lrt + (0 + lrt | school)", None),
    ("gcse", "gcse ~ lrt || school: lrt schavg", "identity"),
    ("gcse", "gcse ~ lrt + (lrt + schavg | school)", "exchangeable"),
    ("pastes", "strength ~ 1 + (1 | batch/cask)", None),
    ("egsingle", "math ~ year + (1 | schoolid) + (year | schoolid:childid)", None),
]


@pytest.mark.parametrize("data, formula, cov", ROUND_TRIP)
def test_round_trip_through_hlmext_parser(data, formula, cov):
    df = hlmext.datasets.load(data)
    model = hlmext.mixedlm(formula, df, cov=cov)
    terms = sorted((b.term.group, b.term.formula, b.term.cov) for b in model.frame.random)
    stata = model.to_stata()
    back = parse(_stata_to_hlmext(stata))
    assert sorted((t.group, t.formula, t.cov) for t in back.random) == terms, stata
    lme4 = model.to_lme4().split("\n")[0]
    if "# note" not in model.to_lme4():
        rhs = re.fullmatch(r"lmer\((.*), data = df\)", lme4).group(1)
        again = hlmext.mixedlm(rhs, df, cov=cov)
        assert sorted((b.term.group, b.term.formula, b.term.cov) for b in again.frame.random) == terms, lme4
        theta = model.theta_start()
        assert again.deviance(theta) == pytest.approx(model.deviance(theta), rel=1e-10)


def test_emitted_lme4_matches_fit_of_same_model(gcse):
    """The Stata-style and the emitted lme4-style formula fit the same likelihood."""
    stata_style = hlmext.mixedlm("gcse ~ lrt || school: lrt", gcse, cov="un").fit(reml=False)
    rhs = re.fullmatch(r"lmer\((.*), data = df, REML = FALSE\)", to_lme4(stata_style)).group(1)
    lme4_style = hlmext.mixedlm(rhs, gcse).fit(reml=False)
    assert lme4_style.llf == pytest.approx(stata_style.llf, abs=1e-6)


def test_frequency_weights(gcse):
    df = gcse.assign(w=1 + (np.arange(len(gcse)) % 3), half=1.5)
    model = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df, weights="w")
    assert to_stata(model, reml=False) == "mixed gcse lrt [fw=w] || school:, mle"
    call = to_lme4(model, reml=False, data="d")
    assert call == "lmer(gcse ~ lrt + (1 | school), data = d[rep(seq_len(nrow(d)), d$w), ], REML = FALSE)"
    # what that call fits: every row repeated w times, the same likelihood as the weighted fit
    repeated = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df.loc[df.index.repeat(df["w"])]).fit(reml=False)
    assert repeated.llf == pytest.approx(model.fit(reml=False).llf, rel=1e-9)

    arrays = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df, weights=df["w"].to_numpy())
    assert to_stata(arrays).splitlines() == [
        "mixed gcse lrt [fw=fweight] || school:, reml",
        "// note: the frequency weights were given as an array: store them as the variable fweight"]
    fractional = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df, weights="half")
    assert to_lme4(fractional).splitlines()[0] == "lmer(gcse ~ lrt + (1 | school), data = df)"
    assert "not whole numbers; this call is unweighted" in to_lme4(fractional)
    assert "must be whole numbers" in to_stata(fractional)


def test_sampling_weights(gcse):
    df = gcse.assign(w=1 + (np.arange(len(gcse)) % 3), wsch=1 + gcse["school"] % 2)
    model = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df, pweights={"obs": "w", "school": "wsch"},
                           pwscale="size")
    assert to_stata(model) == ("mixed gcse lrt [pw=w] || school: lrt, covariance(unstructured) pweight(wsch) "
                               "mle pwscale(size)")
    lme4 = to_lme4(model).splitlines()
    assert lme4[0] == "lmer(gcse ~ lrt + (lrt | school), data = df)"
    assert "no sampling weights" in lme4[1]
    level_only = hlmext.mixedlm("gcse ~ 0 + lrt + (1 | school)", df, pweights={"school": "wsch"})
    assert to_stata(level_only) == "mixed gcse lrt, noconstant || school:, pweight(wsch) mle"
