"""lme4's fast estimator (``nAGQ = 0``) for the ordinal models, ``meologit(...).fit(nagq=0)``.

For every theta the fixed effects and the cut points f = (beta, cuts) are found with the
random effects, as the joint mode of ``h(f, u) = sum_i log p(y_i | f, u) - |u|^2 / 2``, and
only theta is optimized, on the Laplace log-likelihood at that joint mode (``nagq0`` does
the same for the GLM families). A row's log-likelihood ``l = log(F(A) - F(B))`` with
``A = cut_k - eta``, ``B = cut_{k-1} - eta`` is concave in (A, B), so h is concave in
(f, u) and its set of ordered cut points is convex: Newton's method on the profile
``max_u h(f, u)`` with step halving keeps the cut points ordered.

With ``J_A = d A / d f = [-X, E_A]`` and ``J_B = [-X, E_B]`` (E the rows' indicators of the
cut points above and below their category), the profile's gradient is ``J_A'l_A + J_B'l_B``
(the modes' own gradient is zero) and minus its Hessian the Schur complement
``S = N_ff - R'ZL H^{-1} ZL'R`` with ``N_ff = -(J_A'L_AA J_A + J_A'L_AB J_B + J_B'L_AB J_A
+ J_B'L_BB J_B)``, ``R = -(d_A J_A + d_B J_B)`` (``d_A = d score / dA`` and ``d_B`` of the
kernel's rows, ``score = dl/deta``) and ``H = ZL'WZL + I``. The standard errors of (beta,
cuts) are glmer's for ``nAGQ = 0``: ``S^{-1}`` at the optimum (conditional on theta). The
gradient in theta is the Laplace gradient carried through ``d f / d theta = S^{-1} C``,
``C = -R' d eta`` (the mode condition differentiated, the modes moving as in ``nagq0``).

One level of random effects (any ``cov=``, H block-diagonal by cluster) or nested levels (H a
sparse matrix, the rows' derivatives from ``_kernels.ordinal.row_loglik`` at the kernel's eta).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from .._kernels import ordinal as _ordinal
from ..exceptions import ModelError
from . import nagq0
from .optimize import minimize_with_gradient


def check(model):
    """Refuse what the estimator does not cover: sampling weights (``nagq0.check``)."""
    nagq0.check(model)


def _row_derivatives(model, fe):
    """Every row's derivatives (``_kernels/ordinal_row.pxd``, NRD columns) at the kernel's modes."""
    if not model.nested:
        return model._rd
    cuts = np.ascontiguousarray(model.split(fe)[1])
    return _ordinal.row_loglik(model._link_code, model._yk, cuts, model._eta)[1]


def _zl_matrix(model):
    """Lambda'Z of the kernel's last call as a sparse matrix (rows x modes)."""
    rows, cols, width = nagq0._pattern(model)
    return sparse.csr_matrix((model._zl.ravel(), (rows, cols)), shape=(model.nobs, width))


def _row_parts(rd):
    """From the rows' derivatives at the modes: (l_A, l_B, second derivatives l_AA, l_AB, l_BB,
    d score/dA, d score/dB)."""
    l_a, l_b = rd[:, 3], -rd[:, 0] - rd[:, 3]
    l_ab = -l_a * l_b
    return l_a, l_b, -rd[:, 6] - l_ab, l_ab, -rd[:, 7] - l_ab, rd[:, 6], rd[:, 7]


def _jacobians(model):
    """J_A = dA/d(beta, cuts) and J_B = dB/d(beta, cuts) of every row (dense, n x k_fe)."""
    cached = model.__dict__.get("_nagq0_jacobians")
    if cached is None:
        n, kb = model.nobs, model.k_beta
        rows = np.arange(n)
        ja, jb = np.zeros((n, model.k_fe)), np.zeros((n, model.k_fe))
        ja[:, :kb] = jb[:, :kb] = -model._Xb
        a, b = model._cut_of_A >= 0, model._cut_of_B >= 0
        ja[rows[a], kb + model._cut_of_A[a]] = 1.0
        jb[rows[b], kb + model._cut_of_B[b]] = 1.0
        cached = model.__dict__["_nagq0_jacobians"] = (ja, jb)
    return cached


class _Profile:
    """The joint mode of (beta, cuts, u) at one theta, its Laplace log-likelihood and Schur complement."""

    def __init__(self, model, theta, fe0, tol=1e-10, maxit=100):
        self.model, self.theta = model, theta
        self.fe, self.ll, self.h = None, -np.inf, -np.inf
        fe = np.array(fe0, float)
        ll = model._kernel(fe, theta, 1, False)
        if not np.isfinite(ll):
            model._u[:] = 0.0
            ll = model._kernel(fe, theta, 1, False)
        if not np.isfinite(ll):
            return
        self.ZL = _zl_matrix(model) if model.nested else None     # fixed with theta
        state = self._state(fe, ll)
        for _ in range(maxit):
            try:
                step = np.linalg.solve(state["schur"], state["grad"])
            except np.linalg.LinAlgError:
                return
            if not np.all(np.isfinite(step)):
                return
            if np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(fe))):
                break
            t, new = 1.0, None
            for _ in range(40):
                trial = fe + t * step
                ll_t = model._kernel(trial, theta, 1, False)   # -inf where the cut points are out of order
                if np.isfinite(ll_t):
                    cand = self._state(trial, ll_t)
                    if cand["h"] >= state["h"] - 1e-12 * (1.0 + abs(state["h"])):
                        new = cand
                        break
                t *= 0.5
            if new is None:
                return
            fe, state = trial, new
        else:
            return
        self.fe, self.state = fe, state
        self.ll, self.h, self.schur = state["ll"], state["h"], state["schur"]
        self.u = model._u.copy()

    def _state(self, fe, ll):
        """The profile at the kernel's current modes: value h, gradient and Schur complement in f."""
        m = self.model
        rd = _row_derivatives(m, fe)
        l_a, l_b, l_aa, l_ab, l_bb, d_a, d_b = _row_parts(rd)
        ja, jb = _jacobians(m)
        w = rd[:, 1]
        R = -(d_a[:, None] * ja + d_b[:, None] * jb)
        fac = nagq0._ClusterFactor(m, w, R) if not m.nested else nagq0._SparseFactor(self.ZL, w, R)
        n_ff = -(ja.T @ (l_aa[:, None] * ja) + ja.T @ (l_ab[:, None] * jb) + jb.T @ (l_ab[:, None] * ja)
                 + jb.T @ (l_bb[:, None] * jb))
        schur = n_ff - fac.A.T @ fac.solve(fac.A)
        return {"ll": ll, "h": ll + 0.5 * fac.logdet, "grad": ja.T @ l_a + jb.T @ l_b,
                "schur": 0.5 * (schur + schur.T), "factor": fac, "R": R, "w": w, "score": rd[:, 0].copy(),
                "zl": m._zl.copy()}


class _ThetaObjective(nagq0._ThetaObjective):
    """-2 x the Laplace log-likelihood at the joint mode of (beta, cuts, u), a function of theta."""

    def _new_profile(self, theta):
        prof = _Profile(self.model, theta, self.beta)
        return prof, prof.fe

    def grad(self, theta, h=None):
        """-2 (dL/dtheta + dL/df' S^{-1} C), C = d (profile gradient) / d theta at fixed f."""
        theta = np.asarray(theta, float)
        prof = self.profile(theta)
        if prof.fe is None:
            return np.zeros_like(theta)
        m, p = self.model, prof.fe.size
        m._u[:] = prof.u
        _, g = m.loglike_theta(prof.fe, theta, 1, grad=True)
        C = self._mode_derivative(prof, theta)
        m._u[:] = prof.u
        out = -2.0 * (g[p:] + g[:p] @ np.linalg.solve(prof.schur, C))
        return out if np.all(np.isfinite(out)) else np.zeros_like(theta)

    def _mode_derivative(self, prof, theta):
        """C = -R' d eta, d eta = dZL u + ZL du, (ZL'WZL + I) du = dZL'score - ZL'W dZL u."""
        m, s = self.model, prof.state
        rows, cols, width = nagq0._pattern(m)
        ZL = sparse.csr_matrix((s["zl"].ravel(), (rows, cols)), shape=(m.nobs, width))
        u, w, r = prof.u, s["w"], s["score"]
        zoff = m._tree["zoff"] if m.nested else np.array([0, m.levels[0].q])
        out = []
        for l, jac in enumerate(m._dlam_dtheta(theta)):
            for dlam in jac:
                vals = np.zeros(m._Z.shape)
                vals[:, zoff[l]:zoff[l + 1]] = m._Z[:, zoff[l]:zoff[l + 1]] @ dlam
                dZL = sparse.csr_matrix((vals.ravel(), (rows, cols)), shape=ZL.shape)
                du = s["factor"].solve(dZL.T @ r - ZL.T @ (w * (dZL @ u)))
                out.append(-s["R"].T @ (dZL @ u + ZL @ du))
        return np.column_stack(out)


def fit(model, start, maxiter, disp):
    """Optimize theta with (beta, cuts) at the joint mode: (OptSummary with x = (beta, cuts, theta),
    null_llf, se_null)."""
    check(model)
    fe_null, null_llf, se_null = model.null_fit()
    p, kr = model.k_fe, model.k_re
    if start is None:
        fe0, theta0 = fe_null, model.theta_start() * model.theta_scale()
    else:
        start = np.asarray(start, float)
        if start.size not in (kr, p + kr):
            raise ValueError("start must have %d values (theta) or %d (fixed effects, cut points, then theta), "
                             "got %d" % (kr, p + kr, start.size))
        fe0, theta0 = (start[:p] if start.size > kr else fe_null), start[-kr:]
        if not np.all(np.diff(fe0[model.k_beta:]) > 0):
            raise ValueError("start: the cut points must increase, got %s" % fe0[model.k_beta:])
    obj = _ThetaObjective(model, fe0)
    opt, _ = minimize_with_gradient(obj, theta0, model.theta_bounds(), model.theta_scale(), maxiter, disp=disp)
    prof = obj.profile(opt.end)
    if prof.fe is None:
        raise ModelError("nagq=0: the joint mode of the fixed effects, cut points and random effects was not "
                         "found at the optimum; fit with nagq=1 (Laplace)")
    opt.end = np.concatenate([prof.fe, opt.end])
    opt.start = np.concatenate([fe0, theta0])
    return opt, null_llf, se_null


def fixed_cov(model, fe, theta):
    """glmer's covariance of (beta, cuts) for ``nAGQ = 0``: the inverse Schur complement at the joint mode."""
    prof = _Profile(model, np.asarray(theta, float), fe)
    if prof.fe is None:
        return np.full((model.k_fe, model.k_fe), np.nan)
    return np.linalg.inv(prof.schur)
