"""Plots of a mixed-model fit: caterpillar plot of the BLUPs, shrinkage of per-group lines.

matplotlib is optional (``pip install hlmext[plot]``) and imported only inside the
functions. Every function draws on ``ax`` (a new figure when it is None) and returns
the axes, so the caller saves or adjusts the figure.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["plot_random_effects", "plot_per_group_fits", "plot_shrinkage"]


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


def _level_and_terms(results, level, term):
    blups = results.random_effects
    if level is None:
        level = next(iter(blups))
    if level not in blups:
        raise ValueError("no random effects for level %r; levels are: %s"
                         % (level, ", ".join(repr(k) for k in blups)))
    cols = list(blups[level].columns)
    if term is not None and term not in cols:
        raise ValueError("level %r has no random effect %r; its terms are: %s"
                         % (level, term, ", ".join(repr(c) for c in cols)))
    return level, cols if term is None else [term]


def _panels(ax, n_panels, height):
    """One axes per panel: new ones side by side sharing the y axis, or the caller's."""
    if ax is None:
        plt = _pyplot()
        width = 7.0 if n_panels == 1 else 1.0 + 3.5 * n_panels
        return list(np.atleast_1d(plt.subplots(1, n_panels, sharey=True, figsize=(width, height),
                                               squeeze=False)[1][0]))
    axes = [ax] if hasattr(ax, "errorbar") else list(ax)
    if len(axes) != n_panels:
        raise ValueError("ax: %d random-effects terms need %d axes; give that many, ax=None, or one term "
                         "with term=" % (n_panels, n_panels))
    return axes


def _group_ticks(ax, labels, max_labels=40):
    """Label every group when there are few, else every k-th one and the two extremes."""
    n = len(labels)
    step = int(np.ceil(n / max_labels))
    pos = np.unique(np.append(np.arange(0, n, step), n - 1)) if n else np.arange(0)
    ax.set_yticks(pos)
    ax.set_yticklabels([str(labels[i]) for i in pos], fontsize=7)


def plot_random_effects(results, level=None, term=None, ax=None, alpha=0.05):
    """Caterpillar plot: the BLUPs of one level, sorted, with intervals; a panel per term.

    Each group's predicted random effect (conditional mode) ``b_j`` is drawn with the
    interval ``b_j +- z_{1-alpha/2} sqrt(var_j)``, where ``var_j`` is its conditional
    variance given the estimates (``results.random_effects_cov``, lme4's ``condVar``).
    Groups are sorted by the first panel's term (every panel keeps that order, as lme4's
    ``dotplot``); intervals that exclude zero are drawn in colour, the others in grey
    (the legend says so). With more than 40 groups every k-th group is labelled, and the
    two extremes.

    Parameters
    ----------
    results : MixedResults or GLMMResults
        A fit (linear or generalized).
    level : str, optional
        Level name as in ``results.random_effects`` (default: the first, outermost).
    term : str, optional
        One random-effects column; default all of the level's, one panel each.
    ax : matplotlib.axes.Axes or sequence of them, optional
        Where to draw (one per panel); a new figure if None.
    alpha : float
        1 - coverage of the intervals (0.05 for 95%).

    Returns
    -------
    matplotlib.axes.Axes, or a list of them (one per term) when there are several panels.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    >>> axes = res.plot_random_effects()                       # doctest: +SKIP
    >>> [ax.get_title() for ax in axes]                        # doctest: +SKIP
    ['Random effects of school: Intercept', 'Random effects of school: lrt']
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1), not %r" % (alpha,))
    level, terms = _level_and_terms(results, level, term)
    blups = results.random_effects[level]
    n = len(blups)
    order = np.argsort(blups[terms[0]].to_numpy(), kind="stable")
    axes = _panels(ax, len(terms), max(3.0, min(12.0, 0.12 * n + 1.5)))
    cov = getattr(results, "random_effects_cov", None)
    q = stats.norm.ppf(1 - alpha / 2)
    pos = np.arange(n)
    for k, (panel, name) in enumerate(zip(axes, terms)):
        b = blups[name].to_numpy(float)[order]
        var_col = "var(%s)" % name
        if cov is not None and level in cov and var_col in cov[level]:
            se = np.sqrt(np.clip(cov[level][var_col].reindex(blups.index).to_numpy(float), 0, None))[order]
        else:
            se = np.full(n, np.nan)
        half = q * se
        excludes = (np.abs(b) > half) & np.isfinite(half)
        for mask, colour in ((~excludes, "0.55"), (excludes, "C0")):
            if mask.any():
                panel.errorbar(b[mask], pos[mask], xerr=half[mask], fmt="o", ms=3, color=colour,
                               ecolor=colour, elinewidth=1, capsize=0)
        panel.axvline(0.0, color="k", lw=0.8, ls="--")
        panel.set_ylim(-1, n)
        panel.set_xlabel(("predicted random effect: %s, with %g%% interval" if len(terms) == 1 else
                          "%s, %g%% interval") % (name, 100 * (1 - alpha)))
        panel.set_title("Random effects of %s" % level + (": %s" % name if len(terms) > 1 else ""))
        if k == 0:
            _group_ticks(panel, [blups.index[i] for i in order])
            panel.set_ylabel("%s (sorted, %d groups)" % (level, n))
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, marker="o", ms=3, lw=1) for c in ("C0", "0.55")]
    axes[0].legend(handles, ["interval excludes 0", "interval includes 0"], loc="lower right", fontsize=7,
                   frameon=False)
    return axes[0] if len(axes) == 1 else axes


def _is_glmm(results):
    return hasattr(results, "nagq")


def _single_level(results, what):
    """The formula model's one random block, or a clear error."""
    frame = getattr(results.model, "frame", None)
    if frame is None:
        raise ValueError("%s needs a model built from a formula (hlmext.mixedlm, melogit or mepoisson)" % what)
    if len(frame.random) != 1 or len(frame.random[0].term.group) != 1:
        raise ValueError("%s draws two-level models (one grouping column); this model has levels %s"
                         % (what, ", ".join(repr(b.term.level) for b in frame.random)))
    return frame.random[0]


def _fitted_rows(results, data):
    """The rows of ``data`` the model was fitted to."""
    frame = results.model.frame
    rows = data.loc[frame.row_labels] if frame.row_labels.isin(data.index).all() else data
    if results.model.endog_names not in rows.columns:
        raise ValueError("the response %r is not a column of data" % (results.model.endog_names,))
    return rows


def _group_fit(results, X, rows):
    """Coefficients of one group's own regression on the columns X (OLS, or the GLM of the
    model's family with its trials and offset), or None when they are not estimable."""
    y = rows[results.model.endog_names].to_numpy(float)
    if len(y) <= X.shape[1] or np.linalg.matrix_rank(X) < X.shape[1]:
        return None
    if not _is_glmm(results):
        return np.linalg.lstsq(X, y, rcond=None)[0]
    import warnings
    import statsmodels.api as sm
    model = results.model
    trials = results._original_order(np.asarray(model.trials, float)).reindex(rows.index).to_numpy()
    offset = results._original_order(np.asarray(model.offset, float)).reindex(rows.index).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # separation or no convergence: not estimable
        try:
            fit = sm.GLM(y / trials, X, family=model._sm_family(), var_weights=trials, offset=offset).fit()
        except Exception:                           # noqa: BLE001 - any failure leaves the group out
            return None
    mu, tiny = fit.fittedvalues, 1e-6      # a mean at 0 (or a probability at 1): the estimate is infinite
    separated = np.any(mu < tiny) or (model._family_code == 0 and np.any(mu > 1 - tiny))
    return None if separated or not np.all(np.isfinite(fit.bse)) else np.asarray(fit.params)


def _inverse_link(results):
    return results.model._sm_family().link.inverse if _is_glmm(results) else (lambda eta: eta)


def _group_line(results, rows, x, grid, conditional):
    """The mixed model's line (mean scale) over ``grid``, other covariates at the first row's values."""
    new = pd.concat([rows.iloc[[0]]] * len(grid), ignore_index=True)
    new[x] = grid
    if _is_glmm(results):
        return results.predict(new, which="mu", conditional=conditional).to_numpy()
    return results.predict(new, which="conditional" if conditional else "marginal").to_numpy()


def plot_per_group_fits(results, data, x=None, ax=None, max_groups=None):
    """Per-group fits against the mixed model's group lines (shrinkage).

    For a model with one grouping level whose random part is an intercept and the slope
    of one covariate ``x``: thin grey lines are separate fits of the response on ``x``
    within each group (OLS, Stata ``statsby``; for a mixed logit or Poisson model the GLM
    of its family, leaving out groups where it does not exist, e.g. with separation);
    coloured lines are the mixed model's conditional lines ``X beta + Z b_j`` over the
    group's range of ``x``; the thick black line is the population line ``X beta``
    (``b = 0``). GLMM lines are drawn on the mean scale (probability or expected count).
    The mixed lines are pulled towards the population line, most for small groups.

    Parameters
    ----------
    results : MixedResults or GLMMResults
        Fit of a formula model (``hlmext.mixedlm``, ``melogit``, ``mepoisson``) with a single level.
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
    block = _single_level(results, "plot_per_group_fits")
    slopes = [c for c in block.names if c != "Intercept"]
    if x is None:
        if len(slopes) != 1:
            raise ValueError("give x: the random part has %s" % (", ".join(block.names)))
        x = slopes[0]
    if x not in data.columns:
        raise ValueError("x=%r is not a column of data" % (x,))
    group = block.term.group[0]
    y_name = model.endog_names
    rows = _fitted_rows(results, data)
    labels = pd.unique(rows[group].to_numpy())
    labels = np.array(sorted(labels, key=_sort_key), dtype=object)
    if max_groups is not None and max_groups < len(labels):
        labels = labels[np.unique(np.linspace(0, len(labels) - 1, int(max_groups)).round().astype(int))]
    ax = _axes(ax, (7, 5))
    colour = "C0"
    n_points = 50 if _is_glmm(results) else 2
    inverse = _inverse_link(results)
    groups = rows.groupby(group, sort=False)
    for lab in labels:
        g = groups.get_group(lab)
        xs = g[x].to_numpy(float)
        grid = np.linspace(np.nanmin(xs), np.nanmax(xs), n_points)
        own = _group_fit(results, np.column_stack([np.ones(len(xs)), xs]), g) if np.ptp(xs) > 0 else None
        if own is not None:
            first = 0.0 if not _is_glmm(results) else \
                results._original_order(np.asarray(model.offset, float)).reindex(g.index).to_numpy()[0]
            ax.plot(grid, inverse(first + own[0] + own[1] * grid), color="0.55", lw=0.8, zorder=1)
        ax.plot(grid, _group_line(results, g, x, grid, True), color=colour, lw=1.1, alpha=0.85, zorder=2)
    xs = rows[x].to_numpy(float)
    grid = np.linspace(np.nanmin(xs), np.nanmax(xs), n_points)
    ax.plot(grid, _group_line(results, rows, x, grid, False), color="k", lw=2.5, zorder=3)
    from matplotlib.lines import Line2D
    own_label = "GLM within each %s" % group if _is_glmm(results) else "OLS within each %s" % group
    ax.legend([Line2D([], [], color="0.55", lw=0.8), Line2D([], [], color=colour, lw=1.1),
               Line2D([], [], color="k", lw=2.5)],
              [own_label, "mixed model, per %s (BLUPs)" % group, "population (fixed part)"],
              loc="upper left", fontsize=8, frameon=False)
    ax.set_xlabel(x)
    ax.set_ylabel(y_name if not _is_glmm(results) else
                  ("P(%s)" if model._family_code == 0 else "E[%s]") % y_name)
    ax.set_title("Per-%s lines: %s and mixed model (%d of %d groups)"
                 % (group, "GLM" if _is_glmm(results) else "OLS", len(labels), rows[group].nunique()))
    return ax


def plot_shrinkage(results, data=None, terms=None, ax=None, min_obs=5):
    """Shrinkage plot: each group's own estimates against the mixed model's, paired by a line.

    For every group, the coefficients of a regression on the fixed part within that group
    alone (OLS; for a mixed logit or Poisson model, the GLM of its family) and the mixed
    model's group-level coefficients (``results.coef()``: fixed effects plus the group's
    conditional modes) are drawn and joined by a line; the fixed effects are the black
    cross. With two or more random terms the plane of the first two is drawn (lme4's
    shrinkage plot of intercept and slope); with one term the two estimates of each group
    are drawn side by side. Groups whose own fit is not estimable (fewer than
    ``min_obs`` rows, collinear columns, separation) are left out; covariates constant
    within groups therefore make every group's own fit inestimable.

    Parameters
    ----------
    results : MixedResults or GLMMResults
        Fit of a formula model with one grouping level.
    data : pandas.DataFrame, optional
        The data of the fit; default the data the model was built from.
    terms : list of str, optional
        One or two random-effects columns (default the first two).
    ax : matplotlib.axes.Axes, optional
    min_obs : int
        Smallest group with its own fit.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    >>> ax = res.plot_shrinkage()                              # doctest: +SKIP
    >>> ax.get_xlabel(), ax.get_ylabel()                       # doctest: +SKIP
    ('Intercept', 'lrt')
    """
    from ..formula import frames
    block = _single_level(results, "plot_shrinkage")
    if data is None:
        call = getattr(results.model, "call", None)
        data = None if call is None else call.data
        if data is None:
            raise ValueError("plot_shrinkage needs data=: this model does not keep its data")
    terms = list(block.names[:2]) if terms is None else list(terms)
    unknown = [t for t in terms if t not in block.names]
    if unknown or not 1 <= len(terms) <= 2:
        raise ValueError("terms must be one or two of the random-effects columns %s, not %r"
                         % (", ".join(repr(c) for c in block.names), terms))
    missing = [t for t in terms if t not in results.fe_params.index]
    if missing:
        raise ValueError("term %r has no fixed effect to compare with; choose terms among %s"
                         % (missing[0], ", ".join(repr(c) for c in block.names if c in results.fe_params.index)))
    group = block.term.group[0]
    rows = _fitted_rows(results, data)
    X = frames.exog_for(results.model.frame.fixed_design_info, rows)
    cols = [list(results.fe_params.index).index(t) for t in terms]
    codes = rows[group].to_numpy()
    mixed = results.coef()
    mixed = mixed if isinstance(mixed, pd.DataFrame) else mixed[block.term.level]
    own, both = [], []
    for lab in sorted(pd.unique(codes), key=_sort_key):
        sel = codes == lab
        est = _group_fit(results, X[sel], rows[sel]) if sel.sum() >= min_obs else None
        if est is not None:
            own.append(est[cols])
            both.append(mixed.loc[lab, terms].to_numpy(float))
    if not own:
        raise ValueError("no group has its own estimable fit (at least min_obs=%d rows and columns of the fixed "
                         "part that vary within the group); lower min_obs or drop group-level covariates"
                         % min_obs)
    own, both = np.array(own), np.array(both)
    fixed = results.fe_params[terms].to_numpy(float)
    ax = _axes(ax, (6, 5))
    if len(terms) == 2:
        for a, b in zip(own, both):
            ax.plot([a[0], b[0]], [a[1], b[1]], color="0.7", lw=0.8, zorder=1)
        ax.scatter(own[:, 0], own[:, 1], s=14, facecolors="none", edgecolors="0.35", zorder=2,
                   label="own fit per %s" % group)
        ax.scatter(both[:, 0], both[:, 1], s=14, color="C0", zorder=3, label="mixed model (coef)")
        ax.scatter([fixed[0]], [fixed[1]], marker="+", s=120, color="k", zorder=4, label="fixed effects")
        ax.set_xlabel(terms[0])
        ax.set_ylabel(terms[1])
    else:
        for a, b in zip(own[:, 0], both[:, 0]):
            ax.plot([0, 1], [a, b], color="0.7", lw=0.8, zorder=1)
        ax.scatter(np.zeros(len(own)), own[:, 0], s=14, facecolors="none", edgecolors="0.35", zorder=2,
                   label="own fit per %s" % group)
        ax.scatter(np.ones(len(both)), both[:, 0], s=14, color="C0", zorder=3, label="mixed model (coef)")
        ax.axhline(fixed[0], color="k", lw=1.5, zorder=0, label="fixed effect")
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["own fit", "mixed model"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_ylabel(terms[0])
    ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_title("Shrinkage of the %s estimates (%d of %d groups)"
                 % (group, len(own), len(pd.unique(codes))))
    return ax


def _sort_key(label):
    return (0, label, "") if isinstance(label, (int, float, np.integer, np.floating)) else (1, 0, str(label))
