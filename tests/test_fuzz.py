"""Property-based tests: random small data never crash, never give NaN silently, and the
ML log-likelihood is at least statsmodels MixedLM's on the same model (linear), at least
that of the model without random effects, a statsmodels GLM (logit, Poisson).

CI runs a bounded number of examples, plus the cases these tests have found (``@example``).
A long run: ``HLMEXT_FUZZ_EXAMPLES=5000 HLMEXT_FUZZ_SEED=1 python -m pytest tests/test_fuzz.py``
(examples per test; the seed makes the run reproducible, repeat with other seeds).
"""
import os
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

import hlmext
from hlmext.exceptions import DataError, ModelError

EXAMPLES = int(os.environ.get("HLMEXT_FUZZ_EXAMPLES", "25"))
GLMM_EXAMPLES = int(os.environ.get("HLMEXT_FUZZ_EXAMPLES", "60"))
SEED = os.environ.get("HLMEXT_FUZZ_SEED")


def seeded(test):
    """The test with Hypothesis's seed from ``HLMEXT_FUZZ_SEED`` (random without it)."""
    return seed(int(SEED))(test) if SEED else test


@st.composite
def datasets(draw):
    n_groups = draw(st.integers(1, 50))
    sizes = draw(st.lists(st.integers(1, 30), min_size=n_groups, max_size=n_groups))
    k = draw(st.integers(0, 3))
    slope = draw(st.booleans()) and k > 0
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    g = np.repeat(np.arange(n_groups), sizes)
    X = rng.normal(size=(n, k)) * draw(st.sampled_from([1.0, 1e-3, 1e4]))
    sd_u = draw(st.sampled_from([0.0, 0.3, 2.0]))
    y = 1 + X.sum(axis=1) + sd_u * rng.normal(size=n_groups)[g] + rng.normal(size=n)
    df = pd.DataFrame(X, columns=["x%d" % i for i in range(k)])
    df["y"], df["g"] = y, g
    fixed = " + ".join(df.columns[:k]) or "1"
    random = "(x0 | g)" if slope else "(1 | g)"
    return df, "y ~ %s + %s" % (fixed, random), slope


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_random_data_fit_or_clear_error(case):
    df, formula, slope = case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = hlmext.mixedlm(formula, df).fit(reml=False)
        except (DataError, ModelError) as err:
            assert str(err)                                   # a message, not a crash
            return
    params = res.params.to_numpy()
    sd_nan = ~np.isfinite(res.bse.to_numpy())
    if not np.all(np.isfinite(params)) or not np.isfinite(res.llf):
        assert caught, "NaN result without a warning"
    if sd_nan.any():
        assert res.on_boundary or not res.converged or caught
    # never worse than statsmodels' ML fit of the same model
    import statsmodels.formula.api as smf
    fixed = formula.split("+ (")[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm = smf.mixedlm(fixed, df, groups=df["g"], re_formula="~x0" if slope else None).fit(reml=False)
        sm_llf = sm.llf
    except Exception:                                       # statsmodels failing is not our concern
        return
    if np.isfinite(sm_llf):
        assert res.llf >= sm_llf - 1e-6 * max(1.0, abs(sm_llf))


@st.composite
def glmm_datasets(draw):
    family = draw(st.sampled_from(["binomial", "poisson"]))
    n_groups = draw(st.integers(1, 50))
    sizes = draw(st.lists(st.integers(1, 30), min_size=n_groups, max_size=n_groups))
    k = draw(st.integers(0, 3))
    slope = draw(st.booleans()) and k > 0
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    g = np.repeat(np.arange(n_groups), sizes)
    X = rng.normal(size=(n, k))
    sd_u = draw(st.sampled_from([0.0, 0.5, 1.5]))
    eta = -0.5 + 0.5 * X.sum(axis=1) + sd_u * rng.normal(size=n_groups)[g]
    if family == "binomial":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    df = pd.DataFrame(X, columns=["x%d" % i for i in range(k)])
    df["y"], df["g"] = y, g
    fixed = " + ".join(df.columns[:k]) or "1"
    random = "(x0 | g)" if slope else "(1 | g)"
    return df, "y ~ %s + %s" % (fixed, random), family, draw(st.sampled_from([1, 3]))


# found by this test (issue 24): two rows of 1s in one cluster, 23 mixed rows in another; the
# optimizer's interior maximum (sd 0.96) was below the logit without random effects
ISSUE_24 = pd.DataFrame(dict(y=[1.0, 1] + [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0],
                             g=[0, 0] + [1] * 23))


@seeded
@settings(max_examples=GLMM_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(glmm_datasets())
@example((ISSUE_24, "y ~ 1 + (1 | g)", "binomial", 1))
@example((ISSUE_24, "y ~ 1 + (1 | g)", "binomial", 3))
def test_random_glmm_data_fit_or_clear_error(case):
    df, formula, family, nagq = case
    check_glmm_fit(df, formula, family, nagq if "(1 |" in formula else 1)


def check_glmm_fit(df, formula, family, nagq):
    """A clear error, or a fit with no silent NaN and a log-likelihood at least the GLM's."""
    fit = hlmext.melogit if family == "binomial" else hlmext.mepoisson
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fit(formula, df).fit(nagq=nagq)
        except (DataError, ModelError) as err:
            assert str(err)                                   # a message, not a crash
            return
    finite = np.all(np.isfinite(res.params.to_numpy())) and np.isfinite(res.llf)
    if not finite:
        assert caught, "NaN result without a warning"
    if not np.all(np.isfinite(res.bse.to_numpy())):
        assert res.on_boundary or not res.converged or caught
    # the mixed model nests the GLM without random effects (variances at zero): never worse
    assert res.llf >= res.null_llf - 1e-6 * max(1.0, abs(res.null_llf))
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    glm_family = sm.families.Binomial() if family == "binomial" else sm.families.Poisson()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            glm = smf.glm(formula.split(" + (")[0], df, family=glm_family).fit()
        glm_llf = glm.llf if glm.converged else np.nan
    except Exception:                                       # statsmodels failing is not our concern
        return
    if np.isfinite(glm_llf):
        assert res.llf >= glm_llf - 1e-6 * max(1.0, abs(glm_llf))


@st.composite
def two_factor_glmm_datasets(draw):
    """Random intercepts of two factors, nested (b within a) or crossed."""
    family = draw(st.sampled_from(["binomial", "poisson"]))
    n = draw(st.integers(4, 200))
    n_a, n_b = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    nested = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    a = rng.integers(0, n_a, n)
    b = a * n_b + rng.integers(0, n_b, n) if nested else rng.integers(0, n_b, n)
    x = rng.normal(size=n)
    sd_a, sd_b = draw(st.sampled_from([0.0, 0.5, 1.5])), draw(st.sampled_from([0.0, 0.5, 1.5]))
    eta = -0.5 + 0.5 * x + sd_a * rng.normal(size=n_a)[a] + sd_b * rng.normal(size=b.max() + 1)[b]
    if family == "binomial":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    df = pd.DataFrame(dict(y=y, x=x, a=a, b=b))
    return df, "y ~ x + (1 | a) + (1 | b)", family


@seeded
@settings(max_examples=max(GLMM_EXAMPLES // 4, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_factor_glmm_datasets())
def test_random_nested_crossed_glmm_data_fit_or_clear_error(case):
    df, formula, family = case
    check_glmm_fit(df, formula, family, 1)


FAMILY_CASES = ["probit", "cloglog", "nb2", "nb1", "gamma", "gaussian-log"]


@st.composite
def family_glmm_datasets(draw):
    family = draw(st.sampled_from(FAMILY_CASES))
    n_groups = draw(st.integers(1, 30))
    sizes = draw(st.lists(st.integers(1, 15), min_size=n_groups, max_size=n_groups))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    g = np.repeat(np.arange(n_groups), sizes)
    x = rng.normal(size=n)
    sd_u = draw(st.sampled_from([0.0, 0.5, 1.5]))
    eta = 0.3 * x + sd_u * rng.normal(size=n_groups)[g]
    if family in ("probit", "cloglog"):
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif family in ("nb2", "nb1"):
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(eta))).astype(float)
    elif family == "gamma":
        y = rng.gamma(2.0, np.exp(eta) / 2.0)
    else:
        y = np.exp(1.0 + 0.3 * eta) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": g}), family, draw(st.sampled_from([1, 3]))


@seeded
@settings(max_examples=max(GLMM_EXAMPLES // 4, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_glmm_datasets())
def test_random_family_glmm_data_fit_or_clear_error(case):
    """meglm and menbreg: a clear error or a fit whose log-likelihood is at least its GLM's
    (statsmodels' GLM for probit and cloglog; its ML negative binomial; the GLM at its
    moment-estimated scale for Gamma and Gaussian, which the ML dispersion can only beat)."""
    import statsmodels.api as sm
    df, family, nagq = case
    links = sm.families.links
    fam = {"probit": sm.families.Binomial(link=links.Probit()), "cloglog": sm.families.Binomial(link=links.CLogLog()),
           "gamma": sm.families.Gamma(link=links.Log()), "gaussian-log": sm.families.Gaussian(link=links.Log())}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if family in ("nb2", "nb1"):
                model = hlmext.menbreg("y ~ x + (1 | g)", df, dispersion="mean" if family == "nb2" else "constant")
            else:
                model = hlmext.meglm("y ~ x + (1 | g)", df, family=fam[family])
            res = model.fit(nagq=nagq)
        except (DataError, ModelError) as err:
            assert str(err)
            return
    if not (np.all(np.isfinite(res.params.to_numpy())) and np.isfinite(res.llf)):
        assert caught, "NaN result without a warning"
    assert res.llf >= res.null_llf - 1e-6 * max(1.0, abs(res.null_llf))
    X = sm.add_constant(df[["x"]].to_numpy(), has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if family in ("nb2", "nb1"):
                glm = sm.NegativeBinomial(df.y.to_numpy(), X, loglike_method=family).fit(disp=0, maxiter=500)
                glm_llf = glm.llf if glm.mle_retvals["converged"] else np.nan
            else:
                glm = sm.GLM(df.y.to_numpy(), X, family=fam[family]).fit()
                glm_llf = glm.llf if glm.converged else np.nan
    except Exception:                                       # statsmodels failing is not our concern
        return
    if np.isfinite(glm_llf):
        assert res.llf >= glm_llf - 1e-6 * max(1.0, abs(glm_llf))
