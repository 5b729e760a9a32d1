"""Property-based tests: random small data never crash, never give NaN silently, and the
ML log-likelihood is at least statsmodels MixedLM's on the same model.

CI runs a bounded number of examples; set HLMEXT_FUZZ_EXAMPLES=2000 for a long run.
"""
import os
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hlmext
from hlmext.exceptions import DataError, ModelError

EXAMPLES = int(os.environ.get("HLMEXT_FUZZ_EXAMPLES", "25"))


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


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(glmm_datasets())
def test_random_glmm_data_fit_or_clear_error(case):
    df, formula, family, nagq = case
    fit = hlmext.melogit if family == "binomial" else hlmext.mepoisson
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fit(formula, df).fit(nagq=nagq if "(1 |" in formula else 1)
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
