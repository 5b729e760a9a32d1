"""Likelihood-ratio comparison of several fitted models in one table (lme4's ``anova``)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .lrtest import lrtest

__all__ = ["anova"]

COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def anova(*models, names=None, refit=True):
    """Compare nested fits by likelihood-ratio tests, as lme4's ``anova(m1, m2, ...)``.

    The models are sorted by their number of parameters and each is tested against the
    one before it with ``hlmext.lrtest``: the same rows are required, and when two models
    differ only in one variance component the p-value is that of ``chibar2(01)`` (half the
    chi2(1) tail; lme4 prints the plain chi2 one). As in lme4, REML fits are refitted by ML
    first (with a warning) unless ``refit=False``: REML likelihoods of models with
    different fixed effects are not comparable.

    Parameters
    ----------
    *models : MixedResults or GLMMResults
        Two or more fits of the same data.
    names : list of str, optional
        Row labels, one per model in the order given; default ``m1``, ``m2``, ...
    refit : bool
        Refit REML fits by ML before comparing them (lme4's ``refit = TRUE``).

    Returns
    -------
    pandas.DataFrame
        Index ``model`` (sorted by ``npar``); columns npar, AIC, BIC, logLik, deviance
        (-2 logLik), Chisq, Df, Pr(>Chisq) (NaN in the first row). ``attrs["formulas"]``
        maps each label to its model's formula; ``attrs["notes"]`` says which models were
        refitted and which tests use ``chibar2``.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> rs = ri.update(". ~ . - (1 | school) + (lrt | school)")
    >>> table = hlmext.anova(rs, ri, names=["rs", "ri"])
    >>> print(table.to_string(float_format="%.6g"))
           npar     AIC     BIC   logLik  deviance   Chisq    Df  Pr(>Chisq)
    model
    ri        4 28045.2 28070.4 -14018.6   28037.2     NaN  <NA>         NaN
    rs        6 28008.9 28046.7 -13998.4   27996.9 40.2955     2 1.77808e-09
    >>> table.attrs["notes"]
    ['rs vs ri: conservative chi2 p-value (variances differ)']
    """
    if len(models) < 2:
        raise ValueError("anova() compares two or more fitted models; got %d (for the F tests of one "
                         "model's fixed effects use results.anova())" % len(models))
    names = ["m%d" % (i + 1) for i in range(len(models))] if names is None else [str(n) for n in names]
    if len(names) != len(models) or len(set(names)) != len(names):
        raise ValueError("names must give %d distinct labels, one per model; got %r" % (len(models), names))
    notes = []
    if refit and any(m.reml for m in models):
        which = [n for n, m in zip(names, models) if m.reml]
        warnings.warn("refitting model(s) %s with ML (instead of REML) to compare likelihoods; pass "
                      "refit=False to compare the REML fits" % ", ".join(which), UserWarning, stacklevel=2)
        models = [m.model.fit(reml=False, start=m.theta) if m.reml else m for m in models]
        notes.append("refitted with ML (instead of REML): %s" % ", ".join(which))
    order = sorted(range(len(models)), key=lambda i: models[i].k_params)      # stable: ties keep their order
    rows = []
    for pos, i in enumerate(order):
        m = models[i]
        row = [m.k_params, m.aic, m.bic, m.llf, -2.0 * m.llf, np.nan, np.nan, np.nan]
        if pos > 0:
            prev = models[order[pos - 1]]
            if m.k_params == prev.k_params:
                row[5:] = [max(2.0 * (m.llf - prev.llf), 0.0), 0, np.nan]
            else:
                test = lrtest(prev, m)
                row[5:] = [test.statistic, test.df, test.pvalue]
                if test.kind.startswith("chibar2") or test.conservative:
                    notes.append("%s vs %s: %s" % (names[i], names[order[pos - 1]], (
                        "chibar2(01) p-value (a variance on the boundary under the null)"
                        if test.kind.startswith("chibar2") else "conservative chi2 p-value (variances differ)")))
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS, index=pd.Index([names[i] for i in order], name="model"))
    table["npar"] = table["npar"].astype(int)
    table["Df"] = table["Df"].astype("Int64")
    table.attrs["formulas"] = {names[i]: getattr(models[i].model, "formula", None) for i in order}
    table.attrs["notes"] = notes
    return table
