"""Population-averaged (marginal) means of a generalized mixed model (Stata's ``predict mu, marginal``).

For a row with fixed part ``eta0 = x'beta + offset`` and random part ``z'b`` (every level's
``z_l'b_l``, ``b_l ~ N(0, Sigma_l)`` independent), ``z'b`` is normal with variance
``v = sum_l z_l' Sigma_l z_l``, so the mean over the random effects is a one-dimensional
integral whatever the number of levels or random slopes:

    mu_marginal = E[g^{-1}(eta0 + z'b)] = int g^{-1}(eta0 + s sqrt(v)) phi(s) ds.

Closed forms: ``exp(eta0 + v / 2)`` (log link), ``Phi(eta0 / sqrt(1 + v))`` (probit),
``eta0 ** 2 + v`` (square root), ``eta0`` (identity). The logit, complementary log-log and
Cauchy links use the trapezoidal rule on ``s`` in [-9.5, 9.5] with step
``min(1/4, d / (5 sqrt(v)))``, where ``d`` is the distance of the inverse link's nearest
complex singularity from the real axis (``pi`` for the logistic function, 1 for the Cauchy;
the complementary log-log's ``1 - exp(-exp(eta))`` has none but grows like ``exp(exp(x))``
beyond ``|Im eta| = pi / 2``, which plays the same role): the integrand is analytic (and
bounded) in a strip of half-width ``d / sqrt(v)``, so the rule converges geometrically, to about 1e-13 relative for any ``v``
(Gauss-Hermite rules converge slowly here: 80 points err by 3e-5 at ``v = 25``). The links
are told apart by their exact class (statsmodels derives ``Probit`` and ``CLogLog`` from
``Logit``). A linear model's marginal mean is ``x'beta``.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm
from statsmodels.genmod.families import links

__all__ = ["population_mean", "level_covariances", "random_variance"]



def population_mean(link, eta0, v):
    """``E[g^{-1}(eta0 + sqrt(v) s)]``, ``s ~ N(0, 1)``, elementwise."""
    eta0, v = np.broadcast_arrays(np.asarray(eta0, float), np.asarray(v, float))
    v = np.clip(v, 0, None)
    kind = type(link)
    if kind is links.Log:
        return np.exp(eta0 + v / 2)
    if kind is links.Probit:
        return norm.cdf(eta0 / np.sqrt(1 + v))
    if kind is links.Sqrt:
        return eta0 ** 2 + v
    if kind is links.Identity:
        return eta0.astype(float, copy=True)
    if kind in _STRIP:
        sd = np.sqrt(v)
        top = float(np.max(sd, initial=0.0))
        h = min(0.25, _STRIP[kind] / (5 * top)) if top > 0 else 0.25
        s = np.arange(-9.5, 9.5 + h / 2, h)
        w = h * np.exp(-s * s / 2) / np.sqrt(2 * np.pi)
        return link.inverse(eta0[..., None] + sd[..., None] * s) @ w
    raise ValueError("population-averaged means are available for the identity, log, logit, probit, cloglog, "
                     "Cauchy and square-root links, not %s; use population_averaged=False (means at b = 0)"
                     % kind.__name__)


#: half-width of the strip around the real axis where the inverse link is analytic
_STRIP = {links.Logit: np.pi, links.CLogLog: np.pi / 2, links.Cauchy: 1.0}


def level_covariances(model, values):
    """Random-effects covariance of every level (name -> q x q) from the reported variance parameters."""
    out = model.theta_from_report(np.asarray(values, float))
    theta, sigma = out if isinstance(out, tuple) else (out, 1.0)     # linear models also give sigma
    return {lv.name: sigma ** 2 * lam @ lam.T for lv, lam in zip(model.levels, model.lams(theta))}


def random_variance(rows, covs):
    """``v`` of every row: ``sum_l z_l' Sigma_l z_l``."""
    v = np.zeros(rows.n)
    for lr in rows.levels:
        S = covs[lr.level.name]
        v += np.einsum("ij,jk,ik->i", lr.Z, S, lr.Z)
    return v
