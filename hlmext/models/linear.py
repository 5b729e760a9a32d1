"""Linear mixed model: the model class, its profiled deviance and gradient, and the fit.

Model: ``y = X beta + Z b + e``, ``b = Lambda u``, ``u ~ N(0, sigma^2 I)``,
``e ~ N(0, sigma^2 I)``. Each evaluation factors the penalized system at one ``theta``
(``hlmext.models.factorization``); after one pass over the rows (``_core.cross_products``)
every evaluation touches only the per-cluster blocks, so its cost does not depend on the
number of rows. The design comes from a formula frame or arrays
(``hlmext.models.design_input``).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from statsmodels.base.data import PandasData
from statsmodels.base.model import LikelihoodModel

from ..design.covariance import Structure
from ..design.tail_gram import TailGram
from ..exceptions import ConvergenceWarning, ModelError
from . import chain_evaluation
from .design_input import array_design, caller_env, design_from_frame, parse, release_arrays
from .factorization import LOG2PI, Factorization, profiled_deviance
from .gradient import GradientParts
from .moments import moment_theta
from ..keywords import check_keywords
from .optimize import minimize
from ..threads import blas_threads_for, single_blas_thread
from .robust_options import cov_options
from ..stacklevel import user_stacklevel
from ..threads import PerThread


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
            design = array_design(endog, exog, groups, exog_re, cov, exog_names, exog_re_names, weights,
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
        parsed = parse(fm, formula, cov)
        frame, arrays, columns = plain_frame.model_frame_with_columns(
            parsed, data, {"weights": weights, **sw.as_roles(pweights)}, missing, caller_env(eval_env))
        sampling = sw.from_frame(frame, arrays, pwscale)
        row_weights = arrays.get("weights") if sampling is None else sampling.row_weights()
        design = design_from_frame(frame, weights=row_weights, check_tail=not allow_large_crossed)
        release_arrays(frame)
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
        """Moment estimate of ``theta`` from the statistics (``hlmext.models.moments``), or None
        near the boundary: the Newton steps' start."""
        return moment_theta(self)

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
        return profiled_deviance(f, self.nobs, self.k_fe, reml)

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
        return profiled_deviance(f, self.nobs, self.k_fe, reml), grad

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


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


