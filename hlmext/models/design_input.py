"""The linear model's ``MixedDesign`` from a formula's model frame or from arrays.

``parse`` keeps a parsed formula for a formula string seen before, ``design_from_frame`` and
``array_design`` give the design (rows sorted by cluster, levels and covariance structures:
``hlmext.design.layout``), ``release_arrays`` drops the frame's row arrays once the design
holds them; ``caller_env`` is the formula's evaluation depth one frame further from the user.
"""
from __future__ import annotations

import functools

import numpy as np

from ..design.arrays import checked_arrays
from ..design.layout import LevelSpec, MixedDesign
from ..design.variance_components import variance_component_specs
from ..exceptions import ModelError

__all__ = ["array_design", "caller_env", "default_names", "design_from_frame", "parse", "release_arrays"]


@functools.lru_cache(maxsize=256)
def _parse_known(parse, formula, cov):
    return parse(formula, cov=cov)


def parse(grammar, formula, cov):
    """``grammar.parse(formula, cov=cov)``, kept for a formula string and covariance name seen before
    (the parsed formula is immutable; a dict of structures or Stata's residuals() is parsed anew)."""
    if not isinstance(formula, str) or not (cov is None or isinstance(cov, str)):
        return grammar.parse(formula, cov=cov)
    parsed = _parse_known(grammar.parse, formula, cov)
    return parsed if parsed.residuals is None else grammar.parse(formula, cov=cov)


def caller_env(depth):
    """The formula's evaluation environment one frame further from the user (a depth; an
    explicit environment as given)."""
    return depth + 1 if isinstance(depth, int) else depth


def release_arrays(frame):
    """Drop the formula frame's row arrays once the design holds the data (what remains of the
    frame: design infos for new data, column names, row labels, the count of dropped rows)."""
    frame.endog = frame.exog = None
    for block in frame.random:
        block.exog_re = block.groups = None


def design_from_frame(frame, weights=None, dense_coupling=False, check_tail=False) -> MixedDesign:
    """A ``MixedDesign`` from the formula module's ``ModelFrame`` (``dense_coupling``, ``check_tail``: see
    ``MixedDesign``)."""
    specs = []
    for block in frame.random:
        q = block.exog_re.shape[1]
        specs.append(LevelSpec(block.term.level, block.groups, block.exog_re,
                               [(block.term.cov, list(range(q)))], list(block.names)))
    return MixedDesign(frame.endog, frame.exog, frame.exog_names, specs, endog_name=frame.endog_name,
                       weights=weights, dense_coupling=dense_coupling, check_tail=check_tail)


def array_design(endog, exog, groups, exog_re, cov, exog_names, exog_re_names, weights=None, exog_vc=None):
    if endog is None or exog is None or groups is None:
        raise ModelError("LinearMixed needs endog, exog and groups (or use hlmext.mixedlm with a formula)")
    endog, exog, groups, exog_re = checked_arrays(endog, exog, groups, exog_re)
    endog = np.asarray(endog, dtype=float)
    exog = np.asarray(exog, dtype=float)
    if exog.ndim == 1:
        exog = exog[:, None]
    exog_names = list(exog_names) if exog_names is not None else default_names(exog, "x")
    # statsmodels' rule: a random intercept of groups unless exog_re or exog_vc says otherwise
    specs = [] if exog_vc is None else variance_component_specs(groups, exog_vc, endog.shape[0])
    if exog_re is None and specs:
        return MixedDesign(endog, exog, exog_names, specs, endog_name="y", weights=weights)
    if exog_re is None:
        exog_re = np.broadcast_to(np.ones((1, 1)), (endog.shape[0], 1))   # a random intercept
        exog_re_names = exog_re_names or ["Intercept"]
    exog_re = np.asarray(exog_re, dtype=float)
    if exog_re.ndim == 1:
        exog_re = exog_re[:, None]
    exog_re_names = list(exog_re_names) if exog_re_names is not None else default_names(exog_re, "z")
    spec = LevelSpec("group", np.asarray(groups), exog_re, [(cov, list(range(exog_re.shape[1])))],
                     exog_re_names)
    return MixedDesign(endog, exog, exog_names, [spec] + specs, endog_name="y", weights=weights)


def default_names(a, prefix):
    names = []
    for j in range(a.shape[1]):
        ones = (len(a) == 0 or a[0, j] == 1) and np.all(a[:, j] == 1)
        names.append("Intercept" if ones else "%s%d" % (prefix, j + 1))
    return names
