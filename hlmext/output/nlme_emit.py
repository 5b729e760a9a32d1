"""A model with a residual structure as an nlme ``lme`` call (lme4 has no residual structures)."""
from __future__ import annotations

from ..formula import grammar as fm
from .emit import _model_and_reml, _r_effects, _r_expr, to_lme4


def to_nlme(model, reml=None, data="df") -> str:
    """The nlme ``lme`` call that fits the same model (lme4 has no residual structures).

    Examples
    --------
    >>> import hlmext
    >>> ovary = hlmext.datasets.load("ovary")
    >>> m = hlmext.mixedlm("follicles ~ sin2pi + cos2pi + (1 | Mare)", ovary, residuals="ar1", time="occasion")
    >>> print(to_nlme(m, data="ovary"))
    lme(follicles ~ sin2pi + cos2pi, random = ~ 1 | Mare, correlation = corAR1(form = ~ occasion | Mare), data = ovary, method = "REML")
    """
    model, reml = _model_and_reml(model, reml)
    notes = []
    weights = getattr(model, "var_weights", None) is not None
    column = getattr(model, "var_weights_column", None) or "w"
    if weights and getattr(model, "var_weights_column", None) is None:
        notes.append("the precision weights were given as an array: store them as the column w")
    if model.residual.kind == "none":                    # precision weights only: lme4's own weights=
        call = to_lme4(model, reml=reml, data=data).split("\n")
        call[0] = call[0][:call[0].index(", data = ")] + ", weights = %s" % column + call[0][call[0].index(", data = "):]
        return "\n".join(call + ["# note: " + n for n in notes])
    parsed = fm.parse(model.formula)
    response, fixed = _r_expr(parsed.response, notes), _r_expr(parsed.fixed, notes)
    d = model.design
    random, groups = [], []
    for lv in d.levels[:d.n_chain][::-1]:                # outermost first
        block = next(b for b in model.frame.random if b.term.level == lv.name)
        effects = _r_effects(block.term.formula, notes)
        if lv.q > 1 and lv.cov.label.lower() in ("independent", "identity"):
            effects = "pdDiag(~ %s)" % effects
        else:
            effects = "~ %s" % effects
        groups.append(block.term.group[-1])
        random.append((block.term.group[-1], effects))
    if len(random) == 1 and not random[0][1].startswith("pd"):
        random_text = "%s | %s" % (random[0][1], random[0][0])
    else:
        random_text = "list(%s)" % ", ".join("%s = %s" % pair for pair in random)
    r = model.residual
    path = "/".join(groups + ([r.level] if r.level != d.levels[0].name else []))
    args = ["%s ~ %s" % (response, fixed), "random = " + random_text]
    form = "~ %s | %s" % (r.time_name, path) if r.time is not None else "~ 1 | %s" % path
    correlation = None
    if r.kind == "ar":
        correlation = ("corAR1(form = %s)" % form if r.order == 1
                       else "corARMA(form = %s, p = %d)" % (form, r.order))
    elif r.kind == "ma":
        correlation = "corARMA(form = %s, q = %d)" % (form, r.order)
    elif r.kind == "exponential":
        correlation = "corExp(form = %s)" % form
    elif r.kind == "exchangeable":
        correlation = "corCompSymm(form = %s)" % form
    elif r.kind == "unstructured":
        correlation = "corSymm(form = ~ as.integer(factor(%s)) | %s)" % (r.time_name, path)
    if correlation:
        args.append("correlation = " + correlation)
    if weights and r.kind in ("independent", "unstructured"):
        notes.append("nlme takes one variance function here: combine the precision weights with varComb(varFixed("
                     "~ 1 / %s), ...)" % column)
    elif weights:
        args.append("weights = varFixed(~ 1 / %s)" % column)
    if r.kind == "independent":
        args.append("weights = varIdent(form = ~ 1 | %s)" % r.by_name)
    elif r.kind == "unstructured":
        args.append("weights = varIdent(form = ~ 1 | %s)" % r.time_name)
    elif r.kind in ("toeplitz", "banded"):
        notes.append("nlme has no %s correlation; the call fits independent errors" % r.label)
    if r.kind == "exponential":
        notes.append("nlme's corExp reports range = -1 / log(rho)")
    args += ["data = %s" % data, 'method = "%s"' % ("REML" if reml else "ML")]
    return "\n".join(["lme(%s)" % ", ".join(args)] + ["# note: " + n for n in dict.fromkeys(notes)])
