"""Optimizer state in one object, and the scipy calls that minimize a deviance.

A fit is converged when, at the optimum, the Hessian of the free parameters (the Newton
steps' own, when there is one) is positive definite and the Newton decrement g'H^{-1}g (what
a further Newton step could still gain, in deviance units) is below 1e-6, or the projected
gradient itself is tiny: bound parameters sitting at their bound with the gradient pushing
outwards are on the boundary, which is a legitimate optimum. If the first optimizer stops short, a second
one is tried from its end point and the better optimum is kept; ``OptSummary.attempts``
records what was tried.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ..threads import blas_limited, single_blas_thread

GRADIENT_TOL = 2e-3
DECREMENT_TOL = 1e-6
#: Newton steps with BFGS updates get a new Hessian when a step is not this many times shorter than the last
SLOW = 0.25


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
    decrement: float = 0.0        # Newton decrement g'H^{-1}g at the end (deviance units)

    def defer_hessian(self, compute):
        """Set ``hessian`` (the wide-step Hessian at the end on the scale of ``end``, or None)
        to ``compute()``, called on first use: a fit whose standard errors nobody asks for
        spends no evaluations on it."""
        self.__dict__.pop("hessian", None)
        self._hessian_fn = compute

    def __getstate__(self):
        self.hessian                  # computed now: a pickle holds the matrix, not the function
        return self.__dict__

    def diagnosis(self) -> str:
        """Why the fit is not converged, and what to try."""
        if self.max_abs_gradient > GRADIENT_TOL and not self.decrement < DECREMENT_TOL:
            return ("the optimizer did not converge: max |gradient| of the deviance is %.3g (Newton decrement "
                    "%.3g) after %d evaluations; rescale covariates, simplify the random part or try other "
                    "start values" % (self.max_abs_gradient, self.decrement, self.n_evals))
        return ("the optimum is not a proper maximum: the Hessian of the variance parameters is not positive "
                "definite, so some of them are not identified by the data (a flat ridge); simplify the "
                "random part (fewer random slopes, an independent covariance)")

    @property
    def max_abs_gradient(self) -> float:
        return float(np.max(np.abs(self.gradient))) if self.gradient.size else 0.0

    def __str__(self):
        lines = ["Optimizer summary",
                 "  converged:        %s" % self.converged,
                 "  objective:        %.10g" % self.fun,
                 "  evaluations:      %d" % self.n_evals,
                 "  max |gradient|:   %.3g (tolerance %.1g)" % (self.max_abs_gradient, GRADIENT_TOL),
                 "  Newton decrement: %.3g (tolerance %.1g)" % (self.decrement, DECREMENT_TOL),
                 "  message:          %s" % self.message]
        for a in self.attempts:
            lines.append("  tried %-12s objective %.10g, %d evaluations: %s" % a)
        return "\n".join(lines)


class _LazyHessian:
    """``OptSummary.hessian``: the Hessian at the end on the scale of ``end`` when every
    parameter is free and it is positive definite (else None), formed on first use (once,
    under a lock, so results shared by threads form it once) and then an ordinary attribute."""

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        with _HESSIAN_LOCK:
            values = obj.__dict__
            if "hessian" not in values:
                compute = values.pop("_hessian_fn", None)
                values["hessian"] = None if compute is None else compute()
            return values["hessian"]


OptSummary.hessian = _LazyHessian()
_HESSIAN_LOCK = threading.RLock()


def central_gradient(fun, x, bounds=None, step=1e-4):
    """Central finite-difference gradient of ``fun`` at ``x``."""
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in range(x.size):
        h = step * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


def forward_gradient(fun, x, f0=None, step=1e-6):
    """Forward finite-difference gradient (k + 1 evaluations; the optimizer's workhorse)."""
    x = np.asarray(x, float)
    f0 = fun(x) if f0 is None else f0
    g = np.zeros_like(x)
    for i in range(x.size):
        h = step * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fun(x + e) - f0) / h
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


def progress_printer(fun, label):
    """An optimizer callback printing one line per iteration: the objective, and the time so far."""
    import time
    start, count = time.perf_counter(), [0]

    def show(z, *args):
        count[0] += 1
        print("  %s iteration %3d: deviance %.8g  (%.2fs)" % (label, count[0], fun(z), time.perf_counter() - start),
              flush=True)
    return show


def minimize(fun, x0, bounds, scale=None, fun_and_grad=None, maxiter=1000, disp=False, newton_start=None,
             se_hessian=True, hessian=None):
    """Minimize ``fun`` over a box; return an ``OptSummary`` (``end`` on the scale of ``x0``).

    The optimizer works on ``x / scale``. L-BFGS-B first (with ``fun_and_grad``, which
    returns the objective and its gradient, or forward differences). A parameter that
    ends at 0 may sit on a stationary point that is not a minimum (the deviance is
    symmetric in the sign of a column of Lambda, so its gradient vanishes there): steps
    away from 0 are tried and, if one is better, the search restarts from it. Then Newton steps
    from a finite-difference Hessian that sharpen the optimum and check that the Hessian
    is positive definite. If the projected gradient is still not small, Powell from the
    best point, keeping the better result.

    ``newton_start`` (a point close to the optimum, e.g. from moments; with ``fun_and_grad``):
    Newton steps from it first; if they do not reach a converged optimum inside the box
    that no step away from zero improves, the search above runs from ``x0``.
    ``hessian`` (with ``newton_start``; on the scale of ``x``, every parameter): an
    approximation of the Hessian there, e.g. a fit's own at its optimum when a bootstrap
    replicate starts from it, taken for the first Newton steps in place of the forward
    differences of the gradient (one evaluation per parameter); a step it gives that fails,
    or does not shorten fast enough, gets those differences as usual.

    With ``fun_and_grad``, the Newton decrement and the positive-definiteness check use the
    Hessian of the Newton steps when it has the free parameters of the end point; the
    wide-step Hessian of the standard errors (``OptSummary.hessian``) is then formed on
    first use. ``se_hessian=False`` (callers that need no standard errors: bootstrap
    replicates): that Hessian is None instead.
    """
    x0 = np.asarray(x0, float)
    scale = np.ones_like(x0) if scale is None else np.asarray(scale, float)
    sbounds = [(None if lo is None else lo / s, None if hi is None else hi / s)
               for (lo, hi), s in zip(bounds, scale)]
    counter = [0]

    def f(z):
        counter[0] += 1
        return fun(z * scale)

    def f_and_g(z):
        if fun_and_grad is not None:
            counter[0] += 1
            fz, g = fun_and_grad(z * scale)
            return fz, g * scale
        fz = f(z)
        return fz, forward_gradient(f, z, fz)

    lower = np.array([b[0] if b[0] is not None else -np.inf for b in sbounds])
    upper = np.array([b[1] if b[1] is not None else np.inf for b in sbounds])
    z = np.clip(x0 / scale, lower, upper)
    attempts = []
    if newton_start is not None and fun_and_grad is not None:
        z1 = np.clip(np.asarray(newton_start, float) / scale, lower, upper)
        f0, g0 = f_and_g(z1)
        H0 = None if hessian is None else np.asarray(hessian, float) * np.outer(scale, scale)
        z1, f1, hess_ok, known, done = _newton_polish(
            f, z1, f0, sbounds, f_and_g=f_and_g, g0=g0, H0=H0,
            callback=progress_printer(lambda z: fun(z * scale), "Newton") if disp else None)
        attempts.append(("Newton", f1, counter[0], "Newton steps from the moment estimates" if H0 is None
                         else "Newton steps from the start's Hessian"))
        if done and hess_ok and known is not None and known[0] is not None and np.isfinite(f1):
            g, decrement, ok, hessian = _conclude(f_and_g, z1, known, sbounds, scale, lazy=se_hessian)
            if ok and _small(g, decrement) and _escape_from_zero(f, z1, f1, lower, upper) is None:
                opt = OptSummary(start=np.asarray(newton_start, float), end=z1 * scale, fun=f1,
                                 n_evals=counter[0], gradient=g, converged=True,
                                 message="converged: " + attempts[-1][3],
                                 attempts=attempts, decrement=decrement)
                opt.defer_hessian(hessian)
                return opt
    best_z, best_f, message = z, f(z), "start"
    for _ in range(4):
        before = counter[0]
        res = optimize.minimize(f_and_g, best_z, jac=True, method="L-BFGS-B", bounds=sbounds,
                                options={"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-9, "maxcor": 20},
                                callback=progress_printer(lambda z: fun(z * scale), "L-BFGS-B") if disp else None)
        attempts.append(("L-BFGS-B", float(res.fun), counter[0] - before, str(res.message)))
        if res.fun <= best_f:
            best_z, best_f, message = res.x, float(res.fun), str(res.message)
        escape = _escape_from_zero(f, best_z, best_f, lower, upper)
        if escape is None:
            break
        best_z, best_f = escape
    before = counter[0]
    polish_grad = f_and_g if fun_and_grad is not None else None
    best_z, best_f, hess_ok, known, _ = _newton_polish(f, best_z, best_f, sbounds, f_and_g=polish_grad)
    attempts.append(("Newton", best_f, counter[0] - before, "polish with the Hessian of the gradient"
                     if polish_grad is not None else "polish with a finite-difference Hessian"))
    hessian = None
    if polish_grad is not None:
        g0 = known[0] if known is not None and known[0] is not None else f_and_g(best_z)[1]
        known = (g0,) + (known[1:] if known is not None else (None, None))
        g, decrement, ok, hessian = _conclude(f_and_g, best_z, known, sbounds, scale, lazy=se_hessian)
        hess_ok = hess_ok and ok
    else:
        if known is not None:
            known = (None,) + known[1:]           # the projected gradient needs every parameter
        g, decrement = _stationarity(f, None, best_z, sbounds, known)
    if not _small(g, decrement):
        before = counter[0]
        res2 = optimize.minimize(f, best_z, method="Powell", bounds=sbounds,
                                 options={"maxiter": 20 * maxiter, "xtol": 1e-10, "ftol": 1e-14})
        attempts.append(("Powell", float(res2.fun), counter[0] - before, str(res2.message)))
        if res2.fun < best_f:
            best_z, best_f, message = res2.x, float(res2.fun), str(res2.message)
            g, decrement = _stationarity(f, polish_grad, best_z, sbounds)
            hessian = None
    converged = bool(_small(g, decrement) and np.isfinite(best_f) and hess_ok)
    if not hess_ok:
        message += "; the Hessian of the free parameters is not positive definite"
    opt = OptSummary(start=x0, end=np.asarray(best_z) * scale, fun=best_f, n_evals=counter[0], gradient=g,
                     converged=converged, message=message, attempts=attempts, decrement=decrement)
    opt.defer_hessian(hessian)
    return opt


def _stationarity(f, f_and_g, z, sbounds, known=None):
    """Projected gradient at ``z`` and the Newton decrement g'H^{-1}g of the free parameters.

    The decrement (twice the improvement a Newton step predicts) is scale-free: it does
    not grow with the number of observations as the raw gradient of the deviance does.
    ``known`` = (gradient at ``z`` or None, Hessian, its free mask) from ``_newton_polish``
    spares their evaluation (the Hessian is reused if the free parameters are the same).
    """
    g_known, H, H_free = known if known is not None else (None, None, None)
    if g_known is not None:
        g = g_known
    else:
        g = f_and_g(z)[1] if f_and_g is not None else central_gradient(f, z)
    g = projected_gradient(g, z, sbounds)
    free = _free(z, sbounds)
    if not free.any():
        return g, 0.0
    if H is None or not np.array_equal(H_free, free):
        H = _hessian_of_free(f, f_and_g, z, free)
    try:
        decrement = float(g[free] @ np.linalg.solve(H, g[free]))
    except np.linalg.LinAlgError:
        decrement = np.inf
    return g, decrement if decrement >= 0 else np.inf


def _hessian_of_free(f, f_and_g, z, free):
    """Hessian of the free parameters: central differences of the gradient, or of ``f``."""
    if f_and_g is not None:
        return _jacobian_of_gradient(f_and_g, z, free)
    from .information import hessian

    def sub(x):
        full = z.copy()
        full[free] = x
        return f(full)
    return hessian(sub, z[free], step=1e-3)


def _small(g, decrement):
    """Converged: the Newton decrement is below 1e-6, or the gradient itself is tiny."""
    if not np.all(np.isfinite(g)):
        return False
    return decrement < DECREMENT_TOL or np.max(np.abs(g), initial=0.0) <= GRADIENT_TOL


def _free_within(z, lo, hi):
    """``_free`` with the bounds as arrays (``-inf``/``inf`` for none)."""
    return ~((z <= lo + 1e-8) | (z >= hi - 1e-8))


def _free(z, sbounds):
    """Parameters not sitting at a bound."""
    out = np.ones(z.size, dtype=bool)
    for i, (lo, hi) in enumerate(sbounds):
        if (lo is not None and z[i] <= lo + 1e-8) or (hi is not None and z[i] >= hi - 1e-8):
            out[i] = False
    return out


def _newton_polish(f, z, fz, sbounds, steps=10, f_and_g=None, callback=None, g0=None, H0=None):
    """Newton steps on the free parameters with a finite-difference Hessian.

    Sharpens the optimum beyond what quasi-Newton stopping rules reach (so that the same
    data in another row order gives the same estimates to many digits) and checks that
    the Hessian of the free parameters is positive definite. With ``f_and_g`` the first
    Hessian is a forward difference of the gradient (one evaluation per free parameter) and
    every step updates it by BFGS from the change of the gradient, so the steps converge
    superlinearly without new Hessians; without it the Hessian of ``f`` is kept while its
    steps decrease the objective. The Hessian is recomputed where a step fails or is not
    ``SLOW`` times shorter than the one before. A step is kept unless it raises the
    objective by more than its rounding noise; the iteration stops when the step, or the next
    step predicted from the contraction of the last two, is below 1e-10. ``g0``: the
    gradient at ``z`` if known; ``H0``: a Hessian of every parameter to start from (with
    ``f_and_g``; treated as one already used, so a failed step replaces it). Returns (z, f, hessian_ok, known, done): known = (gradient
    at z or None, Hessian, its free mask) for ``_stationarity``; done: stopped by that rule.
    """
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in sbounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in sbounds])
    noise = 1e-12 * max(1.0, abs(fz))
    H, H_free, fresh, g, last = None, None, False, g0, np.inf
    if H0 is not None and f_and_g is not None and _free_within(z, lo, hi).all():
        H, H_free = H0, np.ones(z.size, dtype=bool)
    for _ in range(steps):
        free = _free_within(z, lo, hi)
        if not free.any():
            return z, fz, True, None, True
        if g is None:
            g = f_and_g(z)[1] if f_and_g is not None else _free_gradient(f, z, free)
        step = None
        if H is not None and not fresh and (H_free == free).all():
            step = np.linalg.solve(H, g[free])
            if abs(step).max() > (SLOW if f_and_g is not None else 0.1) * last:
                H = step = None                   # slow progress: a new Hessian
        if H is None or not (H_free == free).all():
            H = (_forward_jacobian(f_and_g, z, g, free, hi) if f_and_g is not None
                 else _hessian_of_free(f, f_and_g, z, free))
            H_free, fresh, step = free, True, None
            try:
                np.linalg.cholesky(H)
            except np.linalg.LinAlgError:
                return z, fz, False, None, False
        if step is None:
            step = np.linalg.solve(H, g[free])
        for t in (1.0, 0.5, 0.25, 0.0):
            if t == 0.0:
                break
            trial = z.copy()
            trial[free] = z[free] - t * step
            trial = np.clip(trial, lo, hi)
            ft, gt = f_and_g(trial) if f_and_g is not None else (f(trial), None)
            if ft <= fz + noise:
                break
        if t == 0.0:
            if fresh:
                break
            H = None                              # a stale Hessian: recompute it and retry
            continue
        previous = last
        if gt is not None and (_free_within(trial, lo, hi) == free).all():
            H = _bfgs_update(H, trial[free] - z[free], gt[free] - g[free])
        z, fz, g, fresh, last = trial, ft, gt, False, float(abs(t * step).max())
        if callback is not None:
            callback(z)
        # done when this step, or the next one its contraction predicts, is below 1e-10
        if last < 1e-10 or (previous < np.inf and last * (last / previous) < 1e-10 and last < 1e-6):
            return z, fz, True, (g, H, H_free), True
    return z, fz, True, (g, H, H_free), False


def _forward_jacobian(f_and_g, z, g, free, hi, step=1e-5):
    """Hessian of the free parameters by forward differences of an analytic gradient (``g``
    at ``z`` known: one evaluation per free parameter; steps towards an upper bound ``hi``
    go the other way). Accurate to about ``step`` relative: enough for Newton steps, whose
    stopping rule, not this Hessian, sets the accuracy of the optimum."""
    idx = np.flatnonzero(free)
    H = np.empty((idx.size, idx.size))
    for j, i in enumerate(idx):
        h = step * max(1.0, abs(z[i]))
        if z[i] + h > hi[i]:
            h = -h
        e = np.zeros_like(z)
        e[i] = h
        H[:, j] = (f_and_g(z + e)[1][free] - g[free]) / h
    return 0.5 * (H + H.T)


def _bfgs_update(H, s, y):
    """The BFGS update of the Hessian ``H`` by the step ``s`` and the change ``y`` of the
    gradient; ``H`` unchanged where the pair carries no curvature information (``s'y <= 0``)
    or the step is below ``1e-7``, where the change of the gradient is mostly rounding."""
    sy = float(s @ y)
    Hs = H @ s
    sHs = float(s @ Hs)
    if not (sy > 0 and sHs > 0 and abs(s).max(initial=0.0) > 1e-7):
        return H
    return H - Hs[:, None] * Hs / sHs + y[:, None] * y / sy


def _free_gradient(f, z, free):
    """Central-difference gradient of the free parameters (zero elsewhere)."""
    def sub(x):
        full = z.copy()
        full[free] = x
        return f(full)
    g = np.zeros_like(z)
    g[free] = central_gradient(sub, z[free])
    return g


def _conclude(f_and_g, z, known, sbounds, scale, lazy=True):
    """At the end point, with the analytic gradient: the projected gradient, the Newton
    decrement, whether the Hessian of the free parameters is positive definite, and a
    function giving the Hessian of the standard errors on the scale of ``x`` (or None).

    ``known`` = (gradient at ``z``, the Newton steps' Hessian or None, its free mask). When
    that Hessian has the free parameters of ``z`` it decides the decrement and positive
    definiteness, and the wide-step Hessian of the standard errors is formed only when
    called (``lazy``; none without ``lazy``). Otherwise ``_finish`` forms it now and it
    decides them.
    """
    g, H, H_free = known
    free = _free(z, sbounds)
    if H is not None and np.array_equal(H_free, free):
        g, decrement, ok = _decrement(g, H, z, free, sbounds)
        wide = _later(lambda: _finish(f_and_g, z, g, sbounds, scale)[3]) if lazy and free.all() else None
        return g, decrement, ok, wide
    g, decrement, ok, hessian = _finish(f_and_g, z, g, sbounds, scale)
    return g, decrement, ok, (lambda: hessian)


def _finish(f_and_g, z, g, sbounds, scale):
    """At the end point, with the analytic gradient: the projected gradient, the Newton
    decrement, whether the Hessian of the free parameters is positive definite, and that
    Hessian on the scale of ``x`` (None unless every parameter is free) for the standard errors.

    The Hessian is formed with a wide step (1e-3; rounding noise about 1e-10 relative), so
    that fits of the same data in another row order or from chunks agree to that level.
    """
    free = _free(z, sbounds)
    H = _jacobian_of_gradient(f_and_g, z, free, step=1e-3) if free.any() else None
    g, decrement, ok = _decrement(g, H, z, free, sbounds)
    hessian = H / np.outer(scale, scale) if ok and H is not None and free.all() else None
    return g, decrement, ok, hessian


def _later(compute):
    """``compute`` for a later call under the BLAS thread limit in force now (the same sums)."""
    single = blas_limited()

    def run():
        with single_blas_thread() if single else contextlib.nullcontext():
            return compute()
    return run


def _decrement(g, H, z, free, sbounds):
    """Projected gradient, Newton decrement and whether ``H`` (free parameters) is positive definite."""
    g = projected_gradient(g, z, sbounds)
    if not free.any():
        return g, 0.0, True
    try:
        np.linalg.cholesky(H)
        decrement = float(g[free] @ np.linalg.solve(H, g[free]))
    except np.linalg.LinAlgError:
        return g, np.inf, False
    return g, decrement if decrement >= 0 else np.inf, True


def _jacobian_of_gradient(f_and_g, z, free, step=1e-5):
    """Hessian of the free parameters by central differences of an analytic gradient."""
    idx = np.flatnonzero(free)
    H = np.empty((idx.size, idx.size))
    for j, i in enumerate(idx):
        h = step * max(1.0, abs(z[i]))
        e = np.zeros_like(z)
        e[i] = h
        H[:, j] = (f_and_g(z + e)[1][free] - f_and_g(z - e)[1][free]) / (2 * h)
    return 0.5 * (H + H.T)


def _escape_from_zero(f, z, fz, lower, upper):
    """A better point a step away from a parameter that ended at 0, or None."""
    best = None
    for i in np.flatnonzero(np.abs(z) < 1e-6):
        for step in (1e-2, -1e-2, 1e-1, -1e-1, 0.3, -0.3, 0.6, -0.6, 1.0, -1.0, 2.0, -2.0):
            trial = z.copy()
            trial[i] = np.clip(step, lower[i], upper[i])
            ft = f(trial)
            if ft < fz - 1e-8 * max(1.0, abs(fz)) and (best is None or ft < best[1]):
                best = (trial, ft)
    return best


def minimize_with_gradient(obj, x0, bounds, scale, maxiter, H0=None, disp=False):
    """Minimize a deviance with an analytic gradient (the GLMM's): (OptSummary, Hessian on z).

    ``obj`` has ``value(x)``, ``grad(x)`` and ``n_evals``. Works on z = x / scale with the
    analytic gradient. Without ``H0`` (the Laplace stage,
    from the GLM fit): L-BFGS-B, a step off zero-bound saddles, then Newton steps with the
    Hessian from central differences of the gradient, which sharpen the optimum to ~1e-10.
    With ``H0`` (the AGHQ stage, from the Laplace optimum): Newton steps with the Laplace
    Hessian, a close approximation that is refreshed only if a step fails; L-BFGS-B takes
    over if the steps stall.
    """
    sb = [(None if lo is None else lo / s, None if hi is None else hi / s) for (lo, hi), s in zip(bounds, scale)]
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in sb])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in sb])

    def f(z):
        return obj.value(z * scale)

    def grad(z):
        return obj.grad(z * scale) * scale

    def lbfgs(z):
        before = obj.n_evals
        res = optimize.minimize(f, z, jac=grad, method="L-BFGS-B", bounds=sb,
                            options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-4, "maxcor": 20},
                            callback=progress_printer(f, "Laplace" if obj.nagq == 1 else "AGHQ %d" % obj.nagq)
                            if disp else None)
        attempts.append(("L-BFGS-B", float(res.fun), obj.n_evals - before, str(res.message)))
        return res.x

    def outward(z, g):
        return ((z <= lo + 1e-10) & (g > 0)) | ((z >= hi - 1e-10) & (g < 0))

    z, attempts = np.clip(np.asarray(x0, float) / scale, lo, hi), []
    if H0 is None:
        for _ in range(3):
            z = lbfgs(z)
            escape = _escape_from_zero(f, z, f(z), lo, hi)
            if escape is None:
                break
            z = escape[0]
    H, fresh, fz, before = H0, False, f(z), obj.n_evals
    message = "Newton steps did not converge"
    for _ in range(40):
        g = grad(z)
        free = ~outward(z, g)
        if np.max(np.abs(g[free]), initial=0.0) < 1e-9:
            message = "converged: gradient below 1e-9"
            break
        if H is None:
            H, fresh = _hessian_from_gradient(grad, z), True
        try:
            Hf = H[np.ix_(free, free)]
            np.linalg.cholesky(Hf)
            step = np.zeros_like(z)
            step[free] = np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            if fresh:
                message = "the Hessian of the free parameters is not positive definite"
                break
            H = None
            continue
        for t in (1.0, 0.5, 0.25, 0.125, 0.0):
            trial = np.clip(z - t * step, lo, hi)
            ft = f(trial) if t else fz
            if ft <= fz + 1e-12 * max(1.0, abs(fz)):
                break
        if t == 0.0 and not fresh:
            H = None                                  # a stale Hessian: refresh it and retry
            continue
        if t == 0.0 or np.max(np.abs(trial - z)) < 1e-10:
            message = "converged: Newton step below 1e-10" if t else "no Newton step decreases the deviance"
            break
        z, fz, fresh = trial, ft, False
    attempts.append(("Newton", fz, obj.n_evals - before, message))
    g = grad(z)
    if np.max(np.abs(g[~outward(z, g)]), initial=0.0) > GRADIENT_TOL:
        z = lbfgs(z)
        fz, g, message = f(z), grad(z), attempts[-1][-1]
        H = None                                      # the Newton steps' Hessian is not the one at this end
    g = np.where(outward(z, g), 0.0, g)
    if H is None:
        H = _hessian_from_gradient(grad, z)
    try:
        np.linalg.cholesky(H[np.ix_(g != 0, g != 0)])
        hess_ok = True
    except np.linalg.LinAlgError:
        hess_ok = False
    converged = bool(np.isfinite(fz) and np.max(np.abs(g), initial=0.0) <= GRADIENT_TOL and hess_ok)
    return OptSummary(start=np.asarray(x0, float), end=z * scale, fun=fz, n_evals=obj.n_evals, gradient=g,
                      converged=converged, message=message, attempts=attempts), H


def _hessian_from_gradient(grad, z, step=1e-4):
    """Symmetrized central differences of a gradient."""
    cols = []
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = step * max(1.0, abs(z[i]))
        cols.append((grad(z + e) - grad(z - e)) / (2 * e[i]))
    H = np.array(cols)
    return 0.5 * (H + H.T)
