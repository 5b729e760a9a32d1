"""The same model as an lme4 call or a Stata command (code emission).

``to_lme4(model)`` writes the ``lmer(...)`` call and ``to_stata(model)`` the ``mixed``
command that fit the same linear mixed model as a ``LinearMixed`` built from a formula,
so that a fit can be checked in R or Stata, or a script ported. The structure is read
from the model itself: the parsed random terms with the covariance structures actually
used (``model.frame.random``), the nesting and crossing found in the data
(``model.levels``) and patsy's description of the fixed part (whether a variable is
numeric or categorical, and which level is the reference).

Lines that prepare variables (Stata's ``generate``, ``encode`` and ``egen``) come before
the command; what has no exact equivalent is written after it as comment lines
(``# note:`` in R, ``// note:`` in Stata), each saying what was written instead.

Dictionary (lme4 | Stata | hlmext):

- ``(x | g)`` | ``|| g: x, covariance(unstructured)`` | ``(x | g)``
- ``(x || g)`` | ``|| g: x, covariance(independent)`` | ``(x || g)`` or ``|| g: x``
- ``(1 | a/b)`` | ``|| a: || b:`` | either
- ``(1 | a) + (1 | b)`` crossed | ``|| _all: R.b || a:`` | ``(1 | a) + (1 | b)``
- ``factor(x)`` | ``i.x`` | ``C(x)``; ``a:b`` | ``c.a#c.b``; ``a*b`` | ``a##b``
"""
from __future__ import annotations

import itertools
import re

import numpy as np

from ..formula import grammar as fm
from .residual_stata import stata_residuals

__all__ = ["to_lme4", "to_stata"]

_NAME = re.compile(r"[A-Za-z_]\w*\Z")
_C_CALL = re.compile(r"C\(\s*(?:Q\(\s*(['\"])(.+?)\1\s*\)|([A-Za-z_][\w.]*))\s*(?:,\s*(.*))?\)\Z", re.S)
_R_FUNCS = {"np.log": "log", "np.log10": "log10", "np.log2": "log2", "np.log1p": "log1p", "np.exp": "exp",
            "np.sqrt": "sqrt", "np.abs": "abs", "np.sin": "sin", "np.cos": "cos",
            "numpy.log": "log", "numpy.exp": "exp", "numpy.sqrt": "sqrt"}
_STATA_FUNCS = {"np.log": "ln", "np.log10": "log10", "np.exp": "exp", "np.sqrt": "sqrt", "np.abs": "abs",
                "np.sin": "sin", "np.cos": "cos", "numpy.log": "ln", "numpy.exp": "exp", "numpy.sqrt": "sqrt"}
_STATA_COV = {"unstructured": "unstructured", "independent": "independent", "identity": "identity",
              "exchangeable": "exchangeable"}


# --------------------------------------------------------------------------- input

def _model_and_reml(obj, reml):
    """(LinearMixed, reml) from a model or a fitted results object."""
    model = obj
    if not hasattr(obj, "design") and hasattr(obj, "model"):     # results (or their wrapper)
        model = obj.model
        if reml is None:
            reml = bool(getattr(obj, "reml", True))
    if getattr(model, "frame", None) is None or getattr(model, "formula", None) is None:
        raise ValueError("code emission needs a model built from a formula (hlmext.mixedlm); a model "
                         "built from arrays has no variable names to write")
    from ..models.linear import LinearMixed
    if not isinstance(model, LinearMixed):
        raise ValueError("to_lme4/to_stata support linear mixed models (LinearMixed), not %s"
                         % type(model).__name__)
    return model, (True if reml is None else bool(reml))


def _blocks_by_level(model):
    """{level name: [RandomBlock, ...]} in the order the formula wrote them."""
    out = {}
    for block in model.frame.random:
        out.setdefault(block.term.level, []).append(block)
    return out


def _terms(design_info):
    """[(factors, subterm coding)] of a patsy design, the intercept term included as ()."""
    out = []
    for term, subterms in design_info.term_codings.items():
        out.append((tuple(term.factors), subterms[0] if subterms else None))
    return out


# --------------------------------------------------------------------------- lme4

def _r_expr(text, notes):
    """A patsy expression written in R (``C(x)`` -> ``factor(x)``, ``np.log`` -> ``log``, ...)."""
    out, i = [], 0
    while i < len(text):
        m = re.compile(r"C\(").match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            close = _closing(text, i + 1)
            out.append(_r_factor(text[i:close + 1], notes))
            i = close + 1
            continue
        m = re.compile(r"Q\(\s*(['\"])(.+?)\1\s*\)").match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            out.append("`%s`" % m.group(2))
            i = m.end()
            continue
        m = re.compile(r"(?:np|numpy)\.[A-Za-z_]\w*").match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            name = m.group(0)
            if name in _R_FUNCS:
                out.append(_R_FUNCS[name])
            else:
                out.append(name)
                notes.append("%s has no direct R spelling here; translate it by hand" % name)
            i = m.end()
            continue
        m = re.compile(r"(center|standardize)\(").match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            close = _closing(text, m.end() - 1)
            inner = _r_expr(text[m.end():close], notes)
            out.append("scale(%s%s)" % (inner, ", scale = FALSE" if m.group(1) == "center" else ""))
            i = close + 1
            continue
        if text.startswith("**", i):
            out.append("^")
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _closing(text, open_pos):
    """Position of the parenthesis closing the one at ``open_pos``."""
    depth = 0
    for j in range(open_pos, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j
    raise ValueError("unbalanced parenthesis in %r" % text)


def _r_factor(call, notes):
    """``C(x)`` -> ``factor(x)``; ``C(x, Treatment(reference="b"))`` -> ``relevel(factor(x), ref = "b")``."""
    m = _C_CALL.match(call)
    if not m:
        notes.append("%s: write the factor coding by hand" % call)
        return call
    name = m.group(2) or m.group(3)
    var = name if _NAME.match(name) else "`%s`" % name
    args = (m.group(4) or "").strip()
    if not args:
        return "factor(%s)" % var
    t = re.fullmatch(r"Treatment\(\s*(?:reference\s*=\s*)?(.+?)\s*\)", args)
    if t:
        ref = t.group(1).strip("'\"")
        return 'relevel(factor(%s), ref = "%s")' % (var, ref)
    notes.append("contrast %r of %s: set contrasts(...) in R to match" % (args, name))
    return "factor(%s)" % var


def _r_effects(formula, notes):
    """Random-effects columns of a term for lme4 (the intercept is implicit)."""
    text = _r_expr(formula, notes)
    if text.startswith("1 + "):
        return text[4:]
    return text


def _has_factor(block):
    return any(info.type == "categorical" for info in block.design_info.factor_infos.values())


def to_lme4(model, reml=None, data="df") -> str:
    """The lme4 call that fits the same linear mixed model.

    Parameters
    ----------
    model : LinearMixed or MixedResults
        A model built from a formula (``hlmext.mixedlm``), or its fit.
    reml : bool, optional
        Estimation method: ``REML = FALSE`` is written for ML. Default: the fit's
        method for a results object, else REML (as ``LinearMixed.fit``).
    data : str
        Name of the R data frame.

    Returns
    -------
    str
        ``lmer(...)``, followed by ``# note:`` lines for anything lme4 cannot express
        exactly (exchangeable or multi-column identity covariances, ``||`` on factors).

    Notes
    -----
    The covariance structure of each term is the one the fit used (including a
    ``cov=`` argument): unstructured gives ``(x | g)``, independent ``(x || g)``.
    Nested levels with the same random part are joined with ``/``.
    Whole-number frequency weights (``weights=``) repeat the rows of the data
    (``data = df[rep(seq_len(nrow(df)), df$w), ]``), which fits the same likelihood:
    lme4's own ``weights=`` are precision weights, a different model. lme4 has no
    sampling weights; a note says so.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse")
    >>> print(to_lme4(hlmext.mixedlm("gcse ~ lrt || school: lrt", df, cov="un"), reml=False))
    lmer(gcse ~ lrt + (lrt | school), data = df, REML = FALSE)
    >>> pastes = hlmext.datasets.load("pastes")
    >>> print(to_lme4(hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes), data="pastes"))
    lmer(strength ~ 1 + (1 | batch/cask), data = pastes)
    """
    model, reml = _model_and_reml(model, reml)
    notes = []
    parsed = fm.parse(model.formula)
    response = _r_expr(parsed.response, notes)
    fixed = _r_expr(parsed.fixed, notes)
    pieces = r_random_terms(model, notes)
    data = _r_weighted_data(model, data, notes)
    call = "lmer(%s ~ %s, data = %s%s)" % (response, " + ".join([fixed] + pieces), data,
                                         "" if reml else ", REML = FALSE")
    return "\n".join([call] + ["# note: " + n for n in dict.fromkeys(notes)])


def r_random_terms(model, notes):
    """The lme4 random-effects terms of a model built from a formula, ``["(x | g)", ...]``
    (nested levels with the same random part joined with ``/``); what lme4 cannot express
    exactly is added to ``notes``."""
    pieces = []
    blocks = list(model.frame.random)
    i = 0
    while i < len(blocks):
        block = blocks[i]
        term = block.term
        run = [block]
        while (i + len(run) < len(blocks) and blocks[i + len(run)].term.group[:-1] == run[-1].term.group
               and len(blocks[i + len(run)].term.group) == len(run[-1].term.group) + 1
               and blocks[i + len(run)].term.formula == term.formula
               and blocks[i + len(run)].term.cov == term.cov):
            run.append(blocks[i + len(run)])
        if len(run) > 1 and len(term.group) == 1:
            group = "/".join(b.term.group[-1] for b in run)
        else:
            run = [block]
            group = ":".join(term.group)
        effects = _r_effects(term.formula, notes)
        q = len(block.names)
        cov = term.cov
        bar = "|"
        if q > 1 and cov == "independent":
            bar = "||"
            if _has_factor(block):
                notes.append("lme4's '||' does not separate the columns of a factor (%s); expand it to "
                             "numeric dummies to get independent effects" % effects)
        elif q > 1 and cov == "identity":
            bar = "||"
            notes.append("level %r: lme4 has no identity covariance for several columns (equal "
                         "variances); written as independent (||)" % term.level)
        elif q > 1 and cov == "exchangeable":
            notes.append("level %r: lme4 has no exchangeable covariance (glmmTMB has cs()); written as "
                         "unstructured" % term.level)
        pieces.append("(%s %s %s)" % (effects, bar, group))
        i += len(run)
    return pieces


def _weight_names(model):
    """Role -> variable name of the model's weights (a placeholder for weights given as arrays),
    and the notes that placeholders need."""
    columns = getattr(model, "weight_columns", {})
    names, notes = {}, []
    for role, column in columns.items():
        if column is None:
            column = "fweight" if role == "weights" else "pw_" + re.sub(r"\W+", "_", role[3:]).strip("_")
            notes.append("the %s were given as an array: store them as the variable %s"
                         % ("frequency weights" if role == "weights" else "sampling weights of %r" % role[3:],
                            column))
        names[role] = column
    return names, notes


def _r_weighted_data(model, data, notes):
    """The data argument of lmer: rows repeated by whole-number frequency weights."""
    names, placeholder_notes = _weight_names(model)
    if getattr(model, "sampling", None) is not None:
        notes.append("lme4 has no sampling weights (a pseudo-likelihood); this call is unweighted; "
                     "Stata's mixed fits the weighted model (to_stata())")
        return data
    if model.design.weights is None:
        return data
    w = model.design.weights
    if not np.all(w == np.round(w)):
        notes.append("lme4 has no frequency weights (its weights= are precision weights, which change sigma "
                     "and the log-likelihood), and these are not whole numbers; this call is unweighted")
        return data
    notes.extend(placeholder_notes)
    return "%s[rep(seq_len(nrow(%s)), %s$%s), ]" % (data, data, data, names["weights"])


# --------------------------------------------------------------------------- Stata

class _StataVars:
    """Stata names for patsy factors, and the lines that create the ones needing it."""

    def __init__(self):
        self.prepare = []
        self.notes = []
        self._made = {}

    def _new_name(self, text):
        """A new valid Stata name (at most 32 characters) for an expression."""
        text = re.sub(r"(?<![\w.])(?:np|numpy)\.|(?<![\w.])I\(", "", text)
        base = re.sub(r"\W+", "_", text).strip("_")[:28] or "v"
        if not re.match(r"[A-Za-z_]", base):
            base = "v_" + base
        name, k = base, 1
        while name in self._made.values():
            k += 1
            name = "%s_%d" % (base, k)
        return name

    def numeric(self, code):
        """Stata variable holding the numeric expression ``code`` (generated if needed)."""
        m = re.fullmatch(r"Q\(\s*(['\"])(.+?)\1\s*\)", code)
        if m:
            code = m.group(2)
        if _NAME.match(code):
            return code
        if code in self._made:
            return self._made[code]
        expr, ok = self._stata_expr(code)
        name = self._new_name(code)
        self._made[code] = name
        self.prepare.append("generate %s = %s" % (name, expr))
        if not ok:
            self.notes.append("check the generated expression for %r: it uses functions without a "
                              "Stata equivalent" % code)
        return name

    @staticmethod
    def _stata_expr(code):
        ok = True
        text = code
        while True:
            m = re.search(r"(?<![\w.])I\(", text)
            if not m:
                break
            close = _closing(text, m.end() - 1)
            text = text[:m.start()] + "(" + text[m.end():close] + ")" + text[close + 1:]
        for py, st in sorted(_STATA_FUNCS.items(), key=lambda kv: -len(kv[0])):
            text = re.sub(r"(?<![\w.])%s\(" % re.escape(py), st + "(", text)
        if re.search(r"(?<![\w.])(np|numpy)\.|center\(|standardize\(", text):
            ok = False
        text = text.replace("**", "^")
        return text, ok

    def factor(self, code, categories, suffixes):
        """Stata factor-variable operator and name for a categorical patsy factor, e.g. ``ib2.x``."""
        m = _C_CALL.match(code)
        name = (m.group(2) or m.group(3)) if m else code
        args = ((m.group(4) or "") if m else "").strip()
        if not _NAME.match(name):
            name = self.numeric(name)
        cats = list(categories or ())
        strings = any(isinstance(c, str) for c in cats)
        if strings:
            key = ("encode", name)
            if key not in self._made:
                self._made[key] = self._new_name(name + "_n")
                self.prepare.append("encode %s, generate(%s)" % (name, self._made[key]))
            var = self._made[key]
        else:
            var = name
        if args and not re.fullmatch(r"Treatment(\(.*\))?", args):
            self.notes.append("contrast %r of %s has no Stata factor-variable equivalent; written with "
                              "Stata's indicator (treatment) coding" % (args, name))
            return "i." + var
        labels = [s[1:-1] for s in suffixes]
        if all(not s.startswith("T.") for s in labels) and len(labels) == len(cats):
            return "ibn." + var                                 # full-rank coding (no intercept)
        present = {s[2:] if s.startswith("T.") else s for s in labels}
        ref = [c for c in cats if str(c) not in present]
        if not ref or ref[0] == cats[0]:
            return "i." + var
        code_of = (cats.index(ref[0]) + 1) if strings else ref[0]
        if isinstance(code_of, float) and code_of.is_integer():
            code_of = int(code_of)
        if not isinstance(code_of, int) and not strings:
            self.notes.append("reference level %r of %s is not an integer; recode it" % (ref[0], name))
            return "i." + var
        return "ib%s.%s" % (code_of, var)


def _stata_factor_list(terms, design_info, names):
    """Stata varlist of patsy terms (no intercept), recombining full factorials into ``##``."""
    ops = {}
    for factors, sub in terms:
        for f in factors:
            if f in ops:
                continue
            info = design_info.factor_infos[f]
            if info.type == "categorical":
                suffixes = sub.contrast_matrices[f].column_suffixes if f in sub.contrast_matrices else []
                ops[f] = ("i", names.factor(f.code, info.categories, suffixes))
            else:
                ops[f] = ("c", names.numeric(f.code))
    keys = [frozenset(factors) for factors, _ in terms]
    position = {k: i for i, k in enumerate(keys)}
    order = {k: factors for k, (factors, _) in zip(keys, terms)}
    consumed, starts = set(), {}
    for key in sorted(keys, key=len, reverse=True):
        if len(key) < 2 or key in consumed:
            continue
        subsets = [frozenset(c) for r in range(1, len(key)) for c in itertools.combinations(order[key], r)]
        if all(s in position and s not in consumed for s in subsets):
            consumed.update(subsets + [key])
            starts[min(position[s] for s in subsets + [key])] = key
    out = []
    for i, key in enumerate(keys):
        if i in starts:
            out.append("##".join(_op(ops[f], True) for f in order[starts[i]]))
        elif key not in consumed:
            factors = order[key]
            out.append("#".join(_op(ops[f], len(factors) > 1) for f in factors))
    return out


def _op(op, in_interaction):
    kind, text = op
    return ("c." + text) if kind == "c" and in_interaction else text


def _stata_level_name(group, outer_group, names):
    """Stata's name of a nested level: the last column when the grouping extends its parent's."""
    if len(group) == 1:
        return group[0]
    if outer_group is not None and group[:-1] == outer_group:
        return group[-1]
    name = names._new_name("_".join(group))
    names.prepare.append("egen %s = group(%s)" % (name, " ".join(group)))
    return name


def _stata_equation(level_name, blocks, names):
    """``|| level: vars, options`` for each random term of one level."""
    eqs = []
    for block in blocks:
        di = block.design_info
        terms = _terms(di)
        has_cons = any(not f for f, _ in terms)
        vars_ = _stata_factor_list([t for t in terms if t[0]], di, names)
        if any(info.type == "categorical" for info in di.factor_infos.values()):
            names.notes.append("level %r: Stata does not take factor variables in a random-effects "
                               "equation; create indicators (tabulate x, generate(x_)) and list them"
                               % block.term.level)
        options = []
        if len(block.names) > 1:
            options.append("covariance(%s)" % _STATA_COV[block.term.cov])
        if not has_cons:
            options.append("noconstant")
        eq = "|| %s:%s" % (level_name, (" " + " ".join(vars_)) if vars_ else "")
        if options:
            eq += ", " + " ".join(options)
        eqs.append(eq)
    return eqs


def _with_option(equation, option):
    """``equation`` with one more option after its comma."""
    return equation + (" " if ", " in equation.split("||")[-1] else ", ") + option


def to_stata(model, reml=None) -> str:
    """The Stata ``mixed`` command that fits the same linear mixed model.

    Parameters
    ----------
    model : LinearMixed or MixedResults
        A model built from a formula (``hlmext.mixedlm``), or its fit.
    reml : bool, optional
        ``reml`` or ``mle`` option. Default: the fit's method for a results object,
        else REML (as ``LinearMixed.fit``).

    Returns
    -------
    str
        Preparation lines if needed (``generate`` for transformed variables,
        ``encode`` for string factors, ``egen ... = group()`` for a grouping by a
        combination of columns), the ``mixed`` command, and ``// note:`` lines for what
        Stata cannot express exactly.

    Notes
    -----
    ``C(x)`` becomes ``i.x`` (``ib#.x`` for another reference level, ``ibn.x`` without
    an intercept), an interaction ``a:b`` becomes ``c.a#c.b`` (``i.x#c.z`` with a
    factor), and a full factorial ``a*b`` becomes ``a##b``. Nested levels are written
    outermost first (``|| district: || school:``); crossed levels as
    ``|| _all: R.b`` before the nested ones (random intercepts only: Stata's ``R.``
    notation has no slopes). Several terms on one grouping become repeated equations
    (``|| g: x || g: z, noconstant``), Stata's block-diagonal covariance.
    Frequency weights become ``[fw=w]``; sampling weights ``[pw=w]`` for the
    observations, ``pweight(v)`` on each weighted level and ``pwscale()``, fitted by
    ``mle`` (a pseudo-likelihood has no REML).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse")
    >>> print(to_stata(hlmext.mixedlm("gcse ~ C(schgend) * lrt + (lrt | school)", df), reml=False))
    mixed gcse i.schgend##c.lrt || school: lrt, covariance(unstructured) mle
    >>> print(to_stata(hlmext.mixedlm("diameter ~ 1 + (1 | plate) + (1 | sample)",
    ...                               hlmext.datasets.load("penicillin"))))
    mixed diameter || _all: R.sample || plate:, reml
    """
    model, reml = _model_and_reml(model, reml)
    frame = model.frame
    parsed = fm.parse(model.formula)
    names = _StataVars()
    depvar = names.numeric(parsed.response)
    di = frame.fixed_design_info
    terms = _terms(di)
    has_cons = any(not f for f, _ in terms)
    indep = _stata_factor_list([t for t in terms if t[0]], di, names)
    head = "mixed " + " ".join([depvar] + indep)
    weight_names, weight_notes = _weight_names(model)
    names.notes.extend(weight_notes)
    sampling = getattr(model, "sampling", None)
    if sampling is not None:
        head += " [pw=%s]" % weight_names["pw:obs"] if "pw:obs" in weight_names else ""
    elif model.design.weights is not None:
        head += " [fw=%s]" % weight_names["weights"]
        if not np.all(model.design.weights == np.round(model.design.weights)):
            names.notes.append("Stata's frequency weights must be whole numbers; these are not")
    if not has_cons:
        head += ", noconstant"
    by_level = _blocks_by_level(model)
    d = model.design
    equations = []
    for lv in d.levels[d.n_chain:]:                          # crossed: || _all: R.x
        blocks = by_level[lv.name]
        group = blocks[0].term.group
        var = group[0] if len(group) == 1 else _stata_level_name(group, None, names)
        if lv.q > 1 or len(blocks) > 1:
            names.notes.append("crossed level %r: Stata's R. notation has random intercepts only; the "
                               "random slopes (%s) are left out" % (lv.name, ", ".join(lv.names[1:] or lv.names)))
        equations.append("|| _all: R.%s" % var)
    outer = None
    for lv in d.levels[:d.n_chain][::-1]:                    # nested: outermost first
        blocks = by_level[lv.name]
        group = blocks[0].term.group
        level_eqs = _stata_equation(_stata_level_name(group, outer, names), blocks, names)
        if sampling is not None and "pw:" + lv.name in weight_names:
            level_eqs[-1] = _with_option(level_eqs[-1], "pweight(%s)" % weight_names["pw:" + lv.name])
        equations += level_eqs
        outer = group
    options = ["mle" if sampling is not None or not reml else "reml"]
    if getattr(model, "residual", None) is not None:
        extra, option, notes = stata_residuals(model)
        equations += extra
        options[:0] = [option] if option else []
        names.notes.extend(notes)
    if sampling is not None and sampling.pwscale:
        options.append("pwscale(%s)" % sampling.pwscale)
    equations[-1] = _with_option(equations[-1], " ".join(options))
    command = " ".join([head] + equations)
    return "\n".join(names.prepare + [command] + ["// note: " + n for n in dict.fromkeys(names.notes)])
