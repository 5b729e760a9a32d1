"""A residual structure as Stata's ``residuals()`` option (``to_stata`` of ``hlmext.output.emit``).

``mixed y x || id:, residuals(ar 1, t(time)) reml``; residual clusters finer than the innermost
level of random effects become a last level ``|| student:, noconstant``.
"""
from __future__ import annotations

_STATA_ORDERED = ("ar", "ma", "toeplitz", "banded")


def stata_residuals(model):
    """``(extra equations, residuals() option or None, notes)``."""
    notes = []
    if getattr(model, "var_weights", None) is not None:
        notes.append("Stata's mixed has no precision weights (var_weights); the command leaves them out")
    if model.residual.kind == "none":
        return [], None, notes
    r = model.residual
    kind = r.kind
    if kind in _STATA_ORDERED:
        order = r.order if r.order is not None else getattr(r, "lags", getattr(r, "band", None))
        name = "%s %d" % (kind, order)
    else:
        name = kind
    parts = [name]
    if r.time is not None:
        parts.append("t(%s)" % r.time_name)
    if kind == "independent":
        parts.append("by(%s)" % r.by_name)
    inner = model.design.levels[0].name
    extra = [] if r.level == inner else ["|| %s:, noconstant" % r.level]
    return extra, "residuals(%s)" % ", ".join(parts), notes
