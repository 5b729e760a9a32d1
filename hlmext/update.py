"""Refit a model with a changed formula, data or options (lme4's ``update``).

``hlmext.mixedlm``, ``melogit`` and ``mepoisson`` keep how they built a model (the
formula, the data and the options, as a ``ModelCall`` in ``model.call``), so a fit can be
redone with one thing changed. A formula update follows R's ``update.formula``: ``.``
stands for the old response or the old right-hand side, so ``". ~ . - x"`` drops the
term ``x``, ``". ~ . + z"`` adds ``z`` and ``". ~ . - (1 | g)"`` drops a random term
(lme4 syntax); any other formula replaces the old one.
"""
from __future__ import annotations

import inspect
import re

from .exceptions import FormulaError, ModelError
from .formula.grammar import _paren_depths, _split, parse

__all__ = ["ModelCall", "update_formula", "update"]

FIT_OPTIONS = {"mixedlm": ("reml", "maxiter", "cov_type", "cov_kwds"),
               "melogit": ("nagq", "maxiter", "cov_type", "cov_kwds"),
               "mepoisson": ("nagq", "maxiter", "cov_type", "cov_kwds"),
               **{name: ("nagq", "maxiter", "cov_type", "cov_kwds")
                  for name in ("meglm", "meprobit", "mecloglog", "menbreg")},
               "meologit": ("nagq", "maxiter"), "meoprobit": ("nagq", "maxiter")}

#: the functions that build models, by name: ``hlmext.api`` registers mixedlm, melogit and mepoisson
CONSTRUCTORS = {}


class ModelCall:
    """How a model was built: the constructor's name, formula, data and options.

    The data are referenced, not copied, and are left out when the model is pickled
    (``update`` then needs ``data=``).
    """

    def __init__(self, constructor, formula, data, options):
        self.constructor, self.formula, self.data, self.options = constructor, formula, data, dict(options)

    def __getstate__(self):
        return {**self.__dict__, "data": None}

    def __repr__(self):
        return "ModelCall(%s(%r, data, %s))" % (self.constructor, self.formula, self.options)


def remember(model, constructor, formula, data, options):
    """Attach a ``ModelCall`` to ``model`` (as ``model.call``) and return the model."""
    model.call = ModelCall(constructor, formula, data, options)
    return model


def _sides(formula):
    if not isinstance(formula, str):
        raise FormulaError("formula must be a string, got %s" % type(formula).__name__)
    text = re.sub(r"\s", " ", formula).strip()
    depths = _paren_depths(text)
    tildes = [i for i, ch in enumerate(text) if ch == "~" and depths[i] == 0]
    if len(tildes) != 1:
        raise FormulaError("formula %r needs one '~', as in '. ~ . - x' or 'y ~ x + (1 | g)'" % formula)
    return text[:tildes[0]].strip(), text[tildes[0] + 1:].strip()


def _terms(text):
    """[(sign, term)] of the top-level '+'/'-' pieces of a right-hand side."""
    depths = _paren_depths(text)
    out = []
    for n, (sep, a, b) in enumerate(_split(text, depths, 0, len(text), ("+", "-"))):
        term = text[a:b].strip()
        if not term:
            if n == 0 and sep == "":
                continue                       # a leading unary minus, as in "- 1 + x"
            raise FormulaError("missing term after %r in %r" % (sep, text))
        out.append((sep or "+", term))
    return out


def _is_bar(term):
    return term.startswith("(") and term.endswith(")") and "|" in term


def _key(term):
    return re.sub(r"\s", "", term)


def _join(terms):
    text = " ".join("%s %s" % (s, t) for s, t in terms)
    return text[2:] if text.startswith("+ ") else text


def update_formula(old, new):
    """The formula ``new`` with ``.`` standing for the parts of ``old`` (R's ``update.formula``).

    Parameters
    ----------
    old : str
        The model's formula (lme4 or Stata syntax).
    new : str
        ``". ~ . - x"``, ``". ~ . + z"``, ``"log_y ~ ."``, or a whole formula. In Stata
        syntax only the fixed part can be changed this way.

    Returns
    -------
    str

    Examples
    --------
    >>> update_formula("gcse ~ lrt + schavg + (lrt | school)", ". ~ . - schavg")
    'gcse ~ lrt + (lrt | school)'
    >>> update_formula("gcse ~ lrt + (lrt | school)", ". ~ . - (lrt | school) + (1 | school)")
    'gcse ~ lrt + (1 | school)'
    >>> update_formula("gcse ~ lrt || school: lrt", ". ~ . + C(sex)")
    'gcse ~ lrt + C(sex) || school: lrt'
    """
    old_lhs, old_rhs = _sides(old)
    new_lhs, new_rhs = _sides(new)
    lhs = old_lhs if new_lhs in ("", ".") else new_lhs
    pieces = _terms(new_rhs)
    if not any(t == "." for _, t in pieces):
        return "%s ~ %s" % (lhs, new_rhs)
    stata = parse(old).syntax == "stata"
    tail = ""
    if stata:
        depths = _paren_depths(old_rhs)
        cut = min(i for i in range(len(old_rhs) - 1) if old_rhs.startswith("||", i) and depths[i] == 0)
        fixed_end = next((i for i in range(cut) if old_rhs[i] == "," and depths[i] == 0), cut)
        old_rhs, tail = old_rhs[:fixed_end].strip(), " " + old_rhs[fixed_end:].strip()
    old_terms = _terms(old_rhs)
    terms = []
    for sign, term in pieces:
        if term == ".":
            terms.extend(t for t in old_terms if t not in terms)
            continue
        if stata and _is_bar(term):
            raise FormulaError("%r: with a Stata-syntax formula only the fixed part can be updated with '.'; "
                               "give the whole new formula" % term)
        same = [i for i, (s, t) in enumerate(terms) if s == "+" and _key(t) == _key(term)]
        if sign == "+":
            if not same:
                terms.append((sign, term))
        elif same:
            del terms[same[0]]
        elif _is_bar(term):
            raise FormulaError("cannot remove %s: the formula's random terms are %s" % (
                term, ", ".join(t for _, t in old_terms if _is_bar(t)) or "none written with bars"))
        else:
            terms.append((sign, term))       # patsy removes it ("a*b - a:b", "- 1")
    fixed = [t for t in terms if not _is_bar(t[1])]
    bars = [t for t in terms if _is_bar(t[1])]
    if not any(s == "+" for s, _ in fixed):
        fixed.insert(0, ("+", "1"))
    return "%s ~ %s%s" % (lhs, _join(fixed + bars), tail)


def _fit_options(results):
    """The options of the fit that made ``results``: reml or nagq, and the robust covariance."""
    out = {"nagq": results.nagq} if hasattr(results, "nagq") else {"reml": results.reml}
    if results.cov_type != "nonrobust":
        kwds = {"correction": re.search(r"CR\d", results.cov_type).group(0)}
        if any("of the fixed effects" in note for note in getattr(results, "notes", [])):
            kwds["scope"] = "fixed"
        out.update(cov_type="cluster", cov_kwds=kwds)
    return out


def update(results, formula=None, data=None, **changes):
    """Refit ``results``' model with a new formula, new data or changed options (lme4's ``update``).

    Every option not named keeps its value in the original model: the constructor's
    (``cov``, ``weights``, ``pweights``, ``trials``, ``offset``, ...; the family follows
    the constructor) and the fit's (``reml`` or ``nagq``, a robust ``cov_type``). Weights,
    trials or offsets given as arrays belong to the original rows: with new data, give them
    again (or by column name). The new model's formula is evaluated with NumPy as ``np``;
    functions of the caller's own namespace are not visible to it.

    Parameters
    ----------
    results : MixedResults or GLMMResults
        A fit of a model built by ``hlmext.mixedlm``, ``melogit`` or ``mepoisson``.
    formula : str, optional
        A new formula, with ``.`` for the old parts (``update_formula``).
    data : pandas.DataFrame, optional
        New data (default: the data the model was built from).
    **changes
        Constructor or fit keywords to change, e.g. ``reml=False``, ``nagq=7``, ``cov="independent"``.

    Returns
    -------
    MixedResults or GLMMResults
    """
    model = results.model
    call = getattr(model, "call", None)
    if call is None:
        raise ModelError("update() needs a model built by hlmext.mixedlm, melogit or mepoisson (it keeps the "
                         "formula and options); build the new model with one of them")
    constructor = CONSTRUCTORS[call.constructor]
    ctor_options = [p for p in inspect.signature(constructor).parameters if p not in ("formula", "data")
                    and inspect.signature(constructor).parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
    fit_options = FIT_OPTIONS[call.constructor]
    unknown = sorted(set(changes) - set(ctor_options) - set(fit_options))
    if unknown:
        other = "nagq" if "reml" in unknown and "nagq" in fit_options else \
            "reml" if "nagq" in unknown and "reml" in fit_options else None
        raise TypeError("update() got an unexpected keyword argument %r%s; it takes formula, data, the options "
                        "of %s (%s) and of fit (%s)" % (
                            unknown[0], " (did you mean %r?)" % other if other else "", call.constructor,
                            ", ".join(ctor_options), ", ".join(fit_options)))
    if data is None:
        data = call.data
        if data is None:
            raise ModelError("this model's data were not kept (the model was unpickled): pass data=")
    new_formula = call.formula if formula is None else update_formula(call.formula, formula)
    options = {**call.options, **{k: v for k, v in changes.items() if k in ctor_options}}
    fit_kw = _fit_options(results)
    fit_kw.update({k: v for k, v in changes.items() if k in fit_options})
    if "reml" in changes and "cov_kwds" not in changes and "cov_kwds" in fit_kw:
        fit_kw["cov_kwds"].pop("scope", None)            # the default scope of the new method
    return constructor(new_formula, data, **options).fit(**fit_kw)
