"""The Laplace stage of a generalized fit: quasi-Newton steps, L-BFGS-B, Newton steps.

From the GLM start, L-BFGS-B alone creeps along the curved valley of the fixed effects and
the variance parameters (VerbAgg: 57 deviance evaluations, a mixed logit with 1,000 x 200
crossed levels 38): the GLM's standard errors, its scale for the fixed effects, are several
times too small for a model with random effects. Three phases instead:

1. ``newton_start``: steps with the Hessian from forward differences of the analytic
   gradient (``k`` gradients for ``k`` parameters), then BFGS updates. Far from the
   optimum the deviance can curve down in an sd (it is even in each sd); the step then
   takes the Hessian's eigenvalues in absolute value, goes at most halfway to zero in
   every sd, and the Hessian is formed again at the new point (at most ``MAX_REFRESH``
   times). Stops at a projected gradient below ``LOOSE_GTOL``.
2. L-BFGS-B to ``LOOSE_GTOL`` (nothing to do when the steps got there).
3. ``optimize.minimize_with_gradient``'s Newton steps to a gradient of 1e-9, from a
   forward-difference Hessian (``k`` gradients, half the ``2k`` of its central ones; the
   error of about the step, 1e-5 relative, only slows the steps, which stop on the
   gradient). That Hessian, formed close to the optimum, also gives the standard errors
   (``LaplaceHessian``): a fit spends no evaluations on them.

When L-BFGS-B ends with an sd near zero (or a parameter near a bound), the last phase is
``minimize_with_gradient``'s whole search (with its steps off zero-bound saddles).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .optimize import minimize_with_gradient, progress_printer

#: the first two phases stop when the projected gradient on the optimizer's scale is below
#: this (the Newton steps take it to 1e-9); at 1e-3 rather than 1e-2 (about one more
#: evaluation) the Newton steps' Hessian is formed close enough to the optimum for the
#: standard errors (``LaplaceHessian``)
LOOSE_GTOL = 1e-3

#: the quasi-Newton steps from the start refresh a Hessian that is not positive definite at most
#: this many times (each costs one gradient per parameter)
MAX_REFRESH = 2

#: a bounded parameter closer than this to its bound (on the optimizer's scale) sends the
#: search to ``minimize_with_gradient``
BOUND_MARGIN = 1e-2


def minimize_laplace(obj, x0, bounds, scale, maxiter, theta, disp=False):
    """Minimize the deviance ``obj`` from ``x0``: (OptSummary, Hessian on ``x / scale``), as
    ``minimize_with_gradient(obj, x0, bounds, scale, maxiter)``; the parameters in the mask
    ``theta`` (the diagonal of Lambda, ``diagonal_theta``) are kept away from zero (where
    the deviance, even in each of them, has its saddles) by the Newton steps."""
    sb = [(None if lo is None else lo / s, None if hi is None else hi / s) for (lo, hi), s in zip(bounds, scale)]
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in sb])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in sb])

    def f(z):
        return obj.value(z * scale)

    def grad(z):
        return obj.grad(z * scale) * scale

    before = obj.n_evals
    z0 = np.clip(np.asarray(x0, float) / scale, lo, hi)
    zn = newton_start(f, grad, z0, np.where(theta, 0.0, lo), np.where(theta, np.inf, hi), theta)
    newton = ("Newton (start)", f(zn), obj.n_evals - before, "")
    before = obj.n_evals
    res = optimize.minimize(f, zn, jac=grad, method="L-BFGS-B",
                            bounds=sb, options={"maxiter": maxiter, "ftol": 1e-12, "gtol": LOOSE_GTOL,
                                                "maxcor": 20},
                            callback=progress_printer(f, "Laplace") if disp else None)
    first = ("L-BFGS-B", float(res.fun), obj.n_evals - before, str(res.message))
    z = res.x
    near = ((z - lo < BOUND_MARGIN) | (hi - z < BOUND_MARGIN) | (theta & (np.abs(z) < BOUND_MARGIN))
            | (np.abs(z) < 1e-6))
    if not np.isfinite(res.fun) or np.any(near):
        opt, H = minimize_with_gradient(obj, z * scale, bounds, scale, maxiter, disp=disp)
    else:
        Hn = forward_hessian(grad, z, grad(z))
        opt, H = minimize_with_gradient(obj, z * scale, bounds, scale, maxiter, Hn, disp=disp)
        if H is Hn:                               # the Newton steps kept it: for the standard errors
            opt.laplace_hessian = LaplaceHessian(Hn, z * scale, np.asarray(scale, float))
    opt.attempts[:0] = [newton, first]
    opt.start = np.asarray(x0, float)
    return opt, H


class LaplaceHessian:
    """The deviance's Hessian ``H`` on the optimizer's scale (``x / scale``) by forward
    differences at ``x``, a point of the last Newton steps (their Hessian): the standard
    errors take it (``results.glmm``) when ``x`` is within ``REUSE_DISTANCE`` of the optimum
    on that scale, instead of forming it again there."""

    #: the largest distance (on the optimizer's scale, GLM standard errors and theta) from the
    #: optimum at which the Hessian is taken for the standard errors. Its error grows about
    #: as the distance (a random slope's standard errors 7e-4 relative at 4e-4, 7e-5 at 1e-4);
    #: within 3e-5 the standard errors agree with those formed at the optimum to about 2e-5,
    #: as those differences' own error (VerbAgg, mixed logits with crossed or one level of
    #: groups: the Newton steps start from a gradient of ``LOOSE_GTOL``, 1e-6 to 3e-5 away)
    REUSE_DISTANCE = 3e-5

    def __init__(self, H, x, scale):
        self.H, self.x, self.scale = H, x, scale

    def shifted(self, shift, p):
        """The same with the fixed effects of ``x`` moved by ``-shift`` (the user's offset)."""
        return LaplaceHessian(self.H, np.concatenate([self.x[:p] - shift, self.x[p:]]), self.scale)

    def at(self, x):
        """The Hessian in ``x`` (unscaled) if formed close enough to ``x``, else None."""
        if self.x.shape != np.shape(x) or np.max(np.abs(self.x - x) / self.scale) > self.REUSE_DISTANCE:
            return None
        return self.H / np.outer(self.scale, self.scale)


def forward_hessian(grad, z, g, step=1e-5):
    """Symmetrized forward differences of the gradient ``grad`` at ``z`` (``g = grad(z)``)."""
    cols = []
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = step * max(1.0, abs(z[i]))
        cols.append((grad(z + e) - g) / e[i])
    H = np.array(cols)
    return 0.5 * (H + H.T)


def newton_start(f, grad, z, lo, hi, theta, steps=12):
    """Quasi-Newton steps from ``z`` (see the module's notes): the Hessian by forward
    differences, formed again (at most ``MAX_REFRESH`` times) after a step where it was not
    positive definite (the step then follows its eigenvalues' absolute values), else BFGS
    updates. Each step goes at most halfway to a bound; ``theta`` (a mask) keeps its signs
    (``lo`` and ``hi`` of ``theta`` bound ``|z|``). Returns the last point, where the
    gradient is below ``LOOSE_GTOL`` or no step decreases ``f``."""
    sign = np.where(theta & (z < 0), -1.0, 1.0)          # theta mirrored to positive values
    f0, g0 = f, grad

    def f(x):
        return f0(sign * x)

    def grad(x):
        return g0(sign * x) * sign

    z = sign * z
    fz = f(z)
    if not np.isfinite(fz):
        return sign * z
    g = grad(z)
    if np.max(np.abs(g)) < LOOSE_GTOL:                   # there already: no Hessian needed
        return sign * z
    H, refreshes = forward_hessian(grad, z, g), 0
    for _ in range(steps):
        if np.max(np.abs(g)) < LOOSE_GTOL:
            break
        lam, V = np.linalg.eigh(H)
        definite = lam[0] > 0
        lam = np.maximum(np.abs(lam), 1e-8 * np.max(np.abs(lam)))   # negative curvature: still downhill
        step = -V @ ((V.T @ g) / lam)
        with np.errstate(divide="ignore", invalid="ignore"):      # at most halfway to a bound
            room = np.where(step < 0, (z - lo) / -step, np.where(step > 0, (hi - z) / step, np.inf))
        t_max = min(1.0, 0.5 * float(np.min(room)))
        for t in (t_max, t_max / 2, t_max / 4, t_max / 8, 0.0):
            trial = z + t * step
            if t and np.any((trial - lo < BOUND_MARGIN) | (hi - trial < BOUND_MARGIN)):
                continue
            ft = f(trial) if t else fz
            if ft < fz:
                break
        if t == 0.0:
            break
        gt = grad(trial)
        s, y = trial - z, gt - g
        if not definite:
            if refreshes == MAX_REFRESH:
                z, fz = trial, ft
                break
            H, refreshes = forward_hessian(grad, trial, gt), refreshes + 1
        elif s @ y > 1e-12 * np.sqrt((s @ s) * (y @ y)):
            Hs = H @ s
            H = H - np.outer(Hs, Hs) / (s @ Hs) + np.outer(y, y) / (s @ y)
        z, fz, g = trial, ft, gt
    return sign * z


def diagonal_theta(model):
    """Mask of (beta, theta): the theta on the diagonal of a level's Lambda (an sd's sign)."""
    out = [False] * model.k_fe
    for lv in model.levels:
        th = lv.cov.theta_start()
        out.extend(bool(np.any(np.diag(d) != 0)) for d in lv.cov.lam_derivatives(th))
    return np.array(out, dtype=bool)
