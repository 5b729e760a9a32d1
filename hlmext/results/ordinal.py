"""Results of an ordinal (``meologit`` / ``meoprobit``) fit.

``params`` are the fixed effects, the cut points ``/cut1``, ... and the sd's and
correlations; their covariance is the inverse observed information of the fit's own
likelihood (Laplace or AGHQ), as for the mixed logit (``hlmext.results.glmm``).
Predictions are the probabilities of every category: given the predicted random effects
(``conditional=True``) or averaged over their distribution (marginal).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.base.wrapper as wrap
from scipy import stats

from ..models import information as inference
from .glmm import GLMMResults, GLMMResultsWrapper, LATENT_VAR_LOGIT
from .linear import _named
from .rows import row_keys

#: Gauss-Hermite points of the marginal probabilities (an integral over one normal variable per row)
MARGINAL_POINTS = 40


class OrdinalResults(GLMMResults):
    """Fit of a ``MixedOrdinal`` model (``hlmext.meologit``, ``hlmext.meoprobit``).

    Attributes
    ----------
    fe_params, bse_fe : pandas.Series
        The fixed effects followed by the cut points (``/cut1``, ...).
    beta, cuts : pandas.Series
        The fixed effects and the cut points alone.
    categories : list
        The response's categories, lowest first.
    re_params, cov_re, random_effects, random_effects_cov, nagq, llf, aic, bic
        As for ``GLMMResults``.

    Examples
    --------
    >>> import hlmext
    >>> wine = hlmext.datasets.load("wine")
    >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=7)
    >>> res.cuts.round(3).tolist()
    [-1.623, 1.513, 4.227, 6.086]
    >>> print(res.lr_test_vs_regression())
    LR test vs. ologit regression: chibar2(01) = 9.92   Prob >= chibar2 = 0.0008
    """

    def __init__(self, model, x, nagq, opt, null_llf, se_glm, robust=None):
        super().__init__(model, x, nagq, opt, null_llf, se_glm, robust)
        kb = model.k_beta
        self.beta = self.fe_params.iloc[:kb].copy()
        self.cuts = self.fe_params.iloc[kb:].copy()
        self.categories = model.categories
        self.link = model.link

    # ------------------------------------------------------------------ tables
    def _wald_rows(self, rows):
        b, se = self.fe_params.iloc[rows], self.bse_fe.iloc[rows]
        z = b / se
        q = stats.norm.ppf(0.975)
        return _named(pd.DataFrame({"coef": b, "se": se, "z": z, "pvalue": 2 * stats.norm.sf(np.abs(z)),
                                    "lower": b - q * se, "upper": b + q * se}), "term")

    @property
    def fe_table(self):
        """The fixed effects (without the cut points): coef, se, z, pvalue and 95% interval."""
        return self._wald_rows(slice(0, self.model.k_beta))

    @property
    def cut_table(self):
        """The cut points: coef, se and 95% interval (z and p-value are not meaningful, NaN)."""
        t = self._wald_rows(slice(self.model.k_beta, self.model.k_fe))
        t["z"] = t["pvalue"] = np.nan
        return t

    @property
    def wald_chi2(self):
        """Wald chi2 of the fixed effects (not the cut points): (statistic, df, p-value)."""
        kb = self.model.k_beta
        if kb == 0:
            return None
        return inference.wald_chi2(self.fe_params.to_numpy()[:kb], self.cov_fe.to_numpy()[:kb, :kb],
                                   self.model.beta_names)

    # ------------------------------------------------------------------ icc
    def _check_icc(self):
        """Every ordinal model has an icc on its latent scale."""

    def _icc_variances(self, sds, k):
        """The latent residual variance (pi^2/3 for the logit, 1 for the probit, fixed)."""
        cov_var = np.zeros((k + 1, k + 1))
        cov_var[:k, :k] = self.cov_params()[self.k_fe:, self.k_fe:] * np.outer(2 * sds, 2 * sds)
        return (LATENT_VAR_LOGIT if self.link == "logit" else 1.0), cov_var

    # ------------------------------------------------------------------ predictions
    def predict(self, data=None, conditional=False, which="prob"):
        """Probabilities of every category (or the linear predictor) for the fitted rows or new data.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            New data with the formula's columns; default the fitted rows.
        conditional : bool
            ``True``: given the predicted random effects (conditional modes; groups not
            seen in the fit get zero). ``False`` (default): marginal probabilities,
            averaged over the random effects' distribution (Stata's ``predict, pr marginal``).
        which : {"prob", "eta"}
            The probabilities, or the linear predictor x'beta (+ z'b with ``conditional``),
            without the cut points.

        Returns
        -------
        pandas.DataFrame
            One column per category (``which="prob"``), or a Series (``"eta"``).

        Examples
        --------
        >>> import hlmext
        >>> wine = hlmext.datasets.load("wine")
        >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=7)
        >>> res.predict(wine.iloc[[0, 6]]).round(3)
               1      2      3      4      5
        0  0.213  0.559  0.203  0.021  0.004
        6  0.003  0.052  0.315  0.352  0.278
        """
        if which not in ("prob", "eta"):
            raise ValueError("which must be 'prob' or 'eta', not %r" % (which,))
        if conditional not in (True, False):
            raise ValueError("conditional must be True or False, not %r" % (conditional,))
        eta = self._eta(data, conditional)
        if which == "eta":
            return eta
        sd = np.zeros(len(eta)) if conditional else self._re_sd(data)
        probs = category_probabilities(eta.to_numpy(), sd, self.cuts.to_numpy(), self.link)
        return pd.DataFrame(probs, index=eta.index, columns=self.categories)

    def _eta(self, data, conditional):
        if data is None:
            return self._original_order(self._eta_cond_sorted if conditional else self._eta_sorted)
        from ..formula import frames
        model = self.model
        if model.frame is None:
            raise ValueError("predict on new data needs a model built from a formula (hlmext.meologit)")
        X = frames.exog_for(model.frame.fixed_design_info, data)[:, model._keep]
        eta = X @ self.beta.to_numpy()
        if conditional:
            for block in model.frame.random:
                Z = frames.exog_for(block.design_info, data)
                re = self.random_effects[block.term.level][block.names]
                b = re.reindex(row_keys(data, block.term.group)).fillna(0.0).to_numpy()
                eta = eta + np.sum(Z * b, axis=1)
        return pd.Series(eta, index=data.index)

    def _re_sd(self, data):
        """Per row, the sd of z'b (the random part of the linear predictor) under the fitted
        covariance: the levels' independent parts added in variance."""
        model = self.model
        lams = model.lams(self.theta)
        if data is None:
            zoff = model.design.zoff
            var = sum(np.sum((model._Z[:, a:b] @ lam) ** 2, axis=1) for lam, a, b in zip(lams, zoff[:-1], zoff[1:]))
            return self._original_order(np.sqrt(var)).to_numpy()
        from ..formula import frames
        columns = {}
        for block in model.frame.random:
            Z = frames.exog_for(block.design_info, data)
            columns.update({(block.term.level, nm): Z[:, j] for j, nm in enumerate(block.names)})
        var = sum(np.sum((np.column_stack([columns[lv.name, nm] for nm in lv.names]) @ lam) ** 2, axis=1)
                  for lv, lam in zip(model.levels, lams))
        return np.sqrt(var)

    @property
    def fittedvalues(self):
        """Probabilities of every category given the predicted random effects (the fitted rows)."""
        return self.predict(conditional=True)

    @property
    def resid(self):
        raise AttributeError("an ordinal model has no response residuals; compare predict(conditional=True) "
                             "with the observed categories")


def category_probabilities(eta, sd, cuts, link):
    """P(y = k) for every row: F(cut_k - eta - s e) - F(cut_{k-1} - eta - s e) averaged over e ~ N(0, 1).

    ``sd`` (per row) is the sd of the random part; rows with sd 0 are not averaged.
    """
    cdf = stats.logistic.cdf if link == "logit" else stats.norm.cdf
    x, w = np.polynomial.hermite.hermgauss(MARGINAL_POINTS)
    nodes, weights = np.sqrt(2.0) * x, w / np.sqrt(np.pi)
    shift = eta[:, None] + sd[:, None] * nodes[None, :]                        # (n, nodes)
    cum = cdf(cuts[None, :, None] - shift[:, None, :])                        # (n, K-1, nodes)
    cum = np.concatenate([np.zeros_like(cum[:, :1]), cum, np.ones_like(cum[:, :1])], axis=1)
    return np.diff(cum, axis=1) @ weights


class OrdinalResultsWrapper(GLMMResultsWrapper):
    """pandas labels for ordinal results."""


wrap.populate_wrapper(OrdinalResultsWrapper, OrdinalResults)
