"""Average marginal effects of factor terms: Stata's ``margins, dydx(factor)``, the discrete
change from the base level to each level, with delta-method standard errors.

References: ``emmeans`` 1.8 pairwise contrasts of the cbpp logit on the response scale
(``tests/reference/prediction/prediction.R``) and the changes computed directly.
"""
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import hlmext
from conftest import load_reference

REF = load_reference("prediction", "prediction")


@pytest.fixture(scope="module")
def cbpp():
    df = hlmext.datasets.load("cbpp")
    return df, hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)


def test_factor_changes_match_emmeans_pairs(cbpp):
    df, res = cbpp
    got = res.margins(df, dydx="period")
    assert list(got.index) == ["period[2 vs 1]", "period[3 vs 1]", "period[4 vs 1]"]
    pairs = REF["cbpp_pairs"]
    first = [i for i, c in enumerate(pairs["contrast"]) if c.startswith("period1 - ")]
    np.testing.assert_allclose(got["dydx"], -np.asarray(pairs["estimate"])[first], rtol=1e-4)
    np.testing.assert_allclose(got["se"], np.asarray(pairs["se"])[first], rtol=1e-4)


def test_factor_changes_average_over_the_sample_with_other_covariates():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(40), 10)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=g.size), "arm": rng.choice(["a", "b", "c"], size=g.size)})
    eta = -0.3 + 0.8 * df["x"] + df["arm"].map({"a": 0.0, "b": 0.7, "c": -0.5}) + rng.normal(size=40)[g]
    df["y"] = rng.binomial(1, expit(eta))
    res = hlmext.melogit("y ~ x + arm + (1 | g)", df).fit()
    got = res.margins(df, dydx=["arm", "x"])
    beta, V = res.fe_params.to_numpy(), res.cov_fe.to_numpy()
    X0 = np.column_stack([np.ones(len(df)), np.zeros(len(df)), np.zeros(len(df)), df["x"]])
    for k, lev in ((1, "b"), (2, "c")):
        X1 = X0.copy()
        X1[:, k] = 1.0
        p0, p1 = expit(X0 @ beta), expit(X1 @ beta)
        grad = ((p1 * (1 - p1))[:, None] * X1 - (p0 * (1 - p0))[:, None] * X0).mean(0)
        row = got.loc["arm[%s vs a]" % lev]
        np.testing.assert_allclose(row["dydx"], np.mean(p1 - p0), rtol=1e-10)
        np.testing.assert_allclose(row["se"], np.sqrt(grad @ V @ grad), rtol=1e-6)
    assert "x" in got.index


def test_linear_factor_change_is_the_coefficient():
    exam = hlmext.datasets.load("exam")
    fe = hlmext.mixedlm("normexam ~ standLRT + C(schgend) + (1 | school)", exam).fit()
    got = fe.margins(exam, dydx="schgend")
    np.testing.assert_allclose(got["dydx"], fe.fe_params.iloc[1:3], rtol=1e-8)
    np.testing.assert_allclose(got["se"], fe.bse.iloc[1:3], rtol=1e-6)


def test_a_column_that_is_no_factor_and_not_numeric_is_refused(cbpp):
    df, res = cbpp
    df = df.assign(label=df["herd"].astype(str) + "h")
    with pytest.raises(ValueError, match="does not use it as a factor; compare its values with at="):
        res.margins(df, dydx="label")
