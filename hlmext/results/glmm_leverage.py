"""Residuals, hat values and Cook's distance of a generalized mixed model (lme4's
``residuals(type=)``, ``hatvalues()`` and ``cooks.distance()`` of a ``glmer`` fit), for every
family and link.

At the fit (``beta-hat``, the conditional modes ``b-hat``), with ``mu`` the conditional mean
of a row, ``V`` the family's variance function times the prior weight (binomial: trials
``n``, ``n mu (1 - mu)``; NB2: ``mu (1 + alpha mu)``; NB1: ``mu (1 + delta)``) and ``phi`` the
dispersion (``1 / shape`` Gamma, ``sigma^2`` Gaussian, ``1 / lambda`` inverse Gaussian, 1
otherwise):

- Pearson residual ``(y - mu) / sqrt(V)``, deviance residual ``sign(y - mu) sqrt(d)`` with
  ``d`` the row's unit deviance times its prior weight (both unscaled by ``phi``, as R's;
  NB1 has no deviance residual: its likelihood is not largest at ``mu = y``);
- the penalized system of the Laplace approximation in the effects and the fixed effects,
  ``M = C' W C + blockdiag(Sigma^{-1}, 0)`` with ``C = [Z X]`` and the working weights
  ``W = (d mu / d eta)^2 / (phi V)``, formed as lme4 does in its spherical coordinates
  (``Lambda' Z' W Z Lambda + I``, so that a singular ``Sigma`` is no trouble);
- lme4's hat value ``h = (prior / phi) c' M^{-1} c`` (lme4 multiplies by the prior
  weights where a GLM's leverage has the working weights: a binomial row with several trials
  may have ``h > 1``); the leverage ``W c' M^{-1} c`` (in [0, 1], the diagonal of the map from
  the working response to the fitted linear predictor) gives the standardized residual
  ``pearson / sqrt(phi (1 - leverage))``;
- lme4's Cook's distance ``(pearson / (1 - h))^2 h / (phi p)``.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from ..models import links

__all__ = ["residuals", "hatvalues", "cooks_distance", "glmm_parts", "row_quadratic"]

CHUNK_CELLS = 4_000_000      # several levels: rows x effects solved at once


def residuals(res, kind, which):
    """Raw, Pearson, deviance or standardized residuals (sorted rows) against the conditional
    mean or (``which="marginal"``) the population-averaged mean."""
    if which == "marginal":
        if kind == "standardized":
            raise ValueError("standardized residuals of a generalized model are conditional (they need the "
                             "leverage at the conditional modes); use which='conditional', or kind='pearson' "
                             "for marginal residuals")
        mu = np.asarray(res.predict(which="marginal"), float)[res.model.design.order]
        parts = glmm_parts(res, mu)
    else:
        parts = glmm_parts(res)
    raw = parts["y"] - parts["mean"]
    if kind == "raw":
        return raw
    if kind == "deviance":
        return deviance_residuals(parts)
    pearson = raw / np.sqrt(parts["V"])
    if kind == "pearson":
        return pearson
    leverage = parts["weights"] * _quadratic(res, parts)
    return pearson / np.sqrt(parts["phi"] * (1 - leverage))


def hatvalues(res):
    """lme4's hat values of a ``glmer`` fit (sorted rows; module docstring)."""
    parts = glmm_parts(res)
    return _quadratic(res, parts) * prior_over_phi(parts)


def cooks_distance(res):
    """lme4's Cook's distance of every row of a ``glmer`` fit (sorted rows)."""
    parts = glmm_parts(res)
    h = _quadratic(res, parts) * prior_over_phi(parts)
    pearson = (parts["y"] - parts["mean"]) / np.sqrt(parts["V"])
    return (pearson / (1 - h)) ** 2 * h / (parts["phi"] * res.k_fe)


def _quadratic(res, parts):
    cache = res.__dict__.get("_glmm_row_quadratic")
    if cache is None:
        if getattr(res.model, "sampling", None) is not None:
            raise ValueError("hat values, standardized residuals and Cook's distance are not available with "
                             "sampling weights (the weights enter the penalized system); fit without pweights= "
                             "for them, or use kind='pearson' residuals")
        d = res.model.design
        if not d.has_rows:
            raise ValueError("hat values and standardized residuals need the fitted rows; this model was fitted "
                             "from statistics accumulated over chunks: refit it in memory on the rows wanted")
        cache = res._glmm_row_quadratic = row_quadratic(res, parts["weights"])
    return cache


def glmm_parts(res, mu=None):
    """(sorted rows) response, mean ``E[y]``, ``V``, ``phi``, the family code, the statsmodels
    family at the fitted dispersion and the working weights; at the conditional mean given
    ``b-hat`` or at ``mu`` (the mean per trial, sorted rows)."""
    model = res.model
    d = model.design
    res._check_rows()
    if not getattr(d, "has_rows", False) or getattr(res, "_eta_cond_sorted", None) is None:
        raise ValueError("residuals, hat values and Cook's distance need the fitted rows; this model was fitted "
                         "from data partitions without keeping them: compute residuals partition by partition "
                         "with results.predict(part, which='conditional')")
    spec = getattr(model, "spec", None)
    if spec is None:
        fam = model._sm_family()
        code = links.BINOMIAL if fam.__class__.__name__ == "Binomial" else links.POISSON
        disp = 1.0
    else:
        code = spec.family
        disp = float(np.exp(model.fitted_log_phi)) if spec.dispersion else 1.0
        fam = spec.sm_family(disp)
    if mu is None:
        eta = res._eta_cond_sorted
        p = fam.link.inverse(eta)
        dmu = fam.link.inverse_deriv(eta)
    else:
        p, dmu = np.asarray(mu, float), None
    n = model.trials
    phi = {links.GAMMA: 1.0 / disp, links.GAUSSIAN: disp ** 2, links.INVGAUSS: 1.0 / disp}.get(code, 1.0)
    if code == links.BINOMIAL:
        mean, V = n * p, n * p * (1 - p)
        dmean = None if dmu is None else n * dmu
    else:
        mean, dmean = p, dmu
        V = {links.POISSON: p, links.GAMMA: p ** 2, links.GAUSSIAN: np.ones_like(p), links.INVGAUSS: p ** 3,
             links.NB2: p * (1 + disp * p), links.NB1: p * (1 + disp)}[code]
    return dict(y=np.asarray(d.endog, float), mean=mean, V=V, phi=phi, code=code, fam=fam, n=n, mu=p,
                dispersion=disp, weights=None if dmean is None else dmean ** 2 / (phi * V))


def prior_over_phi(parts):
    """lme4's factor of the hat values: the prior weight (binomial trials, else 1) over phi."""
    prior = parts["n"] if parts["code"] == links.BINOMIAL else 1.0
    return prior / parts["phi"]


def deviance_residuals(parts):
    """``sign(y - mu) sqrt(prior x unit deviance)`` (sorted rows)."""
    y, mu, code = parts["y"], parts["mu"], parts["code"]
    if code == links.BINOMIAL:
        n = parts["n"]
        return parts["fam"].resid_dev(y / n, mu, var_weights=n)
    if code == links.NB1:
        raise ValueError("deviance residuals are not defined for the NB1 (constant dispersion) family: its "
                         "likelihood is not largest at mean = y; use kind='pearson'")
    return parts["fam"].resid_dev(y, mu)


def row_quadratic(res, weights):
    """``c' M^{-1} c`` of every (sorted) row, ``c = [z; x]``, with ``M`` the penalized system at
    the working weights ``weights`` (module docstring), in the effects' spherical coordinates."""
    model = res.model
    d = model.design
    X = np.asarray(d.exog, float)
    lams = model.lams(res.theta)
    WX = X * weights[:, None]
    if len(d.levels) == 1:
        lv = d.levels[0]
        q = lv.q
        Sd = np.asarray(d.z_of(0), float) @ lams[0]
        starts = np.concatenate([[0], np.cumsum(lv.sizes)[:-1]])
        Hg = np.add.reduceat(np.einsum("ni,nj->nij", Sd * weights[:, None], Sd).reshape(len(X), -1), starts,
                             axis=0).reshape(-1, q, q) + np.eye(q)
        Bg = np.add.reduceat(np.einsum("ni,nj->nij", Sd, WX).reshape(len(X), -1), starts,
                             axis=0).reshape(-1, q, X.shape[1])
        Hinv = np.linalg.inv(Hg)
        F = Hinv @ Bg                                   # H^{-1} B, per group (G, q, p)
        K = X.T @ WX - np.einsum("gqi,gqj->ij", Bg, F)
        g = lv.codes
        own = np.einsum("ni,nij,nj->n", Sd, Hinv[g], Sd)
        A = X - np.einsum("nqi,nq->ni", F[g], Sd)
    else:
        S = _spherical_rows(d, lams)
        Hs = (S.T @ sparse.diags(weights) @ S + sparse.identity(S.shape[1])).tocsc()
        B = np.asarray(S.T @ WX)
        lu = splu(Hs)
        F = lu.solve(B)
        K = X.T @ WX - B.T @ F
        A = X - S @ F
        own = np.empty(len(X))
        chunk = max(1, CHUNK_CELLS // S.shape[1])
        for a in range(0, len(X), chunk):
            Sc = S[a:a + chunk].toarray()
            own[a:a + chunk] = np.einsum("ij,ji->i", Sc, lu.solve(Sc.T.copy()))
    return own + np.einsum("ij,ij->i", A, np.linalg.solve(K, A.T).T)


def _spherical_rows(d, lams):
    """Sparse (n, Q): every row's ``z_l' Lambda_l`` in the columns of its group at each level."""
    r, c, v, k = [], [], [], 0
    n = len(d.endog)
    for i, lv in enumerate(d.levels):
        zl = np.asarray(d.z_of(i), float) @ lams[i]
        r.append(np.repeat(np.arange(n), lv.q))
        c.append((k + lv.codes[:, None] * lv.q + np.arange(lv.q)).ravel())
        v.append(zl.ravel())
        k += lv.n_groups * lv.q
    return sparse.csr_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))), shape=(n, k))
