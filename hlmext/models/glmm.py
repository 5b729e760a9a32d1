"""Generalized linear mixed models (mixed logit, mixed Poisson) by maximum likelihood.

Model: ``g(E[y | b]) = eta = X beta + offset + Z b``, ``b = Lambda u``, ``u ~ N(0, I)``, with
the logit link and binomial response (``trials``) or the log link and Poisson response.
The marginal likelihood integrates over u cluster by cluster,

    L = prod_j  int p(y_j | u) phi(u) du,

approximated at the conditional mode u_j of ``h(u) = log p(y_j | u) - |u|^2/2``:

- Laplace (``nagq=1``): ``log L_j ~ h(u_j) - 1/2 log det H_j``, H_j = -h''(u_j);
- adaptive Gauss-Hermite (``nagq > 1``, one level): a product rule of nagq points per
  dimension centred at u_j and scaled by H_j^{-1/2}, nodes ``u_j + sqrt(2) L^{-T} x_k``
  (Liu & Pierce 1994, Biometrika 81; Pinheiro & Bates 1995, JCGS 4).

Nested levels use Laplace with the penalized Hessian eliminated level by level (the
linear model's blocked Cholesky); crossed factors join that elimination as one dense
outermost block. Two nested levels also take adaptive quadrature (``nested_aghq``), and
``nagq=0`` is lme4's estimator with the fixed effects in the penalized IRLS (``nagq0``). The per-cluster Newton iterations, integrals and analytic gradients run
in ``_glmm.pyx`` (one level) and ``_glmm_nested.pyx``; the optimizer runs over (beta,
theta) jointly (lme4's nAGQ > 0 stage), starting from a GLM fit, then Laplace, then AGHQ
from the Laplace optimum. Log-likelihoods include every constant (log C(n, y), -log y!).

Sampling weights (``pweights``): the pseudo-likelihood of ``hlmext.design.sampling_weights``, with
the kernel's rows from ``sampling_weights.glmm_rows``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from statsmodels.base.model import LikelihoodModel

from .._kernels import glmm as _glmm, glmm_nested as _glmm_nested
from ..design.arrays import as_float_array
from ..exceptions import ConvergenceWarning, DataError, ModelError
from .glm_start import glm_start, offset_shift
from .glmm_boundary import best_on_boundary
from .glmm_optimize import diagonal_theta, minimize_laplace
from ..keywords import check_keywords, checked
from .design_input import array_design, caller_env, design_from_frame, release_arrays
from .linear import LinearMixed
from .optimize import minimize_with_gradient
from ..threads import single_blas_thread
from . import nagq0, nested_aghq
from .quadrature import MAX_NAGQ, MAX_NODES, gauss_hermite_rule  # noqa: F401  (MAX_NAGQ: hlmext.models.glmm.MAX_NAGQ)
from .robust_options import cov_options
from ..stacklevel import user_stacklevel
from ..threads import PerThread, get_num_threads


#: Crossed factors with one chain level: use the design's sparse coupling pattern (when its fill
#: chose one) in the Laplace kernel. ``False`` notes each cluster's columns at every factorization
#: (the tests compare the two).
SPARSE_CROSSED = True

#: The nested/crossed kernel's Newton iterations on the modes stop at a step below this and
#: take it (the mode is then off by about its square, 1e-14: the log-likelihood by less)
MODE_TOL = 1e-7


def kernel_threads() -> int:
    """Threads of the one-level kernel's loop over clusters: ``hlmext.get_num_threads()``
    (``hlmext.threads``). Each cluster is computed the same way on any thread; only the
    order in which the gradient's per-thread sums are added changes with the number of
    threads (rounding)."""
    return get_num_threads()


class MixedGLM(LikelihoodModel):
    """Generalized linear mixed model; ``MixedLogit`` and ``MixedPoisson`` set the family.

    Parameters
    ----------
    endog : array_like (n,)
        Response: 0/1, successes out of ``trials`` (logit), or counts (Poisson).
    exog : array_like (n, p)
        Fixed-effects design (include a column of ones for an intercept).
    groups : array_like (n,)
        Group label of every row (one level of random effects).
    exog_re : array_like (n, q), optional
        Random-effects design; default a random intercept.
    cov : str
        ``"unstructured"`` (default), ``"independent"``, ``"identity"``, ``"exchangeable"``.
    trials, offset, exposure : array_like (n,), optional
        Binomial trials; offset added to eta; exposure (enters as log(exposure)).
    design : MixedDesign, optional
        A prepared design (``from_formula``); replaces the arrays, which are then in the
        ModelFrame's row order.
    sampling : hlmext.design.sampling_weights.SamplingWeights, optional
        Sampling weights (built by ``from_formula`` from ``pweights``).

    Examples
    --------
    >>> import numpy as np, hlmext
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(40), 10)
    >>> x = rng.normal(size=400)
    >>> y = rng.binomial(1, 1 / (1 + np.exp(-(0.5 * x + rng.normal(size=40)[g]))))
    >>> res = hlmext.MixedLogit(y, np.column_stack([np.ones(400), x]), g, exog_names=["Intercept", "x"]).fit()
    >>> res.params.round(2).tolist()
    [0.15, 0.63, 1.21]
    """

    #: the results class ``fit()`` returns and its pandas wrapper, named by the user-facing
    #: subclass (``hlmext.public``): the model floor imports no results code
    results_class = wrapper_class = None

    _family_code = -1
    _sm_family = None
    #: what the kernels take as the family (``MixedFamily``: the family, link and dispersion)
    _kernel_family = property(lambda self: self._family_code)
    model_label = ""
    eform_label = ""
    versus = ""

    def __init__(self, endog=None, exog=None, groups=None, exog_re=None, cov="unstructured", trials=None,
                 offset=None, exposure=None, exog_names=None, exog_re_names=None, design=None, frame=None,
                 formula=None, columns=None, sampling=None, **kwargs):
        check_keywords(MixedGLM.__init__, kwargs)
        if design is None:
            design = array_design(endog, exog, groups, exog_re, cov, exog_names, exog_re_names)
        self.design = d = design
        self.frame, self.formula = frame, formula
        self.columns = dict(columns or {})          # role -> column name, for predict on new data
        self.levels = d.levels
        self.k_re = sum(lv.cov.n_theta for lv in self.levels)
        self.nested = len(self.levels) > 1
        n = d.nobs
        names = {role: self.columns.get(role) or role for role in ("trials", "offset", "exposure")}
        trials = _sorted_extra(trials, d, "trials")
        off = _sorted_extra(offset, d, "offset")
        expo = _sorted_extra(exposure, d, "exposure")
        if expo is not None and np.any(expo <= 0):
            bad = int(np.sum(expo <= 0))
            raise DataError("exposure %r must be positive (it enters the model as log(exposure)); %d row%s "
                            "%s <= 0: drop them or correct the exposure" % (names["exposure"], bad,
                                                                          "s" * (bad > 1), "are" if bad > 1 else "is"))
        self.trials = np.ones(n) if trials is None else trials
        self.offset = (np.zeros(n) if off is None else off) + (0.0 if expo is None else np.log(expo))
        self.has_trials = trials is not None
        self._check_response(d.endog, self.trials, d.endog_name, names["trials"])
        super().__init__(pd.Series(d.endog, name=d.endog_name),
                         pd.DataFrame(d.exog, columns=d.exog_names, copy=False), **kwargs)
        self.data.param_names = list(d.exog_names) + self.report_names()
        self.nobs, self.k_fe = n, d.k_fe
        self._X, self._y = d.exog, np.ascontiguousarray(d.endog)      # X: a view of the design's W
        self._Z = np.ascontiguousarray(d.W[:, :d.zoff[-1]])
        self.sampling = sampling
        self._setup_weights()
        self._workspace()

    # ------------------------------------------------------------------ construction
    @classmethod
    def _from_formula(cls, formula, data, extra, cov=None, missing="drop", eval_env=0, pweights=None,
                      pwscale=None, **kwargs):
        from ..formula import grammar as fm
        from ..formula import frames
        from ..design import sampling_weights as sw
        frame, arrays, columns = frames.model_frame_with_columns(fm.parse(formula, cov=cov), data,
                                                             {**extra, **sw.as_roles(pweights)}, missing,
                                                             caller_env(eval_env))
        sampling = sw.from_frame(frame, arrays, pwscale)
        arrays = {k: v for k, v in arrays.items() if not k.startswith("pw:")}
        columns = {k: v for k, v in columns.items() if not k.startswith("pw:")}
        design = design_from_frame(frame)
        release_arrays(frame)
        return cls(design=design, frame=frame, formula=formula, columns=columns, sampling=sampling,
                   **arrays, **kwargs)

    @property
    def exog_names(self):
        return self.design.exog_names

    @property
    def endog_names(self):
        return self.design.endog_name

    # ------------------------------------------------------------------ parameters
    lams = LinearMixed.lams
    theta_start = LinearMixed.theta_start
    theta_bounds = LinearMixed.theta_bounds
    theta_scale = LinearMixed.theta_scale

    def report_names(self):
        """Names of the variance parameters: sd's and correlations, outermost level first."""
        return ["%s[%s]" % (n, lv.name) for lv in self.levels[::-1] for n in lv.cov.report_names()]

    def report_from_theta(self, theta):
        """sd's and correlations of every level (outermost first) from ``theta``."""
        out = [lv.cov.report(lam @ lam.T) for lv, lam in zip(self.levels, self.lams(theta))]
        return np.concatenate(out[::-1])

    def theta_from_report(self, values):
        """Inverse of ``report_from_theta``."""
        values, out, k = np.asarray(values, float), [], 0
        for lv in self.levels[::-1]:
            size = len(lv.cov.report_names())
            out.append(lv.cov.theta_from_cov(lv.cov.cov_from_report(values[k:k + size])))
            k += size
        return np.concatenate(out[::-1])

    def _dlam_dtheta(self, theta):
        """Per level, d Lambda / d theta_k (k over the level's theta): the covariance
        structure's exact derivatives (formed once where Lambda is linear in theta)."""
        out, k = [], 0
        for lv in self.levels:
            out.append(lv.cov.lam_derivatives(np.asarray(theta[k:k + lv.cov.n_theta], float)))
            k += lv.cov.n_theta
        return out

    # ------------------------------------------------------------------ objective
    def _setup_weights(self):
        """The kernel's rows, cluster weights and data constants (``sampling_weights.glmm_rows``)."""
        from ..design.sampling_weights import glmm_rows
        d = self.design
        const = self._row_constant(self._y, self.trials)
        self._ky, self._kn, self._koff, self._cweight, self._pen, const = glmm_rows(self, const)
        self._row_const = const
        if not self.nested:
            by_cluster = np.add.reduceat(const, d.row_start[:self.levels[0].n_groups])
            self._const_by_cluster = by_cluster
            self._const = float(np.sum(by_cluster if self._cweight is None else self._cweight * by_cluster))
        else:
            self._const = float(np.sum(const))

    def _workspace(self):
        """The kernels' constant arrays, and this thread's work buffers (``_new_buffers``)."""
        d, n = self.design, self.nobs
        self._lam_off = np.concatenate([[0], np.cumsum([lv.q ** 2 for lv in self.levels])]).astype(np.intp)
        if not self.nested:
            lv = self.levels[0]
            self._rows = (d.row_start[:lv.n_groups].copy(), d.row_end[:lv.n_groups].copy())
            self._buffers = PerThread(self._new_buffers())
            return
        # the kernel's tree: the nested chain, then (if any) one cluster holding every crossed group
        chain, crossed = d.levels[:d.n_chain], d.levels[d.n_chain:]
        qd, nc = int(getattr(d, "qd", 0)), d.n_clusters
        if qd * qd > 5e7:
            raise ModelError("the crossed factors (%s) have %d random effects in all; the generalized model "
                             "factors them as one dense %d x %d block, too large: put the factor with the most "
                             "groups first or fit fewer crossed groups"
                             % (", ".join(lv.name for lv in d.levels[d.n_chain:]), qd, qd, qd))
        # per row: the chain's columns, then the values of its own columns of the crossed block
        self._Z = np.ascontiguousarray(np.column_stack([d.W[:, :d.zoff[-1]]]
                                                       + [lv.z[:, a] for lv in crossed for a in range(lv.q)]))
        extra = [qd] if qd else []
        qs = [lv.q for lv in chain] + extra
        zoff = np.concatenate([[0], np.cumsum(qs)]).astype(np.intp)
        parent = np.append(np.where(d.parent < 0, nc, d.parent), -1) if qd else d.parent
        tree = dict(qs=qs, zoff=zoff, parent=parent.astype(np.intp),
                    level_first=np.append(d.level_first, nc + 1).astype(np.intp) if qd else d.level_first,
                    u_off=np.append(d.u_off, d.n_u).astype(np.intp) if qd else d.u_off)
        self._cl = np.ascontiguousarray(np.column_stack([lv.first + lv.codes for lv in chain]
                                                        + [np.full(n, nc)] * bool(qd)), dtype=np.intp)
        Q = zoff[-1]
        lf = tree["level_first"]
        sizes = np.concatenate([np.full(lf[i + 1] - lf[i], q * (Q - zoff[i] + 1)) for i, q in enumerate(qs)])
        tree["blk_off"] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        tree["S_size"] = int(sizes.sum())
        self._tree = tree
        self._lam_off = np.concatenate([[0], np.cumsum(np.square(qs))]).astype(np.intp)
        # every row's own columns of the crossed block: a row costs those, not the block
        self._top = np.ascontiguousarray(np.column_stack([lv.doff + lv.codes * lv.q + a for lv in crossed
                                                          for a in range(lv.q)]), dtype=np.intp) if qd else None
        # one chain level whose clusters meet few crossed groups (the design's sparse coupling,
        # chosen by fill): the factor and the gradient's selected inverse touch only that pattern
        coupling = getattr(d, "coupling", None) if SPARSE_CROSSED and d.n_chain == 1 else None
        self._pattern = dict(pptr=coupling.ptr, pcols=coupling.cols) if coupling is not None else {}
        if self._pattern:
            _glmm_nested.check_pattern(coupling.ptr, coupling.cols, self._top, self._cl, tree["level_first"], zoff)
        self._buffers = PerThread(self._new_buffers())

    def _new_buffers(self):
        """One thread's work buffers of the kernels (``_u`` also warm-starts that thread's modes)."""
        d, n = self.design, self.nobs
        b = _Buffers()
        b.e, b.eta = np.empty(n), np.empty(n)
        b.mu, b.w, b.dw = np.empty(n), np.empty(n), np.empty(n)
        b.glam = np.empty(self._lam_off[-1])
        b.rules = {}
        if not self.nested:
            G, q = self.levels[0].n_groups, self.levels[0].q
            b.u, b.zl = np.zeros(d.n_u), np.empty((n, d.zoff[-1]))
            b.ll, b.chol, b.ubar = np.empty(G), np.empty((G, q, q)), np.empty((n, q))
            return b
        Q = self._tree["zoff"][-1]
        b.u, b.zl = np.zeros(d.n_u + int(getattr(d, "qd", 0))), np.empty(self._Z.shape)
        b.S, b.chain_work = np.empty(self._tree["S_size"]), np.empty(2 * Q)
        b.sel = np.empty(b.S.size)                # H^{-1} on the factor's pattern (the gradient)
        b.step, b.trial = np.empty(b.u.size), np.empty(b.u.size)
        return b

    # this thread's work buffers (one set per thread: a model can be fitted from several at once)
    _u = property(lambda self: self._buffers.get(self).u)
    _e = property(lambda self: self._buffers.get(self).e)
    _eta = property(lambda self: self._buffers.get(self).eta)
    _mu = property(lambda self: self._buffers.get(self).mu)
    _w = property(lambda self: self._buffers.get(self).w)
    _dw = property(lambda self: self._buffers.get(self).dw)
    _zl = property(lambda self: self._buffers.get(self).zl)
    _glam = property(lambda self: self._buffers.get(self).glam)
    _rules = property(lambda self: self._buffers.get(self).rules)
    _ll = property(lambda self: self._buffers.get(self).ll)
    _chol = property(lambda self: self._buffers.get(self).chol)
    _ubar = property(lambda self: self._buffers.get(self).ubar)
    _S = property(lambda self: self._buffers.get(self).S)
    _chain_work = property(lambda self: self._buffers.get(self).chain_work)
    _sel = property(lambda self: self._buffers.get(self).sel)
    _step = property(lambda self: self._buffers.get(self).step)
    _trial = property(lambda self: self._buffers.get(self).trial)

    def _tree_lams(self, lams):
        """Flat Lambda of every kernel level: the chain's, then the crossed block diagonal."""
        d = self.design
        out = [lam.ravel() for lam in lams[:d.n_chain]]
        if d.n_chain < d.n_levels:
            dense = np.zeros(d.qd * d.qd)
            for lv, lam, idx in zip(d.levels[d.n_chain:], lams[d.n_chain:], self._crossed_diagonal()):
                dense[idx] = np.tile(np.ravel(lam), lv.n_groups)
            out.append(dense)
        return np.concatenate(out)

    def _crossed_diagonal(self):
        """Per crossed level, where its groups' q x q blocks lie in the flat qd x qd crossed block
        (group by group, each block row-major): made once."""
        if getattr(self, "_diag_index", None) is None:
            d, out = self.design, []
            for lv in d.levels[d.n_chain:]:
                first = lv.doff + lv.q * np.arange(lv.n_groups)
                a = np.arange(lv.q)
                out.append(((first[:, None, None] + a[None, :, None]) * d.qd
                            + first[:, None, None] + a[None, None, :]).ravel())
            self._diag_index = out
        return self._diag_index

    def _glam_levels(self):
        """d loglik / d Lambda of every level (q x q), from the kernel's flat gradient."""
        d = self.design
        n_chain = d.n_chain if self.nested else 1
        out = [self._glam[lo:lo + lv.q ** 2].reshape(lv.q, lv.q) for lv, lo in zip(d.levels[:n_chain], self._lam_off)]
        if n_chain < d.n_levels:
            dense = self._glam[self._lam_off[n_chain]:]
            for lv, idx in zip(d.levels[n_chain:], self._crossed_diagonal()):
                out.append(dense[idx].reshape(lv.n_groups, lv.q, lv.q).sum(axis=0))
        return out

    def _rule(self, nagq):
        if nagq not in self._rules:
            nodes, logw = gauss_hermite_rule(nagq, self.levels[0].q)
            self._rules[nagq] = (nodes, logw, np.empty(nodes.shape), np.empty(len(logw)), np.empty(nodes.shape))
        return self._rules[nagq]

    def _kernel(self, beta, theta, nagq, grad):
        """One kernel call at (beta, theta); fills the private work arrays. Returns loglik."""
        lams = self.lams(theta)
        eta0 = self._X @ beta + self._koff
        for attempt in range(2):
            if self.nested:
                t = self._tree
                ll, _ = _glmm_nested.nested_loglik(self._kernel_family, self._Z, self._ky, self._kn, eta0, self._cl,
                                            t["zoff"], t["level_first"], t["parent"], t["u_off"], t["blk_off"],
                                            self._tree_lams(lams), self._lam_off, self._u, self._S, self._zl,
                                            self._eta, self._mu, self._w, self._dw, self._step, self._trial,
                                            self._e, self._glam, self._chain_work, grad, pen=self._pen, tol=MODE_TOL,
                                            sel=self._sel, top=self._top, **self._pattern)
            else:
                nodes, logw, nd, nh, ng = self._rule(nagq)
                q = self.levels[0].q
                n_failed, _ = _glmm.cluster_loglik(
                    self._kernel_family, self._Z, self._ky, self._kn, eta0, *self._rows,
                    np.ascontiguousarray(lams[0]), nodes, logw, self._u.reshape(-1, q), self._ll, self._chol,
                    self._zl, self._eta, self._mu, self._w, self._dw, nd, nh, ng, self._ubar, self._e,
                    self._glam.reshape(q, q), grad, cweight=self._cweight, n_threads=kernel_threads())
                ll = -np.inf if n_failed else float(self._ll.sum() if self._cweight is None
                                                    else self._cweight @ self._ll)
            if np.isfinite(ll):
                return ll + self._const
            self._u[:] = 0.0                      # restart the modes from zero once
        return -np.inf

    def loglike_theta(self, beta, theta, nagq=1, grad=False):
        """Log-likelihood at (beta, theta) and, with ``grad``, its gradient.

        Parameters
        ----------
        beta : ndarray (p,)
        theta : ndarray (k_re,)
            Relative covariance factors, level by level (innermost first).
        nagq : int
            1 for Laplace, else adaptive Gauss-Hermite points per dimension.
        grad : bool

        Returns
        -------
        float, or (float, ndarray (p + k_re,)) with ``grad``.
        """
        beta, theta = np.asarray(beta, float), np.asarray(theta, float)
        nagq = max(int(nagq), 1)                  # nagq=0 (fixed effects in the PIRLS) is a Laplace fit
        if nagq > 1 and self.nested:
            self._check_nagq(nagq)
            return nested_aghq.loglike_theta(self, beta, theta, nagq, grad)
        if grad and self._pen is not None:
            return self._numeric_gradient(beta, theta)
        ll = self._kernel(beta, theta, nagq, grad)
        if not grad:
            return ll
        if not np.isfinite(ll):
            return ll, np.full(beta.size + theta.size, np.nan)
        g_theta = [float(np.sum(glam * dl)) for glam, jac in zip(self._glam_levels(), self._dlam_dtheta(theta))
                   for dl in jac]
        return ll, np.concatenate([self._X.T @ self._e, g_theta])

    def _numeric_gradient(self, beta, theta, h=1e-6):
        """Log-likelihood and its central-difference gradient (nested levels with sampling weights)."""
        x = np.concatenate([beta, theta])
        p, g = beta.size, np.empty(x.size)
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = h * max(1.0, abs(x[i]))
            fp, fm = self._kernel(*np.split(x + e, [p]), 1, False), self._kernel(*np.split(x - e, [p]), 1, False)
            g[i] = (fp - fm) / (2 * e[i])
        ll = self._kernel(beta, theta, 1, False)          # last: the work arrays are those at x
        return ll, g

    def loglike(self, params, nagq=7):
        """Log-likelihood at ``params`` = (fixed effects, sd's and correlations as in results).

        The conditional modes' Newton iterations start from zero, so the value does not depend
        on what was evaluated before (or in which thread)."""
        params = np.asarray(params, float)
        nagq = self._check_nagq(nagq)
        self._u[:] = 0.0
        with single_blas_thread():
            return self.loglike_theta(params[:self.k_fe], self.theta_from_report(params[self.k_fe:]), nagq)

    def modes(self, beta, theta):
        """Conditional modes u (core order) and the factor of H at them (copies).

        Returns (u, chol) for one level, chol (G, q, q) lower; (u, S) for nested levels,
        S the eliminated block rows (see ``_glmm_nested.nested_loglik``).
        """
        self._kernel(np.asarray(beta, float), np.asarray(theta, float), 1, False)
        return self._u.copy(), (self._S.copy() if self.nested else np.tril(self._chol))

    def _check_nagq(self, nagq):
        if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 0:
            raise ValueError("nagq must be a non-negative integer (0 = fixed effects in the penalized IRLS, "
                             "1 = Laplace), got %r" % (nagq,))
        if nagq == 0:
            nagq0.check(self)
            return 0
        if nagq > MAX_NAGQ:
            raise ValueError("nagq=%d is beyond the largest Gauss-Hermite rule that is accurate in double "
                             "precision, %d points (the outermost weights underflow); use nagq=%d or fewer "
                             "(check_quadrature() shows how many are needed)" % (nagq, MAX_NAGQ, MAX_NAGQ))
        if self.nested and nagq > 1:
            nested_aghq.check(self, nagq)
            return int(nagq)
        q = self.levels[0].q
        if nagq ** q > MAX_NODES:
            raise ModelError("nagq=%d with %d random effects needs %d quadrature points per cluster (more than "
                             "%d); use fewer points, e.g. nagq=%d, or nagq=1 (Laplace)"
                             % (nagq, q, nagq ** q, MAX_NODES, int(MAX_NODES ** (1 / q))))
        return int(nagq)

    # ------------------------------------------------------------------ fit
    @checked
    def fit(self, nagq=None, start=None, maxiter=1000, disp=False, cov_type=None, cov_kwds=None):
        """Fit by maximum likelihood: Laplace (``nagq=1``) or adaptive Gauss-Hermite.

        Parameters
        ----------
        nagq : int, optional
            Quadrature points per random effect (product rule over the q effects of the
            level); 1 is the Laplace approximation; 0 is lme4's fast estimator (the fixed
            effects found with the random effects in the penalized IRLS, only theta
            optimized; ``hlmext.models.nagq0``). Default: 7 for one level of random effects
            (Stata's default) while the rule has at most 5,000 points, else 1; 1 for nested
            or crossed models. Two nested levels take ``nagq > 1`` too (adaptive quadrature
            of each level, ``hlmext.models.nested_aghq``); crossed factors and more levels
            are fitted by Laplace.
        start : array_like (p + k_re,), optional
            Starting (beta, theta); default a GLM fit and theta = 1 relative to the
            design columns' scale.
        maxiter : int
        disp : bool
            Print progress (one line per optimizer iteration) and the optimizer summaries.
        cov_type : {"nonrobust", "cluster"}, optional
            Model-based (inverse observed information; the default without sampling
            weights) or robust (sandwich) standard errors of every parameter, clustered at
            the outermost level (``hlmext.results.sandwich``; the default and only choice with
            sampling weights).
        cov_kwds : dict, optional
            ``{"correction": "CR1"}`` (default: scaled by G/(G-1), as Stata) or ``"CR0"``.

        Returns
        -------
        GLMMResults

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("contraception")
        >>> res = hlmext.melogit("use ~ age + urban + (1 | district)", df).fit(nagq=7, cov_type="cluster")
        >>> res.bse.round(3).tolist()
        [0.102, 0.006, 0.163, 0.069]
        """
        robust, _ = cov_options(self.sampling, cov_type, cov_kwds, reml=False)
        if nagq is None:
            nagq = 1 if self.nested or 7 ** self.levels[0].q > MAX_NODES else 7
        self._u[:] = 0.0                          # this thread's modes: every fit starts from zero
        with single_blas_thread():
            return self._fit(nagq, start, maxiter, disp, robust)

    def _fit(self, nagq, start, maxiter, disp, robust=None):
        nagq = self._check_nagq(nagq)
        if nagq == 0:
            opt, null_llf, se_glm = nagq0.fit(self, start, maxiter, disp)
            return self._finish(opt, 0, null_llf, se_glm, disp, robust)
        opt, null_llf, se_glm = find_optimum(self, nagq, start, maxiter, disp)
        return self._finish(opt, nagq, null_llf, se_glm, False, robust)

    def _finish(self, opt, nagq, null_llf, se_glm, disp, robust):
        if disp:
            print(opt)
        if not opt.converged:
            warnings.warn("the optimizer did not converge: max |gradient| of the deviance is %.3g after %d "
                          "evaluations; rescale covariates, simplify the random part or try other start values"
                          % (opt.max_abs_gradient, opt.n_evals), ConvergenceWarning, stacklevel=user_stacklevel())
        return self.wrapper_class(self.results_class(self, opt.end, nagq, opt, null_llf, se_glm, robust))


def find_optimum(model, nagq, start, maxiter, disp, start_values=glm_start, shift_of=offset_shift):
    """Laplace from the GLM start, then ``nagq``-point quadrature from there, and the boundary
    search; returns ``(opt, null_llf, se_glm)`` with ``opt.end`` on the user's offset.
    ``start_values`` and ``shift_of`` give the GLM start and the offset's centring (in memory,
    or summed over partitions: ``models.glmm_distributed``)."""
    beta_glm, se_glm, null_llf = start_values(model)
    p = model.k_fe
    tscale = model.theta_scale()
    x0 = (np.concatenate([beta_glm, model.theta_start() * tscale]) if start is None
          else np.asarray(start, float))
    if x0.size != p + model.k_re:
        raise ValueError("start must have %d values (fixed effects, then theta), got %d" % (p + model.k_re, x0.size))
    # the optimizer's x: the fixed effects of the centred offset (glm_start.offset_shift)
    shift = shift_of(model)
    x0 = np.concatenate([x0[:p] + shift, x0[p:]])
    scale = np.concatenate([se_glm, tscale])
    bounds = [(None, None)] * p + model.theta_bounds()
    obj = _Objective(model, 1, shift)
    opt, hess = minimize_laplace(obj, x0, bounds, scale, maxiter, diagonal_theta(model), disp=disp)
    opts = [opt]
    if nagq > 1:
        obj = _Objective(model, nagq, shift)
        opt, hess = minimize_with_gradient(obj, opt.end, bounds, scale, maxiter, hess, disp=disp)
        opts.append(opt)
    opt = opts[-1] = best_on_boundary(model, obj, opt, hess, (beta_glm + shift, null_llf), bounds, scale, maxiter)
    opt.end = np.concatenate([opt.end[:p] - shift, opt.end[p:]])
    if getattr(opt, "laplace_hessian", None) is not None:
        opt.laplace_hessian = opt.laplace_hessian.shifted(shift, p)
    if disp:
        print("\n".join(str(o) for o in opts))
    return opt, null_llf, se_glm


class _Buffers:
    """One thread's work buffers of a generalized model (``MixedGLM._new_buffers``)."""


class _Objective:
    """Deviance (-2 loglik) of (beta, theta) and its gradient, sharing one kernel call.

    The last ``KEEP`` points are kept: the optimizers come back to earlier points (a line
    search's start after a rejected trial, a difference Hessian's centre after its columns)."""

    #: how many evaluated points (x, deviance, gradient) are kept
    KEEP = 32

    def __init__(self, model, nagq, shift=None):
        self.model, self.nagq, self.x, self.n_evals = model, nagq, None, 0
        self.shift = shift                        # x + shift = (beta, theta) of the centred offset
        self._kept = []                           # (x, f, g), the most recent last

    def _eval(self, x):
        if self.x is not None and np.array_equal(x, self.x):
            return
        for j in range(len(self._kept) - 1, -1, -1):
            if np.array_equal(x, self._kept[j][0]):
                self.x, self.f, self.g = self._kept[j]
                return
        p = self.model.k_fe
        self.n_evals += 1
        beta = x[:p] if self.shift is None else x[:p] - self.shift
        ll, g = self.model.loglike_theta(beta, x[p:], self.nagq, grad=True)
        self.x, self.f, self.g = np.array(x, copy=True), -2.0 * ll if np.isfinite(ll) else np.inf, -2.0 * g
        self._kept = self._kept[1 - self.KEEP:] + [(self.x, self.f, self.g)]

    def value(self, x):
        self._eval(x)
        return self.f

    def grad(self, x):
        self._eval(x)
        return self.g if np.isfinite(self.f) else np.zeros_like(x)


# --------------------------------------------------------------------------- helpers

def _sorted_extra(values, design, role):
    if values is None:
        return None
    arr = as_float_array(values, role).ravel()
    if arr.shape[0] != design.nobs:
        raise DataError("%s has %d values but the model has %d rows" % (role, arr.shape[0], design.nobs))
    if not np.all(np.isfinite(arr)):
        raise DataError("%s contains NaN or inf; drop or impute those rows first" % role)
    return np.ascontiguousarray(arr[design.order])
