"""The Stata command of a mixed logit or Poisson model (``melogit``, ``mepoisson``), with the
integration method of the fit: the random part is written as for ``mixed``
(``hlmext.output.emit``), the options say the trials, offset or exposure and the quadrature.
"""
from __future__ import annotations

from ..formula import grammar as fm
from .emit import (_StataVars, _blocks_by_level, _stata_equation, _stata_factor_list, _stata_level_name, _terms,
                   _with_option)

_COMMANDS = {"MixedLogit": "melogit", "MixedPoisson": "mepoisson"}


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
    """The Stata command that fits the same mixed logit or Poisson model.

    Parameters
    ----------
    obj : MixedLogit, MixedPoisson or their fit
        A model built from a formula (``hlmext.melogit``, ``hlmext.mepoisson``), or its fit.
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
    """
    model = obj
    if not hasattr(obj, "design") and hasattr(obj, "model"):
        model = obj.model
        if nagq is None:
            nagq = obj.nagq
    command = _COMMANDS.get(type(model).__name__) or _COMMANDS.get(type(model).__mro__[1].__name__)
    if command is None:
        raise ValueError("to_stata of a generalized model supports melogit and mepoisson models, not %s"
                         % type(model).__name__)
    if getattr(model, "frame", None) is None or getattr(model, "formula", None) is None:
        raise ValueError("code emission needs a model built from a formula (hlmext.melogit, hlmext.mepoisson); a "
                         "model built from arrays has no variable names to write")
    if nagq is None:
        nagq = 1 if model.nested else 7
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
    options = []
    for role, option in (("trials", "binomial(%s)"), ("offset", "offset(%s)"), ("exposure", "exposure(%s)")):
        if model.columns.get(role):
            options.append(option % model.columns[role])
    if model.has_trials and not model.columns.get("trials"):
        options.append("binomial(trials)")
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

