"""The Laplace stage of a generalized fit: L-BFGS-B to a loose tolerance, then Newton steps.

L-BFGS-B spends most of its evaluations creeping along the curved valley of the variance
parameters near the optimum (VerbAgg: 57 deviance evaluations). Newton steps get there in
two or three, given the Hessian; with the analytic gradient, forward differences of it give
the Hessian for ``k`` evaluations (``k`` parameters), half the ``2k`` of central differences,
with an error of about the step (1e-5 relative) that the Newton steps' own convergence test
does not see: they stop on the gradient (``optimize.minimize_with_gradient`` with the
Hessian as its start, which refreshes it if a step fails).

Used only when L-BFGS-B ends with every bounded parameter (the sd's) away from its bound;
otherwise the whole search (with its steps off zero-bound saddles) is
``minimize_with_gradient``'s.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .optimize import minimize_with_gradient, progress_printer

#: L-BFGS-B stops when the projected gradient on the optimizer's scale is below this (the
#: Newton steps take it to 1e-9)
LOOSE_GTOL = 1e-2

#: a bounded parameter closer than this to its bound (on the optimizer's scale) sends the
#: search to ``minimize_with_gradient``
BOUND_MARGIN = 1e-2


def minimize_laplace(obj, x0, bounds, scale, maxiter, disp=False):
    """Minimize the deviance ``obj`` from ``x0``: (OptSummary, Hessian on ``x / scale``), as
    ``minimize_with_gradient(obj, x0, bounds, scale, maxiter)``."""
    sb = [(None if lo is None else lo / s, None if hi is None else hi / s) for (lo, hi), s in zip(bounds, scale)]
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in sb])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in sb])

    def f(z):
        return obj.value(z * scale)

    def grad(z):
        return obj.grad(z * scale) * scale

    before = obj.n_evals
    res = optimize.minimize(f, np.clip(np.asarray(x0, float) / scale, lo, hi), jac=grad, method="L-BFGS-B",
                            bounds=sb, options={"maxiter": maxiter, "ftol": 1e-12, "gtol": LOOSE_GTOL,
                                                "maxcor": 20},
                            callback=progress_printer(f, "Laplace") if disp else None)
    first = ("L-BFGS-B", float(res.fun), obj.n_evals - before, str(res.message))
    z = res.x
    near = (z - lo < BOUND_MARGIN) | (hi - z < BOUND_MARGIN)
    if not np.isfinite(res.fun) or np.any(near):
        opt, H = minimize_with_gradient(obj, z * scale, bounds, scale, maxiter, disp=disp)
    else:
        H = forward_hessian(grad, z, grad(z))
        opt, H = minimize_with_gradient(obj, z * scale, bounds, scale, maxiter, H, disp=disp)
    opt.attempts.insert(0, first)
    opt.start = np.asarray(x0, float)
    return opt, H


def forward_hessian(grad, z, g, step=1e-5):
    """Symmetrized forward differences of the gradient ``grad`` at ``z`` (``g = grad(z)``)."""
    cols = []
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = step * max(1.0, abs(z[i]))
        cols.append((grad(z + e) - g) / e[i])
    H = np.array(cols)
    return 0.5 * (H + H.T)
