"""Residuals, hat values, Cook's distance and group-deletion influence.

References: ``tests/reference/prediction/prediction.R`` (lme4 1.1-31 ``hatvalues``,
``cooks.distance``, ``influence(fit, groups = "Subject")``) and real refits without a group.
"""
import numpy as np
import pandas as pd
import pytest

import hlmext
from conftest import load_reference

REF = load_reference("prediction", "prediction")
FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    df = hlmext.datasets.load("sleepstudy")
    return df, hlmext.mixedlm(FORMULA, df).fit()


def test_hatvalues_and_cooks_distance_match_lme4(sleep):
    df, res = sleep
    np.testing.assert_allclose(res.hatvalues(), REF["sleep_hat"], rtol=1e-6)
    np.testing.assert_allclose(res.cooks_distance(), REF["sleep_cooks"], rtol=1e-6, atol=1e-9)


def test_hatvalues_sum_to_the_trace_of_the_hat_matrix(sleep):
    df, res = sleep
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    subjects = np.sort(df["Subject"].unique())
    g = np.searchsorted(subjects, df["Subject"])
    Z = np.zeros((len(df), 2 * len(subjects)))
    Z[np.arange(len(df)), 2 * g], Z[np.arange(len(df)), 2 * g + 1] = 1.0, df["Days"]
    Ginv = np.kron(np.eye(len(subjects)), np.linalg.inv(res.cov_re["Subject"].to_numpy() / res.scale))
    W = np.hstack([X, Z])
    M = W.T @ W
    M[2:, 2:] += Ginv
    H = W @ np.linalg.solve(M, W.T)
    np.testing.assert_allclose(res.hatvalues(), np.diag(H), rtol=1e-6)


def test_residual_kinds(sleep):
    df, res = sleep
    y = df["Reaction"].to_numpy()
    raw = res.residuals()
    np.testing.assert_allclose(raw, y - res.fittedvalues, rtol=1e-12)
    np.testing.assert_allclose(res.residuals("pearson"), raw / np.sqrt(res.scale), rtol=1e-12)
    np.testing.assert_allclose(res.residuals("standardized"), raw / np.sqrt(res.scale * (1 - res.hatvalues())),
                               rtol=1e-12)
    marg = res.residuals("raw", "marginal")
    np.testing.assert_allclose(marg, y - res.predict(which="marginal"), rtol=1e-12)
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    vy = np.einsum("ij,jk,ik->i", X, res.cov_re["Subject"], X) + res.scale
    np.testing.assert_allclose(res.residuals("pearson", "marginal"), marg / np.sqrt(vy), rtol=1e-10)
    vr = vy - np.einsum("ij,jk,ik->i", X, res.cov_fe, X)
    np.testing.assert_allclose(res.residuals("standardized", "marginal"), marg / np.sqrt(vr), rtol=1e-10)
    np.testing.assert_allclose(res.residuals("deviance"), raw, rtol=1e-12)   # R's for a linear model
    with pytest.raises(ValueError, match="kind must be"):
        res.residuals("working")


def test_glmm_pearson_residuals():
    df = hlmext.datasets.load("cbpp")
    res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
    n, y = df["size"].to_numpy(), df["incidence"].to_numpy()
    p = res.predict(which="mu", conditional=True).to_numpy()
    np.testing.assert_allclose(res.residuals("pearson"), (y - n * p) / np.sqrt(n * p * (1 - p)), rtol=1e-10)
    pm = res.predict(which="marginal").to_numpy()
    np.testing.assert_allclose(res.residuals("raw", "marginal"), y - n * pm, rtol=1e-10)


def test_group_deletion_matches_lme4_influence(sleep):
    df, res = sleep
    inf = res.influence()
    assert list(inf.index.astype(str)) == REF["sleep_group_names"]
    deleted = res.fe_params.to_numpy() - inf[["dfbeta[Intercept]", "dfbeta[Days]"]].to_numpy()
    np.testing.assert_allclose(deleted, REF["sleep_group_fixef"], rtol=1e-6)
    np.testing.assert_allclose(inf["cooks_distance"], REF["sleep_group_cooks"], rtol=1e-5)
    assert (inf["nobs"] == 10).all()


@pytest.mark.parametrize("reml", [True, False])
def test_group_deletion_equals_real_refits(reml):
    df = hlmext.datasets.load("exam").query("school <= 30")
    res = hlmext.mixedlm("normexam ~ standLRT + (standLRT | school)", df).fit(reml=reml)
    groups = [1, 7, 23]
    inf = res.influence(groups=groups)
    for g in groups:
        refit = hlmext.mixedlm("normexam ~ standLRT + (standLRT | school)", df[df.school != g]).fit(reml=reml)
        want = (res.fe_params - refit.fe_params).to_numpy()
        got = inf.loc[g, ["dfbeta[Intercept]", "dfbeta[standLRT]"]].to_numpy(float)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * np.abs(refit.fe_params).max())
        assert inf.loc[g, "nobs"] == int((df.school == g).sum())


def test_glmm_group_deletion_equals_real_refits():
    df = hlmext.datasets.load("cbpp")
    formula = "incidence ~ C(period) + (1 | herd)"
    res = hlmext.melogit(formula, df, trials="size").fit(nagq=1)
    inf = res.influence(groups=[1, 7])
    for g in (1, 7):
        refit = hlmext.melogit(formula, df[df.herd != g], trials="size").fit(nagq=1)
        np.testing.assert_allclose(inf.loc[g].iloc[:4].to_numpy(float), (res.fe_params - refit.fe_params).to_numpy(),
                                   rtol=1e-8, atol=1e-8)
        d = (res.fe_params - refit.fe_params).to_numpy()
        want = (15 - 4) / (15 * 4) * d @ np.linalg.solve(res.cov_fe.to_numpy(), d)
        np.testing.assert_allclose(inf.loc[g, "cooks_distance"], want, rtol=1e-6)


def test_influence_refuses_what_it_cannot_do(sleep):
    df, res = sleep
    with pytest.raises(ValueError, match="not among the fitted groups"):
        res.influence(groups=[1])
    pastes = hlmext.datasets.load("pastes")
    nested = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit()
    with pytest.raises(ValueError, match="choose whose groups are deleted with level="):
        nested.influence()
    with pytest.raises(ValueError, match="not a level of the model"):
        nested.influence(level="cask")


@pytest.fixture(scope="module")
def many_groups():
    rng = np.random.default_rng(7)
    G, n = 300, 3000
    g = rng.integers(G, size=n)
    x = rng.normal(size=n)
    b = rng.normal(size=(G, 2)) @ np.array([[0.8, 0.1], [0.0, 0.4]])
    df = pd.DataFrame({"g": g, "x": x, "z": rng.normal(size=n)})
    df["y"] = 1 + 0.5 * x - 0.2 * df["z"] + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
    return df


@pytest.mark.parametrize("reml", [True, False])
def test_all_groups_at_once_equal_real_refits(many_groups, reml):
    from hlmext.results import deletion
    df = many_groups
    res = hlmext.mixedlm("y ~ x + z + (x | g)", df).fit(reml=reml)
    fast = deletion.fast_deletions(res.model, np.asarray(res.theta), res.opt.hessian, reml)
    settled = fast[2]
    assert settled.mean() > 0.95                 # all but a few groups settled at once, without refits
    inf = res.influence()
    assert len(inf) == 300
    labels = res.model.design.levels[0].labels
    top = list(inf.sort_values("cooks_distance").index[-2:]) + list(labels[np.flatnonzero(settled)[:2]])
    for g in top:
        refit = hlmext.mixedlm("y ~ x + z + (x | g)", df[df.g != g]).fit(reml=reml)
        want = (res.fe_params - refit.fe_params).to_numpy()
        got = inf.loc[g, ["dfbeta[Intercept]", "dfbeta[x]", "dfbeta[z]"]].to_numpy(float)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * np.abs(refit.fe_params).max())
    exact = res.influence(groups=top, exact=True)
    np.testing.assert_allclose(exact.to_numpy(float), inf.loc[exact.index].to_numpy(float), rtol=1e-8, atol=1e-12)


try:
    import matplotlib
    matplotlib.use("Agg")
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")
def test_diagnostic_plots(sleep):
    import matplotlib.pyplot as plt
    df, res = sleep
    ax = res.plot_residuals("standardized")
    x, y = ax.collections[0].get_offsets().T
    np.testing.assert_allclose(y, res.residuals("standardized"))
    np.testing.assert_allclose(x, res.fittedvalues)
    axes = res.plot_qq()
    assert [a.get_title() for a in axes] == ["pearson residuals", "Subject: Intercept", "Subject: Days"]
    blups = np.sort(res.random_effects["Subject"]["Days"].to_numpy())
    np.testing.assert_allclose(axes[2].collections[0].get_offsets()[:, 1], blups)
    inf = res.influence()
    ax = res.plot_influence(inf, label=2)
    top = inf["cooks_distance"].nlargest(2).index
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(g) for g in top)
    glmm = hlmext.melogit("incidence ~ C(period) + (1 | herd)", hlmext.datasets.load("cbpp"), trials="size").fit()
    assert glmm.plot_residuals(which="marginal").get_xlabel() == "fitted values (marginal)"
    axes = glmm.plot_qq("deviance")
    np.testing.assert_allclose(axes[0].collections[0].get_offsets()[:, 1], np.sort(glmm.residuals("deviance")))
    plt.close("all")


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")
def test_influence_plot_of_one_level_of_a_nested_model():
    import matplotlib.pyplot as plt
    res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", hlmext.datasets.load("pastes")).fit()
    ax = res.plot_influence(level="batch", label=1)
    assert ax.get_xlabel() == "group (batch)"
    assert [t.get_text() for t in ax.texts] == [res.influence(level="batch")["cooks_distance"].idxmax()]
    with pytest.raises(ValueError, match="level="):
        res.plot_influence()
    plt.close("all")


def _refit_dfbeta(fit, formula, df, mask, **kw):
    return (fit.fe_params - hlmext.mixedlm(formula, df[mask]).fit(**kw).fe_params).to_numpy()


@pytest.mark.parametrize("reml", [True, False])
def test_nested_group_deletion_equals_real_refits(reml):
    df = hlmext.datasets.load("pastes")
    df["x"] = np.random.default_rng(1).normal(size=len(df))
    formula = "strength ~ x + (1 | batch/cask)"
    res = hlmext.mixedlm(formula, df).fit(reml=reml)
    outer = res.influence(level="batch", groups=["A", "D"])
    assert outer.index.name == "batch" and list(outer["nobs"]) == [6, 6]
    for g in ("A", "D"):
        want = _refit_dfbeta(res, formula, df, df.batch != g, reml=reml)
        np.testing.assert_allclose(outer.loc[g].iloc[:2].to_numpy(float), want, rtol=1e-8, atol=1e-8)
    inner = res.influence(level="batch:cask", groups=[("B", "c")])
    want = _refit_dfbeta(res, formula, df, (df.batch != "B") | (df.cask != "c"), reml=reml)
    np.testing.assert_allclose(inner.iloc[0, :2].to_numpy(float), want, rtol=1e-8, atol=1e-8)
    assert len(res.influence(level="batch")) == 10


def test_crossed_group_deletion_equals_real_refits():
    df = hlmext.datasets.load("penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    res = hlmext.mixedlm(formula, df).fit()
    for level, g in (("sample", "C"), ("plate", "k")):
        inf = res.influence(level=level, groups=[g])
        want = _refit_dfbeta(res, formula, df, df[level] != g)
        np.testing.assert_allclose(inf.iloc[0, :1].to_numpy(float), want, rtol=1e-8, atol=1e-8)
    n = 6
    inf = res.influence(level="sample")
    d = inf["dfbeta[Intercept]"].to_numpy()
    np.testing.assert_allclose(inf["cooks_distance"], (n - 1) / n * d ** 2 / res.cov_fe.to_numpy()[0, 0],
                               rtol=1e-12)


def test_nested_glmm_group_deletion_equals_real_refits():
    df = hlmext.datasets.load("grouseticks")
    formula = "TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)"
    res = hlmext.mepoisson(formula, df).fit()
    g = res.model.design.levels[1].labels[0]
    inf = res.influence(level="LOCATION", groups=[g])
    refit = hlmext.mepoisson(formula, df[df.LOCATION != g]).fit()
    np.testing.assert_allclose(inf.iloc[0, :4].to_numpy(float), (res.fe_params - refit.fe_params).to_numpy(),
                               rtol=1e-8, atol=1e-8)


def test_meglm_group_deletion_equals_real_refits():
    import statsmodels.api as sm
    df = hlmext.datasets.load("cbpp")
    probit = sm.families.Binomial(link=sm.families.links.Probit())
    formula = "incidence ~ C(period) + (1 | herd)"
    res = hlmext.meglm(formula, df, family=probit, trials="size").fit()
    inf = res.influence(groups=[3])
    refit = hlmext.meglm(formula, df[df.herd != 3], family=probit, trials="size").fit()
    np.testing.assert_allclose(inf.iloc[0, :4].to_numpy(float), (res.fe_params - refit.fe_params).to_numpy(),
                               rtol=1e-8, atol=1e-8)


def test_nested_slopes_deletion_from_downdated_statistics_equals_real_refits():
    from hlmext.results import deletion_levels
    rng = np.random.default_rng(11)
    a = np.repeat(np.arange(12), 12)
    b = a * 3 + rng.integers(3, size=a.size)
    x = rng.normal(size=a.size)
    u = rng.normal(size=(12, 2)) * [1.0, 0.5]
    y = 1 + 0.5 * x + u[a, 0] + u[a, 1] * x + 0.7 * rng.normal(size=36)[b] + rng.normal(size=a.size)
    df = pd.DataFrame({"a": a, "b": b, "x": x, "y": y})
    formula = "y ~ x + (x | a) + (1 | a:b)"
    res = hlmext.mixedlm(formula, df).fit(reml=False)
    outer = [lv.name for lv in res.model.design.levels].index("a")
    assert deletion_levels.downdated_model(res.model, outer, 0) is not None
    for level, g, mask in (("a", 4, df.a != 4), ("a:b", (7, 22), (df.a != 7) | (df.b != 22))):
        inf = res.influence(level=level, groups=[g])
        want = _refit_dfbeta(res, formula, df, mask, reml=False)
        np.testing.assert_allclose(inf.iloc[0, :2].to_numpy(float), want, rtol=1e-8, atol=1e-8)


def test_ordinal_models_are_refused_by_name():
    res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", hlmext.datasets.load("wine")).fit()
    for method in (res.residuals, res.hatvalues, res.cooks_distance):
        with pytest.raises(ValueError, match="not defined for an ordinal model"):
            method()
    with pytest.raises(hlmext.ModelError, match="results.update"):
        res.influence()


def test_weighted_group_deletion_equals_real_refits():
    df = hlmext.datasets.load("sleepstudy")
    df["w"] = np.random.default_rng(2).uniform(0.5, 2, len(df))
    res = hlmext.mixedlm(FORMULA, df, weights="w").fit()
    inf = res.influence(groups=[309])
    refit = hlmext.mixedlm(FORMULA, df[df.Subject != 309], weights="w").fit()
    np.testing.assert_allclose(inf.iloc[0, :2].to_numpy(float), (res.fe_params - refit.fe_params).to_numpy(),
                               rtol=1e-8, atol=1e-8)
