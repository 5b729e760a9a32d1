"""statsmodels' ``exog_vc`` in the array interface: the same model as the nested formula."""
import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.exceptions import DataError

from conftest import load_reference


@pytest.fixture(scope="module")
def pastes():
    df = hlmext.datasets.load("pastes")
    vc = {"cask": {b: pd.get_dummies(d["cask"]).to_numpy(float) for b, d in df.groupby("batch")}}
    return df, df["strength"].to_numpy(), np.ones((len(df), 1)), df["batch"].to_numpy(), vc


def test_exog_vc_with_group_intercept_is_lme4_nested_fit(pastes):
    # lme4 1.1-31: lmer(strength ~ 1 + (1 | batch/cask), Pastes), REML (tests/reference/lme4)
    df, y, X, g, vc = pastes
    ref = load_reference("pastes_nested_reml")
    res = hlmext.LinearMixed(y, X, g, exog_re=np.ones((len(y), 1)), exog_vc=vc).fit(reml=True)
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)
    assert res.fe_params.iloc[0] == pytest.approx(ref["fixed"][0]["estimate"], abs=0.01 * ref["fixed"][0]["se"])
    assert res.bse.iloc[0] == pytest.approx(ref["fixed"][0]["se"], rel=1e-2)
    assert res.re_params.loc["sd(Residual)", "estimate"] == pytest.approx(ref["sigma"], rel=1e-4)


def test_exog_vc_alone_has_no_group_intercept(pastes):
    # statsmodels' rule: exog_vc without exog_re gives no random intercept of groups
    df, y, X, g, vc = pastes
    res = hlmext.LinearMixed(y, X, g, exog_vc=vc).fit(reml=True)
    formula = hlmext.mixedlm("strength ~ 1 + (1 | batch:cask)", df).fit(reml=True)
    assert res.llf == pytest.approx(formula.llf, rel=1e-10)
    np.testing.assert_allclose(res.params.to_numpy(), formula.params.to_numpy(), rtol=1e-6)


def test_exog_vc_values_are_a_random_slope(pastes):
    df, y, X, g, vc = pastes
    x = np.linspace(0.5, 2.0, len(y))
    slope = {"cask": {b: m * x[(df["batch"] == b).to_numpy()][:, None] for b, m in vc["cask"].items()}}
    res = hlmext.LinearMixed(y, X, g, exog_re=np.ones((len(y), 1)), exog_vc=slope).fit(reml=True)
    formula = hlmext.mixedlm("strength ~ 1 + (1 | batch) + (0 + x | batch:cask)", df.assign(x=x)).fit(reml=True)
    assert res.llf == pytest.approx(formula.llf, rel=1e-10)


@pytest.mark.parametrize("change, message", [
    (lambda vc: {"cask": {**vc["cask"], "A": np.ones((6, 2))}}, "more than one nonzero"),
    (lambda vc: {"cask": {k: m for k, m in vc["cask"].items() if k != "B"}}, "no matrix for group"),
    (lambda vc: {"cask": {**vc["cask"], "Z": np.ones((2, 1))}}, "not in groups"),
    (lambda vc: {"cask": {**vc["cask"], "A": np.ones((5, 1))}}, "one row per row of the group"),
    (lambda vc: {"cask": {**vc["cask"], "A": np.full((6, 1), np.nan)}}, "NaN"),
])
def test_bad_exog_vc_is_refused(pastes, change, message):
    df, y, X, g, vc = pastes
    with pytest.raises(DataError, match=message):
        hlmext.LinearMixed(y, X, g, exog_vc=change(vc))


def test_exog_vc_must_be_a_dict(pastes):
    df, y, X, g, vc = pastes
    with pytest.raises(TypeError, match="dict of component name"):
        hlmext.LinearMixed(y, X, g, exog_vc=[vc])
    with pytest.raises(TypeError, match=r"exog_vc\['cask'\] must be a dict"):
        hlmext.LinearMixed(y, X, g, exog_vc={"cask": list(vc["cask"].values())})
