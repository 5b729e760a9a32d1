"""The boundary of a mixed logit / Poisson fit: variances at zero, and variances at infinity.

A mixed model nests the model with fewer random effects, so its maximum likelihood is at
least theirs. The optimizer's interior optimum can be a local maximum below that: the
log-likelihood is even in every sd, so sd = 0 is always a stationary point, and a
likelihood that falls as the sd leaves 0 may rise again to a smaller local maximum
further out. ``best_on_boundary`` compares the interior optimum with the faces of the
parameter space, as the linear model's restarts from theta = 0 do:

- every variance at zero: the GLM without random effects (its fit is already known);
- with several levels, each level's variances at zero (the others free);
- with several random effects in a level, each effect's variance (its row of Lambda) at zero.

The best point is returned; if it is on a face where the log-likelihood still rises away
from the face, the search restarts from there. On the far side, a mixed logit whose
clusters all have only 0s or only successes has no finite maximum: the variance runs to
infinity (``not_identified``).
"""
from __future__ import annotations

import numpy as np

from .._kernels import glmm as _glmm
from .optimize import GRADIENT_TOL, OptSummary, minimize_with_gradient


def theta_slices(model):
    """Per level (the model's order), the slice of ``theta`` it owns."""
    out, k = [], 0
    for lv in model.levels:
        out.append(slice(k, k + lv.cov.n_theta))
        k += lv.cov.n_theta
    return out


def boundary_faces(model):
    """The faces checked besides the all-zero one: (label, mask of the theta held at zero).

    Each level's variances at zero (with more than one level), and each random effect's
    variance at zero (a level with several effects): the theta that enter the effect's
    row of Lambda.
    """
    faces, slices = [], theta_slices(model)
    names = model.report_names()
    for lv, sl in zip(model.levels, slices):
        if len(model.levels) > 1:
            mask = np.zeros(model.k_re, dtype=bool)
            mask[sl] = True
            faces.append(("the variances of %s" % lv.name, mask))
        if lv.q < 2:
            continue
        th = lv.cov.theta_start()
        derivs = lv.cov.lam_derivatives(th)
        for j, col in enumerate(lv.names):
            zero = np.array([np.any(d[j] != 0) for d in derivs])
            face = np.where(zero, 0.0, th)
            if not np.any(lv.cov.lam(face)):
                continue                          # the whole level: the face above (or the all-zero one)
            mask = np.zeros(model.k_re, dtype=bool)
            mask[sl] = zero
            label = "sd(%s)[%s]" % (col, lv.name)
            faces.append((label if label in names else "the variance of %s in %s" % (col, lv.name), mask))
    return faces


class _OnFace:
    """The objective restricted to a face: the parameters in ``free`` vary, the rest stay at ``x``."""

    def __init__(self, obj, x, free):
        self.obj, self.x, self.free, self.nagq = obj, np.array(x, float), free, obj.nagq

    @property
    def n_evals(self):
        return self.obj.n_evals

    def full(self, xr):
        x = self.x.copy()
        x[self.free] = xr
        return x

    def value(self, xr):
        return self.obj.value(self.full(xr))

    def grad(self, xr):
        return self.obj.grad(self.full(xr))[self.free]


def _face_optimum(obj, x0, free, bounds, scale, maxiter):
    """Maximize on the face ``free`` from ``x0``: (full end point, deviance, converged, attempts)."""
    face = _OnFace(obj, x0, free)
    sub = [b for b, f in zip(bounds, free) if f]
    opt, _ = minimize_with_gradient(face, x0[free], sub, scale[free], maxiter)
    return face.full(opt.end), opt.fun, opt.converged, opt.attempts


def _hopeless(obj, x0, free, H, scale, f_best):
    """Whether a face's optimum cannot plausibly beat ``f_best``: from its start ``x0``, the
    gain a Newton step predicts (with the interior optimum's Hessian), even four times over,
    leaves the deviance more than 1 above ``f_best``. Spares the search on faces where a
    variance the data clearly need is set to zero."""
    if H is None:
        return False
    f0 = obj.value(x0)
    if not np.isfinite(f0):
        return True
    g = (obj.grad(x0) * scale)[free]
    Hf = H[np.ix_(free, free)]
    try:
        np.linalg.cholesky(Hf)
        gain = 0.5 * float(g @ np.linalg.solve(Hf, g))
    except np.linalg.LinAlgError:
        return False
    return f0 - 4.0 * gain > f_best + 1.0


def best_on_boundary(model, obj, opt, H, glm, bounds, scale, maxiter):
    """The better of the interior optimum ``opt`` and the optima on the boundary faces.

    Parameters
    ----------
    model : MixedGLM
    obj : the fit's objective (deviance and gradient in x = (beta, theta))
    opt : OptSummary
        The interior optimum (``end`` in x).
    H : ndarray or None
        The Hessian at ``opt.end`` on the optimizer's scale (``x / scale``).
    glm : (beta, loglik)
        The GLM without random effects (every theta = 0), in x's fixed-effect coordinates.
    bounds, scale, maxiter : as for ``minimize_with_gradient``.

    Returns
    -------
    OptSummary
        ``opt`` itself, or the boundary optimum with the comparison in ``attempts`` and
        ``message``.
    """
    p = model.k_fe
    tol = 1e-10 * max(1.0, abs(opt.fun))
    best, attempts, candidates = None, list(opt.attempts), []
    if -2.0 * glm[1] <= opt.fun + tol:            # the GLM: known, only polished on its face
        candidates.append(("every variance", np.ones(model.k_re, dtype=bool),
                           np.concatenate([glm[0], np.zeros(model.k_re)])))
    for label, mask in boundary_faces(model):
        x0 = opt.end.copy()
        x0[p:][mask] = 0.0
        candidates.append((label, mask, x0))
    for label, mask, x0 in candidates:
        free = np.concatenate([np.ones(p, dtype=bool), ~mask])
        before = obj.n_evals
        if label != "every variance" and _hopeless(obj, x0, free, H, scale, opt.fun if best is None else best[0]):
            attempts.append(("boundary", obj.value(x0), obj.n_evals - before, "%s at zero: start far above, "
                             "not searched" % label))
            continue
        x, f, converged, _ = _face_optimum(obj, x0, free, bounds, scale, maxiter)
        attempts.append(("boundary", f, obj.n_evals - before, "%s at zero" % label))
        if f <= (opt.fun if best is None else best[0]) + tol:
            best = (f, x, converged, label, free)
    if best is None:
        opt.attempts = attempts
        return opt
    f, x, converged, label, free = best
    message = ("boundary optimum: %s at zero (deviance %.10g; the interior optimum's is %.10g)"
               % (label, f, opt.fun))
    g = obj.grad(x) * scale
    bounded = np.array([b[0] is not None for b in bounds])
    outward = np.where(bounded & (g > 0), 0.0, g)         # a bounded theta at 0 pushed below it stays
    if np.max(np.abs(outward[~free]), initial=0.0) > GRADIENT_TOL:
        # the deviance still falls off the face: not a maximum, search on from it
        before = obj.n_evals
        again, _ = minimize_with_gradient(obj, x, bounds, scale, maxiter)
        attempts.extend(again.attempts)
        attempts.append(("restart", again.fun, obj.n_evals - before, "from the face of %s at zero" % label))
        again.attempts, again.start = attempts, opt.start
        if again.fun <= f + tol:
            return again
    g[~free] = 0.0                                # held at zero: on the boundary, as the optimizer reports bounds
    return OptSummary(start=opt.start, end=x, fun=f, n_evals=obj.n_evals, gradient=g,
                      converged=bool(converged and np.isfinite(f)), message=message, attempts=attempts)


def not_identified(model):
    """Report names of the variances that run to infinity: a mixed logit's levels whose
    clusters (every one) have only 0s or only successes, with a random intercept.

    Such a level's random intercepts predict every response exactly as their variance
    grows, so the likelihood rises towards its supremum without reaching it: the
    maximum-likelihood estimate of that variance is infinite.
    """
    if model._family_code != _glmm.BINOMIAL:
        return []
    y, n = model._y, model.trials
    low, high = y <= 0, y >= n
    if not np.all(low | high):
        return []
    out = []
    for lv in model.levels[::-1]:
        if "Intercept" not in lv.names:
            continue
        codes = np.asarray(lv.codes)
        size = np.bincount(codes, minlength=lv.n_groups)
        hi = np.bincount(codes, weights=high.astype(float), minlength=lv.n_groups)
        if np.all((hi == 0) | (hi == size)):
            out.extend("%s[%s]" % (nm, lv.name) for nm in lv.cov.report_names())
    return out
