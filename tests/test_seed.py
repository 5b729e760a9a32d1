"""The seed: the three Stata tables of the GCSE example, to about 3 significant digits.

Figures from the lecture notes "Multilevel Mixed (hierarchical) models" (C. F. Baum, Boston
College, 2015), Stata `xtmixed ... if nstu > 4, mle` on Rabe-Hesketh & Skrondal's gcse data.
That file is a slightly different rounding of the bundled exam data (log-likelihoods differ
by about 0.016), so agreement is to about 3 significant digits: each figure must match to
0.3% of its size or 1% of its standard error, whichever is larger.
"""
import pytest

import hlmext

# name: (estimate, se, lower, upper)
STEP2 = {
    "lrt": (.5633325, .0124681, .5388955, .5877695),
    "Intercept": (.0315991, .4018891, -.7560891, .8192873),
    "sd(Intercept)[school]": (3.042017, .3068659, 2.496296, 3.70704),
    "sd(Residual)": (7.52272, .0842097, 7.35947, 7.689592),
}
STEP3 = {
    "lrt": (.5567955, .0199374, .5177189, .5958721),
    "Intercept": (-.1078456, .3993155, -.8904895, .6747984),
    "sd(lrt)[school]": (.1205424, .0189867, .0885252, .1641394),
    "sd(Intercept)[school]": (3.013474, .305867, 2.469851, 3.676752),
    "corr(Intercept,lrt)[school]": (.4973, .1490473, .1563124, .7323728),
    "sd(Residual)": (7.442053, .0839829, 7.279257, 7.608491),
}
STEP4 = {
    "lrt": (.5712245, .0271235, .5180634, .6243855),
    "C(schgend)[T.2]": (.8546026, 1.086, -1.274405, 2.98),
    "C(schgend)[T.3]": (2.47453, .8473229, .8138071, 4.135252),
    "C(schgend)[T.2]:lrt": (-.0230016, .057385, -.1354742, .0894709),
    "C(schgend)[T.3]:lrt": (-.0289542, .0447088, -.1165818, .0586734),
    "Intercept": (-.9975795, .5074132, -1.992091, -.0030679),
    "sd(lrt)[school]": (.1198846, .0189169, .0879934, .163334),
    "sd(Intercept)[school]": (2.801682, .2895906, 2.287895, 3.43085),
    "corr(Intercept,lrt)[school]": (.5966466, .1383159, .2608112, .8036622),
    "sd(Residual)": (7.442949, .0839984, 7.280122, 7.609417),
}
# (formula, table, log likelihood, Wald chi2, df, LR statistic, LR kind)
STEPS = {
    "step2": ("gcse ~ lrt + (1 | school)", STEP2, -14018.571, 2041.42, 1, 403.32, "chibar2(01)"),
    "step3": ("gcse ~ lrt || school: lrt", STEP3, -13998.423, 779.93, 1, 443.62, "chi2(3)"),
    "step4": ("gcse ~ C(schgend) * lrt + (lrt | school)", STEP4, -13992.533, 804.34, 5, 381.44, "chi2(3)"),
}


def close(ours, stata, se):
    return abs(ours - stata) <= max(3e-3 * abs(stata), 0.01 * se)


@pytest.fixture(scope="module", params=list(STEPS))
def step(request, gcse):
    formula, table, llf, wald, df, lr, kind = STEPS[request.param]
    res = hlmext.mixedlm(formula, gcse, cov="unstructured").fit(reml=False)
    return res, STEPS[request.param]


def test_fixed_and_random_tables(step):
    res, (_, table, *_rest) = step
    ci = res.conf_int()
    for name, (est, se, lo, hi) in table.items():
        if name in res.fe_params.index:
            got = (res.fe_params[name], res.bse_fe[name], ci.loc[name, 0], ci.loc[name, 1])
        else:
            row = res.re_params.loc[name]
            got = (row.estimate, row.se, row.lower, row.upper)
        for g, s in zip(got, (est, se, lo, hi)):
            assert close(g, s, se), (name, got, (est, se, lo, hi))


def test_header_and_tests(step):
    res, (_, _, llf, wald, df, lr, kind) = step
    assert res.llf == pytest.approx(llf, rel=3e-6)
    stat, k, _ = res.wald_chi2
    assert k == df and stat == pytest.approx(wald, rel=3e-3)
    test = res.lr_test_vs_regression()
    assert test.kind == kind and test.statistic == pytest.approx(lr, rel=3e-3)
    assert res.nobs == 4057 and res.n_groups == {"school": 64}


def test_summary_layout(step):
    res, (_, table, llf, wald, df, lr, kind) = step
    text = str(res.summary())
    assert "Mixed-effects ML regression" in text
    assert "Number of groups  =         64" in text
    assert "Wald chi2(%d)" % df in text
    assert "LR test vs. linear model: %s = %.2f" % (kind, lr) in text
    if kind != "chibar2(01)":
        assert "Note: LR test is conservative" in text


def test_per_school_ols_spread(gcse):
    """Step 1 (statsby): 64 intercepts and slopes, their spread and covariance."""
    coefs = hlmext.per_group_ols("gcse ~ lrt", gcse, "school")
    assert len(coefs) == 64
    assert coefs["lrt"].mean() == pytest.approx(.5390514, rel=3e-3)
    assert coefs["lrt"].std() == pytest.approx(.1766135, rel=3e-3)
    assert coefs["Intercept"].std() == pytest.approx(3.291357, rel=3e-3)
    cov = coefs[["Intercept", "lrt"]].cov()
    assert cov.loc["Intercept", "lrt"] == pytest.approx(.208622, rel=3e-3)
    assert cov.loc["lrt", "lrt"] == pytest.approx(.031192, rel=3e-3)


def test_recovariance(gcse):
    res = hlmext.mixedlm("gcse ~ lrt || school: lrt", gcse, cov="unstructured").fit(reml=False)
    cov = res.cov_re["school"]
    assert cov.loc["lrt", "lrt"] == pytest.approx(.0145305, rel=3e-3)
    assert cov.loc["lrt", "Intercept"] == pytest.approx(.1806457, rel=3e-3)
    assert cov.loc["Intercept", "Intercept"] == pytest.approx(9.081027, rel=3e-3)
