"""hlmext.output.plotting: caterpillar plot and per-group lines, rendered with the Agg backend.

Skipped without matplotlib (CI installs only the test extra), except the check of the
error message that names the extra to install.
"""
import builtins
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import hlmext
from hlmext.output import plotting

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False
needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def plt():
    if not HAVE_MPL:
        pytest.skip("matplotlib is not installed")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    yield pyplot
    pyplot.close("all")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="module")
def data():
    return hlmext.datasets.load("gcse").query("nstu > 4")


@pytest.fixture(scope="module")
def rs(data):
    return hlmext.mixedlm("gcse ~ lrt + (lrt | school)", data).fit(reml=False)


def _points(ax):
    """x, y and half-widths of the errorbar points drawn on ax."""
    xs, ys, half = [], [], []
    for container in ax.containers:
        line, _, (bars,) = container.lines[0], container.lines[1], container.lines[2]
        x, y = line.get_data()
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
        half.append(np.array([abs(seg[1][0] - seg[0][0]) / 2 for seg in bars.get_segments()]))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(half)


@needs_mpl
def test_caterpillar_draws_every_group_sorted_with_intervals(plt, rs):
    ax = rs.plot_random_effects(term="Intercept")
    x, y, half = _points(ax)
    assert len(x) == 64 and len(ax.containers) >= 1
    order = np.argsort(y)
    assert np.all(np.diff(x[order]) >= 0)                         # sorted by value
    blups = rs.random_effects["school"]["Intercept"]
    var = rs.random_effects_cov["school"]["var(Intercept)"]
    assert np.allclose(np.sort(x), np.sort(blups.to_numpy()))
    expected = stats.norm.ppf(0.975) * np.sqrt(var.to_numpy())
    assert np.allclose(np.sort(half), np.sort(expected))
    assert ax.get_title() == "Random effects of school"
    assert any(abs(line.get_xdata()[0]) < 1e-12 for line in ax.get_lines() if len(line.get_xdata()) == 2)


@needs_mpl
def test_caterpillar_options(plt, rs):
    fig, ax = plt.subplots()
    out = plotting.plot_random_effects(rs, level="school", term="lrt", ax=ax, alpha=0.32)
    assert out is ax
    x, _, half = _points(ax)
    var = rs.random_effects_cov["school"]["var(lrt)"].to_numpy()
    assert np.allclose(np.sort(half), np.sort(stats.norm.ppf(0.84) * np.sqrt(var)))
    assert "68%" in ax.get_xlabel()
    with pytest.raises(ValueError, match="levels are: 'school'"):
        rs.plot_random_effects(level="class")
    with pytest.raises(ValueError, match="its terms are: 'Intercept', 'lrt'"):
        rs.plot_random_effects(term="schavg")
    with pytest.raises(ValueError, match="alpha"):
        rs.plot_random_effects(alpha=1.5)


@needs_mpl
def test_caterpillar_of_each_level_of_a_nested_model(plt):
    pastes = hlmext.datasets.load("pastes")
    res = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit()
    ax = res.plot_random_effects()                    # default: the outermost level
    assert len(_points(ax)[0]) == 10
    ax = res.plot_random_effects(level="batch:cask")
    assert len(_points(ax)[0]) == 30
    assert len(ax.get_yticklabels()) == 30            # few groups: labelled


@needs_mpl
def test_per_group_fits_shows_ols_and_mixed_lines(plt, rs, data):
    ax = rs.plot_per_group_fits(data)
    lines = ax.get_lines()
    grey = [ln for ln in lines if ln.get_color() == "0.55"]
    blue = [ln for ln in lines if ln.get_color() == "C0"]
    black = [ln for ln in lines if ln.get_color() == "k"]
    assert len(grey) == 64 and len(blue) == 64 and len(black) == 1
    # the mixed lines' slopes are fixed effect + BLUP, and closer to the mean slope than OLS
    slope = lambda ln: np.diff(ln.get_ydata())[0] / np.diff(ln.get_xdata())[0]  # noqa: E731
    mixed = np.array([slope(ln) for ln in blue])
    ols = np.array([slope(ln) for ln in grey])
    expected = rs.fe_params["lrt"] + rs.random_effects["school"]["lrt"].to_numpy()
    assert np.allclose(np.sort(mixed), np.sort(expected))
    assert mixed.std() < ols.std()
    assert slope(black[0]) == pytest.approx(rs.fe_params["lrt"])
    assert ax.get_xlabel() == "lrt" and ax.get_ylabel() == "gcse"
    assert len(ax.get_legend().get_texts()) == 3


@needs_mpl
def test_per_group_fits_max_groups_and_group_covariates(plt, data):
    res = hlmext.mixedlm("gcse ~ C(schgend) * lrt + (lrt | school)", data).fit(reml=False)
    fig, ax = plt.subplots()
    assert res.plot_per_group_fits(data, x="lrt", ax=ax, max_groups=10) is ax
    assert len([ln for ln in ax.get_lines() if ln.get_color() == "C0"]) == 10
    assert "10 of 64" in ax.get_title()


@needs_mpl
def test_per_group_fits_errors(plt, data):
    pastes = hlmext.datasets.load("pastes")
    nested = hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit()
    with pytest.raises(ValueError, match="two-level"):
        nested.plot_per_group_fits(pastes)
    ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", data).fit(reml=False)
    with pytest.raises(ValueError, match="give x"):
        ri.plot_per_group_fits(data)
    rs = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", data).fit(reml=False)
    with pytest.raises(ValueError, match="not a column"):
        rs.plot_per_group_fits(data.drop(columns="lrt"), x="lrt")


@needs_mpl
def test_glmm_results_plot(plt):
    if not hasattr(hlmext, "melogit"):
        pytest.skip("no GLMMs in this build")
    cbpp = hlmext.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=1)
    ax = plotting.plot_random_effects(res)
    assert len(_points(ax)[0]) == 15


@needs_mpl
def test_caterpillar_draws_a_panel_per_term_in_the_first_terms_order(plt, rs):
    axes = rs.plot_random_effects()
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["Random effects of school: Intercept", "Random effects of school: lrt"]
    blups = rs.random_effects["school"]
    order = np.argsort(blups["Intercept"].to_numpy(), kind="stable")
    for ax, term in zip(axes, ["Intercept", "lrt"]):
        x, y, _ = _points(ax)
        at = np.empty(len(x))
        at[y.astype(int)] = x
        np.testing.assert_allclose(at, blups[term].to_numpy()[order])     # rows aligned across panels
    texts = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert texts == ["interval excludes 0", "interval includes 0"]
    fig, pair = plt.subplots(1, 2)
    assert list(rs.plot_random_effects(ax=pair)) == list(pair)
    with pytest.raises(ValueError, match="2 random-effects terms need 2 axes"):
        rs.plot_random_effects(ax=pair[0])


@needs_mpl
def test_caterpillar_labels_many_groups_sparsely_with_the_extremes(plt, rs):
    ax = rs.plot_random_effects(term="Intercept")
    blups = rs.random_effects["school"]["Intercept"].sort_values(kind="stable")
    ticks = ax.get_yticks()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert 20 <= len(labels) <= 41
    assert ticks[0] == 0 and ticks[-1] == 63
    assert labels[0] == str(blups.index[0]) and labels[-1] == str(blups.index[-1])
    assert labels == [str(blups.index[int(t)]) for t in ticks]


@needs_mpl
def test_shrinkage_pairs_each_groups_ols_with_coef(plt, rs, data):
    ax = rs.plot_shrinkage(data)
    own, mixed, fixed = (c.get_offsets() for c in ax.collections)
    ols = hlmext.per_group_ols("gcse ~ lrt", data, "school")
    coef = rs.coef()
    np.testing.assert_allclose(np.asarray(own), ols[["Intercept", "lrt"]].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(mixed), coef.loc[ols.index].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(fixed)[0], rs.fe_params.to_numpy())
    segments = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]
    assert len(segments) == len(ols)
    assert ax.get_xlabel() == "Intercept" and ax.get_ylabel() == "lrt"
    assert "64 of 64" in ax.get_title()
    assert rs.plot_shrinkage().get_title() == ax.get_title()          # the data the model was built from


@needs_mpl
def test_shrinkage_of_one_term_and_errors(plt, data):
    ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", data).fit(reml=False)
    ax = ri.plot_shrinkage(min_obs=30)
    sizes = data.groupby("school").size()
    assert len([ln for ln in ax.get_lines() if ln.get_color() == "0.7"]) == (sizes >= 30).sum()
    with pytest.raises(ValueError, match="one or two of the random-effects columns"):
        ri.plot_shrinkage(terms=["lrt"])
    with pytest.raises(ValueError, match="no group has its own estimable fit"):
        ri.plot_shrinkage(min_obs=10_000)


@needs_mpl
@pytest.mark.parametrize("family", ["logit", "poisson"])
def test_glmm_results_have_the_plot_methods(plt, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family == "logit":
            df = hlmext.datasets.load("contraception")
            res = hlmext.melogit("use ~ age + urban + (urban | district)", df).fit(nagq=1)
            x, n_terms = "urban", 2
        else:
            df = hlmext.datasets.load("grouseticks").eval("yr = YEAR - 96")
            res = hlmext.mepoisson("TICKS ~ yr + (yr | LOCATION)", df).fit(nagq=1)
            x, n_terms = "yr", 2
        axes = res.plot_random_effects()
        assert len(axes) == n_terms
        ax = res.plot_per_group_fits(df, x=x, max_groups=8)
        blue = [ln for ln in ax.get_lines() if ln.get_color() == "C0"]
        assert len(blue) == 8
        assert all(0 <= v for ln in blue for v in ln.get_ydata())               # the mean scale
        ax = res.plot_shrinkage()
    own, mixed, _ = (c.get_offsets() for c in ax.collections)
    assert 0 < len(own) == len(mixed) <= res.n_groups[res.model.levels[0].name]
    coef = res.coef()[["Intercept", x]].to_numpy()
    assert all(np.min(np.abs(coef - row).sum(axis=1)) < 1e-10 for row in np.asarray(mixed))


@needs_mpl
def test_make_figures_writes_the_docs_pngs(plt, tmp_path):
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.main(tmp_path)
    assert sorted(p.name for p in written) == ["caterpillar.png", "shrinkage.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_missing_matplotlib_names_the_extra(monkeypatch, rs):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named %r" % name)
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"hlmext\[plot\]"):
        rs.plot_random_effects()
