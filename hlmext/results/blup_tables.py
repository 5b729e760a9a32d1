"""Group-level coefficients with standard errors: lme4's ``coef()`` as a long table.

The coefficient of term ``j`` in group ``g`` is ``beta_j + b_gj`` (``beta_j = 0`` for a random
term without a fixed one). Its standard error is the prediction error of ``beta-hat_j +
b-hat_gj`` (``hlmext.results.predict_se``): with ``x = e_j`` and ``z = e_j``,
``(x - E_g'z)' V (x - E_g'z) + z' C_g z``, which includes the fixed effect's variance, the
effect's conditional variance and their covariance. A term without a random effect has the
fixed effect's standard error in every group. The BLUPs alone with their conditional
standard errors are ``ranef(condvar=True)`` (Stata's ``reses``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .predict_se import conditional_blocks

__all__ = ["coef_table"]


def coef_table(res, alpha=0.05):
    """Long table of group-level coefficients: index (group, term); estimate, se, lower, upper."""
    b, C, E = conditional_blocks(res)
    lv = res.model.design.levels[0]
    fe = res.fe_params
    V = res.cov_fe.to_numpy()
    terms = list(fe.index) + [t for t in lv.names if t not in fe.index]
    G = lv.n_groups
    est = np.zeros((G, len(terms)))
    var = np.zeros((G, len(terms)))
    for t, term in enumerate(terms):
        x = np.zeros(len(fe))
        if term in fe.index:
            x[fe.index.get_loc(term)] = 1.0
            est[:, t] = fe[term]
        if term in lv.names:
            j = lv.names.index(term)
            est[:, t] += b[:, j]
            a = x - E[:, j, :]                       # x - E_g' e_j, one row per group
            var[:, t] = np.einsum("gi,ij,gj->g", a, V, a) + C[:, j, j]
        else:
            var[:, t] = x @ V @ x
    rank = pd.Index(lv.labels).argsort()             # groups sorted by label, as ranef() and coef()
    est, var = est[rank], var[rank]
    labels = pd.Index(lv.labels)[rank]
    se = np.sqrt(var)
    q = stats.norm.ppf(1 - alpha / 2)
    index = pd.MultiIndex.from_product([labels, terms], names=[lv.name, "term"])
    e, s = est.ravel(), se.ravel()
    return pd.DataFrame({"estimate": e, "se": s, "lower": e - q * s, "upper": e + q * s}, index=index)
