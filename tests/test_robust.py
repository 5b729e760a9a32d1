"""Cluster-robust (sandwich) standard errors of the fixed effects against clubSandwich."""
import json
from pathlib import Path

import numpy as np
import pytest

import hlmext

REF = json.loads((Path(__file__).parent / "reference" / "robust" / "cluster_robust.json").read_text())
CASES = {"exam_rs_ml": ("gcse ~ lrt + (lrt | school)", "gcse", False),
         "sleep_rs_reml": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", True)}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("correction", ["CR0", "CR1"])
def test_cluster_robust_se_match_clubsandwich(case, correction):
    formula, dataset, reml = CASES[case]
    data = hlmext.datasets.load(dataset)
    if dataset == "gcse":
        data = data.query("nstu > 4")
    res = hlmext.mixedlm(formula, data).fit(reml=reml, cov_type="cluster",
                                            cov_kwds={"correction": correction, "scope": "fixed"})
    np.testing.assert_allclose(res.bse_fe.to_numpy(), REF[case]["se_" + correction.lower()], rtol=1e-3)
    assert res.bse.iloc[:2].to_numpy() == pytest.approx(res.bse_fe.to_numpy())
    assert res.cov_type.startswith("cluster (%s, %d clusters" % (correction, REF[case]["n_clusters"]))


def test_robust_needs_nested_levels():
    pen = hlmext.datasets.load("penicillin")
    with pytest.raises(hlmext.ModelError, match="crossed"):
        hlmext.mixedlm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen).fit(cov_type="cluster")
    with pytest.raises(ValueError, match="cov_type"):
        hlmext.mixedlm("diameter ~ 1 + (1 | plate)", pen).fit(cov_type="hc3")


def test_summary_says_the_errors_are_clustered():
    s = hlmext.datasets.load("sleepstudy")
    text = str(hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", s).fit(cov_type="cluster").summary())
    assert "adjusted for 18 clusters in Subject (CR1)" in text
