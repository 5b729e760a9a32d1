"""statsmodels ``MixedLM`` keywords (``groups``, ``re_formula``, ``vc_formula``) as lme4 bars.

``hlmext.mixedlm("y ~ x", df, groups="g", re_formula="~x", vc_formula={"c": "0 + C(c)"})``
is the model statsmodels' ``MixedLM.from_formula`` fits with the same arguments, written
as ``y ~ x + (x | g) + (1 | g:c)``:

- ``groups``: the grouping column (or one value per row of the data);
- ``re_formula``: the random effects of ``groups``, correlated (unstructured
  covariance, as statsmodels); default a random intercept, or none when there are
  variance components (statsmodels' rule: give ``re_formula="1"`` for both);
- ``vc_formula``: variance components nested in ``groups``, one variance per entry.
  ``"0 + C(c)"`` (or ``"0 + c"`` with a categorical ``c``) is a random intercept of every
  ``c`` within each group, ``(1 | g:c)``; ``"0 + x"`` with a numeric ``x`` a random slope of
  ``x`` with its own variance, uncorrelated with the others, ``(0 + x | g)``.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1.0, 2], "x": [0.5, 1], "school": [1, 2], "klass": ["a", "b"]})
>>> bar_formula("y ~ x", df, "school", "~x", {"klass": "0 + C(klass)"})
'y ~ x + (x | school) + (1 | school:klass)'
>>> bar_formula("y ~ x", df, "school", vc_formula={"klass": "0 + C(klass)"})
'y ~ x + (1 | school:klass)'
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..exceptions import FormulaError

__all__ = ["bar_formula", "with_groups"]

_VC = re.compile(r"^\s*0\s*\+\s*(?:C\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))\s*$")


def with_groups(formula, data, groups, re_formula, vc_formula):
    """``(formula, data)`` with the keywords written as random terms of the formula (``data``
    gains a column ``"groups"`` when ``groups`` is an array)."""
    if groups is None:
        if re_formula is not None or vc_formula is not None:
            raise FormulaError("re_formula and vc_formula describe random effects of groups=: give groups= "
                               "(the grouping column), or write the random effects in the formula, "
                               "e.g. 'y ~ x + (x | g)'")
        return formula, data
    if "|" in formula:
        raise FormulaError("the formula already has random-effects terms (%r); give them either in the formula "
                           "or by groups=/re_formula=/vc_formula=, not both" % formula)
    if not isinstance(data, pd.DataFrame):
        raise TypeError("groups= needs the data as a pandas DataFrame; for chunked data write the random "
                        "effects in the formula, e.g. 'y ~ x + (1 | g)'")
    if not isinstance(groups, str):
        values = np.asarray(groups)
        if values.ndim != 1 or len(values) != len(data):
            raise ValueError("groups must be a column name or one label per row of data (%d), got shape %s"
                             % (len(data), values.shape))
        name = "groups"
        while name in data.columns:
            name += "_"
        data, groups = data.assign(**{name: values}), name
    elif groups not in data.columns:
        raise FormulaError("groups column %r is not in the data" % groups)
    return bar_formula(formula, data, groups, re_formula, vc_formula), data


def bar_formula(formula, data, groups, re_formula=None, vc_formula=None) -> str:
    """The lme4 formula of statsmodels' ``groups``, ``re_formula`` and ``vc_formula``."""
    terms = []
    if re_formula is not None or vc_formula is None:
        effects = "1" if re_formula is None else str(re_formula).strip()
        if effects.startswith("~"):
            effects = effects[1:].strip()
        if not effects or "|" in effects or "~" in effects:
            raise FormulaError("re_formula must be a right-hand side such as '~x' or '~0 + x', got %r"
                               % (re_formula,))
        terms.append("(%s | %s)" % (effects, groups))
    if vc_formula is not None:
        if not isinstance(vc_formula, dict):
            raise TypeError("vc_formula must be a dict of name -> formula, e.g. {'class': '0 + C(class)'}, "
                            "got %s" % type(vc_formula).__name__)
        for name, text in vc_formula.items():
            terms.append(_vc_term(name, text, data, groups))
    return "%s + %s" % (formula.rstrip(), " + ".join(terms))


def _vc_term(name, text, data, groups):
    match = _VC.match(str(text))
    if match is None:
        raise FormulaError("vc_formula[%r] = %r: the forms understood are '0 + C(x)' (a random intercept of "
                           "every x within each group) and '0 + x' (with a numeric x: a random slope of x); "
                           "write other random effects in the formula with lme4 bars instead" % (name, text))
    column = match.group(1) or match.group(2)
    if column not in data.columns:
        raise FormulaError("vc_formula[%r] uses column %r, which is not in the data" % (name, column))
    numeric = pd.api.types.is_numeric_dtype(data[column].dtype) and not pd.api.types.is_bool_dtype(data[column])
    if match.group(2) and numeric:
        return "(0 + %s | %s)" % (column, groups)
    return "(1 | %s:%s)" % (groups, column)
