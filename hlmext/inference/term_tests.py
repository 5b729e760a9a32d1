"""One F test per fixed-effects term (lmerTest's ``anova`` of one fit), Satterthwaite or Kenward-Roger df."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import ModelError
from . import kenward_roger, satterthwaite
from .kenward_roger import df_method


def anova(res, ddf="satterthwaite"):
    """One F test per fixed-effects term, Satterthwaite df (a table like lmerTest's ``anova``).

    Each term's coefficients are tested jointly (``f_test``). For a model without
    interactions these are lmerTest's type III tests; with interactions, a main effect's
    row tests its coefficients at the reference levels of the factors it interacts with
    (treatment coding), as the coefficients mean; code the factors with ``C(x, Sum)`` for
    tests of main effects averaged over the other factors.

    Parameters
    ----------
    res : MixedResults
        A fit from a formula (the terms come from its fixed-effects design).
    ddf : {"satterthwaite", "kenward-roger"}
        Kenward-Roger (REML fits) tests each term with ``hlmext.inference.kenward_roger.f_test``.

    Returns
    -------
    pandas.DataFrame
        Columns ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``, one row per term (the
        intercept excluded).

    Examples
    --------
    >>> import hlmext
    >>> gcse = hlmext.datasets.load("gcse")
    >>> res = hlmext.mixedlm("gcse ~ lrt + C(schgend) + (lrt | school)", gcse).fit()
    >>> list(res.anova().index), int(res.anova().loc["C(schgend)", "NumDF"])
    (['C(schgend)', 'lrt'], 2)
    """
    res = getattr(res, "_results", res)
    frame = getattr(res.model, "frame", None)
    if frame is None or frame.fixed_design_info is None:
        raise ModelError("anova needs a fit from a formula (its terms); use f_test with a contrast matrix")
    if df_method(ddf) == "kenward-roger":
        test = kenward_roger.f_test
    else:
        test = satterthwaite.f_test
    p = res.model.k_fe
    rows, names = [], []
    for term, cols in frame.fixed_design_info.term_name_slices.items():
        if term == "Intercept" or cols.stop <= cols.start:
            continue
        ft = test(res, np.eye(p)[cols])
        names.append(term)
        rows.append((int(ft.df_num), float(ft.df_denom), float(ft.fvalue), float(ft.pvalue)))
    return pd.DataFrame(rows, index=names, columns=["NumDF", "DenDF", "F value", "Pr(>F)"])
