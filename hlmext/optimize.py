"""Optimizer state in one object, and the scipy calls that minimize a deviance.

A fit is converged when the projected gradient of the objective is small at the
optimum (absolute, on the deviance scale, whose natural unit is 1): bound parameters
sitting at their bound with the gradient pushing outwards are on the boundary, which
is a legitimate optimum. If the first optimizer stops short, a second one is tried from
its end point and the better optimum is kept; ``OptSummary.attempts`` records both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

GRADIENT_TOL = 2e-3


@dataclass
class OptSummary:
    """What the optimizer did: start, end, objective, evaluations, gradient, messages."""

    start: np.ndarray
    end: np.ndarray
    fun: float
    n_evals: int
    gradient: np.ndarray
    converged: bool
    message: str
    attempts: list = field(default_factory=list)

    @property
    def max_abs_gradient(self) -> float:
        return float(np.max(np.abs(self.gradient))) if self.gradient.size else 0.0

    def __str__(self):
        lines = ["Optimizer summary",
                 "  converged:        %s" % self.converged,
                 "  objective:        %.10g" % self.fun,
                 "  evaluations:      %d" % self.n_evals,
                 "  max |gradient|:   %.3g (tolerance %.1g)" % (self.max_abs_gradient, GRADIENT_TOL),
                 "  message:          %s" % self.message]
        for a in self.attempts:
            lines.append("  tried %-12s objective %.10g, %d evaluations: %s" % a)
        return "\n".join(lines)


def central_gradient(fun, x, bounds=None, step=1e-6):
    """Central finite-difference gradient of ``fun`` at ``x``."""
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in range(x.size):
        h = step * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


def projected_gradient(g, x, bounds):
    """Zero the components that point out of the box at an active bound."""
    g = np.array(g, float)
    for i, (lo, hi) in enumerate(bounds):
        if lo is not None and x[i] <= lo + 1e-10 and g[i] > 0:
            g[i] = 0.0
        if hi is not None and x[i] >= hi - 1e-10 and g[i] < 0:
            g[i] = 0.0
    return g


def minimize(fun, x0, bounds, grad=None, maxiter=1000):
    """Minimize ``fun`` over a box; return an ``OptSummary``.

    L-BFGS-B first (with ``grad`` or central differences); if its projected gradient is
    not small, Powell from its end point, keeping the better result.
    """
    counter = [0]

    def counted(x):
        counter[0] += 1
        return fun(x)

    jac = grad if grad is not None else (lambda x: central_gradient(counted, x))
    x0 = np.clip(np.asarray(x0, float), [b[0] if b[0] is not None else -np.inf for b in bounds],
                 [b[1] if b[1] is not None else np.inf for b in bounds])
    attempts = []
    res = optimize.minimize(counted, x0, jac=jac, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-9, "maxcor": 20})
    best_x, best_f, message = res.x, float(res.fun), str(res.message)
    attempts.append(("L-BFGS-B", best_f, counter[0], message))
    g = projected_gradient(central_gradient(counted, best_x), best_x, bounds)
    if np.max(np.abs(g), initial=0.0) > GRADIENT_TOL:
        before = counter[0]
        res2 = optimize.minimize(counted, best_x, method="Powell", bounds=bounds,
                                 options={"maxiter": 20 * maxiter, "xtol": 1e-10, "ftol": 1e-14})
        attempts.append(("Powell", float(res2.fun), counter[0] - before, str(res2.message)))
        if res2.fun < best_f:
            best_x, best_f, message = res2.x, float(res2.fun), str(res2.message)
            g = projected_gradient(central_gradient(counted, best_x), best_x, bounds)
    converged = bool(np.all(np.isfinite(g)) and np.max(np.abs(g), initial=0.0) <= GRADIENT_TOL
                     and np.isfinite(best_f))
    return OptSummary(start=x0, end=np.asarray(best_x), fun=best_f, n_evals=counter[0], gradient=g,
                      converged=converged, message=message, attempts=attempts)
