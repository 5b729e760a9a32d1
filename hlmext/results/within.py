"""The model-implied covariance of one cluster's rows (Stata's ``estat wcorrelation``).

For cluster ``j`` of the innermost level, ``V_j = sum_l Z_lj G_l Z_lj' + sigma^2 R_j``: the
random effects of every level the cluster belongs to, plus the residual covariance
(``R_j = I`` without a residual structure, see ``hlmext.design.residual_structures``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def wcorrelation(res, group=None, covariance=False):
    """Model-implied correlation (or covariance) matrix of one innermost cluster's rows.

    Parameters
    ----------
    res : MixedResults
    group : label, optional
        A group of the innermost level (default: the first in the levels' order).
    covariance : bool
        Return ``V_j`` itself rather than its correlations.

    Returns
    -------
    pandas.DataFrame
        Rows and columns labelled by the data's row labels, in the data's order.

    Examples
    --------
    >>> import hlmext
    >>> sleep = hlmext.datasets.load("sleepstudy")
    >>> res = hlmext.mixedlm("Reaction ~ Days + (1 | Subject)", sleep).fit()
    >>> print(round(res.wcorrelation(308).iloc[0, 1], 4))
    0.5893
    """
    model = res.model
    d = model.design
    if not d.has_rows:
        raise ValueError("wcorrelation() needs the model's rows (not fitted from chunks or after remove_data())")
    if d.qd:
        raise ValueError("wcorrelation() covers nested models; this one has crossed random effects")
    inner = d.levels[0]
    if group is None:
        j = 0
    else:
        where = np.flatnonzero(inner.labels == group)
        if not where.size:
            raise KeyError("%r is not a group of %r; groups are e.g. %s"
                           % (group, inner.name, ", ".join(map(repr, list(inner.labels[:5])))))
        j = int(where[0])
    rows = np.arange(d.row_start[j], d.row_end[j])
    sigma2 = res.scale
    V = np.zeros((rows.size, rows.size))
    for l, lv in enumerate(d.levels[:d.n_chain]):
        Z = d.W[rows, d.zoff[l]:d.zoff[l + 1]]
        V += Z @ res.cov_re[lv.name].to_numpy() @ Z.T
    residual = getattr(model, "residual", None)
    R = np.eye(rows.size) if residual is None else residual.matrix_for_rows(res.theta[model.k_theta:], rows)
    V += sigma2 * R
    order = np.argsort(d.order[rows], kind="stable")        # the data's row order
    V = V[np.ix_(order, order)]
    labels = model.frame.row_labels[d.order[rows][order]] if model.frame is not None else d.order[rows][order]
    if not covariance:
        s = np.sqrt(np.diag(V))
        V = V / np.outer(s, s)
    return pd.DataFrame(V, index=labels, columns=labels)
