"""Unknown keyword arguments: a ``TypeError`` that names the keyword and the right one.

A misspelt keyword must never be ignored: ``fit(REML=False)`` silently fitting REML is a
wrong answer. Every public function and ``fit`` checks its keywords here: one with ``**kwargs`` calls
``check_keywords`` at its top; one without is decorated with ``@checked``. The error suggests
the keyword meant: an alias from statsmodels, lme4 or Stata vocabulary (``REML``,
``nAGQ``, ``method``), or else the closest allowed name (``difflib``).

Examples
--------
>>> import hlmext
>>> df = hlmext.datasets.load("gcse").query("nstu > 4")
>>> hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(REML=False)
Traceback (most recent call last):
    ...
TypeError: LinearMixed.fit() got an unexpected keyword argument 'REML'; did you mean 'reml'?
"""
from __future__ import annotations

import difflib
import functools
import inspect

_OPTIMIZER = ("hlmext chooses its optimizer itself (L-BFGS-B with Newton refinement, Powell as a fallback); "
              "use maxiter= and start= to steer it")
_NO_REML = ("a mixed logit or Poisson model is fitted by maximum likelihood (nagq= sets the quadrature); "
            "REML is for linear models")
_TO_FIT = "%s belongs to fit(): build the model, then call .fit(%s=...)"

#: keywords of other packages' vocabulary -> what to suggest: the first option that applies
#: of a keyword (when the function takes it), a (keyword, sentence) pair (the sentence when
#: the function takes that keyword) or a sentence
ALIASES = {
    "REML": ("reml", ("formula", _TO_FIT % ("reml", "reml")), ("nagq", _NO_REML)),
    "reml": (("formula", _TO_FIT % ("reml", "reml")), ("nagq", _NO_REML)),
    "nAGQ": ("nagq", ("formula", _TO_FIT % ("nagq", "nagq"))),
    "nagq": (("formula", _TO_FIT % ("nagq", "nagq")),),
    "intpoints": ("nagq", ("formula", _TO_FIT % ("nagq", "nagq"))),
    "method": (("maxiter", _OPTIMIZER),),
    "optimizer": (("maxiter", _OPTIMIZER),),
    "control": (("maxiter", _OPTIMIZER),),
    "maxit": ("maxiter",),
    "max_iter": ("maxiter",),
    "niter": ("maxiter",),
    "iterations": ("maxiter",),
    "verbose": ("disp", "progress"),
    "random_state": ("seed",),
    "nsim": ("n",),
    "level": (("alpha", "use alpha= (alpha = 1 - level, e.g. 0.05 for 95%)"),),
    "family": ("for a generalized model use hlmext.melogit (binomial) or hlmext.mepoisson (Poisson)",),
    "fweights": ("weights",),
    "pweight": ("pweights",),
}


def _hint(key, allowed, aliases):
    for option in (aliases or {}).get(key, ()) + ALIASES.get(key, ()):
        if isinstance(option, tuple):
            if option[0] in allowed:
                return option[1]
        elif option in allowed:
            return "did you mean %r?" % option
        elif not option.isidentifier():
            return option
    by_lower = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return "did you mean %r?" % by_lower[close[0]]
    return "it takes %s" % ", ".join(sorted(allowed)) if allowed else "it takes no other keywords"


def _named(func):
    """``func``'s keyword-passable parameter names."""
    params = inspect.signature(func).parameters.values()
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "cls")]


def _name(func):
    return func if isinstance(func, str) else func.__qualname__.replace(".__init__", "")


def _message(func_name, key, allowed, aliases):
    return "%s() got an unexpected keyword argument %r; %s" % (func_name, key, _hint(key, allowed, aliases))


def check_keywords(func, given, extra=(), aliases=None):
    """Raise ``TypeError`` for the first keyword of ``given`` that ``func`` does not take.

    Call it at the top of a function with ``**kwargs``: ``given`` are those kwargs.

    Parameters
    ----------
    func : callable or str
        The function: its named parameters (for suggestions) and name (for the message).
    given : iterable of str
        The keywords the caller passed beyond the named parameters.
    extra : iterable of str
        The keywords ``**kwargs`` does take (those it forwards).
    aliases : dict, optional
        Extra hints, tried before ``ALIASES``: ``{wrong: (option, ...)}``, options as
        in ``ALIASES``.

    Examples
    --------
    >>> def fit(maxiter=100, **kwargs):
    ...     check_keywords(fit, kwargs)
    >>> fit(maxiters=10)
    Traceback (most recent call last):
        ...
    TypeError: fit() got an unexpected keyword argument 'maxiters'; did you mean 'maxiter'?
    """
    if not given:
        return
    allowed = set(extra) | (set() if isinstance(func, str) else set(_named(func)))
    for key in given:
        if key not in allowed:
            raise TypeError(_message(_name(func), key, allowed, aliases))


def checked(func=None, *, extra=(), aliases=None):
    """Decorator: reject keywords that are neither ``func``'s named parameters nor ``extra``.

    For functions without ``**kwargs`` (where Python's own error suggests nothing). Not
    for functions that look up their caller's frame (a formula's environment): the
    wrapper is one frame more.
    """
    if func is None:
        return functools.partial(checked, extra=extra, aliases=aliases)
    allowed = frozenset(_named(func) + list(extra))

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        for key in kwargs:
            if key not in allowed:
                raise TypeError(_message(_name(func), key, allowed, aliases))
        return func(*args, **kwargs)

    return wrapper
