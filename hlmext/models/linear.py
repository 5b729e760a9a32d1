"""Linear mixed model: profiled deviance from per-cluster cross-products, and the fit.

Model: ``y = X beta + Z b + e``, ``b = Lambda u``, ``u ~ N(0, sigma^2 I)``,
``e ~ N(0, sigma^2 I)``. For given ``theta`` (hence Lambda) the penalized least squares
problem ``min_{u, beta} |y - X beta - Z Lambda u|^2 + |u|^2`` is solved by the blocked
Cholesky factorization in ``_core.factorize``, which gives

- ``logdet`` = log det(Lambda' Z'Z Lambda + I),
- ``logdet_rx`` = log det(RX'RX) and the penalized residual sum of squares ``prss``,

and the profiled deviance (-2 log-likelihood maximized over beta and sigma) is

- ML:   ``logdet + n (1 + log(2 pi prss / n))``
- REML: ``logdet + logdet_rx + (n - p)(1 + log(2 pi prss / (n - p)))``

(Bates, Maechler, Bolker & Walker 2015, J. Stat. Softw. 67(1), eqs. 34 and 41).
After one pass over the rows (``_core.cross_products``) every evaluation touches only
the per-cluster blocks, so its cost does not depend on the number of rows.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from statsmodels.base.data import PandasData
from statsmodels.base.model import LikelihoodModel

from .._kernels import core as _core, crossed as _crossed
from ..design.arrays import checked_arrays
from ..design.covariance import Structure
from ..design.variance_components import variance_component_specs
from ..design.layout import LevelSpec, MixedDesign
from ..design.tail_gram import TailGram
from ..exceptions import ConvergenceWarning, ModelError
from . import chain_evaluation
from .gradient import GradientParts
from ..keywords import check_keywords
from .optimize import blas_threads_for, minimize, single_blas_thread
from .robust_options import cov_options
from ..stacklevel import user_stacklevel
from ..threads import PerThread

LOG2PI = np.log(2 * np.pi)


class Factorization:
    """The penalized system factored at one ``theta`` (private cache of a fit)."""

    def __init__(self, model, theta, work=None, G=None):
        d = model.design
        self.theta = np.asarray(theta, float)
        self.lams = model.lams(theta)
        self.lam_flat = lam_flat = np.concatenate([lam.ravel() for lam in self.lams])
        self.ok = bool(np.isfinite(lam_flat).all())
        if not self.ok:
            self.info = -1
            return
        # the optimizer's evaluations reuse the thread's buffers of the model (``model._scratch()``)
        self.work = np.empty(d.stat_size) if work is None else work
        self.G = np.empty(model._g0_size()) if G is None else G
        tail = model.__dict__.get("_tail")
        if tail is not None:                  # crossed levels' G0 in parts (hlmext.design.tail_gram)
            G0 = tail.scale_into(self.G, d, self.lams[d.n_chain:])
        else:
            G0 = model._G0 if not d.qd else _scale_dense(model._G0, d, self.lams[d.n_chain:], out=self.G)
        c = getattr(d, "coupling", None)
        if c is not None:                     # crossed factors, sparse coupling (hlmext.design.sparse_coupling)
            self.logdet, info = _crossed.factorize(model._stats, G0, lam_flat, model._lam_off, c.q, d.m, c.offset,
                                                   c.ptr, c.cols, d.dense_q, d.dense_groups, self.work, self.G)
        else:
            self.logdet, info = _core.factorize(model._stats, G0, lam_flat, model._lam_off, d.zoff, d.m,
                                                d.level_first, d.stat_off, d.parent, d.dense_q, d.dense_groups,
                                                self.work, self.G, model._cweight)
        p, qd = d.k_fe, d.qd
        L = self.G.reshape(qd + p + 1, qd + p + 1)
        _core.zero_above_diagonal(L)          # the lower factor, in place
        diag = L.diagonal()
        self.ok = info == 0 and np.isfinite(self.logdet) and bool(np.isfinite(diag).all())
        self.info = info
        if not self.ok:
            return
        if qd:
            self.logdet += 2.0 * np.log(diag[:qd]).sum()
        self.L = L                            # lower factor of the reduced [D X y] block
        self.L_dense = L[:qd, :qd]
        self.L_x = L[qd:qd + p, qd:qd + p]
        self.logdet_rx = 2.0 * np.log(diag[qd:qd + p]).sum()
        self.prss = L[-1, -1] ** 2
        top = qd + p
        self._w = L[-1, :top].copy()
        _core.solve_leading_factor_t(L, top, self._w)
        self.beta = self._w[qd:].copy()
        if d.intercept_col >= 0:
            self.beta[d.intercept_col] += d.y_shift

    def modes(self, model):
        """Spherical conditional modes u: chain clusters (core order), then the crossed block."""
        d = model.design
        u = np.empty(d.n_u)
        c = getattr(d, "coupling", None)
        if c is not None:
            _crossed.solve_modes(self.work, self._w, c.q, d.m, c.offset, c.ptr, c.cols, u)
        else:
            _core.solve_modes(self.work, self.G, self._w, d.zoff, d.m, d.level_first, d.stat_off,
                              d.parent, d.u_off, u)
        return np.concatenate([u, self._w[:d.qd]])


def _scale_dense(G0, design, lams, out):
    """``M' G0 M`` with ``M = diag(Lambda_D, I)``, plus the identity on the ``D`` block, in ``out``
    (which the core then factors in place)."""
    qd = design.qd
    G = out.reshape(qd + design.k_fe + 1, -1)
    G[...] = G0.reshape(G.shape)
    for lev, lam in zip(design.crossed, lams):
        seg = slice(lev.doff, lev.doff + lev.n_groups * lev.q)
        if lev.q == 1:
            G[:, seg] *= lam[0, 0]
            G[seg, :] *= lam[0, 0]
        else:
            G[:, seg] = (G[:, seg].reshape(-1, lev.n_groups, lev.q) @ lam).reshape(G.shape[0], -1)
            G[seg, :] = (lam.T @ G[seg, :].reshape(lev.n_groups, lev.q, -1)).reshape(-1, G.shape[1])
    G[np.arange(qd), np.arange(qd)] += 1.0
    return out


class LinearMixed(LikelihoodModel):
    """Linear mixed-effects model fitted by ML or REML.

    Parameters
    ----------
    endog : array_like, shape (n,)
        Response.
    exog : array_like, shape (n, p)
        Fixed-effects design (include a column of ones for an intercept).
    groups : array_like, shape (n,)
        Group label of every row (one level of random effects).
    exog_re : array_like, shape (n, q), optional
        Random-effects design; default a random intercept only (none when ``exog_vc`` is
        given, statsmodels' rule).
    exog_vc : dict, optional
        statsmodels' variance components: ``{name: {group label: matrix}}``, each matrix one
        row per row of the group (in data order), at most one nonzero entry per row; each
        column is a random effect nested in the group with the component's one variance
        (``hlmext.design.variance_components``).
    cov : str
        Covariance structure of the random effects: ``"unstructured"`` (default),
        ``"independent"``, ``"identity"`` or ``"exchangeable"``.
    exog_names, exog_re_names : list of str, optional
    design : MixedDesign, optional
        A prepared design (used by ``from_formula``); replaces the arrays.
    sampling : hlmext.design.sampling_weights.SamplingWeights, optional
        Sampling weights (built by ``from_formula`` from ``pweights``): the model's
        likelihood is then the pseudo-likelihood of ``hlmext.design.sampling_weights``.

    Examples
    --------
    >>> import numpy as np, hlmext
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(30), 10)
    >>> x = rng.normal(size=300)
    >>> y = 1 + 0.5 * x + rng.normal(size=30)[g] + rng.normal(size=300)
    >>> X = np.column_stack([np.ones(300), x])
    >>> res = hlmext.LinearMixed(y, X, g).fit(reml=False)
    >>> round(float(res.fe_params.iloc[1]), 2)
    0.55
    """

    #: the results class ``fit()`` returns and its pandas wrapper, named by the user-facing
    #: subclass (``hlmext.public``): the model floor imports no results code
    results_class = wrapper_class = None

    def __init__(self, endog=None, exog=None, groups=None, exog_re=None, cov="unstructured",
                 exog_names=None, exog_re_names=None, design=None, frame=None, formula=None, weights=None,
                 sampling=None, exog_vc=None, **kwargs):
        check_keywords(LinearMixed.__init__, kwargs)
        if design is None:
            design = _array_design(endog, exog, groups, exog_re, cov, exog_names, exog_re_names, weights,
                                   exog_vc)
        self.design = design
        self.sampling = sampling
        self._cweight = None if sampling is None else sampling.cluster_weights(design)
        self.frame = frame            # the formula's ModelFrame (None for the array interface)
        self.formula = formula
        self.levels = design.levels                   # innermost first
        for lv in self.levels:
            if lv.n_groups * lv.q >= design.nobs:
                raise ModelError("level %r has %d random effects (%d groups x %d) for %d observations: they are "
                                 "not identified together with the residual variance; use fewer random "
                                 "effects or a coarser grouping" % (lv.name, lv.n_groups * lv.q, lv.n_groups,
                                                                   lv.q, design.nobs))
        self.k_re = sum(lv.cov.n_theta for lv in self.levels)
        y = design.endog if design.has_rows else np.zeros(0)
        x = design.exog if design.has_rows else np.zeros((0, design.k_fe))
        endog = pd.Series(y, name=design.endog_name, copy=False)
        exog = pd.DataFrame(x, columns=design.exog_names, copy=False)
        if kwargs or y.dtype != np.float64 or x.dtype != np.float64 or y.ndim != 1 or x.ndim != 2:
            super().__init__(endog, exog, hasconst=False, **kwargs)
        else:
            self._attach_data(endog, exog, y, x)
        # the design knows its intercept column; spare statsmodels a pass over the rows to find it
        self.data.k_constant = self.k_constant = int(design.intercept_col >= 0)
        self.data.const_idx = design.intercept_col if design.intercept_col >= 0 else None
        self.data.param_names = list(design.exog_names) + self.report_names()
        self.nobs = getattr(design, "n_effective", design.nobs)    # the sum of frequency weights
        self.k_fe = design.k_fe
        self._lam_off = np.concatenate([[0], np.cumsum([lv.q ** 2 for lv in self.levels])[:-1]]).astype(np.intp)
        self._stats, G0 = design.statistics()
        if isinstance(G0, TailGram):
            self._tail = G0
        else:
            self._G0 = G0
        self._buffers = PerThread()                  # the evaluations' work buffers, one set per thread

    def _attach_data(self, endog, exog, y, x):
        """What ``LikelihoodModel.__init__(endog, exog, hasconst=False)`` attaches, for a float64
        response and design of one default index (the design's): statsmodels' data handling
        checks types, indexes and missing values, which the design has settled already. The
        arrays are read-only views of ``y`` and ``x``, the arrays the Series and DataFrame hold
        (what ``numpy.asarray`` of them gives, without pandas' conversion)."""
        data = PandasData.__new__(PandasData)
        data.orig_endog, data.orig_exog = endog, exog
        data.endog, data.exog = _read_only(y), _read_only(x)
        data.const_idx, data.k_constant, data._cache = None, 0, {}
        self.data, self.k_constant, self.exog, self.endog = data, 0, data.exog, data.endog
        self._data_attr = ["exog", "endog", "data.exog", "data.endog", "data.orig_endog", "data.orig_exog"]
        self._init_keys = ["hasconst"]
        self.initialize()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_formula(cls, formula, data, cov=None, missing="drop", eval_env=0, weights=None, pweights=None,
                     pwscale=None, allow_large_crossed=False, **kwargs):
        """Build the model from a formula (lme4 bars or Stata ``||``) and a DataFrame.

        See ``hlmext.mixedlm`` for the syntax, ``weights``, ``pweights``, ``pwscale`` and
        ``allow_large_crossed``.
        """
        check_keywords(LinearMixed.from_formula, kwargs)
        from ..formula import grammar as fm
        from ..formula import plain_frame
        from ..design import sampling_weights as sw
        if weights is not None and pweights is not None:
            raise ModelError("a model takes frequency weights (weights=) or sampling weights (pweights=), not "
                             "both; for survey data give every weight as pweights")
        parsed = _parse(fm, formula, cov)
        frame, arrays, columns = plain_frame.model_frame_with_columns(
            parsed, data, {"weights": weights, **sw.as_roles(pweights)}, missing, _caller_env(eval_env))
        sampling = sw.from_frame(frame, arrays, pwscale)
        row_weights = arrays.get("weights") if sampling is None else sampling.row_weights()
        design = design_from_frame(frame, weights=row_weights, check_tail=not allow_large_crossed)
        _release_arrays(frame)
        model = cls(design=design, frame=frame, formula=formula, sampling=sampling, **kwargs)
        model.weight_columns = {role: columns.get(role) for role in arrays}   # role -> column name (None: array)
        return model

    @property
    def exog_names(self):
        return self.design.exog_names

    @property
    def endog_names(self):
        return self.design.endog_name

    # ------------------------------------------------------------------ objective
    def lams(self, theta):
        """Relative covariance factors Lambda of every level (core order) for ``theta``."""
        out, k = [], 0
        for lv in self.levels:
            out.append(lv.cov.lam(theta[k:k + lv.cov.n_theta]))
            k += lv.cov.n_theta
        return out

    def theta_start(self):
        return np.concatenate([lv.cov.theta_start() for lv in self.levels])

    def theta_bounds(self):
        return [b for lv in self.levels for b in lv.cov.theta_bounds()]

    def theta_null(self):
        """The parameters of the model without random effects (the LR test against the regression)."""
        return np.zeros(self.k_re)

    def theta_moments(self):
        """Moment estimate of ``theta`` for one level of random effects, from the statistics.

        With OLS residuals e and ``A_k = Z_k'Z_k``, ``E[Z_k'e e'Z_k] ~ A_k Sigma A_k + sigma^2 A_k``;
        summed over clusters this is linear in ``Sigma`` (solved with ``sigma^2`` from
        ``E[e'e] ~ sum_k tr(A_k Sigma) + n sigma^2``, alternating three times). The relative
        covariance ``Sigma / sigma^2`` gives ``theta``. Nested or crossed levels: the same
        equations for every level (``hlmext.models.moments``). None if the estimate is near the boundary: an eigenvalue of the relative
        covariance of the columns scaled to unit root mean square below 1e-4 of the largest.
        """
        d = self.design
        if d.n_chain != 1 or d.qd:
            from .moments import multilevel_moments
            return multilevel_moments(self)
        if d.k_fe == 0:
            return None
        lev, p = d.levels[0], d.k_fe
        q = lev.q
        S = self._stats.reshape(lev.n_groups, q, q + p + 1)
        A = S[:, :, :q]
        G0 = self._G0.reshape(p + 1, p + 1)
        beta = np.linalg.solve(G0[:p, :p], G0[:p, p])
        rss = G0[p, p] - beta @ G0[:p, p]
        r = S[:, :, -1] - S[:, :, q:q + p] @ beta               # Z_k' e_k
        M, A_sum = r.T @ r, A.sum(axis=0)
        K = np.einsum("gij,gkl->ikjl", A, A).reshape(q * q, q * q)
        sigma2 = rss / self.nobs
        for _ in range(3):                       # least squares: K is singular where every A_k is
            cov = np.linalg.lstsq(K, (M - sigma2 * A_sum).ravel(), rcond=None)[0].reshape(q, q)
            cov = 0.5 * (cov + cov.T)
            sigma2 = max((rss - np.einsum("gij,ji->", A, cov)) / self.nobs, 1e-3 * rss / self.nobs)
        rms = d.z_rms(0)
        w = np.linalg.eigvalsh(cov / sigma2 * np.outer(rms, rms))
        if not (np.all(np.isfinite(w)) and w.min() > 1e-4 * w.max() > 0):
            return None
        theta = lev.cov.theta_from_cov(cov / sigma2)
        return theta if np.all(np.isfinite(theta)) else None

    def theta_canonical(self, theta):
        """The equivalent ``theta`` whose factors Lambda have non-negative diagonals."""
        out, k = [], 0
        for lv in self.levels:
            out.append(lv.cov.canonical(theta[k:k + lv.cov.n_theta]))
            k += lv.cov.n_theta
        return np.concatenate(out)

    def theta_scale(self):
        """Natural size of every ``theta`` (from the random-effects columns' magnitudes)."""
        d = self.design
        return np.concatenate([lv.cov.theta_scale(d.z_rms(i)) for i, lv in enumerate(self.levels)])

    def factorize(self, theta) -> Factorization:
        """Factor the penalized system at ``theta`` (pure: nothing on the model changes)."""
        return Factorization(self, theta)

    def deviance(self, theta, reml=True):
        """Profiled deviance (-2 log-likelihood, or the REML criterion) at ``theta``.

        Parameters
        ----------
        theta : ndarray, shape (k_re,)
            Parameters of the relative covariance factors, level by level (innermost first).
        reml : bool

        Returns
        -------
        float
            ``inf`` where the system is not positive definite.
        """
        f = Factorization(self, theta, *self._scratch())
        if not f.ok or not f.prss > 0:
            return np.inf
        return _deviance(f, self.nobs, self.k_fe, reml)

    def has_analytic_gradient(self) -> bool:
        """True when every level has at most 16 random effects (``hlmext.models.gradient``) and the
        likelihood is not a pseudo-likelihood of sampling weights."""
        return getattr(self, "sampling", None) is None and all(lv.q <= 16 for lv in self.design.levels)

    def deviance_and_gradient(self, theta, reml=True):
        """Profiled deviance and its analytic gradient with respect to ``theta``.

        With ``E_i = dLambda/dtheta_i`` and the sums of ``hlmext.models.gradient.GradientParts``:
        ``dD = d log det + dof * d prss / prss`` with ``dof = n`` (ML) or ``n - p`` (REML;
        the log determinant then includes ``log det RX'RX``). Any nesting and crossed
        factors; frequency weights enter through the weighted statistics.
        """
        if chain_evaluation.applies(self):     # nested levels only: the same sums without the objects
            return chain_evaluation.deviance_and_gradient(self, theta, reml)
        theta = np.asarray(theta, float)
        f = Factorization(self, theta, *self._scratch())
        if not f.ok or not f.prss > 0:
            return np.inf, np.zeros_like(theta)
        parts = GradientParts(self, f, reml, consume=True)
        dof = self.nobs - self.k_fe if reml else self.nobs
        unit = self._unit_derivatives()
        if unit is not None:             # the sums below, read off: each E has one entry, 1
            trace_at, resid_at = unit
            grad = 2.0 * parts.trace_flat[trace_at] + dof * (-2.0 * parts.resid_flat()[resid_at]) / f.prss
        else:
            grad = np.array([parts.dlogdet(i, E) + dof * parts.dprss(i, E) / f.prss
                             for i, E in self._lam_derivatives(theta)])
        return _deviance(f, self.nobs, self.k_fe, reml), grad

    def deviance_at_and_gradient(self, theta, sigma, reml=True):
        """``deviance_at`` and its analytic gradient with respect to ``(theta, sigma)``."""
        theta = np.asarray(theta, float)
        f = Factorization(self, theta, *self._scratch())
        if not f.ok:
            return np.inf, np.zeros(theta.size + 1)
        parts = GradientParts(self, f, reml, consume=True)
        dof = self.nobs - self.k_fe if reml else self.nobs
        grad = [parts.dlogdet(i, E) + parts.dprss(i, E) / sigma ** 2 for i, E in self._lam_derivatives(theta)]
        grad.append(2 * dof / sigma - 2 * f.prss / sigma ** 3)
        value = f.logdet + dof * (LOG2PI + 2 * np.log(sigma)) + f.prss / sigma ** 2
        return (value + f.logdet_rx if reml else value), np.array(grad)

    def _lam_derivatives(self, theta):
        """(level index, dLambda/dtheta_i) for every parameter, in ``theta``'s order."""
        out, k = [], 0
        for i, lv in enumerate(self.levels):
            out += [(i, E) for E in lv.cov.lam_derivatives(theta[k:k + lv.cov.n_theta])]
            k += lv.cov.n_theta
        return out

    def _unit_derivatives(self):
        """Where every ``dLambda/dtheta_i`` is one entry equal to 1 at ``(r, c)`` of its level's
        factor (unstructured, independent and one-column structures), the gradient's sums
        ``2 tr(T' E)`` and ``-2 sum(E * N)`` are ``2 T[c, r]`` and ``-2 N[r, c]``: their positions
        in ``GradientParts.trace_flat`` and ``resid_flat()``, formed once (None otherwise)."""
        unit = self.__dict__.get("_unit")
        if unit is None:
            trace_at, resid_at = [], []
            for i, lv in enumerate(self.levels):
                if not _constant_derivatives(lv.cov):
                    self._unit = unit = (False,)
                    return None
                for E in lv.cov.lam_derivatives(np.ones(lv.cov.n_theta)):
                    r, c = np.nonzero(E)
                    if r.size != 1 or E[r[0], c[0]] != 1.0:
                        self._unit = unit = (False,)
                        return None
                    trace_at.append(self._lam_off[i] + c[0] * lv.q + r[0])
                    resid_at.append(self._lam_off[i] + r[0] * lv.q + c[0])
            self._unit = unit = (np.array(trace_at, dtype=np.intp), np.array(resid_at, dtype=np.intp))
        return None if len(unit) == 1 else unit

    @property
    def _G0(self):
        """The global block ``[D X y]'[D X y]``, flat; with crossed levels formed from its parts
        (``_tail``, ``hlmext.design.tail_gram``) on every access: the fit itself uses the parts."""
        tail = self.__dict__.get("_tail")
        return tail.dense() if tail is not None else self.__dict__["_G0"]

    @_G0.setter
    def _G0(self, value):
        self.__dict__.pop("_tail", None)
        self.__dict__["_G0"] = value

    def _g0_size(self) -> int:
        tail = self.__dict__.get("_tail")
        return tail.size if tail is not None else self.__dict__["_G0"].size

    def _yy(self) -> float:
        """``y'y`` (weighted), the last entry of ``G0``."""
        tail = self.__dict__.get("_tail")
        return tail.yy if tail is not None else float(self.__dict__["_G0"][-1])

    def _new_buffers(self):
        """A thread's work buffers: the evaluations' (``scratch``) and the gradient's products."""
        return _Buffers()

    def _scratch(self):
        """Private work and global-block buffers reused by this thread's evaluations (never exposed)."""
        own = self._buffers.get(self)
        if own.scratch is None or own.scratch[1].size != self._g0_size():
            own.scratch = (np.empty(self.design.stat_size), np.empty(self._g0_size()))
        return own.scratch

    def _factorize_final(self, theta) -> Factorization:
        """``factorize(theta)`` in the evaluations' buffers, which the factor then owns (a fit
        holds one set of them, not two)."""
        buffers = self._scratch()
        self._buffers.get(self).scratch = None
        return Factorization(self, theta, *buffers)

    def deviance_at(self, theta, sigma, reml=True):
        """-2 log-likelihood at ``theta`` and a given residual sd (beta profiled out)."""
        f = Factorization(self, theta, *self._scratch())
        if not f.ok:
            return np.inf
        n = self.nobs - (self.k_fe if reml else 0)
        out = f.logdet + n * (LOG2PI + 2 * np.log(sigma)) + f.prss / sigma ** 2
        return out + f.logdet_rx if reml else out

    def loglike(self, params, reml=False):
        """Log-likelihood at ``params`` = (fixed effects, reported variance parameters).

        The variance parameters are those of ``results.params`` after the fixed effects:
        the sd's and correlations of every level (outermost first) and ``sd(Residual)``.
        With ``reml=True`` the REML criterion, which does not depend on the fixed effects.
        """
        with single_blas_thread():               # as in fit(): the same sums in every thread
            return self._loglike(np.asarray(params, float), reml)

    def _loglike(self, params, reml):
        beta = params[:self.k_fe]
        theta, sigma = self.theta_from_report(params[self.k_fe:])
        f = self.factorize(theta)
        if not f.ok:
            return -np.inf
        if reml:
            return -0.5 * self.deviance_at(theta, sigma, reml=True)
        diff = f.L_x.T @ (beta - f.beta)
        pwrss = f.prss + diff @ diff
        return -0.5 * (f.logdet + self.nobs * (LOG2PI + 2 * np.log(sigma)) + pwrss / sigma ** 2)

    # ------------------------------------------------------------------ reporting scale
    def report_names(self):
        """Names of the variance parameters, outermost level first, then sd(Residual)."""
        names = []
        for lv in self.levels[::-1]:
            names += ["%s[%s]" % (n, lv.name) for n in lv.cov.report_names()]
        return names + ["sd(Residual)"]

    def report_is_corr(self):
        """Per reported variance parameter: True for a correlation (else an sd)."""
        return np.concatenate([lv.cov.is_corr() for lv in self.levels[::-1]] + [[False]])

    def residual_rows(self):
        """``(position, label)`` of the summary's ``Residual`` rows, positions from the first
        reported value after the levels' (a residual structure has more)."""
        return [(0, "sd(Residual)")]

    def report_from_theta(self, theta, sigma):
        """sd's and correlations (outermost level first) and sigma, from ``theta``."""
        out, k = [], 0
        per_level = []
        for lv in self.levels:
            lam = lv.cov.lam(theta[k:k + lv.cov.n_theta])
            per_level.append(lv.cov.report(sigma ** 2 * lam @ lam.T))
            k += lv.cov.n_theta
        for vals in per_level[::-1]:
            out.append(vals)
        return np.concatenate(out + [[sigma]])

    def theta_from_report(self, values):
        """Inverse of ``report_from_theta``: (theta, sigma)."""
        values = np.asarray(values, float)
        sigma = values[-1]
        sizes = [len(lv.cov.report_names()) for lv in self.levels[::-1]]
        chunks, k = [], 0
        for s in sizes:
            chunks.append(values[k:k + s])
            k += s
        theta = []
        for lv, vals in zip(self.levels, chunks[::-1]):
            cov_rel = lv.cov.cov_from_report(vals) / sigma ** 2
            theta.append(lv.cov.theta_from_cov(cov_rel))
        return np.concatenate(theta), sigma

    # ------------------------------------------------------------------ fit
    def fit(self, reml=None, start=None, maxiter=1000, disp=False, cov_type=None, cov_kwds=None, **kwargs):
        """Fit by maximum likelihood (``reml=False``) or restricted ML (``reml=True``).

        Parameters
        ----------
        reml : bool, optional
            REML (the default, as lme4 and statsmodels) or ML (Stata ``mle``, needed to
            compare models with different fixed effects by LR tests). With sampling
            weights (``pweights``) only ML is defined and is the default (as Stata).
        start : array_like, optional
            Starting ``theta`` (relative covariance factors, core order).
        maxiter : int
        disp : bool
            Print progress (one line per optimizer iteration) and the optimizer summary.
        cov_type : {"nonrobust", "cluster"}, optional
            ``"nonrobust"`` (the default without sampling weights): model-based standard
            errors. ``"cluster"``: robust (sandwich) standard errors clustered at the
            outermost level; the default, and the only choice, with sampling weights
            (Stata: pweights imply ``vce(robust)``).

            - ML fits: every parameter, ``V = H^{-1} B H^{-1}`` in (fixed effects, log sd,
              atanh corr) with ``H`` the observed information and ``B`` the sum of the
              outer products of the top-level clusters' scores (``hlmext.results.sandwich``).
            - REML fits: the fixed effects only, ``C (sum_j s_j s_j') C`` with ``C`` the
              model-based covariance and ``s_j = X_j' e_j / sigma^2`` (``e`` the
              conditional residuals); the variance parameters keep their model-based
              standard errors (the REML criterion is not a sum over clusters).

        cov_kwds : dict, optional
            ``"correction"``: ``"CR1"`` (default) scales ``B`` by G/(G-1) as Stata's
            ``vce(cluster)``; ``"CR0"`` does not (clubSandwich's names). ``"scope"``:
            ``"all"`` (the default for ML) or ``"fixed"`` (the fixed-effects-only estimator
            of REML fits, also for ML: clubSandwich's ``vcovCR``); sampling weights need
            ``"all"``.

        Returns
        -------
        MixedResults

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
        >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False, cov_type="cluster")
        >>> res.bse.round(3).tolist()
        [0.407, 0.019, 0.315, 0.131]
        """
        check_keywords(LinearMixed.fit, kwargs)
        if getattr(self, "one_sided", False):
            raise ModelError("the formula has no response (it is one-sided, for fit_many): give it a response "
                             "to fit() one model, or call fit_many(Y)")
        if self.sampling is not None:
            if reml:
                raise ModelError("sampling weights (pweights) define a pseudo-likelihood, not a restricted one: "
                                 "fit with reml=False (the default with pweights)")
            reml = False
        reml = True if reml is None else reml
        robust, scope = cov_options(self.sampling, cov_type, cov_kwds, reml)
        with blas_threads_for(self.design):
            return self._fit(reml, start, maxiter, disp, robust, scope)

    def _fit(self, reml, start, maxiter, disp, robust=None, scope="all"):
        scale = self.theta_scale()
        theta0 = self.theta_start() * scale if start is None else np.asarray(start, float)
        grad = (lambda th: self.deviance_and_gradient(th, reml)) if self.has_analytic_gradient() else None
        moments = self.theta_moments() if start is None and grad is not None else None
        opt = minimize(lambda th: self.deviance(th, reml), theta0, self.theta_bounds(), scale=scale,
                       fun_and_grad=grad, maxiter=maxiter, disp=disp, newton_start=moments)
        if disp:
            print(opt)
        if not opt.converged:
            warnings.warn(opt.diagnosis(), ConvergenceWarning, stacklevel=user_stacklevel())
        theta = self.theta_canonical(opt.end)
        self._buffers.get(self).gradient = None   # the optimizer's; the results need no selected inverse
        final = self._factorize_final(theta)
        spread = np.sqrt(self._yy() / self.nobs) if self._yy() > 0 else 1.0
        if not final.ok or not np.isfinite(opt.fun) or final.prss <= 1e-10 * max(spread, 1e-300) ** 2 * self.nobs:
            raise ModelError("the model reproduces the data exactly (the residual variance goes to zero), so "
                             "its likelihood has no maximum: %d observations are too few for %d fixed effects "
                             "and these random effects; use fewer fixed or random effects"
                             % (self.nobs, self.k_fe))
        return self.wrapper_class(self.results_class(self, theta, reml=reml, opt=opt, robust=robust, robust_scope=scope,
                                                      factorization=final))


def _constant_derivatives(cov):
    """True when every block of a level's covariance has Lambda linear in theta (its derivatives
    do not depend on theta: the structures that keep ``Structure.lam_derivatives``)."""
    return all(type(s).lam_derivatives is Structure.lam_derivatives for s, _ in cov.blocks)


class _Buffers:
    """One thread's work buffers of a model (see ``LinearMixed._scratch`` and ``gradient``)."""

    def __init__(self):
        self.scratch = self.gradient = None


def _deviance(f, n, p, reml):
    if reml:
        r = n - p
        return f.logdet + f.logdet_rx + r * (1 + LOG2PI + np.log(f.prss / r))
    return f.logdet + n * (1 + LOG2PI + np.log(f.prss / n))


def _release_arrays(frame):
    """Drop the formula frame's row arrays once the design holds the data (what remains of the
    frame: design infos for new data, column names, row labels, the count of dropped rows)."""
    frame.endog = frame.exog = None
    for block in frame.random:
        block.exog_re = block.groups = None


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


@functools.lru_cache(maxsize=256)
def _parse_known(parse, formula, cov):
    return parse(formula, cov=cov)


def _parse(grammar, formula, cov):
    """``grammar.parse(formula, cov=cov)``, kept for a formula string and covariance name seen before
    (the parsed formula is immutable; a dict of structures or Stata's residuals() is parsed anew)."""
    if not isinstance(formula, str) or not (cov is None or isinstance(cov, str)):
        return grammar.parse(formula, cov=cov)
    parsed = _parse_known(grammar.parse, formula, cov)
    return parsed if parsed.residuals is None else grammar.parse(formula, cov=cov)


def _caller_env(depth):
    return depth + 1 if isinstance(depth, int) else depth


def design_from_frame(frame, weights=None, dense_coupling=False, check_tail=False) -> MixedDesign:
    """A ``MixedDesign`` from the formula module's ``ModelFrame`` (``dense_coupling``, ``check_tail``: see
    ``MixedDesign``)."""
    specs = []
    for block in frame.random:
        q = block.exog_re.shape[1]
        specs.append(LevelSpec(block.term.level, block.groups, block.exog_re,
                               [(block.term.cov, list(range(q)))], list(block.names)))
    return MixedDesign(frame.endog, frame.exog, frame.exog_names, specs, endog_name=frame.endog_name,
                       weights=weights, dense_coupling=dense_coupling, check_tail=check_tail)


def _array_design(endog, exog, groups, exog_re, cov, exog_names, exog_re_names, weights=None, exog_vc=None):
    if endog is None or exog is None or groups is None:
        raise ModelError("LinearMixed needs endog, exog and groups (or use hlmext.mixedlm with a formula)")
    endog, exog, groups, exog_re = checked_arrays(endog, exog, groups, exog_re)
    endog = np.asarray(endog, dtype=float)
    exog = np.asarray(exog, dtype=float)
    if exog.ndim == 1:
        exog = exog[:, None]
    exog_names = list(exog_names) if exog_names is not None else _default_names(exog, "x")
    # statsmodels' rule: a random intercept of groups unless exog_re or exog_vc says otherwise
    specs = [] if exog_vc is None else variance_component_specs(groups, exog_vc, endog.shape[0])
    if exog_re is None and specs:
        return MixedDesign(endog, exog, exog_names, specs, endog_name="y", weights=weights)
    if exog_re is None:
        exog_re = np.broadcast_to(np.ones((1, 1)), (endog.shape[0], 1))   # a random intercept
        exog_re_names = exog_re_names or ["Intercept"]
    exog_re = np.asarray(exog_re, dtype=float)
    if exog_re.ndim == 1:
        exog_re = exog_re[:, None]
    exog_re_names = list(exog_re_names) if exog_re_names is not None else _default_names(exog_re, "z")
    spec = LevelSpec("group", np.asarray(groups), exog_re, [(cov, list(range(exog_re.shape[1])))],
                     exog_re_names)
    return MixedDesign(endog, exog, exog_names, [spec] + specs, endog_name="y", weights=weights)


def _default_names(a, prefix):
    names = []
    for j in range(a.shape[1]):
        ones = (len(a) == 0 or a[0, j] == 1) and np.all(a[:, j] == 1)
        names.append("Intercept" if ones else "%s%d" % (prefix, j + 1))
    return names
