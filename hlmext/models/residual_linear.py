"""Linear mixed model with a residual covariance structure (``mixedlm(..., residuals=...)``).

The parameters the optimizer sees are ``theta`` (the random effects' relative factors,
as in ``hlmext.models.linear``) followed by ``psi``, the residual structure's parameters
(``hlmext.design.residual_structures``). At every ``psi`` the rows are prewhitened and
the per-cluster statistics recomputed (one pass over the rows, cached for the last few
``psi``); the factorization of ``hlmext.models.linear`` then runs unchanged on them and
the residual structure adds ``sum_j log det R_j`` to its log-determinant, so the profiled
deviance (ML and REML), ``sigma``, the fixed effects and the BLUPs are those of the model
with ``Cov(e_j) = sigma^2 R_j``. The gradient is analytic in ``theta`` and by central
differences in ``psi``.
"""
from __future__ import annotations

import functools
import threading
import warnings
from collections import OrderedDict

import numpy as np
import pandas as pd

from .._kernels import core as _core
from ..exceptions import ConvergenceWarning, DataError, ModelError
from ..stacklevel import user_stacklevel
from .gradient import GradientParts
from ..design.residual_structures import build
from ..formula import frames
from ..formula import grammar as fm
from .design_input import caller_env, design_from_frame, release_arrays
from .factorization import Factorization, profiled_deviance
from .optimize import minimize

def _serialized(method):
    """Run ``method`` holding the model's lock: an evaluation puts the statistics at its psi in
    place (``ResidualModel._use``), so one model's evaluations and fits run one at a time and
    fits of it from several threads are each right."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


_CACHE = 4          # statistics kept for this many recent psi (the optimizer's differences revisit them)


class _NotPositiveDefinite:
    """A factorization that failed: ``R_j`` is not positive definite at this ``psi``."""
    ok = False
    info = -1
    prss = np.nan


class ResidualModel:
    """Mixin for ``LinearMixed`` (placed before it): residual structure ``self.residual``.

    Built with ``residual=`` a ``hlmext.design.residual_structures.ResidualStructure``.
    """

    residual = None

    @classmethod
    def from_formula(cls, formula, data, residuals=None, time=None, by=None, residual_group=None, cov=None,
                     missing="drop", eval_env=0, var_weights=None, **kwargs):
        """``LinearMixed.from_formula`` with the residual structure ``residuals`` (see ``hlmext.mixedlm``)."""
        for bad in ("weights", "freq_weights", "pweights", "pwscale"):
            if kwargs.get(bad) is not None:
                what = "residuals=" if residuals is not None else "var_weights="
                raise ModelError("%s= together with %s is not available: a frequency or sampling weight stands for "
                                 "rows that a residual structure or precision weights do not model; drop %s= or %s"
                                 % (bad, what, bad, what))
            kwargs.pop(bad, None)
        parsed = fm.parse(formula, cov=cov)
        by_values, by_labels = _by_codes(data, by, "by")
        group_values, _ = _by_codes(data, residual_group, "residual_group")
        frame, arrays, columns = frames.model_frame_with_columns(
            parsed, data, {"time": time, "by": by_values, "residual_group": group_values,
                           "var_weights": var_weights}, missing, caller_env(eval_env))
        # crossed levels: the whitened coupling is added to every chain cluster's dense block
        design = design_from_frame(frame, dense_coupling=True)
        release_arrays(frame)
        order = np.asarray(design.order)
        by_sorted = None if by is None else by_labels[arrays["by"][order].astype(np.intp)]
        group_sorted = None if residual_group is None else arrays["residual_group"][order]
        structure = build(design, residuals, None if time is None else arrays["time"][order], by_sorted,
                          group_sorted, time_name=columns.get("time", "time"),
                          by_name=by if isinstance(by, str) else "by",
                          group_name=residual_group if isinstance(residual_group, str) else "residual_group")
        weights = None if var_weights is None else _precision_weights(arrays["var_weights"][order])
        model = cls(design=design, frame=frame, formula=formula, residual=structure, var_weights=weights, **kwargs)
        model.weight_columns = {}
        model.var_weights_column = columns.get("var_weights")
        return model

    def __init__(self, *args, residual=None, var_weights=None, **kwargs):
        if residual is None:
            raise ModelError("a model with a residual structure needs residual= (use hlmext.mixedlm(..., residuals=...))")
        self.residual = residual
        self.var_weights = var_weights          # precision weights (sorted rows): Var(e_i) = sigma^2 R / w_i
        self._whitened = None
        self._by_psi = OrderedDict()
        self._lock = threading.RLock()          # see _serialized
        super().__init__(*args, **kwargs)
        self.k_theta = sum(lv.cov.n_theta for lv in self.levels)
        self.k_re = self.k_theta + residual.n_params
        d = self.design
        self._rows = d.W if var_weights is None else d.W * np.sqrt(var_weights)[:, None]
        self._logdet_w = 0.0 if var_weights is None else -float(np.sum(np.log(var_weights)))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_whitened"], state["_rows"] = None, None      # the cached statistics stay (small)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()
        d, w = self.design, self.var_weights
        if getattr(d, "W", None) is not None:
            self._rows = d.W if w is None else d.W * np.sqrt(w)[:, None]

    # ------------------------------------------------------------------ statistics at psi
    def _use(self, psi):
        """Put the statistics of the rows whitened at ``psi`` in place; return ``sum log det R_j``."""
        psi = np.ascontiguousarray(psi, dtype=float)
        key = psi.tobytes()
        hit = self._by_psi.get(key)
        if hit is None:
            hit = self.residual.statistics_at(psi, self.design, self._rows)
        if hit is None:
            d = self.design
            if getattr(d, "W", None) is None or self._rows is None:
                raise ModelError("this model's rows were removed (remove_data()): it can evaluate its likelihood "
                                 "only where the fit did; fit the model again for more")
            if self._whitened is None:
                self._whitened = np.empty_like(d.W)
            out = self._whitened
            logdet = self.residual.whiten(self._rows, psi, out)
            if np.isfinite(logdet):
                stats = np.zeros(d.stat_size)
                _core.cross_products(out, d.zoff, d.level_first, d.row_start, d.row_end, d.stat_off, d.qd, stats,
                                     None)
                xy = out[:, d.zoff[-1]:]
                G0 = np.ascontiguousarray(xy.T @ xy)
                if d.qd:
                    G0 = self._crossed_statistics(psi, stats, G0)
                hit = (None, None, np.inf) if G0 is None else (stats, G0.ravel(), float(logdet))
            else:
                hit = (None, None, np.inf)
        if key not in self._by_psi:
            self._by_psi[key] = hit
            while len(self._by_psi) > _CACHE:
                self._by_psi.popitem(last=False)
        if hit[0] is not None:
            self._stats, self._G0 = hit[0], hit[1]
        return hit[2] + self._logdet_w

    def _crossed_statistics(self, psi, stats, xy_gram):
        """Crossed levels: ``Z' R^{-1} D`` into the chain's blocks and the global block
        ``[D X y]' R^{-1} [D X y]``, from ``R^{-1}`` by diagonals (one crossed group per row, so the
        kernels of ``MixedDesign.statistics`` do it with weights). Returns the global block, or None
        when ``R`` is not positive definite."""
        d, r = self.design, self.residual
        bands = r.precision_bands(psi)
        if bands is None:
            return None
        n, rows = d.nobs, r.rows
        Wp = self._rows[rows]
        prec = bands[0][1][:, None] * Wp                 # R^{-1} W, in the positions' order
        for lag, v in bands[1:]:
            prec[:-lag] += v[:-lag, None] * Wp[lag:]
            prec[lag:] += v[:-lag, None] * Wp[:-lag]
        W_prec = np.empty_like(prec)
        W_prec[rows] = prec                              # in the design's row order
        scale = None if self.var_weights is None else np.sqrt(self.var_weights)[:, None]
        zs = [lv.z if scale is None else lv.z * scale for lv in d.crossed]
        chain = d.levels[0]
        for lv, z in zip(d.crossed, zs):
            _core.add_crossed_coupling(W_prec, chain.q, d.row_start, d.row_end, d.stat_off, d.m + d.qd,
                                       chain.q + lv.doff, lv.codes, z, stats)
        qd = d.qd
        G = np.zeros((qd + xy_gram.shape[0], qd + xy_gram.shape[0]))
        G[qd:, qd:] = xy_gram
        xy_prec = W_prec[:, d.zoff[-1]:]
        none = np.zeros((n, 0))
        for j, first in enumerate(d.crossed):
            _core.add_crossed_gram(first.codes, zs[j], first.doff, first.codes, none, first.doff, xy_prec, G)
            c1, z1 = np.ascontiguousarray(first.codes[rows]), zs[j][rows]
            for k in range(j, len(d.crossed)):
                other = d.crossed[k]
                c2, z2 = np.ascontiguousarray(other.codes[rows]), zs[k][rows]
                for lag, v in bands:
                    if lag == 0:
                        _core.add_crossed_gram(c1, z1, first.doff, c2, z2, other.doff, none, G, v)
                        continue
                    w = np.ascontiguousarray(v[:-lag])
                    _core.add_crossed_gram(c1[:-lag], z1[:-lag], first.doff, c2[lag:], z2[lag:], other.doff,
                                           none[:-lag], G, w)
                    _core.add_crossed_gram(c1[lag:], z1[lag:], first.doff, c2[:-lag], z2[:-lag], other.doff,
                                           none[:-lag], G, w)
                if other is not first:
                    a = slice(first.doff, first.doff + first.n_groups * first.q)
                    b = slice(other.doff, other.doff + other.n_groups * other.q)
                    G[b, a] = G[a, b].T
        G[qd:, :qd] = G[:qd, qd:].T
        return np.ascontiguousarray(G)

    def _factor(self, theta, work=None, G=None):
        theta = np.asarray(theta, float)
        logdet_r = self._use(theta[self.k_theta:])
        if not np.isfinite(logdet_r):
            return _NotPositiveDefinite()
        f = Factorization(self, theta, work, G)
        if f.ok:
            f.logdet += logdet_r
            f.logdet_r = logdet_r
        return f

    # ------------------------------------------------------------------ objective
    def theta_start(self):
        return np.concatenate([super().theta_start(), self.residual.start()])

    def theta_bounds(self):
        return super().theta_bounds() + self.residual.bounds()

    def theta_null(self):
        """No random effects and independent errors (a residual variance per ``by`` group is kept at 1)."""
        return np.concatenate([np.zeros(self.k_theta), self.residual.null_psi()])

    def theta_scale(self):
        return np.concatenate([super().theta_scale(), np.ones(self.residual.n_params)])

    def theta_canonical(self, theta):
        theta = np.asarray(theta, float)
        return np.concatenate([super().theta_canonical(theta[:self.k_theta]), theta[self.k_theta:]])

    @_serialized
    def factorize(self, theta):
        return self._factor(theta)

    @_serialized
    def _factorize_final(self, theta):
        buffers = self._scratch()
        self._buffers.get(self).scratch = None
        return self._factor(theta, *buffers)

    @_serialized
    def deviance(self, theta, reml=True):
        f = self._factor(theta, *self._scratch())
        if not f.ok or not f.prss > 0:
            return np.inf
        return profiled_deviance(f, self.nobs, self.k_fe, reml)

    @_serialized
    def deviance_at(self, theta, sigma, reml=True):
        f = self._factor(theta, *self._scratch())
        if not f.ok:
            return np.inf
        n = self.nobs - (self.k_fe if reml else 0)
        out = f.logdet + n * (np.log(2 * np.pi) + 2 * np.log(sigma)) + f.prss / sigma ** 2
        return out + f.logdet_rx if reml else out

    def has_analytic_gradient(self):
        """False: the results take the variance parameters' covariance from the Hessian of the
        deviance (the fit itself uses ``deviance_and_gradient``)."""
        return False

    @_serialized
    def deviance_and_gradient(self, theta, reml=True, step=1e-5):
        """The deviance and its gradient: analytic in ``theta``, central differences in ``psi``."""
        theta = np.asarray(theta, float)
        f = self._factor(theta, *self._scratch())
        if not f.ok or not f.prss > 0:
            return np.inf, np.zeros_like(theta)
        value = profiled_deviance(f, self.nobs, self.k_fe, reml)
        parts = GradientParts(self, f, reml, consume=True)
        dof = self.nobs - self.k_fe if reml else self.nobs
        grad = [parts.dlogdet(i, E) + dof * parts.dprss(i, E) / f.prss for i, E in self._lam_derivatives(theta)]
        for i in range(self.k_theta, theta.size):
            e = np.zeros_like(theta)
            e[i] = step
            grad.append((self.deviance(theta + e, reml) - self.deviance(theta - e, reml)) / (2 * step))
        self._use(theta[self.k_theta:])
        return value, np.array(grad)

    def _lam_derivatives(self, theta):
        return super()._lam_derivatives(np.asarray(theta)[:self.k_theta])

    # ------------------------------------------------------------------ reporting scale
    def report_names(self):
        base = super().report_names()
        return base[:-1] + self.residual.param_names() + base[-1:]

    def report_is_corr(self):
        base = super().report_is_corr()
        return np.concatenate([base[:-1], self.residual.is_corr, base[-1:]])

    def residual_rows(self):
        return self.residual.display_rows()

    def report_from_theta(self, theta, sigma):
        theta = np.asarray(theta, float)
        base = super().report_from_theta(theta[:self.k_theta], sigma)
        return np.concatenate([base[:-1], self.residual.report(theta[self.k_theta:], sigma), base[-1:]])

    def theta_from_report(self, values):
        values = np.asarray(values, float)
        k = self.residual.n_params
        theta, sigma = super().theta_from_report(np.concatenate([values[:-1 - k], values[-1:]]))
        psi = self.residual.psi_from_report(values[-1 - k:-1], sigma)
        return np.concatenate([theta, psi]), sigma

    # ------------------------------------------------------------------ fit
    @_serialized
    def _fit(self, reml, start, maxiter, disp, robust=None, scope="all"):
        if robust is not None:
            raise ModelError("cov_type='cluster' with a residual structure is not available: the residual "
                             "structure already models the within-cluster correlation; use the model-based "
                             "standard errors (cov_type='nonrobust')")
        scale = self.theta_scale()
        theta0 = self.theta_start() * scale if start is None else np.asarray(start, float)
        if theta0.size != self.k_re:
            raise ModelError("start= has %d values; this model has %d (theta of the random effects, then the %d "
                             "parameters of the residual structure)" % (theta0.size, self.k_re, self.k_re - self.k_theta))
        analytic = all(lv.q <= 16 for lv in self.design.levels)
        grad = (lambda th: self.deviance_and_gradient(th, reml)) if analytic else None
        # no Newton start from the moment estimates: they are those of independent errors, and Newton steps
        # with a Hessian from differences of the psi part of the gradient cost more than L-BFGS-B from there
        opt = minimize(lambda th: self.deviance(th, reml), theta0, self.theta_bounds(), scale=scale,
                       fun_and_grad=grad, maxiter=maxiter, disp=disp)
        if disp:
            print(opt)
        if not opt.converged:
            warnings.warn(opt.diagnosis(), ConvergenceWarning, stacklevel=user_stacklevel())
        theta = self.theta_canonical(opt.end)
        self._buffers.get(self).gradient = None
        final = self._factorize_final(theta)
        if not final.ok or not np.isfinite(opt.fun):
            raise ModelError("the residual structure %s has no positive definite optimum for these data; try a "
                             "simpler structure" % self.residual.label)
        res = self.results_class(self, theta, reml=reml, opt=opt, factorization=final)
        self._use(self.residual.null_psi())           # kept for the LR test against the regression
        self._use(theta[self.k_theta:])
        return self.wrapper_class(res)


def _by_codes(data, by, role):
    """``by`` (a column name or one value per row) as float codes (NaN: missing) and its labels."""
    if by is None:
        return None, None
    if isinstance(by, str):
        if by not in data.columns:
            raise DataError("%s column %r is not in the data" % (role, by))
        by = data[by]
    codes, labels = pd.factorize(pd.Series(np.asarray(by, dtype=object).ravel()), sort=True)
    values = codes.astype(float)
    values[codes < 0] = np.nan
    return values, np.asarray(labels)


def _precision_weights(w):
    w = np.asarray(w, float)
    if np.any(w <= 0):
        raise DataError("var_weights must be positive (the residual variance of a row is sigma^2 / w); %d "
                        "are zero or negative" % int(np.sum(w <= 0)))
    return w
