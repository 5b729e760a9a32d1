"""Diagnostic plots of a fit: residuals against fitted values, normal QQ plots of the residuals
and of the BLUPs of every level and term, and the influence of each group.

matplotlib is optional and imported only inside the functions (``hlmext.output.plotting``);
every function draws on ``ax`` (new axes when it is None) and returns the axes (a list of
axes for several panels).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .plotting import _axes, _pyplot

__all__ = ["plot_residuals", "plot_qq", "plot_influence"]


def plot_residuals(results, kind="pearson", which="conditional", ax=None):
    """Residuals against fitted values, with a zero line and a lowess-free running mean.

    Parameters
    ----------
    results : MixedResults or GLMMResults
    kind, which : str
        As ``results.residuals`` (``"raw"``, ``"pearson"``, ``"standardized"``;
        ``"conditional"`` or ``"marginal"``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    >>> ax = plot_residuals(res)                             # doctest: +SKIP
    >>> ax.get_xlabel(), ax.get_ylabel()                     # doctest: +SKIP
    ('fitted values (conditional)', 'pearson residuals')
    """
    r = np.asarray(results.residuals(kind, which), float)
    if which == "conditional":
        fitted = np.asarray(results.fittedvalues, float)
    else:
        fitted = np.asarray(results.predict(which="marginal"), float)
    ax = _axes(ax, (6, 4))
    ax.scatter(fitted, r, s=10, alpha=0.6)
    ax.axhline(0.0, color="grey", lw=1)
    order = np.argsort(fitted)
    k = max(5, len(r) // 20)
    if len(r) > 2 * k:
        smooth = np.convolve(r[order], np.ones(k) / k, mode="valid")
        ax.plot(fitted[order][k // 2:k // 2 + len(smooth)], smooth, color="C1", lw=1.5, label="running mean")
        ax.legend(loc="best", frameon=False)
    ax.set_xlabel("fitted values (%s)" % which)
    ax.set_ylabel("%s residuals" % kind)
    return ax


def _qq(ax, values, title):
    values = np.sort(np.asarray(values, float))
    n = len(values)
    q = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    ax.scatter(q, values, s=10, alpha=0.7)
    sd = np.std(values, ddof=1) if n > 1 else 1.0
    ax.plot(q, np.mean(values) + sd * q, color="grey", lw=1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("normal quantiles")


def plot_qq(results, kind="pearson"):
    """Normal QQ plots: the residuals, then the BLUPs of every term of every level (one panel each).

    Returns
    -------
    list of matplotlib Axes

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    >>> [a.get_title() for a in plot_qq(res)]                # doctest: +SKIP
    ['pearson residuals', 'Subject: Intercept', 'Subject: Days']
    """
    panels = [("%s residuals" % kind, results.residuals(kind))]
    for level, blups in results.random_effects.items():
        for term in blups.columns:
            panels.append(("%s: %s" % (level, term), blups[term]))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels):
        _qq(ax, values, title)
    axes[0][0].set_ylabel("sample quantiles")
    fig.tight_layout()
    return list(axes[0])


def plot_influence(results, influence=None, ax=None, label=5, level=None):
    """Cook's distance of every group (``results.influence(level=level)``, or the table given
    as ``influence``), labelling the ``label`` largest.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
    >>> ax = plot_influence(res, label=2)                    # doctest: +SKIP
    >>> sorted(t.get_text() for t in ax.texts)               # doctest: +SKIP
    ['309', '335']
    """
    table = results.influence(level=level) if influence is None else influence
    d = table["cooks_distance"].to_numpy(float)
    ax = _axes(ax, (6, 3.5))
    x = np.arange(len(d))
    ax.vlines(x, 0, d, color="C0", lw=1)
    ax.scatter(x, d, s=10, color="C0")
    for i in np.argsort(d)[::-1][:label]:
        ax.annotate(str(table.index[i]), (x[i], d[i]), textcoords="offset points", xytext=(0, 4), ha="center",
                    fontsize=8)
    ax.set_xlabel("group (%s)" % (table.index.name or "group"))
    ax.set_ylabel("Cook's distance")
    ax.set_xticks([])
    return ax
