"""The output of an ordinal fit: the Stata-like summary with its cut points, and the same
model as an ``ordinal::clmm`` call or a Stata ``meologit`` / ``meoprobit`` command."""
from __future__ import annotations

from ..formula import grammar as fm
from .emit import (_StataVars, _blocks_by_level, _r_effects, _r_expr, _stata_equation, _stata_factor_list,
                   _stata_level_name, _terms, _with_option)
from .summary import MixedSummary, _cell


class OrdinalSummary(MixedSummary):
    """``MixedSummary`` with the cut points below the fixed effects (never exponentiated), as
    Stata's ``meologit`` prints them: coefficient, standard error and interval."""

    def _fixed_table(self):
        t = super()._fixed_table()
        r = self.results
        t.rows.append(("rule",))
        for name, row in r.cut_table.iterrows():
            b, se, lo, hi = float(row["coef"]), float(row["se"]), float(row["lower"]), float(row["upper"])
            if self._q is not None:
                lo, hi = b - self._q * se, b + self._q * se
            self._records["fixed"].append((name, b, se, float("nan"), float("nan"), lo, hi))
            t.rows.append(("row", name, [_cell(b), _cell(se), _cell(float("nan")), _cell(float("nan")),
                                         _cell(lo), _cell(hi)]))
        return t


def _model_and_nagq(obj, nagq):
    model = getattr(obj, "model", obj)
    if nagq is None:
        nagq = getattr(obj, "nagq", 7)
    if getattr(model, "frame", None) is None or getattr(model, "formula", None) is None:
        raise ValueError("code emission needs a model built from a formula (hlmext.meologit); a model built "
                         "from arrays has no variable names to write")
    return model, int(nagq)


def to_clmm(obj, nagq=None, data="df"):
    """The ``ordinal::clmm`` call that fits the same model (R).

    ``nagq``: 1 writes the Laplace fit, more ``nAGQ = nagq`` (clmm's adaptive quadrature);
    default the fit's. The response must be an ordered factor in R; a note says so.

    Examples
    --------
    >>> import hlmext
    >>> wine = hlmext.datasets.load("wine")
    >>> print(to_clmm(hlmext.meoprobit("rating ~ temp + contact + (1 | judge)", wine), nagq=7, data="wine"))
    clmm(rating ~ temp + contact + (1 | judge), data = wine, link = "probit", nAGQ = 7)
    # note: rating must be an ordered factor: wine$rating <- factor(wine$rating, ordered = TRUE)
    """
    model, nagq = _model_and_nagq(obj, nagq)
    notes = []
    parsed = fm.parse(model.formula)
    pieces = [_r_expr(parsed.fixed, notes)]
    for block in model.frame.random:
        term = block.term
        bar = "||" if len(block.names) > 1 and term.cov in ("independent", "identity") else "|"
        if len(block.names) > 1 and term.cov in ("identity", "exchangeable"):
            notes.append("level %r: clmm has no %s covariance; written as %s"
                         % (term.level, term.cov, "independent (||)" if bar == "||" else "unstructured"))
        pieces.append("(%s %s %s)" % (_r_effects(term.formula, notes), bar, ":".join(term.group)))
    options = ", link = \"%s\"" % model.link + (", nAGQ = %d" % nagq if nagq > 1 else "")
    call = "clmm(%s ~ %s, data = %s%s)" % (parsed.response, " + ".join(pieces), data, options)
    if nagq == 0:
        notes.append("clmm has no nAGQ = 0 (fixed effects and cut points at the joint mode); this call fits "
                     "the Laplace maximum")
    notes.append("%s must be an ordered factor: %s$%s <- factor(%s$%s, ordered = TRUE)"
                 % (parsed.response, data, parsed.response, data, parsed.response))
    if model.sampling is not None:
        notes.append("clmm has no sampling weights (a pseudo-likelihood); this call is unweighted; Stata's "
                     "meologit/meoprobit fit the weighted model (to_stata())")
    return "\n".join([call] + ["# note: " + n for n in dict.fromkeys(notes)])


def to_stata(obj, nagq=None):
    """The Stata ``meologit`` (``meoprobit``) command that fits the same model.

    Examples
    --------
    >>> import hlmext
    >>> wine = hlmext.datasets.load("wine")
    >>> print(to_stata(hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine), nagq=1))
    encode temp, generate(temp_n)
    encode contact, generate(contact_n)
    meologit rating i.temp_n i.contact_n || judge:, intmethod(laplace)

    Nested levels are written outermost first (``|| school: || class:``).
    """
    model, nagq = _model_and_nagq(obj, nagq)
    names = _StataVars()
    parsed = fm.parse(model.formula)
    depvar = names.numeric(parsed.response)
    di = model.frame.fixed_design_info
    indep = _stata_factor_list([t for t in _terms(di) if t[0]], di, names)
    by_level, equations, outer = _blocks_by_level(model), [], None
    for lv in model.levels[::-1]:                            # nested levels: outermost first
        blocks = by_level[lv.name]
        equations += _stata_equation(_stata_level_name(blocks[0].term.group, outer, names), blocks, names)
        outer = blocks[0].term.group
    option = "intmethod(laplace)" if nagq <= 1 else "intpoints(%d)" % nagq
    equations[-1] = _with_option(equations[-1], option)
    if nagq == 0:
        names.notes.append("nagq=0 (lme4's nAGQ = 0: fixed effects and cut points at the joint mode) has no Stata "
                           "equivalent; intmethod(laplace) fits the Laplace maximum")
    if model.sampling is not None:
        names.notes.append("the sampling weights are not written: add [pw=...] and pweight() to the levels")
    command = " ".join(["meologit" if model.link == "logit" else "meoprobit", depvar] + indep + equations)
    return "\n".join(names.prepare + [command] + ["// note: " + n for n in dict.fromkeys(names.notes)])
