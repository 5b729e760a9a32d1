"""The same generalized mixed model as a Stata command (``melogit``, ``mepoisson``, ``meprobit``,
``mecloglog``, ``menbreg``, ``meglm ..., family() link()``) or an R call (lme4's ``glmer`` and
``glmer.nb``, glmmTMB for the families whose dispersion glmer does not estimate by maximum
likelihood), with the integration method of the fit: the random part is written as for
``mixed`` and ``lmer`` (``hlmext.output.emit``), the options say the family, trials, offset or
exposure and the quadrature. A family or link the other program does not have is refused with
its name.
"""
from __future__ import annotations

from ..formula import grammar as fm
from ..models import links as L
from ..models.quadrature import MAX_NODES
from .emit import (_StataVars, _blocks_by_level, _r_expr, _stata_equation, _stata_factor_list, _stata_level_name,
                   _terms, _with_option, r_random_terms)

_COMMANDS = {"MixedLogit": "melogit", "MixedPoisson": "mepoisson"}
#: Stata's shortcut commands of meglm's family and link
_SHORTCUTS = {(L.BINOMIAL, L.LOGIT): "melogit", (L.BINOMIAL, L.PROBIT): "meprobit",
              (L.BINOMIAL, L.CLOGLOG): "mecloglog", (L.POISSON, L.LOG): "mepoisson", (L.NB2, L.LOG): "menbreg",
              (L.NB1, L.LOG): "menbreg"}
#: meglm's family() and link() names (Stata has no inverse, sqrt, cauchit or inverse-square links)
_STATA_FAMILIES = {L.BINOMIAL: "binomial", L.POISSON: "poisson", L.GAMMA: "gamma", L.GAUSSIAN: "gaussian"}
_STATA_LINKS = {L.LOGIT: "logit", L.PROBIT: "probit", L.CLOGLOG: "cloglog", L.LOG: "log", L.IDENTITY: "identity"}
#: R's family objects
_R_FAMILIES = {L.BINOMIAL: "binomial", L.POISSON: "poisson", L.GAMMA: "Gamma", L.GAUSSIAN: "gaussian",
               L.INVGAUSS: "inverse.gaussian"}
_R_DEFAULT_LINK = {L.BINOMIAL: L.LOGIT, L.POISSON: L.LOG, L.GAMMA: L.INVERSE, L.GAUSSIAN: L.IDENTITY,
                   L.INVGAUSS: L.INVERSE_SQUARED}


def _spec(model):
    """The model's family and link (``links.FamilySpec``)."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec
    name = type(model).__name__ if type(model).__name__ in _COMMANDS else type(model).__mro__[1].__name__
    if name not in _COMMANDS:
        raise ValueError("code emission of a generalized model supports melogit, mepoisson, meglm and menbreg "
                         "models, not %s" % type(model).__name__)
    return L.FamilySpec(L.BINOMIAL, L.LOGIT) if name == "MixedLogit" else L.FamilySpec(L.POISSON, L.LOG)


def _model_and_nagq(obj, nagq):
    model = obj
    if not hasattr(obj, "design") and hasattr(obj, "model"):
        model = obj.model
        if nagq is None:
            nagq = obj.nagq
    spec = _spec(model)
    if getattr(model, "frame", None) is None or getattr(model, "formula", None) is None:
        raise ValueError("code emission needs a model built from a formula (hlmext.melogit, hlmext.meglm, ...); a "
                         "model built from arrays has no variable names to write")
    if nagq is None:
        nagq = 1 if model.nested or 7 ** model.levels[0].q > MAX_NODES else 7
    return model, spec, int(nagq)


def integration_options(nagq):
    """Stata's options for a fit with ``nagq`` points: ``intmethod(laplace)`` for 0 and 1,
    ``intmethod(mvaghermite) intpoints(k)`` otherwise.

    Examples
    --------
    >>> integration_options(7), integration_options(1)
    (['intmethod(mvaghermite)', 'intpoints(7)'], ['intmethod(laplace)'])
    """
    if nagq <= 1:
        return ["intmethod(laplace)"]
    return ["intmethod(mvaghermite)", "intpoints(%d)" % nagq]


def glmm_to_stata(obj, nagq=None) -> str:
    """The Stata command that fits the same generalized mixed model.

    The family and link give the command: ``melogit``, ``meprobit``, ``mecloglog``,
    ``mepoisson``, ``menbreg`` (``dispersion(constant)`` for NB1), else
    ``meglm ..., family() link()`` (Gamma, Gaussian, binomial with the log link, Poisson with
    the identity link). Stata has no inverse Gaussian family and no inverse, square-root,
    inverse-square or Cauchit link: those models raise ValueError.

    Parameters
    ----------
    obj : MixedLogit, MixedPoisson, MixedFamily or their fit
        A model built from a formula (``hlmext.melogit``, ``hlmext.meglm``, ...), or its fit.
    nagq : int, optional
        The quadrature to write; default the fit's (a results object), else 7 for one level
        and 1 (Laplace) for several, as ``fit()``.

    Returns
    -------
    str
        Preparation lines if needed, the command, and ``// note:`` lines for what Stata
        cannot express exactly (``nagq=0``, lme4's estimator, has no Stata equivalent).

    Examples
    --------
    >>> import hlmext
    >>> cbpp = hlmext.datasets.load("cbpp")
    >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit(nagq=7)
    >>> print(glmm_to_stata(res))
    melogit incidence i.period || herd:, binomial(size) intmethod(mvaghermite) intpoints(7)
    >>> ticks = hlmext.datasets.load("grouseticks")
    >>> print(glmm_to_stata(hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)", ticks, dispersion="constant"), nagq=1))
    menbreg TICKS cHEIGHT || BROOD:, dispersion(constant) intmethod(laplace)
    """
    model, spec, nagq = _model_and_nagq(obj, nagq)
    command, family_options = _stata_family(model, spec)
    names = _StataVars()
    parsed = fm.parse(model.formula)
    di = model.frame.fixed_design_info
    terms = _terms(di)
    head = " ".join([command, names.numeric(parsed.response)] + _stata_factor_list([t for t in terms if t[0]],
                                                                                 di, names))
    by_level = _blocks_by_level(model)
    d = model.design
    equations = []
    for lv in d.levels[d.n_chain:]:                          # crossed: || _all: R.x
        group = by_level[lv.name][0].term.group
        equations.append("|| _all: R.%s" % (group[0] if len(group) == 1 else _stata_level_name(group, None, names)))
        if lv.q > 1 or len(by_level[lv.name]) > 1:
            names.notes.append("crossed level %r: Stata's R. notation has random intercepts only; the random "
                               "slopes are left out" % lv.name)
    outer = None
    for lv in d.levels[:d.n_chain][::-1]:                    # nested: outermost first
        group = by_level[lv.name][0].term.group
        equations += _stata_equation(_stata_level_name(group, outer, names), by_level[lv.name], names)
        outer = group
    if not any(not f for f, _ in terms):
        head += ", noconstant"
    options = list(family_options)
    for role, option in (("offset", "offset(%s)"), ("exposure", "exposure(%s)")):
        if model.columns.get(role):
            options.append(option % model.columns[role])
    if model.has_trials and not model.columns.get("trials"):
        names.notes.append("the trials were given as an array: store them as the variable trials")
    if not (model.columns.get("offset") or model.columns.get("exposure")) and model.offset.any():
        names.notes.append("the offset or exposure was given as an array: add offset() with it as a variable")
    options += integration_options(nagq)
    if nagq == 0:
        names.notes.append("nagq=0 (lme4's nAGQ = 0: fixed effects in the penalized IRLS) has no Stata "
                           "equivalent; intmethod(laplace) fits the Laplace maximum")
    if model.sampling is not None:
        names.notes.append("the sampling weights are not written: add [pw=...] and pweight() to the levels")
    equations[-1] = _with_option(equations[-1], " ".join(options))
    return "\n".join(names.prepare + [" ".join([head] + equations)] + ["// note: " + n for n in
                                                                        dict.fromkeys(names.notes)])


def _stata_family(model, spec):
    """(command, options) of the family and link: a shortcut command with its ``binomial()`` or
    ``dispersion()`` option, or ``meglm`` with ``family()`` and ``link()``."""
    trials = (model.columns.get("trials") or "trials") if model.has_trials else None
    command = _SHORTCUTS.get((spec.family, spec.link))
    if command is not None:
        if spec.family == L.NB1:
            return command, ["dispersion(constant)"]
        return command, ["binomial(%s)" % trials] if trials else []
    if spec.family not in _STATA_FAMILIES:
        raise ValueError("Stata's meglm has no %s family; this model has no Stata command" % spec.name)
    if spec.link not in _STATA_LINKS:
        raise ValueError("Stata's meglm has no %s link (its links: %s); this model has no Stata command"
                         % (spec.link_name, ", ".join(_STATA_LINKS.values())))
    family = _STATA_FAMILIES[spec.family]
    if spec.family == L.BINOMIAL:
        family = "binomial %s" % trials if trials else "bernoulli"
    return "meglm", ["family(%s)" % family, "link(%s)" % _STATA_LINKS[spec.link]]


def glmm_to_lme4(obj, nagq=None, data="df") -> str:
    """The R call that fits the same generalized mixed model.

    lme4's ``glmer`` for the binomial and Poisson families (and the inverse Gaussian, with a
    note: glmer's dispersion is a moment estimate), ``glmer.nb`` for the NB2 negative
    binomial, glmmTMB for NB1 (``nbinom1``) and for the Gamma and Gaussian families, whose
    dispersion glmer does not estimate by maximum likelihood. Binomial counts are written
    ``cbind(successes, trials - successes)``, offsets and exposures as ``offset()`` terms.

    Parameters
    ----------
    obj : MixedLogit, MixedPoisson, MixedFamily or their fit
        A model built from a formula, or its fit.
    nagq : int, optional
        The quadrature to write; default the fit's (a results object), else that of ``fit()``.
        glmer takes ``nAGQ > 1`` for one scalar random effect only and glmmTMB fits by the
        Laplace approximation only: otherwise a note says the call is the Laplace fit.
    data : str
        Name of the R data frame.

    Returns
    -------
    str
        The call, and ``# note:`` lines for what R cannot express exactly.

    Examples
    --------
    >>> import hlmext, statsmodels.api as sm
    >>> cbpp = hlmext.datasets.load("cbpp")
    >>> print(glmm_to_lme4(hlmext.meprobit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size"), data="cbpp"))
    glmer(cbind(incidence, size - incidence) ~ factor(period) + (1 | herd), data = cbpp, family = binomial(link = "probit"), nAGQ = 7)
    >>> ticks = hlmext.datasets.load("grouseticks")
    >>> print(glmm_to_lme4(hlmext.menbreg("TICKS ~ cHEIGHT + (1 | BROOD)", ticks, dispersion="constant")))
    glmmTMB(TICKS ~ cHEIGHT + (1 | BROOD), data = df, family = nbinom1)
    # note: glmmTMB fits by the Laplace approximation only, not 7-point adaptive quadrature
    """
    model, spec, nagq = _model_and_nagq(obj, nagq)
    notes = []
    parsed = fm.parse(model.formula)
    response = _r_expr(parsed.response, notes)
    if model.has_trials:
        trials = model.columns.get("trials")
        if not trials:
            trials = "trials"
            notes.append("the trials were given as an array: store them as the column trials of %s" % data)
        response = "cbind(%s, %s - %s)" % (response, _r_expr(trials, notes), response)
    pieces = [_r_expr(parsed.fixed, notes)] + r_random_terms(model, notes)
    if model.columns.get("offset"):
        pieces.append("offset(%s)" % _r_expr(model.columns["offset"], notes))
    if model.columns.get("exposure"):
        pieces.append("offset(log(%s))" % _r_expr(model.columns["exposure"], notes))
    if not (model.columns.get("offset") or model.columns.get("exposure")) and model.offset.any():
        notes.append("the offset or exposure was given as an array: add offset(<column>) to the formula")
    function, options = _r_family(spec, notes)
    one_scalar = not model.nested and model.levels[0].q == 1
    if function == "glmmTMB":
        if nagq != 1:
            notes.append("glmmTMB fits by the Laplace approximation only, not %s"
                         % ("nagq=0" if nagq == 0 else "%d-point adaptive quadrature" % nagq))
    elif nagq == 0 or (nagq > 1 and one_scalar):
        options.append("nAGQ = %d" % nagq)
    elif nagq > 1:
        notes.append("glmer takes nAGQ > 1 for a single scalar random effect only; this call is the Laplace "
                     "fit (this fit used %d-point adaptive quadrature)" % nagq)
    if function != "glmmTMB" and (nagq == 1 or (nagq > 1 and not one_scalar)) and not _canonical(spec):
        notes.append("glmer's Laplace approximation with a non-canonical link uses the expected weights of its "
                     "IRLS, so its log-likelihood differs slightly from this fit's; glmmTMB(..., family = %s) "
                     "computes the same approximation" % ("nbinom2" if spec.family == L.NB2 else options[0][9:]))
    if model.sampling is not None:
        notes.append("R's mixed models have no sampling weights (a pseudo-likelihood); this call is unweighted; "
                     "Stata's me-commands fit the weighted model (to_stata())")
    call = "%s(%s ~ %s, data = %s%s)" % (function, response, " + ".join(pieces), data,
                                        "".join(", " + o for o in options))
    return "\n".join([call] + ["# note: " + n for n in dict.fromkeys(notes)])


def _r_family(spec, notes):
    """(function, [family option]) of the R call."""
    if spec.family == L.NB2:
        return "glmer.nb", []
    if spec.family == L.NB1:
        return "glmmTMB", ["family = nbinom1"]
    name, link = _R_FAMILIES[spec.family], spec.link_name
    family = name if spec.link == _R_DEFAULT_LINK[spec.family] else '%s(link = "%s")' % (name, link)
    if spec.family in (L.GAMMA, L.GAUSSIAN):
        return "glmmTMB", ["family = " + family]
    if spec.family == L.INVGAUSS:
        notes.append("glmer's inverse Gaussian dispersion is a moment estimate, not the maximum-likelihood one "
                     "of this fit: its log-likelihood and standard errors differ")
    return "glmer", ["family = " + family]


def _canonical(spec):
    """Whether the link is the family's canonical one (glmer's Laplace is then the exact one)."""
    return (spec.family, spec.link) in ((L.BINOMIAL, L.LOGIT), (L.POISSON, L.LOG), (L.GAUSSIAN, L.IDENTITY),
                                        (L.GAMMA, L.INVERSE), (L.INVGAUSS, L.INVERSE_SQUARED))
