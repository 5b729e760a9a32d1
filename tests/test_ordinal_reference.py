"""meologit / meoprobit against R's ordinal::clmm (tests/reference/ordinal/make_refs.R).

Tolerances as for the other GLMM references: llf 1e-4 relative, estimates within 2% of a
standard error, standard errors within 2%. clmm's thresholds are Stata's cut points (both
enter as cut_k - x'beta).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hlmext

REF = Path(__file__).resolve().parent / "reference" / "ordinal"
WINE = ["wine_logit_laplace", "wine_logit_agq7", "wine_probit_laplace", "wine_probit_agq7"]


def load(name):
    return json.loads((REF / (name + ".json")).read_text())


def fit(ref):
    data = hlmext.datasets.load("wine") if ref["data"] == "wine" else pd.read_csv(REF / ref["data"])
    build = hlmext.meologit if ref["link"] == "logit" else hlmext.meoprobit
    return build(ref["formula"], data).fit(nagq=ref["nagq"])


def beta_names(res):
    """clmm's names of the fixed effects (tempwarm) for ours (temp[T.warm])."""
    return [n.replace("[T.", "").replace("]", "") for n in res.beta.index]


@pytest.mark.parametrize("name", WINE + ["sim_slope_logit_laplace"])
def test_matches_clmm(name):
    ref = load(name)
    res = fit(ref)
    assert res.llf == pytest.approx(ref["llf"], rel=1e-4)
    assert beta_names(res) == list(ref["beta"])
    se_beta = res.bse_fe.iloc[:res.model.k_beta].to_numpy()
    assert np.all(np.abs(res.beta.to_numpy() - list(ref["beta"].values())) < 0.02 * se_beta)
    assert se_beta == pytest.approx(list(ref["se_beta"].values()), rel=0.02)
    se_cut = res.bse_fe.iloc[res.model.k_beta:].to_numpy()
    assert np.all(np.abs(res.cuts.to_numpy() - ref["cuts"]) < 0.02 * se_cut)
    assert se_cut == pytest.approx(ref["se_cuts"], rel=0.02)
    sds = res.re_params["estimate"].to_numpy()
    se_sd = res.re_params["se"].to_numpy()
    ref_sd = np.atleast_1d(ref["sd"])
    k = ref_sd.size
    assert np.all(np.abs(sds[:k] - ref_sd) < 0.02 * se_sd[:k])
    if ref.get("se_log_sd"):                  # clmm's sd parameter is log(sd)
        assert se_sd[0] / sds[0] == pytest.approx(ref["se_log_sd"], rel=0.02)
    if isinstance(ref.get("corr"), float):
        assert abs(sds[k] - ref["corr"]) < 0.02 * se_sd[k]


def test_lr_test_against_the_model_without_random_effects():
    """The LR test's null model is the ordinal regression: statsmodels' OrderedModel gives its llf."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel
    wine = hlmext.datasets.load("wine")
    res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=7)
    X = pd.get_dummies(wine[["temp", "contact"]], drop_first=True).astype(float)
    null = OrderedModel(wine["rating"], X, distr="logit").fit(method="bfgs", disp=False, gtol=1e-8)
    assert res.null_llf == pytest.approx(null.llf, rel=1e-6)
    lr = res.lr_test_vs_regression()
    assert lr.statistic == pytest.approx(2 * (res.llf - null.llf), rel=1e-5)
    assert lr.kind == "chibar2(01)"
