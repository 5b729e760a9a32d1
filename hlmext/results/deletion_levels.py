"""Group deletion at any level of a model with several levels (nested or crossed) or a
generalized model: ``results.influence(level=...)``.

Deleting a group of one level takes its rows out of the data; a group of another level
left without rows goes with them (deleting a batch deletes its casks).

A linear model whose levels are all nested (no crossed factor) and unweighted is downdated
(``downdated_model``): every cluster's statistics ``Z_l'[Z_l ... X y]`` of each level
lose the deleted rows' cross-products (a deleted cluster's become zero: it contributes
nothing to the deviance), the global ``[X y]'[X y]`` theirs, and the count of rows; only
the deleted rows are read. Otherwise the model without the group is rebuilt from the fitted
design's rows (``deleted_model``: sorted, already encoded, no formula parsed again), its
statistics formed in one pass. Either is refitted from the full fit's estimates: a linear
model by Newton steps on its profiled deviance with the full fit's Hessian
(``hlmext.results.diagnostics``), to the optimum a refit without the group reaches from
its own start; a generalized model by its ``fit`` with the full fit's estimates as start and
its quadrature.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from ..design.layout import LevelSpec, MixedDesign

__all__ = ["level_index", "design_without", "deleted_model", "downdated_model"]


def level_index(design, level):
    """Position of ``level`` among the design's levels (one level: it, when ``level`` is None)."""
    names = [lv.name for lv in design.levels]
    if level is None:
        if len(names) == 1:
            return 0
        raise ValueError("this model has several levels of random effects (%s): choose whose groups are deleted "
                         "with level=, e.g. level=%r" % (", ".join(map(repr, names)), names[-1]))
    if level not in names:
        raise ValueError("level=%r is not a level of the model; its levels are %s"
                         % (level, ", ".join(map(repr, names))))
    return names.index(level)


def group_positions(design, li, groups):
    """Positions (in the level's cluster order) of the labels ``groups`` (all groups when None)."""
    lv = design.levels[li]
    labels = pd.Index(lv.labels)
    if groups is None:
        return labels, np.arange(lv.n_groups)
    wanted = list(groups)
    pos = labels.get_indexer(wanted)
    if (pos < 0).any():
        raise ValueError("groups: %s not among the fitted groups of %r (labels such as %r)"
                         % (list(np.asarray(wanted, dtype=object)[pos < 0]), lv.name, labels[0]))
    return labels, pos


def design_without(design, li, group):
    """The design's rows without those of group ``group`` (cluster number) of level ``li``:
    a new design of the same levels, blocks and columns; and the mask of the rows kept."""
    keep = design.levels[li].codes != group
    specs = []
    for i, lv in enumerate(design.levels):
        blocks, k = [], 0
        for structure, cols in lv.cov.blocks:
            blocks.append((structure.name, list(range(k, k + len(cols)))))
            k += len(cols)
        specs.append(LevelSpec(lv.name, np.asarray(lv.codes)[keep], np.asarray(design.z_of(i))[keep], blocks,
                               list(lv.names)))
    weights = None if design.weights is None else np.asarray(design.weights)[keep]
    sub = MixedDesign(np.asarray(design.endog)[keep], np.asarray(design.exog)[keep], design.exog_names, specs,
                      endog_name=design.endog_name, weights=weights)
    return sub, keep


def deleted_model(model, li, group):
    """The model of the same class on the rows without the group, and whether its levels (and
    so its theta) are in the full model's order."""
    design, keep = design_without(model.design, li, group)
    if hasattr(model, "_sm_family"):
        extra = {"trials": model.trials[keep] if model.has_trials else None, "offset": model.offset[keep]}
        if hasattr(model, "spec"):
            extra["family"] = model.spec
        sub = type(model)(design=design, **extra)
    else:
        sub = type(model)(design=design)
    same = [lv.name for lv in design.levels] == [lv.name for lv in model.design.levels]
    return sub, same


def downdated_model(model, li, group):
    """The linear model without group ``group`` of level ``li`` from its statistics minus the
    group's rows' (module docstring), or None when the design has a crossed level or weights."""
    d = model.design
    if d.qd or d.weights is not None or d.n_chain != len(d.levels):
        return None
    rows = np.flatnonzero(d.levels[li].codes == group)
    W = d.W[rows]
    m = d.W.shape[1]
    stats = model._stats.copy()
    for i, lv in enumerate(d.levels):
        q, width = lv.q, m - d.zoff[i]
        Zi = W[:, d.zoff[i]:d.zoff[i + 1]]
        codes = lv.codes[rows]
        for c in np.unique(codes):
            own = codes == c
            at = d.stat_off[d.level_first[i] + c]
            block = stats[at:at + q * width].reshape(q, width)
            if own.sum() == lv.sizes[c]:
                block[:] = 0.0                    # the whole cluster goes: exactly nothing left
            else:
                block -= Zi[own].T @ W[own, d.zoff[i]:]
    xy = W[:, d.zoff[-1]:]
    sub = copy.copy(model)
    sub._stats = stats
    sub._G0 = (model._G0.reshape(xy.shape[1], xy.shape[1]) - xy.T @ xy).ravel()
    sub.nobs = model.nobs - len(rows)
    return sub
