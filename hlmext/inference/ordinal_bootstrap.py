"""Simulation and refits of ordinal fits (``meologit`` / ``meoprobit``), for the parametric bootstrap.

A replicate draws new random effects and a category per row from the fitted model through
its latent response,

    y*_ij = x_ij' beta + z_ij' b_j + e_ij,   b_j = Lambda u_j,  u_j ~ N(0, I),
    e_ij ~ logistic (logit) or N(0, 1) (probit),    y_ij = #{k : cut_k < y*_ij},

so that ``P(y_ij <= k | b_j) = F(cut_k - x_ij' beta - z_ij' b_j)``, and refits the model by
the fit's own method (Laplace, then AGHQ with the same number of points) from the original
estimates, keeping the better of that optimum and the boundary optima (never below the
ordinal regression without random effects). ``hlmext.inference.bootstrap`` runs the
replicates (processes, seeds, progress) as for the other models.

A simulated response with no row in some category has no finite maximum-likelihood cut
points: its replicate is NaN and counts as not converged (``BootstrapResults.converged``),
and the percentile intervals are those of the other replicates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError, ModelError
from ..models.ordinal import MixedOrdinal
from .glmm_bootstrap import _refuse_weights, _stripped


def is_ordinal(res) -> bool:
    """True for the results of a ``MixedOrdinal`` fit."""
    return isinstance(getattr(res, "model", None), MixedOrdinal)


class OrdinalSource:
    """Draws category codes 0..K-1 from one ordinal fit, in its design's row order (picklable)."""

    def __init__(self, res):
        model = res.model
        _refuse_weights(model)
        self.model = _stripped(model)
        self.eta = model._Xb @ np.asarray(res.beta, float)
        self.cuts = np.asarray(res.cuts, float)
        self.factors = [lam.T for lam in model.lams(res.theta)]      # b = u Lambda', level by level
        self.order = model.design.order

    def draw(self, rng):
        m = self.model
        latent, zoff = self.eta.copy(), m.design.zoff
        for lv, factor, a, c in zip(m.levels, self.factors, zoff[:-1], zoff[1:]):   # innermost level first
            b = rng.standard_normal((lv.n_groups, lv.q)) @ factor
            latent += np.einsum("ij,ij->i", m._Z[:, a:c], b[lv.codes])
        latent += rng.logistic(size=m.nobs) if m.link == "logit" else rng.standard_normal(m.nobs)
        return np.searchsorted(self.cuts, latent).astype(float)


class OrdinalRefit:
    """One ordinal fit to refit to simulated category codes: (fe, reported values, deviance, converged)."""

    def __init__(self, res):
        model = res.model
        _refuse_weights(model)
        self.model = _stripped(model)
        self.nagq = res.nagq
        self.start = np.concatenate([np.asarray(res.fe_params, float), np.asarray(res.theta, float)])
        self.order = model.design.order
        self.width = model.k_fe + len(model.report_names()) + 2

    def fit(self, y_sorted):
        try:
            m = self.model.with_codes(y_sorted)
        except DataError:                         # an empty category: the cut points run to infinity
            return np.concatenate([np.full(self.width - 1, np.nan), [0.0]])
        opt, _, _ = m.optimum(self.nagq, self.start)
        p = m.k_fe
        return np.concatenate([opt.end[:p], m.report_from_theta(opt.end[p:]), [opt.fun, float(opt.converged)]])


def refit(res, endog):
    """The fit's model refitted to a new response (the categories, row order of the fitted data), as a full fit."""
    model = res.model
    values = pd.Series(np.asarray(endog, dtype=object).ravel() if not isinstance(endog, pd.Series) else endog)
    if len(values) != model.nobs:
        raise ModelError("the new response has %d values; the model has %d observations" % (len(values), model.nobs))
    codes = pd.Index(model.categories).get_indexer(np.asarray(values.astype(object)))
    if np.any(codes < 0):
        raise DataError("the new response must hold the model's categories %s; %r is not one"
                        % (model.categories, values[codes < 0].iloc[0]))
    new = model.with_codes(codes.astype(float)[model.design.order])
    start = np.concatenate([np.asarray(res.fe_params, float), np.asarray(res.theta, float)])
    return new.fit(nagq=res.nagq, start=start)


def as_categories(res, codes):
    """Simulated codes (a DataFrame of 0..K-1) as the response's categories: ordered Categoricals."""
    cats = pd.CategoricalDtype(res.model.categories, ordered=True)
    return pd.DataFrame({c: pd.Categorical.from_codes(codes[c].to_numpy().astype(int), dtype=cats)
                         for c in codes.columns}, index=codes.index)
