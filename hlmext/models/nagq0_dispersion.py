"""``fit(nagq=0)`` of the families with a dispersion parameter (Gamma, Gaussian, inverse
Gaussian, negative binomial): lme4's fast estimator with log phi as one more coordinate of the
outer optimizer, as ``glmer.nb(nAGQ = 0)`` does for the NB dispersion.

For every (theta, t = log phi) the fixed effects are found with the random effects as the joint
mode of ``h(beta, u) = log p(y | beta, u; phi) - |u|^2 / 2`` (``nagq0._Profile``), and the
Laplace log-likelihood L at that mode is maximized over (theta, t). Its derivative in t is
``dL/dt + dL/dbeta' d beta / d t``: the partial derivative at fixed beta (the modes u moving:
``dispersion_laplace.laplace_dlogphi``, or central differences with nested levels), and
``d beta / d t = Schur^{-1} c`` with ``c = X's_t - A'H^{-1} Lambda'Z's_t``, ``s_t`` every row's
d l'/dt at fixed eta (the mode conditions ``X's = 0`` and ``Lambda'Z's = u`` differentiated;
``A = Lambda'Z'WX``). The fitted log phi is kept in the thread's buffers (``nagq0_log_phi``):
the model's evaluations with ``nagq=0`` are at it, not profiled at fixed beta.
"""
from __future__ import annotations

import numpy as np

from ..exceptions import ModelError
from . import dispersion_laplace, nagq0
from .glm_start import glm_start
from .optimize import minimize_with_gradient


class _Objective(nagq0._ThetaObjective):
    """-2 x the Laplace log-likelihood at the joint mode, as a function of x = (theta, log phi)."""

    def profile(self, x):
        x = np.asarray(x, float)
        key = x.tobytes()
        if key not in self.cache:
            self.n_evals += 1
            self.model._set_log_phi(x[-1])
            prof = nagq0._Profile(self.model, x[:-1], self.beta)
            if prof.beta is not None:
                self.beta = prof.beta
            if len(self.cache) > 64:
                self.cache.clear()
            self.cache[key] = prof
        self.model._set_log_phi(x[-1])
        return self.cache[key]

    def grad(self, x, h=1e-6):
        x = np.asarray(x, float)
        theta, t = x[:-1], float(x[-1])
        prof = self.profile(x)
        if prof.beta is None:
            return np.zeros_like(x)
        m, p = self.model, prof.beta.size
        if not dispersion_laplace.available(m, 1):       # nested levels: dL/dt at fixed beta by differences
            dl_t = 0.0
            for sign in (1.0, -1.0):
                m._u[:] = prof.u
                dl_t += sign * m.loglike_at(prof.beta, theta, t + sign * h, 1) / (2 * h)
        m._u[:] = prof.u
        _, g = m.loglike_at(prof.beta, theta, t, 1, grad=True)     # the kernel's arrays at the mode
        if dispersion_laplace.available(m, 1):
            dl_t = dispersion_laplace.laplace_dlogphi(m, prof.beta, theta)
        s_t = dispersion_laplace.row_derivatives(m.spec, m._ky, m._kn, m._eta, t)[1]
        c_t = m._X.T @ s_t - prof.factor.A.T @ prof.factor.solve(prof.ZL.T @ s_t)
        C = np.column_stack([self._mode_derivative(prof, theta, h), c_t])
        m._u[:] = prof.u
        m._set_log_phi(t)
        out = -2.0 * (np.append(g[p:], dl_t) + g[:p] @ np.linalg.solve(prof.schur, C))
        return out if np.all(np.isfinite(out)) else np.zeros_like(x)


def fit(model, start, maxiter, disp, log_phi_bounds):
    """Optimize (theta, log phi) with beta in the penalized IRLS: (OptSummary with x = (beta, theta),
    null_llf, se_glm); leaves log phi at its optimum, also as the buffers' ``nagq0_log_phi``."""
    nagq0.check(model)
    beta_glm, se_glm, null_llf = glm_start(model)         # log phi now at the GLM's maximum
    beta0, theta0 = nagq0.start_values(model, start, beta_glm)
    buffers = model._buffers.get(model)
    curvature = getattr(buffers, "log_phi_curvature", None)
    x0 = np.append(theta0, model._log_phi)
    scale = np.append(model.theta_scale(), 1.0 / np.sqrt(-curvature) if curvature else 1.0)
    obj = _Objective(model, beta0)
    opt, _ = minimize_with_gradient(obj, x0, model.theta_bounds() + [tuple(log_phi_bounds)], scale, maxiter,
                                    disp=disp)
    prof = obj.profile(opt.end)
    if prof.beta is None:
        raise ModelError("nagq=0: the joint mode of the fixed and random effects was not found at the "
                         "optimum; fit with nagq=1 (Laplace)")
    buffers.nagq0_log_phi = float(opt.end[-1])
    model._set_log_phi(opt.end[-1])
    opt.end = np.concatenate([prof.beta, opt.end[:-1]])
    opt.start = np.concatenate([beta0, x0[:-1]])
    return opt, null_llf, se_glm
