"""Profile-likelihood intervals of generalized fits against lme4 (tests/reference/glmm_profile).

Tolerance 1e-3 relative against the exact profile limits of lme4's own Laplace deviance
(root-finding without splines, make_refs.R) and against lme4's ``confint(method="profile")``;
the agreement measured is about 5e-5 (the two Laplace optima differ by 3e-4 in the
log-likelihood: lme4's inner iterations stop slightly short of the conditional modes).
"""
import json
from pathlib import Path

import numpy as np
import pytest

import hlmext
from hlmext.inference.profile import GLMMProfile

REF = json.loads((Path(__file__).parent / "reference" / "glmm_profile" / "cbpp_laplace.json").read_text())


@pytest.fixture(scope="module")
def cbpp_fit():
    df = hlmext.datasets.load("cbpp")
    return hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)


def test_profile_limits_match_lme4(cbpp_fit):
    ci = cbpp_fit.profile_ci()
    assert list(ci.index) == list(cbpp_fit.params.index)
    for name, row in ci.iterrows():
        np.testing.assert_allclose(row.to_numpy(), REF["profile_ci_exact"][name], rtol=1e-3, err_msg=name)
        np.testing.assert_allclose(row.to_numpy(), REF["profile_ci"][name], rtol=1e-3, err_msg=name)


def test_conf_int_method_profile_selects_columns(cbpp_fit):
    out = cbpp_fit.conf_int(method="profile", cols=["C(period)[T.2]"])
    assert out.shape == (5, 2)
    assert np.isnan(out.loc["Intercept"]).all()
    np.testing.assert_allclose(out.loc["C(period)[T.2]"], REF["profile_ci_exact"]["C(period)[T.2]"], rtol=1e-3)
    wald = cbpp_fit.conf_int()
    assert wald.shape == (5, 2) and np.isfinite(wald.to_numpy()).all()


def test_aghq_profile_is_self_consistent():
    """At its limits the profile's zeta is -+1.96 and at the estimate the deviance is the fit's."""
    df = hlmext.datasets.load("mmmec")
    res = hlmext.mepoisson("deaths ~ uvb + (1 | region)", df, exposure="expected").fit(nagq=7)
    prof = GLMMProfile(res)
    assert prof.deviance("uvb", res.params["uvb"]) == pytest.approx(-2 * res.llf, abs=1e-6)
    ci = prof.conf_int(cols=["uvb", "sd(Intercept)[region]"])
    for name in ci.index:
        lo, hi = ci.loc[name]
        assert prof.zeta(name, lo) == pytest.approx(-1.959964, abs=1e-4)
        assert prof.zeta(name, hi) == pytest.approx(1.959964, abs=1e-4)
        assert lo < res.params[name] < hi


def test_no_reml_criterion_for_generalized_models(cbpp_fit):
    with pytest.raises(ValueError, match="no REML"):
        cbpp_fit.profile_ci(criterion="reml")
