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


def crossed_model():
    rng = np.random.default_rng(1)
    n = 300
    a, b, x = rng.integers(0, 30, n), rng.integers(0, 8, n), rng.normal(size=n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.8, 30)[a] + rng.normal(0, 0.5, 8)[b]
    df = pd.DataFrame(dict(y=rng.binomial(1, 1 / (1 + np.exp(-eta))), x=x, a=a, b=b))
    return hlmext.melogit("y ~ x + (x | a) + (1 | b)", df)


@pytest.mark.parametrize("case", ["cbpp_ri_nagq0", "grouseticks_nested_nagq0", "crossed"])
def test_nagq0_theta_gradient_matches_finite_differences(case):
    model = crossed_model() if case == "crossed" else CASES[case]()
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


def test_nagq0_joint_mode_with_zeros_in_z():
    """Lambda' z has values where z has zeros (a correlated slope of a column that is 0)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(25), 8)
    x, w = rng.normal(size=200), rng.normal(size=200)
    x[::3] = 0.0
    eta = 0.2 + 0.5 * x + (rng.normal(size=25) * 0.6)[g] * x + (rng.normal(size=25) * 0.5)[g] * w
    df = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "w": w, "g": g})
    model = hlmext.mepoisson("y ~ x + (0 + x + w | g)", df)
    theta = np.array([0.6, 0.3, 0.5])
    prof = nagq0._Profile(model, theta, np.zeros(model.k_fe))
    model._u[:] = prof.u
    model._kernel(prof.beta, theta, 1, False)
    np.testing.assert_allclose(model._X.T @ (model._ky - model._mu), 0.0, atol=1e-8)
    # the Schur complement is the Hessian of the profile: its inverse matches finite differences
    h, p = 1e-5, model.k_fe
    grads = []
    for sign in (1, -1):
        for i in range(p):
            b = prof.beta.copy()
            b[i] += sign * h
            model._u[:] = prof.u
            model._kernel(b, theta, 1, False)
            grads.append(model._X.T @ (model._ky - model._mu))
    fd = -(np.array(grads[:p]) - np.array(grads[p:])) / (2 * h)
    np.testing.assert_allclose(prof.schur, fd, rtol=1e-5)
