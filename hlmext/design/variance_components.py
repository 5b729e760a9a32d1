"""statsmodels' ``exog_vc`` (variance components of the array interface) as levels of random effects.

``MixedLM(endog, exog, groups, exog_vc={"klass": {g: M_g, ...}})`` gives, for every group ``g``,
a matrix ``M_g`` (one row per row of the group, in data order; one column per random effect of
the component, all with the component's one variance). Each row of ``M_g`` may have at most one
nonzero entry: then column ``j`` of ``M_g`` is a level of its own, nested in ``g``, and the
component is the random effect ``(0 + value | g:j)`` (``(1 | g:j)`` for 0/1 indicators), the
model that ``vc_formula={"klass": "0 + C(klass)"}`` builds from a formula.

Examples
--------
>>> import numpy as np
>>> groups = np.array([1, 1, 1, 2, 2])
>>> klass = {1: np.array([[1, 0], [0, 1], [1, 0]]), 2: np.array([[1], [1]])}
>>> spec, = variance_component_specs(groups, {"klass": klass}, 5)
>>> spec.name, spec.names, spec.groups.tolist()
('group:klass', ['Intercept'], [[0, 0], [0, 1], [0, 0], [1, 0], [1, 0]])
"""
from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from .arrays import as_float_array
from .layout import LevelSpec

__all__ = ["variance_component_specs"]


def variance_component_specs(groups, exog_vc, n) -> list:
    """One ``LevelSpec`` per entry of ``exog_vc`` (a dict: component name -> {group label: matrix})."""
    if not isinstance(exog_vc, dict):
        raise TypeError("exog_vc must be a dict of component name -> {group label: matrix}, as statsmodels' "
                        "MixedLM takes it; got %s" % type(exog_vc).__name__)
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise DataError("exog_vc needs one group label per row (groups of shape (n,)); got shape %s: nested "
                        "groupings are written as columns of groups without exog_vc" % (groups.shape,))
    labels, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
    rows_of = [order[bounds[k]:bounds[k + 1]] for k in range(len(labels))]
    return [_component(name, per_group, labels, codes, rows_of, n) for name, per_group in exog_vc.items()]


def _component(name, per_group, labels, codes, rows_of, n):
    if not isinstance(per_group, dict):
        raise TypeError("exog_vc[%r] must be a dict of group label -> matrix (one row per row of the group); "
                        "got %s" % (name, type(per_group).__name__))
    known = set(labels.tolist())
    unknown = [g for g in per_group if g not in known]
    if unknown:
        raise DataError("exog_vc[%r] has matrices for groups that are not in groups: %s"
                        % (name, ", ".join(repr(g) for g in unknown[:5])))
    missing = [g for g in labels.tolist() if g not in per_group]
    if missing:
        raise DataError("exog_vc[%r] has no matrix for group(s) %s: give every group one (a matrix with no "
                        "columns where the component has no random effects)"
                        % (name, ", ".join(repr(g) for g in missing[:5])))
    column = np.zeros(n, dtype=np.int64)
    value = np.zeros(n)
    for k, label in enumerate(labels.tolist()):
        what = "exog_vc[%r][%r]" % (name, label)
        m = as_float_array(per_group[label], what)
        m = m[:, None] if m.ndim == 1 else m
        rows = rows_of[k]
        if m.ndim != 2 or m.shape[0] != len(rows):
            raise DataError("%s must have one row per row of the group (%d); got shape %s"
                            % (what, len(rows), m.shape))
        if m.shape[1] == 0:
            continue
        if not np.all(np.isfinite(m)):
            raise DataError("%s has NaN or infinite entries" % what)
        nonzero = m != 0
        if np.any(nonzero.sum(axis=1) > 1):
            raise DataError("%s has rows with more than one nonzero column: a variance component is taken as "
                            "a grouping nested in the group (one random effect per row); write other random "
                            "effects as exog_re or with a formula" % what)
        j = nonzero.argmax(axis=1)
        column[rows] = j
        value[rows] = m[np.arange(len(rows)), j]
    indicator = np.all((value == 0) | (value == 1))
    return LevelSpec("group:%s" % name, np.column_stack([codes, column]), value[:, None],
                     [("unstructured", [0])], ["Intercept" if indicator else str(name)])
