"""Plots of a mixed-model fit: caterpillar plot of the BLUPs, shrinkage of per-group lines.

matplotlib is optional (``pip install hlmext[plot]``) and imported only inside the
functions. Every function draws on ``ax`` (a new figure when it is None) and returns
the axes, so the caller saves or adjusts the figure.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["plot_random_effects", "plot_per_group_fits"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:                      # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib, which is not installed; install the 'plot' extra: "
                          "pip install 'hlmext[plot]' (or pip install matplotlib)") from err
    return plt


def _axes(ax, figsize):
    if ax is not None:
        return ax
    plt = _pyplot()
    return plt.subplots(figsize=figsize)[1]


def _level_and_term(results, level, term):
    blups = results.random_effects
    if level is None:
        level = next(iter(blups))
    if level not in blups:
        raise ValueError("no random effects for level %r; levels are: %s"
                         % (level, ", ".join(repr(k) for k in blups)))
    cols = list(blups[level].columns)
    if term is None:
        term = "Intercept" if "Intercept" in cols else cols[0]
    if term not in cols:
        raise ValueError("level %r has no random effect %r; its terms are: %s"
                         % (level, term, ", ".join(repr(c) for c in cols)))
    return level, term


def plot_random_effects(results, level=None, term=None, ax=None, alpha=0.05):
    """Caterpillar plot: the BLUPs of one level and term, sorted, with intervals.

    Each group's predicted random effect (conditional mode) ``b_j`` is drawn with the
    interval ``b_j +- z_{1-alpha/2} sqrt(var_j)``, where ``var_j`` is its conditional
    variance given the estimates (``results.random_effects_cov``, lme4's ``condVar``).
    Groups are sorted by ``b_j``; intervals that exclude zero are drawn darker.

    Parameters
    ----------
    results : MixedResults
        A fit (linear or generalized).
    level : str, optional
        Level name as in ``results.random_effects`` (default: the first, outermost).
    term : str, optional
        Random-effects column (default ``"Intercept"``, else the first column).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.
    alpha : float
        1 - coverage of the intervals (0.05 for 95%).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    >>> ax = res.plot_random_effects(term="Intercept")        # doctest: +SKIP
    >>> ax.figure.savefig("caterpillar.png")                   # doctest: +SKIP
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1), not %r" % (alpha,))
    level, term = _level_and_term(results, level, term)
    b = results.random_effects[level][term]
    var_col = "var(%s)" % term
    cov = getattr(results, "random_effects_cov", None)
    if cov is not None and level in cov and var_col in cov[level]:
        se = np.sqrt(np.clip(cov[level][var_col].reindex(b.index).to_numpy(float), 0, None))
    else:
        se = np.full(len(b), np.nan)
    order = np.argsort(b.to_numpy(), kind="stable")
    b, se = b.iloc[order], se[order]
    half = stats.norm.ppf(1 - alpha / 2) * se
    n = len(b)
    ax = _axes(ax, (7, max(3.0, min(12.0, 0.12 * n + 1.5))))
    pos = np.arange(n)
    excludes = (np.abs(b.to_numpy()) > half) & np.isfinite(half)
    for mask, colour in ((~excludes, "0.55"), (excludes, "C0")):
        if mask.any():
            ax.errorbar(b.to_numpy()[mask], pos[mask], xerr=half[mask], fmt="o", ms=3, color=colour,
                        ecolor=colour, elinewidth=1, capsize=0)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    if n <= 40:
        ax.set_yticks(pos)
        ax.set_yticklabels([str(lab) for lab in b.index], fontsize=7)
    else:
        ax.set_yticks([])
    ax.set_ylim(-1, n)
    ax.set_ylabel("%s (sorted, %d groups)" % (level, n))
    ax.set_xlabel("predicted random effect: %s, with %g%% interval" % (term, 100 * (1 - alpha)))
    ax.set_title("Random effects of %s" % level)
    return ax


def plot_per_group_fits(results, data, x=None, ax=None, max_groups=None):
    """Per-group OLS lines against the mixed model's group lines (shrinkage).

    For a model with one grouping level whose random part is an intercept and the slope
    of one covariate ``x``: thin grey lines are separate OLS fits of the response on
    ``x`` within each group (Stata ``statsby``); coloured lines are the mixed model's
    conditional lines ``X beta + Z b_j`` over the group's range of ``x``; the thick
    black line is the population line ``X beta``. The mixed lines are pulled towards
    the population line, most for small groups (shrinkage).

    Parameters
    ----------
    results : MixedResults
        Fit of a formula model (``hlmext.mixedlm``) with a single level.
    data : pandas.DataFrame
        The data of the fit (rows the fit dropped are ignored).
    x : str, optional
        The covariate with the random slope (default: the one non-intercept
        random-effects column).
    ax : matplotlib.axes.Axes, optional
    max_groups : int, optional
        Draw only this many groups (evenly spread over the groups in label order).

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    Other covariates of the fixed part (group-level ones such as school type, or
    interactions with ``x``) are held at the values of each group's first row; the
    population line holds them at the first row of the data.
    """
    model = results.model
    frame = getattr(model, "frame", None)
    if frame is None:
        raise ValueError("plot_per_group_fits needs a model built from a formula (hlmext.mixedlm)")
    if len(frame.random) != 1 or len(frame.random[0].term.group) != 1:
        raise ValueError("plot_per_group_fits draws two-level models (one grouping column); this model "
                         "has levels %s" % ", ".join(repr(b.term.level) for b in frame.random))
    block = frame.random[0]
    slopes = [c for c in block.names if c != "Intercept"]
    if x is None:
        if len(slopes) != 1:
            raise ValueError("give x: the random part has %s" % (", ".join(block.names)))
        x = slopes[0]
    if x not in data.columns:
        raise ValueError("x=%r is not a column of data" % (x,))
    group = block.term.group[0]
    y_name = model.endog_names
    rows = data.loc[frame.row_labels] if frame.row_labels.isin(data.index).all() else data
    if y_name not in rows.columns:
        raise ValueError("the response %r is not a column of data" % (y_name,))
    labels = pd.unique(rows[group].to_numpy())
    labels = np.array(sorted(labels, key=_sort_key), dtype=object)
    if max_groups is not None and max_groups < len(labels):
        labels = labels[np.unique(np.linspace(0, len(labels) - 1, int(max_groups)).round().astype(int))]
    ax = _axes(ax, (7, 5))
    colour = "C0"
    groups = rows.groupby(group, sort=False)
    for lab in labels:
        g = groups.get_group(lab)
        xs = g[x].to_numpy(float)
        grid = np.linspace(np.nanmin(xs), np.nanmax(xs), 2)
        if np.ptp(xs) > 0:
            slope, icept = np.polyfit(xs, g[y_name].to_numpy(float), 1)
            ax.plot(grid, icept + slope * grid, color="0.55", lw=0.8, zorder=1)
        new = pd.concat([g.iloc[[0]]] * 2, ignore_index=True)
        new[x] = grid
        line = results.predict(new, which="conditional").to_numpy()
        ax.plot(grid, line, color=colour, lw=1.1, alpha=0.85, zorder=2)
    xs = rows[x].to_numpy(float)
    grid = np.linspace(np.nanmin(xs), np.nanmax(xs), 2)
    new = pd.concat([rows.iloc[[0]]] * 2, ignore_index=True)
    new[x] = grid
    ax.plot(grid, results.predict(new, which="marginal").to_numpy(), color="k", lw=2.5, zorder=3)
    from matplotlib.lines import Line2D
    ax.legend([Line2D([], [], color="0.55", lw=0.8), Line2D([], [], color=colour, lw=1.1),
               Line2D([], [], color="k", lw=2.5)],
              ["OLS within each %s" % group, "mixed model, per %s (BLUPs)" % group, "population (fixed part)"],
              loc="upper left", fontsize=8, frameon=False)
    ax.set_xlabel(x)
    ax.set_ylabel(y_name)
    ax.set_title("Per-%s lines: OLS and mixed model (%d of %d groups)"
                 % (group, len(labels), rows[group].nunique()))
    return ax


def _sort_key(label):
    return (0, label, "") if isinstance(label, (int, float, np.integer, np.floating)) else (1, 0, str(label))
