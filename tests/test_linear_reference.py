"""Linear mixed models against lme4 on real data (tests/reference/lme4, tests/reference/extra).

Tolerances: log-likelihood 1e-6 relative; fixed effects within 1% of their standard error;
standard errors within 1%; sd's within 0.5%; correlations within 0.005; BLUPs within 1% of
the random effect's sd.
"""
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import hlmext
from conftest import REFERENCE, load_reference, reference_names

CROSSED = set()


def patsy_name(lme4_name):
    """lme4's coefficient names in patsy's spelling: ``C(x)2`` -> ``C(x)[T.2]``."""
    if lme4_name == "(Intercept)":
        return "Intercept"
    return ":".join(re.sub(r"^(C\(.*\))(.+)$", r"\1[T.\2]", part) for part in lme4_name.split(":"))


def data_for(ref):
    name = ref["dataset"].replace(".csv", "")
    path = REFERENCE.parent.parent / "hlmext" / "datasets" / "data" / ref["dataset"]
    df = pd.read_csv(path) if name not in ("exam",) else hlmext.datasets.load("gcse")
    return df.query(ref["subset"]) if ref["subset"] else df


def fit_reference(ref):
    df = data_for(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hlmext.BoundaryWarning)
        return hlmext.mixedlm(ref["formula"], df).fit(reml=ref["method"] == "REML")


def level_key(name):
    return frozenset(re.split(r"[:()]+", name)) - {""}


def gaussian_cases():
    cases = [("lme4", n) for n in reference_names("lme4", "gaussian") if n not in CROSSED]
    if (REFERENCE / "extra").exists():
        cases += [("extra", n) for n in reference_names("extra", "gaussian") if n not in CROSSED]
    return cases


@pytest.fixture(scope="module", params=gaussian_cases(), ids=lambda c: c[1])
def case(request):
    folder, name = request.param
    ref = load_reference(name, folder)
    if any(":" in lv and not _nested_name(lv, ref) for lv in ref["ngroups"]):
        pytest.skip("crossed design")
    return ref, fit_reference(ref)


def _nested_name(level, ref):
    return True


def test_loglik(case):
    ref, res = case
    assert res.llf == pytest.approx(ref["loglik"], rel=1e-6)
    assert res.nobs == ref["nobs"]
    assert res.converged


def test_fixed_effects(case):
    ref, res = case
    for fe in ref["fixed"]:
        name = patsy_name(fe["name"])
        assert abs(res.fe_params[name] - fe["estimate"]) < 0.01 * fe["se"], name
        assert res.bse_fe[name] == pytest.approx(fe["se"], rel=0.01), name


def test_variance_components(case):
    ref, res = case
    if ref["sigma"] is not None:
        assert res.re_params.loc["sd(Residual)", "estimate"] == pytest.approx(ref["sigma"], rel=0.005)
    by_level = {}
    for block in ref["random"]:
        by_level.setdefault(level_key(block["level"]), []).append(block)
    for level, blocks in by_level.items():
        ours = [lv for lv in res.model.levels if level_key(lv.name) == level]
        assert len(ours) == 1, level
        lv = ours[0]
        cov = res.cov_re[lv.name]
        for block in blocks:
            terms = [patsy_name(t) for t in block["terms"]]
            sd = np.sqrt(np.diag(cov.loc[terms, terms]))
            np.testing.assert_allclose(sd, block["sd"], rtol=0.005, atol=1e-4 * max(block["sd"] + [1]))
            if len(terms) > 1 and min(sd) > 0:
                corr = cov.loc[terms, terms].to_numpy() / np.outer(sd, sd)
                np.testing.assert_allclose(corr, block["corr"], atol=0.005)


def test_information_criteria_and_lr(case):
    ref, res = case
    assert res.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert res.bic == pytest.approx(ref["bic"], rel=1e-6)
    lr = res.lr_test_vs_regression()
    assert lr.df == ref["lr_vs_regression"]["df"]
    assert lr.statistic == pytest.approx(ref["lr_vs_regression"]["chi2"], rel=1e-4, abs=1e-4)


def test_blups(case):
    ref, res = case
    for level, head in ref["blups_head"].items():
        ours = [lv for lv in res.model.levels if level_key(lv.name) == level_key(level)][0]
        re_ = res.random_effects[ours.name]
        tol = 0.01 * np.sqrt(np.diag(res.cov_re[ours.name].to_numpy())).max() + 1e-8
        if isinstance(head[0], dict):      # labelled: {"group": label, term: value, ...}
            by_label = {str(k): row for k, row in zip(re_.index, re_.to_numpy())}
            for entry in head:
                values = [entry[t] for t in entry if t != "group"]
                assert np.abs(by_label[entry["group"]] - values).max() < tol, entry
        elif len(ours.labels.names) == 1:
            np.testing.assert_allclose(re_.to_numpy()[:5], np.asarray(head), atol=tol)
        else:  # lme4 orders interaction levels its own way: find each value among ours
            for row in np.asarray(head):
                assert np.min(np.abs(re_.to_numpy() - row).max(axis=1)) < tol
