"""Ordinal (cumulative logit / probit) mixed models by maximum likelihood.

Model (Stata ``meologit`` / ``meoprobit``, R ``ordinal::clmm``): for a response with
ordered categories 1..K,

    P(y_ij <= k | b_j) = F(cut_k - x_ij' beta - z_ij' b_j),   b_j = Lambda u_j, u_j ~ N(0, I),

with F the logistic (``link="logit"``) or standard normal (``"probit"``) CDF and
cut_1 < ... < cut_{K-1}. The cut points take the intercept's role: the fixed part has no
intercept (the formula's is dropped, as Stata does). A row's log-likelihood is
``log(F(cut_k - eta) - F(cut_{k-1} - eta))``; the marginal likelihood integrates each
cluster's random effects out by Laplace or adaptive Gauss-Hermite quadrature in
``_kernels/ordinal.pyx``, which also gives the analytic gradient in (beta, cuts, theta).

One level of random effects (any ``cov=`` structure), or nested levels (``ordinal_nested``:
Laplace for any number, adaptive quadrature for two); the optimizer works with the first
cut point and the logs of the gaps between cut points, so the cut points stay ordered.

Sampling weights (``pweights=``, Stata's ``[pw=]`` and ``pweight()`` of the level): the
pseudo-likelihood of ``hlmext.design.sampling_weights``, each row's log-likelihood times
its observation weight inside its cluster's integral and each cluster's log integral
times the cluster's weight; the standard errors are then the robust (sandwich) ones.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._kernels import ordinal as _ordinal
from ..exceptions import ConvergenceWarning, DataError, FormulaError, ModelError
from ..formula import grammar as fm
from ..keywords import check_keywords, checked
from ..stacklevel import user_stacklevel
from .glmm import MixedGLM, _Buffers, kernel_threads
from .glmm_boundary import best_on_boundary
from . import ordinal_nagq0, ordinal_nested
from .design_input import caller_env
from .optimize import minimize_with_gradient
from ..threads import single_blas_thread
from .quadrature import MAX_NODES
from .robust_options import cov_options

LINKS = {"logit": _ordinal.LOGIT, "probit": _ordinal.PROBIT}


def response_codes(values, name):
    """Category codes (float, NaN where missing) and the ordered category labels of a response.

    An ordered pandas Categorical keeps its order (and its unused categories, which the
    model refuses); anything else (numbers, strings, an unordered Categorical) is ordered
    by sorting its distinct values.
    """
    s = pd.Series(values)
    if isinstance(s.dtype, pd.CategoricalDtype) and s.cat.ordered:
        codes = s.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes, list(s.cat.categories)
    present = s.dropna()
    try:
        levels = sorted(pd.unique(present))
    except TypeError as exc:
        raise DataError("response %r mixes values that cannot be sorted (%s); pass an ordered pandas "
                        "Categorical to give the order of its categories" % (name, exc)) from None
    codes = pd.Categorical(s, categories=levels).codes.astype(float)
    codes[codes < 0] = np.nan
    return codes, levels


class MixedOrdinal(MixedGLM):
    """Ordinal logistic or probit regression with random effects (``hlmext.meologit``, ``meoprobit``).

    Built by ``from_formula`` (or the constructors of ``hlmext.api``), or from arrays:
    ``endog`` the responses (their sorted distinct values are the categories, unless
    ``categories`` lists them in order and ``endog`` holds their codes 0..K-1), ``exog``
    with a column of ones (the intercept, dropped), ``groups``, ``exog_re`` and
    ``link="logit"`` or ``"probit"``. Parameters are the fixed effects (no intercept), the
    cut points ``/cut1``..``/cut{K-1}`` and the sd's and correlations.

    Examples
    --------
    >>> import hlmext
    >>> wine = hlmext.datasets.load("wine")
    >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
    >>> round(res.llf, 3)
    -81.565
    """

    model_label = "Mixed-effects ologit regression"
    eform_label = "Odds Ratio"
    versus = "ologit regression"

    def __init__(self, endog=None, exog=None, groups=None, exog_re=None, cov="unstructured", link="logit",
                 categories=None, **kwargs):
        check_keywords(MixedOrdinal.__init__, kwargs, extra=("exog_names", "exog_re_names", "design", "frame",
                                                             "formula", "columns", "sampling"))
        if link not in LINKS:
            raise ValueError("link must be 'logit' or 'probit', not %r" % (link,))
        self.link = link
        if link == "probit":
            self.model_label, self.eform_label, self.versus = ("Mixed-effects oprobit regression", "",
                                                               "oprobit regression")
        self._link_code = LINKS[link]
        self._categories = categories
        super().__init__(endog, exog, groups, exog_re, cov, **kwargs)
        d = self.design
        if self.nested:
            ordinal_nested.check(self)
        names = list(d.exog_names)
        if "Intercept" not in names:
            raise FormulaError("the fixed part of an ordinal model needs its intercept (the cut points take its "
                               "place and it is dropped from the design): remove '0 +' or '- 1' from the formula")
        keep = [i for i, nm in enumerate(names) if nm != "Intercept"]
        self._keep = keep
        self.beta_names = [names[i] for i in keep]
        self.k_beta, self.k_cut = len(keep), self.n_categories - 1
        # x'beta of the rows; ``_X`` pads it with a zero column per cut point, so that the
        # fixed part (beta, cuts) times ``_X`` is the linear predictor without the cut points
        self._Xb = np.ascontiguousarray(d.exog[:, keep])
        self._X = np.ascontiguousarray(np.hstack([self._Xb, np.zeros((self.nobs, self.k_cut))]))
        self.cut_names = ["/cut%d" % (k + 1) for k in range(self.k_cut)]
        self.k_fe = self.k_beta + self.k_cut
        self.data.param_names = self.beta_names + self.cut_names + self.report_names()
        self._yk = np.ascontiguousarray(self._y, dtype=np.intc)
        self._cut_of_A = np.where(self._yk < self.k_cut, self._yk, -1)
        self._cut_of_B = self._yk - 1

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_formula(cls, formula, data, link="logit", cov=None, missing="drop", eval_env=0, pweights=None,
                     pwscale=None, **kwargs):
        """Build the model from a formula; see ``hlmext.meologit``."""
        check_keywords(MixedOrdinal.from_formula, kwargs)
        response = fm.parse(formula, cov=cov).response
        if not isinstance(data, pd.DataFrame):
            raise TypeError("data must be a pandas DataFrame, not %s" % type(data).__name__)
        if response not in data.columns:
            raise FormulaError("the response of an ordinal model must be a column of data; %r is not one"
                               % response)
        codes, labels = response_codes(data[response], response)
        if len(labels) < 2:
            raise DataError("response %r has %s: an ordinal model needs at least two categories"
                            % (response, "one category (%r)" % (labels[0],) if labels else "no values"))
        data = data.assign(**{response: codes})
        return cls._from_formula(formula, data, {}, cov=cov, missing=missing, eval_env=caller_env(eval_env),
                                 pweights=pweights, pwscale=pwscale, link=link, categories=labels)

    @property
    def exog_names(self):
        return self.beta_names + self.cut_names

    @property
    def n_categories(self):
        return len(self._categories) if self._categories is not None else int(np.max(self.design.endog)) + 1

    @property
    def categories(self):
        """The response's categories, lowest first."""
        return list(self._categories) if self._categories is not None else list(range(self.n_categories))

    @staticmethod
    def _row_constant(y, ntr):
        return np.zeros(len(y))

    def _check_response(self, y, ntr, name, trials_name):
        if self._categories is None:
            self._categories = sorted(set(np.asarray(y).tolist()))
            y[:] = np.searchsorted(self._categories, y)
        K = len(self._categories)
        if K < 2:
            raise DataError("response %r has one category (%r): an ordinal model needs at least two"
                            % (name, self._categories[0] if K else None))
        counts = np.bincount(np.asarray(y, dtype=int), minlength=K)
        empty = [str(c) for c, n in zip(self._categories, counts) if n == 0]
        if empty:
            raise DataError("response %r has no rows in categor%s %s (after dropping rows with missing values): "
                            "drop unused categories (Series.cat.remove_unused_categories()) or merge them"
                            % (name, "ies" if len(empty) > 1 else "y", ", ".join(empty)))

    def _setup_weights(self):
        """Sampling weights: every row's observation weight (``_wobs``) and the product of its
        observation and cluster weights (``_wrow``, for the model without random effects);
        the clusters' weights (``_cweight``) and the zero data constants as ``MixedGLM``'s."""
        super()._setup_weights()
        s, d = self.sampling, self.design
        if s is None:
            self._wobs = self._wrow = None
            return
        if self.nested:
            ordinal_nested.check(self)                # refuses the weights by name
        G = self.levels[0].n_groups
        self._wobs = np.ascontiguousarray(s.obs[d.order])
        self._wrow = self._wobs * np.repeat(self._cweight, d.row_end[:G] - d.row_start[:G])

    def _new_buffers(self):
        if self.nested:
            b = MixedGLM._new_buffers(self)
            b.family = None                       # set by ordinal_nested.kernel at every call
            return b
        d, n = self.design, self.nobs
        G, q = self.levels[0].n_groups, self.levels[0].q
        b = _Buffers()
        b.u, b.zl, b.eta = np.zeros(d.n_u), np.empty((n, q)), np.empty(n)
        b.rd, b.ubar, b.gab = np.empty((n, 8)), np.empty((n, q)), np.empty((n, 2))
        b.ll, b.chol, b.glam = np.empty(G), np.empty((G, q, q)), np.empty(q * q)
        b.rules = {}
        return b

    _gab = property(lambda self: self._buffers.get(self).gab)
    _rd = property(lambda self: self._buffers.get(self).rd)
    _glmm_kernel = MixedGLM._kernel              # the nested Laplace kernel (``ordinal_nested.kernel``)

    @property
    def _kernel_family(self):
        """Nested levels: the kernels' family with this thread's cut points (``ordinal_nested.kernel``)."""
        if not self.nested or "_buffers" not in self.__dict__:
            return self._family_code
        return self._buffers.get(self).family

    # ------------------------------------------------------------------ objective
    def split(self, fe):
        """(beta, cuts) of the fixed part ``fe``."""
        fe = np.asarray(fe, float)
        return fe[:self.k_beta], fe[self.k_beta:]

    def _kernel(self, fe, theta, nagq, grad):
        if self.nested:
            return ordinal_nested.kernel(self, fe, theta, grad)
        beta, cuts = self.split(fe)
        if not np.all(np.diff(cuts) > 0):
            return -np.inf
        lam = np.ascontiguousarray(self.lams(theta)[0])
        nodes, logw = self._rule(max(nagq, 1))[:2]         # nagq=0: the Laplace value
        q = self.levels[0].q
        eta0 = self._Xb @ beta
        for attempt in range(2):
            n_failed = _ordinal.cluster_loglik(self._link_code, self._Z, self._yk, cuts, eta0, *self._rows, lam,
                                               nodes, logw, self._u.reshape(-1, q), self._ll, self._chol,
                                               self._zl, self._eta, self._rd, self._ubar, self._gab,
                                               self._glam.reshape(q, q), grad, n_threads=kernel_threads(),
                                               wobs=self._wobs, cweight=self._cweight)
            if not n_failed:
                return float(np.sum(self._ll if self._cweight is None else self._cweight * self._ll))
            self._u[:] = 0.0                      # restart the modes from zero once
        return -np.inf

    def loglike_theta(self, fe, theta, nagq=1, grad=False):
        """Log-likelihood at (beta and cuts, theta) and, with ``grad``, its gradient.

        Parameters
        ----------
        fe : ndarray (k_beta + K - 1,)
            Fixed effects, then the cut points.
        theta : ndarray (k_re,)
        nagq : int
            1 for Laplace, else adaptive Gauss-Hermite points per dimension.
        grad : bool

        Returns
        -------
        float, or (float, ndarray (k_fe + k_re,)) with ``grad``.
        """
        fe, theta = np.asarray(fe, float), np.asarray(theta, float)
        if self.nested:
            return ordinal_nested.loglike_theta(self, fe, theta, nagq, grad)
        ll = self._kernel(fe, theta, nagq, grad)
        if not grad:
            return ll
        if not np.isfinite(ll):
            return ll, np.full(fe.size + theta.size, np.nan)
        glam = self._glam.reshape(self.levels[0].q, -1)
        g_theta = [float(np.sum(glam * dl)) for dl in self._dlam_dtheta(theta)[0]]
        return ll, np.concatenate([self._fe_gradient(self._gab[:, 0], self._gab[:, 1]), g_theta])

    def _fe_gradient(self, gA, gB):
        """d loglik / d (beta, cuts) from every row's d loglik / dA and d loglik / dB."""
        a, b = self._cut_of_A >= 0, self._cut_of_B >= 0
        g_cut = (np.bincount(self._cut_of_A[a], gA[a], minlength=self.k_cut)
                 + np.bincount(self._cut_of_B[b], gB[b], minlength=self.k_cut))
        return np.concatenate([-(self._Xb.T @ (gA + gB)), g_cut])

    def _null_loglike(self, fe):
        """Log-likelihood of the model without random effects and its gradient in (beta, cuts)."""
        beta, cuts = self.split(fe)
        if not np.all(np.diff(cuts) > 0):
            return -np.inf, np.full(fe.size, np.nan)
        ll, d = _ordinal.row_loglik(self._link_code, self._yk, cuts, self._Xb @ beta)
        if self._wrow is not None:
            ll, d = ll * self._wrow, d * self._wrow[:, None]
        return float(ll.sum()), self._fe_gradient(d[:, 3], -d[:, 0] - d[:, 3])

    # ------------------------------------------------------------------ fit
    def null_fit(self):
        """The ordinal regression without random effects: (beta and cuts, llf, their standard errors)."""
        return fit_without_random_effects(self, np.bincount(self._yk, weights=self._wrow,
                                                            minlength=self.k_cut + 1))

    @checked
    def fit(self, nagq=None, start=None, maxiter=1000, disp=False, cov_type=None, cov_kwds=None):
        """Fit by maximum likelihood: Laplace (``nagq=1``) or adaptive Gauss-Hermite.

        Parameters
        ----------
        nagq : int, optional
            Quadrature points per random effect; 1 is the Laplace approximation. Default 7
            for one level while the rule has at most 5,000 points, else 1 (and 1 for nested
            levels; two nested levels take ``nagq > 1``, adaptive quadrature of each level).
            ``nagq=0``: lme4's fast estimator (``ordinal_nagq0``), the fixed effects and cut
            points at the joint mode with the random effects, theta on the Laplace
            likelihood; no sampling weights.
        start : array_like (k_beta + K - 1 + k_re,), optional
            Starting fixed effects, cut points and theta; default the ordinal regression
            without random effects and theta = 1 relative to the design columns' scale.
        maxiter : int
        disp : bool
            Print the optimizer's progress and summaries.
        cov_type : {"nonrobust", "cluster"}, optional
            Model-based standard errors (inverse observed information, the default) or
            cluster-robust (sandwich) standard errors of every parameter, clustered at the
            level of the random effects (``hlmext.results.sandwich``). With sampling
            weights only ``"cluster"`` (the default then).
        cov_kwds : dict, optional
            ``{"correction": "CR1"}`` (default: scaled by G/(G-1), as Stata) or ``"CR0"``.

        Returns
        -------
        OrdinalResults

        Examples
        --------
        >>> import hlmext
        >>> wine = hlmext.datasets.load("wine")
        >>> res = hlmext.meoprobit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=7)
        >>> round(res.llf, 3)
        -80.931
        """
        robust, _ = cov_options(self.sampling, cov_type, cov_kwds, reml=False)
        if nagq is None:
            nagq = 1 if self.nested or 7 ** self.levels[0].q > MAX_NODES else 7
        nagq = self._check_nagq(nagq)
        self._u[:] = 0.0
        with single_blas_thread():
            return self._fit(nagq, start, maxiter, disp, robust)

    def nagq0_fixed_cov(self, fe, theta):
        """Covariance of (beta, cuts) of a ``nagq=0`` fit (``ordinal_nagq0.fixed_cov``)."""
        return ordinal_nagq0.fixed_cov(self, fe, theta)

    def _fit(self, nagq, start, maxiter, disp, robust=None):
        if nagq == 0:
            opt, null_llf, se_null = ordinal_nagq0.fit(self, start, maxiter, disp)
        else:
            opt, null_llf, se_null = self.optimum(nagq, start, maxiter, disp)
        if not opt.converged:
            warnings.warn("the optimizer did not converge: max |gradient| of the deviance is %.3g after %d "
                          "evaluations; rescale covariates, simplify the random part or try other start values"
                          % (opt.max_abs_gradient, opt.n_evals), ConvergenceWarning, stacklevel=user_stacklevel())
        return self.wrapper_class(self.results_class(self, opt.end, nagq, opt, null_llf, se_null, robust))

    def optimum(self, nagq, start=None, maxiter=1000, disp=False):
        """The maximum of the likelihood, no better than the regression without random effects.

        Laplace first, then (``nagq > 1``) AGHQ from its optimum, then the boundary faces
        (``glmm_boundary.best_on_boundary``). Returns ``(opt, null_llf, se_null)``: the
        optimizer's summary with ``opt.end`` = (beta, cuts, theta), and the log-likelihood
        and standard errors of the ordinal regression without random effects.
        """
        fe_null, null_llf, se_null = self.null_fit()
        p, kb = self.k_fe, self.k_beta
        tscale = self.theta_scale()
        if start is None:
            start = np.concatenate([fe_null, self.theta_start() * tscale])
        start = np.asarray(start, float)
        if start.size != p + self.k_re:
            raise ValueError("start must have %d values (fixed effects, cut points, then theta), got %d"
                             % (p + self.k_re, start.size))
        if not np.all(np.diff(start[kb:p]) > 0):
            raise ValueError("start: the cut points must increase, got %s" % start[kb:p])
        x0 = np.concatenate([to_x(start[:p], kb), start[p:]])
        gaps = np.diff(fe_null[kb:])
        cut_scale = np.concatenate([se_null[kb:kb + 1], np.clip(se_null[kb + 1:] / gaps, 0.01, 1.0)])
        scale = np.concatenate([se_null[:kb], cut_scale, tscale])
        bounds = [(None, None)] * p + self.theta_bounds()
        obj = _Objective(self, 1)
        opt, hess = minimize_with_gradient(obj, x0, bounds, scale, maxiter, disp=disp)
        opts = [opt]
        if nagq > 1:
            obj = _Objective(self, nagq)
            opt, hess = minimize_with_gradient(obj, opt.end, bounds, scale, maxiter, hess, disp=disp)
            opts.append(opt)
        opt = opts[-1] = best_on_boundary(self, obj, opt, hess, (to_x(fe_null, kb), null_llf), bounds, scale,
                                          maxiter)
        opt.end = np.concatenate([from_x(opt.end[:p], kb)[0], opt.end[p:]])
        if disp:
            print("\n".join(str(o) for o in opts))
        return opt, null_llf, se_null

    def with_codes(self, codes):
        """The same model with a new response, category codes 0..K-1 in the design's sorted row order.

        The design and the kernels' layout are shared; the copy has its own work buffers.
        Every category must occur (``DataError`` naming the empty ones otherwise).
        """
        y = np.asarray(codes, float).ravel()
        if y.shape != (self.nobs,):
            raise ModelError("the new response has %d values; the model has %d observations" % (y.size, self.nobs))
        if not np.all(np.isin(y, np.arange(self.k_cut + 1))):
            raise DataError("the new response must hold category codes 0..%d (the positions of the categories %s)"
                            % (self.k_cut, self.categories))
        self._check_response(y, None, self.design.endog_name, "trials")
        new = copy.copy(self)
        new.design = copy.copy(self.design)
        new.design.endog = new._y = np.ascontiguousarray(y)
        new._yk = np.ascontiguousarray(y, dtype=np.intc)
        new._cut_of_A = np.where(new._yk < new.k_cut, new._yk, -1)
        new._cut_of_B = new._yk - 1
        new._setup_weights()
        new._workspace()
        if getattr(self, "data", None) is not None:
            new.data = copy.copy(self.data)
            original = np.empty_like(y)
            original[self.design.order] = y
            new.endog = new.data.endog = original
        return new


def to_x(fe, k_beta):
    """The optimizer's coordinates of (beta, cuts): beta, the first cut, the logs of the gaps."""
    fe = np.asarray(fe, float)
    cuts = fe[k_beta:]
    return np.concatenate([fe[:k_beta], cuts[:1], np.log(np.diff(cuts))])


def from_x(x, k_beta):
    """(beta, cuts) from the optimizer's coordinates, and the Jacobian d fe / d x."""
    x = np.asarray(x, float)
    gaps = np.exp(x[k_beta + 1:])
    cuts = x[k_beta] + np.concatenate([[0.0], np.cumsum(gaps)])
    k = cuts.size
    jac = np.eye(x.size)
    block = np.zeros((k, k))
    block[:, 0] = 1.0
    for m in range(1, k):
        block[m:, m] = gaps[m - 1]
    jac[k_beta:, k_beta:] = block
    return np.concatenate([x[:k_beta], cuts]), jac


def fit_without_random_effects(model, counts):
    """(beta and cuts, llf, their standard errors) of the ordinal regression without random
    effects, by BFGS from the cut points of the categories' (weighted) ``counts`` on
    ``model._null_loglike``; the standard errors from central differences of its gradient."""
    p = model.k_fe
    cum = np.cumsum(counts)[:-1] / counts.sum()
    ppf = stats.logistic.ppf if model.link == "logit" else stats.norm.ppf
    x0 = to_x(np.concatenate([np.zeros(model.k_beta), ppf(cum)]), model.k_beta)

    def f_and_g(x):
        fe, jac = from_x(x, model.k_beta)
        ll, g = model._null_loglike(fe)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(x)
        return -ll, -(jac.T @ g)

    res = optimize.minimize(f_and_g, x0, jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": 2000})
    fe = from_x(res.x, model.k_beta)[0]
    H = np.empty((p, p))
    for i in range(p):
        h = 1e-5 * max(1.0, abs(fe[i]))
        e = np.zeros(p)
        e[i] = h
        H[i] = (model._null_loglike(fe + e)[1] - model._null_loglike(fe - e)[1]) / (2 * h)
    try:
        se = np.sqrt(np.diag(np.linalg.inv(-0.5 * (H + H.T))))
    except np.linalg.LinAlgError:
        se = np.ones(p)
    se = np.where(np.isfinite(se) & (se > 0), se, 1.0)
    return fe, float(-res.fun), se


class _Objective:
    """Deviance of the optimizer's x = (beta, first cut, log gaps, theta) and its gradient."""

    def __init__(self, model, nagq):
        self.model, self.nagq, self.x, self.n_evals = model, nagq, None, 0

    def _eval(self, x):
        if self.x is None or not np.array_equal(x, self.x):
            m = self.model
            p = m.k_fe
            self.n_evals += 1
            fe, jac = from_x(x[:p], m.k_beta)
            ll, g = m.loglike_theta(fe, x[p:], self.nagq, grad=True)
            g = np.concatenate([jac.T @ g[:p], g[p:]])
            self.x, self.f, self.g = np.array(x, copy=True), -2.0 * ll if np.isfinite(ll) else np.inf, -2.0 * g

    def value(self, x):
        self._eval(x)
        return self.f

    def grad(self, x):
        self._eval(x)
        return self.g if np.isfinite(self.f) else np.zeros_like(x)
