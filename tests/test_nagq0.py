"""fit(nagq=0): lme4's fast estimator (fixed effects in the penalized IRLS) against glmer(nAGQ = 0)."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from conftest import load_reference
from glmm_helpers import patsy_name
from hlmext.models import nagq0

CASES = {
    "cbpp_ri_nagq0": lambda: hlmext.melogit("incidence ~ C(period) + (1 | herd)", hlmext.datasets.load("cbpp"),
                                            trials="size"),
    "grouseticks_ri_nagq0": lambda: hlmext.mepoisson("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)",
                                                     hlmext.datasets.load("grouseticks")),
    "grouseticks_nested_nagq0": lambda: hlmext.mepoisson("TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)",
                                                         hlmext.datasets.load("grouseticks")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_nagq0_matches_glmer(case):
    ref = load_reference(case, "nagq0")
    res = CASES[case]().fit(nagq=0)
    assert res.converged and res.nagq == 0
    # glmer's nAGQ = 0 logLik is its Laplace log-likelihood at the estimates, constants included
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-4)
    names = [patsy_name(f["name"]) for f in ref["fixed"]]
    est = np.array([f["estimate"] for f in ref["fixed"]])
    se = np.array([f["se"] for f in ref["fixed"]])
    np.testing.assert_array_less(np.abs(res.fe_params[names].values - est), 0.02 * se)
    np.testing.assert_allclose(res.bse_fe[names].values, se, rtol=0.02)
    sds = {r["level"]: r["sd"] for r in ref["random"]}
    for level, sd in sds.items():
        key = [k for k in res.params.index if k.startswith("sd(") and
               set(k.split("[")[1].rstrip("]").split(":")) == set(level.split(":"))]
        assert len(key) == 1 and res.params[key[0]] == pytest.approx(sd, rel=1e-3)
    assert "Integration method: Laplace (nagq=0)" in str(res.summary())


def test_nagq0_is_not_the_laplace_fit():
    model = CASES["grouseticks_ri_nagq0"]()
    fast, laplace = model.fit(nagq=0), model.fit(nagq=1)
    assert laplace.llf > fast.llf                      # Laplace maximizes the same likelihood over beta too
    # both are evaluations of the Laplace likelihood: the same function at different points
    assert model.loglike(fast.params.values, nagq=1) == pytest.approx(fast.llf, abs=1e-9)
    assert np.max(np.abs(fast.fe_params - laplace.fe_params) / laplace.bse_fe) > 0.05


@pytest.mark.parametrize("case", ["cbpp_ri_nagq0", "grouseticks_nested_nagq0"])
def test_nagq0_theta_gradient_matches_finite_differences(case):
    model = CASES[case]()
    beta0 = np.zeros(model.k_fe)
    obj = nagq0._ThetaObjective(model, beta0)
    theta = np.full(model.k_re, 0.6)
    g = obj.grad(theta)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = 1e-4
        fd = (obj.value(theta + e) - obj.value(theta - e)) / 2e-4
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_nagq0_joint_mode_is_the_penalized_irls_solution():
    model = CASES["cbpp_ri_nagq0"]()
    theta = np.array([0.7])
    prof = nagq0._Profile(model, theta, np.zeros(model.k_fe))
    # at the joint mode X'(y - mu) = 0 and the modes u solve their own equations (the kernel's)
    model._u[:] = prof.u
    model._kernel(prof.beta, theta, 1, False)
    np.testing.assert_allclose(model._X.T @ (model._ky - model._mu), 0.0, atol=1e-8)


def test_nagq0_bad_input():
    model = CASES["cbpp_ri_nagq0"]()
    with pytest.raises(ValueError, match="non-negative integer"):
        model.fit(nagq=-1)
    df = hlmext.datasets.load("cbpp")
    df["pw"] = 1.0 + (df["herd"] % 3)
    weighted = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size", pweights="pw")
    with pytest.raises(hlmext.ModelError, match="nagq=0.*sampling weights.*nagq=1"):
        weighted.fit(nagq=0)
    with pytest.raises(ValueError, match="start must have 1 values"):
        model.fit(nagq=0, start=[0.1, 0.2])
