"""Mixed logit / Poisson fits on the boundary of the parameter space: variances at zero
(never below the model without them), variances running to infinity, offsets far from
zero and the largest quadrature rule."""
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hlmext
from hlmext.exceptions import BoundaryWarning
from hlmext.models.glmm import MAX_NAGQ, gauss_hermite_rule
from hlmext.models.glmm_boundary import boundary_faces

# issue 24 (found by tests/test_fuzz.py): the interior maximum, sd 0.96, is below the logit
ISSUE_24 = pd.DataFrame(dict(y=[1.0, 1] + [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0],
                             g=[0, 0] + [1] * 23))


def _digits(text):
    return np.array([int(c) for c in text])


def _two_factor(y, b, nested):
    """A factor ``a`` with a cluster of the first two rows (both 1) and one of the rest, and ``b``."""
    y, b = _digits(y).astype(float), _digits(b)
    a = np.where(np.arange(y.size) < 2, 0, 1)
    return pd.DataFrame(dict(y=y, a=a, b=a * 100 + b if nested else b))


# the interior maximum of (1 | a) + (1 | b) is below the fit of (1 | b) alone (searched for with
# random data of this shape; the response of b's random intercepts, sd 1)
CROSSED = _two_factor("1100010010011000000110101101000000000001010000000000101000000010001000010101",
                      "4350355266426406002651606532056200662666015422056342646455205562605561405254", False)
NESTED = _two_factor("11000000000000001000110100100010001011010000010100000000000000100000100",
                     "75754512371555573017154655005746150031443134732064456241352624671511163", True)


def _fit(fit, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit(*args, **kwargs)
    return res, caught


@pytest.mark.parametrize("nagq", [1, 7])
def test_issue_24_returns_the_logit_on_the_boundary(nagq):
    glm = sm.GLM(ISSUE_24["y"], np.ones((len(ISSUE_24), 1)), family=sm.families.Binomial()).fit()
    res, caught = _fit(hlmext.melogit("y ~ 1 + (1 | g)", ISSUE_24).fit, nagq=nagq)
    assert res.llf == pytest.approx(glm.llf, abs=1e-9)
    assert res.params["sd(Intercept)[g]"] == 0.0
    assert res.params["Intercept"] == pytest.approx(glm.params.iloc[0], abs=1e-6)
    assert res.converged and res.on_boundary == ["sd(Intercept)[g]"]
    assert res.opt.message.startswith("boundary optimum: every variance at zero")
    assert any(issubclass(w.category, BoundaryWarning) and "sd(Intercept)[g]" in str(w.message) for w in caught)
    lr = res.lr_test_vs_regression()
    assert lr.statistic == 0.0 and lr.pvalue == 1.0 and lr.kind == "chibar2(01)"
    assert "chibar2(01) = 0.00" in str(res.summary())


@pytest.mark.parametrize("data", [CROSSED, NESTED], ids=["crossed", "nested"])
def test_one_level_at_zero_beats_the_interior_optimum(data):
    sub, _ = _fit(hlmext.melogit("y ~ 1 + (1 | b)", data).fit, nagq=1)
    res, caught = _fit(hlmext.melogit("y ~ 1 + (1 | a) + (1 | b)", data).fit, nagq=1)
    # a model with a's random intercepts nests the one without them
    assert res.llf >= sub.llf - 1e-9
    assert res.params["sd(Intercept)[a]"] == 0.0 and res.params["sd(Intercept)[b]"] > 0.1
    assert res.llf == pytest.approx(sub.llf, abs=1e-7)
    assert res.params["sd(Intercept)[b]"] == pytest.approx(sub.params["sd(Intercept)[b]"], abs=1e-4)
    assert res.on_boundary == ["sd(Intercept)[a]"] and res.converged
    assert res.opt.message.startswith("boundary optimum: the variances of a at zero")


def test_faces_of_a_random_slope_zero_one_row_of_lambda():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(dict(y=rng.integers(0, 2, 60).astype(float), x=rng.normal(size=60), g=np.repeat(range(6), 10)))
    model = hlmext.melogit("y ~ x + (x | g)", df)
    faces = dict(boundary_faces(model))
    # theta = (Lambda_00, Lambda_10, Lambda_11): the intercept's row, then the slope's
    assert {k: v.tolist() for k, v in faces.items()} == {"sd(Intercept)[g]": [True, False, False],
                                                         "sd(x)[g]": [False, True, True]}


def _homogeneous_clusters():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(20), 8)
    return pd.DataFrame(dict(y=np.repeat(rng.integers(0, 2, 20), 8).astype(float), g=g, x=rng.normal(size=160)))


def test_variance_of_clusters_all_0_or_all_1_is_reported_not_identified():
    df = _homogeneous_clusters()
    res, caught = _fit(hlmext.melogit("y ~ x + (1 | g)", df).fit, nagq=1)
    assert res.not_identified == ["sd(Intercept)[g]"]
    assert np.isnan(res.bse["sd(Intercept)[g]"])
    msgs = [str(w.message) for w in caught if issubclass(w.category, BoundaryWarning)]
    assert any("not identified" in m and "sd(Intercept)[g]" in m and "runs to infinity" in m for m in msgs)
    assert "not identified" in str(res.summary())
    assert res.on_boundary == []


def test_one_mixed_cluster_identifies_the_variance():
    df = _homogeneous_clusters()
    df.loc[0, "y"] = 1 - df.loc[0, "y"]
    res, caught = _fit(hlmext.melogit("y ~ x + (1 | g)", df).fit, nagq=1)
    assert res.not_identified == []
    assert not any("not identified" in str(w.message) for w in caught)


def _poisson_with_offset():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(30), 10)
    x, off = rng.normal(size=300), 0.3 * rng.normal(size=300)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + off + 0.5 * rng.normal(size=30)[g]))
    return pd.DataFrame(dict(y=y, g=g, x=x, off=off, off50=off + 50, exposure=np.exp(off) * 1e130))


def _same_fit(res, ref, intercept_shift):
    assert res.converged
    assert res.llf == pytest.approx(ref.llf, rel=1e-9)
    np.testing.assert_allclose(res.params.iloc[1:], ref.params.iloc[1:], rtol=1e-6)
    assert res.params.iloc[0] == pytest.approx(ref.params.iloc[0] + intercept_shift, abs=1e-6)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-4)


@pytest.mark.parametrize("nagq", [1, 7])
def test_constant_added_to_the_offset_shifts_only_the_intercept(nagq):
    df = _poisson_with_offset()
    ref, _ = _fit(hlmext.mepoisson("y ~ x + (1 | g)", df, offset="off").fit, nagq=nagq)
    res, caught = _fit(hlmext.mepoisson("y ~ x + (1 | g)", df, offset="off50").fit, nagq=nagq)
    assert not caught
    _same_fit(res, ref, -50.0)


def test_huge_exposure_shifts_only_the_intercept():
    df = _poisson_with_offset()
    ref, _ = _fit(hlmext.mepoisson("y ~ x + (1 | g)", df, offset="off").fit, nagq=1)
    res, caught = _fit(hlmext.mepoisson("y ~ x + (1 | g)", df, exposure="exposure").fit, nagq=1)
    assert not caught
    _same_fit(res, ref, -np.log(1e130))


def test_offset_shift_without_an_intercept_column_goes_to_the_dummies():
    df = _poisson_with_offset()
    df["k"] = np.arange(len(df)) % 3
    ref, _ = _fit(hlmext.mepoisson("y ~ 0 + C(k) + x + (1 | g)", df, offset="off").fit, nagq=1)
    res, _ = _fit(hlmext.mepoisson("y ~ 0 + C(k) + x + (1 | g)", df, offset="off50").fit, nagq=1)
    assert res.converged and res.llf == pytest.approx(ref.llf, rel=1e-9)
    np.testing.assert_allclose(res.params.iloc[:3], ref.params.iloc[:3] - 50.0, atol=1e-6)
    np.testing.assert_allclose(res.params.iloc[3:], ref.params.iloc[3:], rtol=1e-6)


def test_largest_quadrature_rule_is_accurate_and_larger_ones_are_refused():
    nodes, logw = gauss_hermite_rule(MAX_NAGQ, 1)
    weights = np.exp(logw - nodes[:, 0] ** 2)
    assert np.all(np.isfinite(logw)) and weights.sum() == pytest.approx(1.0, abs=1e-13)
    assert (weights * 2 * nodes[:, 0] ** 2).sum() == pytest.approx(1.0, abs=1e-13)   # E[Z^2]
    model = hlmext.melogit("y ~ 1 + (1 | g)", ISSUE_24)
    with pytest.raises(ValueError, match="nagq=%d is beyond .* %d points" % (MAX_NAGQ + 1, MAX_NAGQ)):
        model.fit(nagq=MAX_NAGQ + 1)
    with pytest.raises(ValueError, match="nagq=1000"):
        model.fit(nagq=1000)
    res, _ = _fit(model.fit, nagq=MAX_NAGQ)
    assert np.isfinite(res.llf)


def test_bootstrap_refit_checks_the_boundary_too():
    """A parametric-bootstrap refit starting from an interior fit ends on the boundary when the
    replicate's maximum is there: its deviance is the GLM's (the issue's response)."""
    from hlmext.inference.glmm_bootstrap import GLMMRefit
    y_issue = np.array([1, 1] + [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0], float)
    d = pd.DataFrame(dict(y=[1, 1] + [0] * 20 + [1] * 3, g=[0, 0] + [1] * 23))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = hlmext.melogit("y ~ 1 + (1 | g)", d).fit(nagq=1)
    assert start.params.iloc[-1] > 1.0                       # an interior start
    out = GLMMRefit(start).fit(y_issue[start.model.design.order])
    glm = sm.GLM(y_issue, np.ones((25, 1)), family=sm.families.Binomial()).fit()
    assert out[1] == 0.0
    assert out[-2] == pytest.approx(-2 * glm.llf, rel=1e-10)
