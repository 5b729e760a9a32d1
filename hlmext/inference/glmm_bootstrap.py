"""Simulation and refits of mixed logit and mixed Poisson fits, for the parametric bootstrap.

A replicate draws new random effects and a new response from the fitted model,

    eta = X beta + offset + sum_l Z_l b_l,   b_lg = Lambda_l u_lg,  u_lg ~ N(0, I),
    y ~ Binomial(trials, 1 / (1 + exp(-eta)))   or   y ~ Poisson(exp(eta)),

and refits the model to it by the fit's own method (Laplace, then AGHQ with the same number
of points), starting from the original estimates. Only the response changes: the design,
the fixed-effects matrix and the kernels' layout are shared. ``hlmext.inference.bootstrap`` runs the
replicates (processes, seeds, progress) for linear and generalized fits alike.
"""
from __future__ import annotations

import copy

import numpy as np

from ..exceptions import ModelError
from ..models.glm_start import glm_start
from ..models.glmm import _Objective
from ..models.glmm_boundary import best_on_boundary
from ..models.optimize import minimize_with_gradient


def is_glmm(res) -> bool:
    """True for a ``GLMMResults`` (mixed logit or Poisson) fit."""
    return hasattr(res, "nagq") and hasattr(res.model, "_family_code")


def with_endog(model, y_sorted):
    """The same GLMM with a new response (in the design's sorted row order), own workspace.

    The response is checked as the model's own (counts within trials, non-negative counts).
    """
    from .._kernels import glmm as _glmm
    y = np.asarray(y_sorted, float)
    if y.shape != (model.nobs,):
        raise ModelError("the new response has %d values; the model has %d observations" % (y.size, model.nobs))
    model._check_response(y, model.trials, model.design.endog_name, "trials")
    if model._family_code not in (_glmm.BINOMIAL, _glmm.POISSON) and not hasattr(model, "draw_response"):
        raise ModelError("unknown family")
    new = copy.copy(model)
    new.design = copy.copy(model.design)
    new.design.endog = new._y = np.ascontiguousarray(y)
    new._setup_weights()                          # the kernel's rows and the data constants
    new._workspace()
    if getattr(model, "data", None) is not None:
        new.data = copy.copy(model.data)
        original = np.empty_like(y)
        original[model.design.order] = y
        new.endog = new.data.endog = original
    return new


class GLMMSource:
    """Draws responses from one GLMM fit, in its design's row order (picklable)."""

    def __init__(self, res):
        model = res.model
        _refuse_weights(model)
        self.model = _stripped(model)
        beta = np.asarray(res.fe_params, float)
        self.eta = model._X @ beta + model.offset
        self.factors = [lam.T for lam in model.lams(res.theta)]        # b = u Lambda'
        self.order = model.design.order

    def draw(self, rng):
        from .._kernels import glmm as _glmm
        m = self.model
        d = m.design
        eta = self.eta.copy()
        for i, (lv, fac) in enumerate(zip(d.levels, self.factors)):       # innermost level first
            b = rng.standard_normal((lv.n_groups, lv.q)) @ fac
            eta += np.einsum("ij,ij->i", d.z_of(i), b[lv.codes])
        if hasattr(m, "draw_response"):
            return m.draw_response(eta, rng)
        if m._family_code == _glmm.BINOMIAL:
            return rng.binomial(m.trials.astype(np.int64), 1.0 / (1.0 + np.exp(-eta))).astype(float)
        return rng.poisson(np.exp(eta)).astype(float)


class GLMMRefit:
    """One GLMM fit to refit to simulated responses: (beta, reported values, deviance, converged)."""

    def __init__(self, res):
        model = res.model
        _refuse_weights(model)
        self.model = _stripped(model)
        self.nagq = res.nagq
        self.start = np.concatenate([np.asarray(res.fe_params, float), np.asarray(res.theta, float)])
        self.bounds = [(None, None)] * model.k_fe + model.theta_bounds()
        se = np.asarray(res.bse_fe, float)
        self.scale = np.concatenate([np.where(np.isfinite(se) & (se > 0), se, 1.0), model.theta_scale()])
        self.order = model.design.order
        self.width = model.k_fe + len(model.report_names()) + 2

    def fit(self, y_sorted):
        m = with_endog(self.model, y_sorted)
        obj = _Objective(m, 1)
        opt, hess = minimize_with_gradient(obj, self.start, self.bounds, self.scale, 1000)
        if self.nagq > 1:
            obj = _Objective(m, self.nagq)
            opt, hess = minimize_with_gradient(obj, opt.end, self.bounds, self.scale, 1000, hess)
        opt = best_on_boundary(m, obj, opt, hess, _glm_floor(m), self.bounds, self.scale, 1000)
        p = m.k_fe
        values = m.report_from_theta(opt.end[p:])
        return np.concatenate([opt.end[:p], values, [opt.fun, float(opt.converged)]])


def _glm_floor(model):
    """(beta, loglik) of the replicate's GLM without random effects, the fit's floor; a
    replicate whose response is separated has none (its faces are still searched)."""
    try:
        beta, _, llf = glm_start(model)
    except ModelError:
        return np.zeros(model.k_fe), -np.inf
    return beta, llf


def refit(res, endog):
    """The fit's model refitted to a new response (row order of the fitted data), as a full fit."""
    model = res.model
    endog = np.asarray(endog, float).ravel()
    if endog.shape != (model.nobs,):
        raise ModelError("the new response has %d values; the model has %d observations" % (endog.size, model.nobs))
    if not np.all(np.isfinite(endog)):
        raise ModelError("the new response contains NaN or inf")
    new = with_endog(model, endog[model.design.order])
    start = np.concatenate([np.asarray(res.fe_params, float), np.asarray(res.theta, float)])
    return new.fit(nagq=res.nagq, start=start)


def _stripped(model):
    """A picklable copy without the formula objects, with its own workspace."""
    out = copy.copy(model)
    out.frame = out.data = out.endog = out.exog = None
    out._workspace()
    return out


def _refuse_weights(model):
    from ..design.sampling_weights import no_lr_test
    no_lr_test(model, "simulation and the parametric bootstrap")
    if getattr(model.design, "weights", None) is not None:
        raise ModelError("simulation and the bootstrap of weighted generalized models are not supported")
