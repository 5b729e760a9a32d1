"""lme4's fast estimator of a generalized mixed model, ``fit(nagq=0)``.

For every theta the fixed effects are found with the random effects, as the joint mode of
``h(beta, u) = log p(y | beta, u) - |u|^2 / 2`` (penalized IRLS with beta inside), and
only theta is optimized, on the Laplace log-likelihood at that joint mode (lme4's
``nAGQ = 0``). The estimates differ from the Laplace maximum (which also moves beta with the
log-determinant of H), by little when the clusters are large.

The joint mode is Newton's method on the profile ``max_u h(beta, u)``: for a given beta
the Laplace kernel finds u and the weights w (any family, the kernels' own code), the
gradient in beta is ``X'(y - mu)`` and the Hessian the Schur complement
``X'WX - X'W Z Lambda H^{-1} Lambda'Z'WX`` with ``H = Lambda'Z'WZ Lambda + I`` (a sparse
factorization). The fixed effects' standard errors are glmer's for ``nAGQ = 0``: the
inverse of that Schur complement at the optimum (conditional on theta). The gradient in
theta is the Laplace gradient carried through d beta / d theta (implicit differentiation of
the joint mode's equations: one kernel call and k_re sparse solves).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from ..exceptions import ModelError
from .glm_start import glm_start
from .optimize import minimize_with_gradient


def check(model):
    """Refuse what the estimator does not cover (sampling weights)."""
    if model._pen is not None or model._cweight is not None:
        raise ModelError("nagq=0 (fixed effects in the penalized IRLS) does not take sampling weights; "
                         "fit with nagq=1 (Laplace) or more points")


def _pattern(model):
    """Rows and columns (in the kernels' order of u) of every value of ``model._zl``."""
    cached = model.__dict__.get("_nagq0_pattern")
    if cached is not None:
        return cached
    n = model.nobs
    if not model.nested:
        q = model.levels[0].q
        starts, ends = model._rows
        cluster = np.repeat(np.arange(len(starts)), ends - starts)
        rows = np.repeat(np.arange(n), q)
        cols = (cluster[:, None] * q + np.arange(q)).ravel()
        width = len(starts) * q
    else:
        t = model._tree
        qs, u_off = t["qs"], t["u_off"]
        chain = len(qs) - (model._top is not None)
        cols = [u_off[model._cl[:, l]][:, None] + np.arange(qs[l]) for l in range(chain)]
        if model._top is not None:
            cols.append(u_off[model._cl[:, -1]][:, None] + model._top)
        cols = np.column_stack(cols).ravel()
        rows = np.repeat(np.arange(n), model._Z.shape[1])
        width = model._u.size
    # every value is kept, zeros too: Lambda' z of a row can be nonzero where z is zero
    out = model.__dict__["_nagq0_pattern"] = (rows, cols, width)
    return out


class _Profile:
    """The joint mode of (beta, u) at one theta, and what comes with it."""

    def __init__(self, model, theta, beta0, tol=1e-10, maxit=100):
        self.model, self.theta = model, theta
        beta = np.array(beta0, float)
        self.beta, self.ll, self.h = None, -np.inf, -np.inf
        ll = model._kernel(beta, theta, 1, False)
        if not np.isfinite(ll):
            model._u[:] = 0.0
            ll = model._kernel(beta, theta, 1, False)
        if not np.isfinite(ll):
            return
        self.zl, self._ZL = model._zl.copy(), None
        state = self._state(beta, ll)
        for _ in range(maxit):
            h, g, schur = state[1], state[2], state[3]
            try:
                step = np.linalg.solve(schur, g)
            except np.linalg.LinAlgError:
                return
            if not np.all(np.isfinite(step)):
                return
            if np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(beta))):
                break                             # converged: the step would change h by ~|step|^2
            t, new = 1.0, None
            for _ in range(40):
                trial = beta + t * step
                ll_t = model._kernel(trial, theta, 1, False)
                if np.isfinite(ll_t):
                    cand = self._state(trial, ll_t)
                    if cand[1] >= h - 1e-12 * (1.0 + abs(h)):
                        new = cand
                        break
                t *= 0.5
            if new is None:
                return
            beta, state = trial, new
        else:
            return
        self.beta, self.ll, self.h, self.schur, self.factor = beta, state[0], state[1], state[3], state[4]
        self.u = model._u.copy()

    @property
    def ZL(self):
        """Lambda'Z as a sparse matrix (rows x modes in the kernels' order)."""
        if self._ZL is None:
            rows, cols, width = _pattern(self.model)
            self._ZL = sparse.csr_matrix((self.zl.ravel(), (rows, cols)), shape=(self.model.nobs, width))
        return self._ZL

    def _state(self, beta, ll):
        """(Laplace ll, h, gradient in beta, Schur complement, factor of H) at beta, from the
        kernel's arrays."""
        m = self.model
        w, X = m._w, m._X
        WX = w[:, None] * X
        fac = _ClusterFactor(m, w, WX) if not m.nested else _SparseFactor(self.ZL, w, WX)
        schur = X.T @ WX - fac.A.T @ fac.solve(fac.A)
        h = ll - m._const + 0.5 * fac.logdet
        return ll, h, X.T @ (m._ky - m._mu), 0.5 * (schur + schur.T), fac


class _ClusterFactor:
    """H = Lambda'Z'WZ Lambda + I of one level, block by block (q x q per cluster), and
    A = Lambda'Z'WX."""

    def __init__(self, model, w, WX):
        zl, starts = model._zl, model._rows[0]
        G, q = len(starts), zl.shape[1]
        self.H = np.add.reduceat(zl[:, :, None] * (w[:, None] * zl)[:, None, :], starts, axis=0) + np.eye(q)
        self.logdet = float(np.sum(np.linalg.slogdet(self.H)[1]))
        self.A = np.add.reduceat(zl[:, :, None] * WX[:, None, :], starts, axis=0).reshape(G * q, -1)
        self.shape = (G, q)

    def solve(self, b):
        G, q = self.shape
        b = np.asarray(b, float)
        out = np.linalg.solve(self.H, b.reshape(G, q, -1))
        return out.reshape(b.shape)


class _SparseFactor:
    """H of nested and crossed levels as a sparse matrix (SuperLU), and A = Lambda'Z'WX."""

    def __init__(self, ZL, w, WX):
        H = (ZL.T @ sparse.diags(w) @ ZL + sparse.identity(ZL.shape[1])).tocsc()
        self.lu = splu(H, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        self.logdet = float(np.sum(np.log(np.abs(self.lu.U.diagonal()))))
        self.A = np.asarray(ZL.T @ WX)

    def solve(self, b):
        return self.lu.solve(np.asarray(b, float))


class _ThetaObjective:
    """-2 x the Laplace log-likelihood at the joint mode, as a function of theta alone."""

    nagq = 0

    def _new_profile(self, theta):
        """The joint mode at ``theta`` from the last mode's fixed effects, and those of the new one."""
        prof = _Profile(self.model, theta, self.beta)
        return prof, prof.beta

    def __init__(self, model, beta0):
        self.model, self.beta, self.n_evals, self.cache = model, np.array(beta0, float), 0, {}

    def profile(self, theta):
        key = np.asarray(theta, float).tobytes()
        if key not in self.cache:
            self.n_evals += 1
            prof, beta = self._new_profile(np.asarray(theta, float))
            if beta is not None:
                self.beta = beta
            if len(self.cache) > 64:
                self.cache.clear()
            self.cache[key] = prof
        return self.cache[key]

    def value(self, theta):
        prof = self.profile(theta)
        return -2.0 * prof.ll if np.isfinite(prof.ll) else np.inf

    def grad(self, theta, h=1e-6):
        """d f / d theta = -2 (dL/dtheta + dL/dbeta' d beta / d theta) at the joint mode, with
        d beta / d theta = Schur^{-1} C, C = d X'(y - mu) / d theta at fixed beta (the mode
        condition X'(y - mu) = 0 differentiated)."""
        theta = np.asarray(theta, float)
        prof = self.profile(theta)
        if prof.beta is None:
            return np.zeros_like(theta)
        m = self.model
        m._u[:] = prof.u
        _, g = m.loglike_theta(prof.beta, theta, 1, grad=True)      # also the kernel's arrays at the mode
        C = self._mode_derivative(prof, theta, h)
        m._u[:] = prof.u
        p = prof.beta.size
        out = -2.0 * (g[p:] + g[:p] @ np.linalg.solve(prof.schur, C))
        return out if np.all(np.isfinite(out)) else np.zeros_like(theta)

    def _mode_derivative(self, prof, theta, h):
        """C = d X'(y - mu) / d theta at fixed beta. With u moving by
        (Lambda'Z'WZ Lambda + I) du = dZL'(y - mu) - ZL'W dZL u (the modes' equations
        differentiated; dZL = Z dLambda on the same pattern) and d eta = dZL u + ZL du,
        C = -X'W d eta. Crossed factors: central differences of X'(y - mu) instead (2 k_re
        kernel calls)."""
        m = self.model
        if m.nested and m._top is not None:
            C = np.empty((prof.beta.size, theta.size))
            for i in range(theta.size):
                e = np.zeros(theta.size)
                e[i] = h * max(1.0, abs(theta[i]))
                side = []
                for sign in (1.0, -1.0):
                    m._u[:] = prof.u
                    m._kernel(prof.beta, theta + sign * e, 1, False)
                    side.append(m._X.T @ (m._ky - m._mu))
                C[:, i] = (side[0] - side[1]) / (2 * e[i])
            return C
        r, w, u, ZL = m._ky - m._mu, m._w, prof.u, prof.ZL
        rows, cols, width = _pattern(m)
        zoff = m._tree["zoff"] if m.nested else np.array([0, m.levels[0].q])
        out = []
        for l, jac in enumerate(m._dlam_dtheta(theta)):
            for dlam in jac:
                vals = np.zeros(m._Z.shape)
                vals[:, zoff[l]:zoff[l + 1]] = m._Z[:, zoff[l]:zoff[l + 1]] @ dlam
                dZL = sparse.csr_matrix((vals.ravel(), (rows, cols)), shape=ZL.shape)
                du = prof.factor.solve(dZL.T @ r - ZL.T @ (w * (dZL @ u)))
                out.append(-m._X.T @ (w * (dZL @ u + ZL @ du)))
        return np.column_stack(out)


def fit(model, start, maxiter, disp):
    """Optimize theta with beta in the penalized IRLS: (x = (beta, theta), OptSummary, null_llf, se_glm)."""
    check(model)
    beta_glm, se_glm, null_llf = glm_start(model)
    beta0, theta0 = start_values(model, start, beta_glm)
    tscale = model.theta_scale()
    obj = _ThetaObjective(model, beta0)
    opt, _ = minimize_with_gradient(obj, theta0, model.theta_bounds(), tscale, maxiter, disp=disp)
    prof = obj.profile(opt.end)
    if prof.beta is None:
        raise ModelError("nagq=0: the joint mode of the fixed and random effects was not found at the "
                         "optimum; fit with nagq=1 (Laplace)")
    opt.end = np.concatenate([prof.beta, opt.end])
    opt.start = np.concatenate([beta0, theta0])
    return opt, null_llf, se_glm


def start_values(model, start, beta_glm):
    """(beta0, theta0) from the user's ``start`` (theta, or fixed effects then theta) or the GLM fit."""
    p = model.k_fe
    if start is None:
        return beta_glm, model.theta_start() * model.theta_scale()
    start = np.asarray(start, float)
    if start.size not in (model.k_re, p + model.k_re):
        raise ValueError("start must have %d values (theta) or %d (fixed effects, then theta), got %d"
                         % (model.k_re, p + model.k_re, start.size))
    return (start[:p] if start.size > model.k_re else beta_glm), start[-model.k_re:]


def fixed_cov(model, beta, theta):
    """glmer's covariance of the fixed effects for ``nAGQ = 0``: the inverse Schur complement
    (conditional on theta) at the joint mode."""
    model.loglike_theta(beta, theta, 0)           # the model's nagq=0 evaluation: its fitted dispersion, if any
    prof = _Profile(model, np.asarray(theta, float), beta)
    if prof.beta is None:
        return np.full((model.k_fe, model.k_fe), np.nan)
    return np.linalg.inv(prof.schur)
