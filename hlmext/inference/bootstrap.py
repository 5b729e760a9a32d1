"""Parametric bootstrap of mixed models: simulate, refit, percentile intervals, LR tests.

A replicate draws a new response from the fitted model,

    y* = X beta + sum_l Z_l b_l + e,   b_lg = sigma Lambda_l u_lg,  u_lg ~ N(0, I),  e ~ N(0, sigma^2 I),

(so ``Cov(b_lg) = sigma^2 Lambda_l Lambda_l'``, the fitted ``cov_re``), and refits the same
model to it. Only the cross-products that involve ``y`` change (``Z_lk' y`` per cluster,
``X'y``, ``y'y`` and, with crossed factors, ``D'y``), so a refit costs one O(n q) pass plus
the optimization over ``theta``; the design is never rebuilt. Mixed logit and Poisson fits
draw and refit as ``hlmext.inference.glmm_bootstrap`` describes, through the same machinery.

Replicate ``i`` draws from ``np.random.default_rng(np.random.SeedSequence(seed).spawn(n)[i])``
and starts its optimization at the original estimate (linear models: Newton steps with the
fit's own Hessian there, formed once before the replicates), so the results do not depend on
how the replicates are shared among processes (``n_jobs``). ``simulate(n, seed)`` draws
the same responses as the replicates of ``bootstrap(n, seed)``.

References: Davison & Hinkley (1997), *Bootstrap Methods and their Application*, ch. 2 and
4.2 (percentile intervals, Monte Carlo p-values); lme4's ``simulate``, ``bootMer`` and
pbkrtest's ``PBmodcomp`` (Halekoh & Hojsgaard 2014, J. Stat. Softw. 59(9)).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd

from ..exceptions import ModelError
from .lrtest import lrtest
from .ordinal_bootstrap import OrdinalRefit, OrdinalSource, is_ordinal
from ..keywords import checked
from ..models.optimize import minimize
from ..threads import single_blas_thread
from ..threads import PerThread


def _unwrap(res):
    return getattr(res, "_results", res)


# ---------------------------------------------------------------------------------- y statistics
def set_endog_statistics(model, y_sorted):
    """Overwrite, in place, the cross-products of ``model`` that involve the response.

    Parameters
    ----------
    model : LinearMixed
        Its private ``_stats`` and ``_G0`` arrays are modified (use a copy, see ``with_endog``).
    y_sorted : ndarray, shape (nobs,)
        New response in the design's (sorted) row order.

    Notes
    -----
    Per cluster k of chain level l the last column of its block is ``Z_lk' y_k``; the last
    row and column of the global block ``[D X y]'[D X y]`` are ``(D'y, X'y, y'y)``. Cost
    O(n q) with no pass over the other columns. As in ``MixedDesign``, ``y`` enters these
    statistics centred by ``y_shift`` (its mean when ``X`` has an intercept column), and
    ``model.design.y_shift`` is updated: the design must be the model's own copy.
    """
    d = model.design
    if not getattr(d, "has_rows", True):
        raise ModelError("this model was fitted from accumulated statistics without its rows; a new "
                         "response needs the rows (build the model from the data)")
    y = np.asarray(y_sorted, float)
    if hasattr(d, "y_shift"):
        d.y_shift = float(np.mean(y)) if getattr(d, "intercept_col", -1) >= 0 else 0.0
        y = y - d.y_shift
    for l in range(d.n_chain):
        lv = d.levels[l]
        width = d.m - d.zoff[l] + d.stat_qd
        k0 = d.stat_off[lv.first]
        view = model._stats[k0:k0 + lv.n_groups * lv.q * width].reshape(lv.n_groups, lv.q, width)
        starts = np.concatenate([[0], np.cumsum(lv.sizes)[:-1]])
        view[:, :, width - 1] = np.add.reduceat(d.z_of(l) * y[:, None], starts, axis=0)
    parts = []
    for lv in d.crossed:
        zy = np.column_stack([np.bincount(lv.codes, weights=lv.z[:, c] * y, minlength=lv.n_groups)
                              for c in range(lv.q)])
        parts.append(zy.ravel())
    g = np.concatenate(parts + [d.exog.T @ y, [y @ y]])
    G0 = model._G0.reshape(g.size, g.size)
    G0[-1, :] = g
    G0[:, -1] = g


def with_endog(model, endog):
    """The same model with a new response; the design and ``X``/``Z`` statistics are shared.

    Parameters
    ----------
    model : LinearMixed
    endog : array_like, shape (nobs,)
        New response, in the row order of the fitted data.

    Returns
    -------
    LinearMixed
        A new model: its own copies of the cross-products and of ``W`` (with the new
        ``y`` column); every other array is the original's.

    Examples
    --------
    >>> import numpy as np, hlmext
    >>> from hlmext.inference.bootstrap import with_endog
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> model = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df)
    >>> new = with_endog(model, df.gcse.to_numpy() * 2)
    >>> round(float(new.fit(reml=False).fe_params["lrt"]), 4)
    1.1267
    """
    endog = np.asarray(endog, float).ravel()
    d = model.design
    if endog.shape != (d.nobs,):
        raise ModelError("the new response has %d values; the model has %d observations" % (endog.size, d.nobs))
    if not np.all(np.isfinite(endog)):
        raise ModelError("the new response contains NaN or inf")
    y_sorted = endog[d.order]
    new = copy.copy(model)
    new.design = copy.copy(d)
    new.design.endog = y_sorted
    new._stats = model._stats.copy()
    new._G0 = model._G0.copy()
    new._buffers = PerThread()                            # private to each copy
    set_endog_statistics(new, y_sorted)
    new.design.W = d.W.copy()
    new.design.W[:, -1] = y_sorted - getattr(new.design, "y_shift", 0.0)
    new.endog = endog
    if model.data is not None:
        new.data = copy.copy(model.data)
        new.data.endog = endog
        labels = model.data.orig_endog.index if hasattr(model.data.orig_endog, "index") else None
        new.data.orig_endog = pd.Series(endog, index=labels, name=d.endog_name)
    if model.frame is not None:
        new.frame = dataclasses.replace(model.frame, endog=endog)
    return new


# ---------------------------------------------------------------------------------- workers
def optimize_theta(model, reml, start, bounds=None, scale=None, se_hessian=True, hessian=None):
    """Minimize the profiled deviance over ``theta`` from ``start`` as ``LinearMixed.fit`` does
    (``se_hessian=False``: no Hessian for standard errors, see ``hlmext.models.optimize.minimize``).

    ``hessian`` (of the deviance in ``theta``, e.g. the fit's own at ``start``; with the analytic
    gradient): Newton steps from ``start`` with it first, the search from ``start`` only if they
    do not converge."""
    bounds = model.theta_bounds() if bounds is None else bounds
    scale = model.theta_scale() if scale is None else scale
    kw = {}
    if getattr(model, "has_analytic_gradient", lambda: False)():
        kw["fun_and_grad"] = lambda th: model.deviance_and_gradient(th, reml)
        if hessian is not None:
            kw.update(newton_start=start, hessian=hessian)
    return minimize(lambda th: model.deviance(th, reml), start, bounds, scale=scale, se_hessian=se_hessian, **kw)


def _stripped(model):
    """A picklable copy that can evaluate and refit (no formula objects, own y statistics)."""
    out = copy.copy(model)
    out.design = copy.copy(model.design)
    out.frame = out.data = out.endog = out.exog = None
    out._stats = model._stats.copy()
    out._G0 = model._G0.copy()
    out._buffers = PerThread()                            # private to each copy
    return out


class _Refit:
    """One fitted model to refit to simulated responses (picklable)."""

    def __init__(self, res):
        model = res.model
        if not model.design.has_rows:
            raise ModelError("this model was fitted from statistics accumulated over chunks, without its "
                             "rows; simulation and the bootstrap need the rows (fit from a DataFrame)")
        if getattr(model.design, "weights", None) is not None:
            raise ModelError("simulation and the bootstrap do not support frequency weights yet; expand the "
                             "weighted rows (df.loc[df.index.repeat(w)]) and refit")
        self.model = _stripped(model)
        self.reml = res.reml
        self.start = np.asarray(res.theta, float)
        self.hessian = _start_hessian(res.opt, self.start)
        self.bounds = model.theta_bounds()
        self.scale = model.theta_scale()
        self.order = model.design.order
        self.width = model.k_fe + len(model.report_names()) + 2     # params, deviance, converged

    def fit(self, y_sorted):
        m = self.model
        set_endog_statistics(m, y_sorted)
        opt = optimize_theta(m, self.reml, self.start, self.bounds, self.scale, se_hessian=False,
                             hessian=self.hessian)
        f = m.factorize(opt.end)
        sigma = np.sqrt(f.prss / (m.nobs - (m.k_fe if self.reml else 0)))
        values = m.report_from_theta(opt.end, sigma)
        return np.concatenate([f.beta, values, [opt.fun, float(opt.converged)]])


def _start_hessian(opt, theta):
    """The fit's Hessian at its optimum ``theta``, for the replicates' first Newton steps; None
    where it has none (a parameter on a bound) or it is of another point (``theta`` the
    optimizer's end with the signs of Lambda's columns changed)."""
    hessian = getattr(opt, "hessian", None)
    if hessian is None or hessian.shape != (theta.size, theta.size) or not np.array_equal(opt.end, theta):
        return None
    return hessian


class _Source:
    """Draws responses from one fit, in its design's row order (picklable)."""

    def __init__(self, res, model):
        d = model.design
        if not d.has_rows:
            raise ModelError("this model was fitted from statistics accumulated over chunks, without its "
                             "rows; simulation and the bootstrap need the rows (fit from a DataFrame)")
        if getattr(d, "weights", None) is not None:
            raise ModelError("simulation and the bootstrap do not support frequency weights yet; expand the "
                             "weighted rows (df.loc[df.index.repeat(w)]) and refit")
        self.model = model
        sigma = np.sqrt(res.scale)
        self.xb = d.exog @ np.asarray(res.fe_params, float)
        self.factors = [sigma * lam.T for lam in model.lams(res.theta)]       # b = u (sigma Lambda)'
        self.sigma = sigma
        self.order = d.order

    def draw(self, rng):
        d = self.model.design
        y = self.xb.copy()
        for i, (lv, fac) in enumerate(zip(d.levels, self.factors)):      # innermost level first
            b = rng.standard_normal((lv.n_groups, lv.q)) @ fac
            y += np.einsum("ij,ij->i", d.z_of(i), b[lv.codes])
        y += self.sigma * rng.standard_normal(d.nobs)
        return y


class _Task:
    """Simulate from ``source``, refit every target; one row per replicate."""

    def __init__(self, source_res, target_res):
        from .glmm_bootstrap import GLMMRefit, GLMMSource, is_glmm
        self.targets = [OrdinalRefit(_unwrap(r)) if is_ordinal(_unwrap(r)) else GLMMRefit(_unwrap(r))
                        if is_glmm(_unwrap(r)) else _Refit(_unwrap(r)) for r in target_res]
        src = _unwrap(source_res)
        if is_glmm(src):
            self.source = OrdinalSource(src) if is_ordinal(src) else GLMMSource(src)
            return
        own = next((t.model for r, t in zip(target_res, self.targets) if _unwrap(r) is src), None)
        self.source = _Source(src, own if own is not None else _stripped(src.model))

    def run(self, seeds):
        out = []
        for s in seeds:
            y = self.source.draw(np.random.default_rng(s))
            y_orig = np.empty_like(y)
            y_orig[self.source.order] = y
            out.append(np.concatenate([t.fit(y_orig[t.order]) for t in self.targets]))
        return np.array(out).reshape(len(seeds), -1)


_WORKER_TASK = None


def _init_worker(task):
    global _WORKER_TASK
    _WORKER_TASK = task
    os.environ["HLMEXT_NUM_THREADS"] = "1"   # the processes already use the cores
    single_blas_thread().__enter__()          # for the life of the worker process


def _work(lo, seeds):
    return lo, _WORKER_TASK.run(seeds)


def _run(task, n, seed, n_jobs, progress, label):
    """All replicates of ``task``; returns (rows (n, width), seed entropy, seconds)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    n_jobs = (os.cpu_count() or 1) if n_jobs in (None, -1) else int(n_jobs)
    if n_jobs < 1:
        raise ValueError("n_jobs must be a positive number of processes, or None/-1 for all cores")
    ss = np.random.SeedSequence(seed)
    seeds = ss.spawn(n)
    chunk = max(1, -(-n // (n_jobs * 10)))
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    width = sum(t.width for t in task.targets)
    out = np.empty((n, width))
    t0, done = time.perf_counter(), 0

    def report(k):
        if progress:
            print("%s: %d/%d replicates, %.1f s" % (label, k, n, time.perf_counter() - t0), file=sys.stderr)

    if n_jobs == 1:
        with single_blas_thread():
            for lo, hi in bounds:
                out[lo:hi] = task.run(seeds[lo:hi])
                report(hi)
    else:
        with ProcessPoolExecutor(max_workers=n_jobs, initializer=_init_worker, initargs=(task,)) as ex:
            futures = [ex.submit(_work, lo, seeds[lo:hi]) for lo, hi in bounds]
            for fut in as_completed(futures):
                lo, rows = fut.result()
                out[lo:lo + len(rows)] = rows
                done += len(rows)
                report(done)
    return out, ss.entropy, time.perf_counter() - t0


# ---------------------------------------------------------------------------------- public API
def simulate(res, n=1, seed=None):
    """Responses drawn from a fitted mixed model (lme4's ``simulate``).

    Parameters
    ----------
    res : MixedResults or GLMMResults
    n : int
        Number of simulated responses.
    seed : int, SeedSequence or None
        Column ``i`` is drawn with ``default_rng(SeedSequence(seed).spawn(n)[i])``, as
        replicate ``i`` of ``bootstrap(res, n, seed)``.

    Returns
    -------
    pandas.DataFrame, shape (nobs, n)
        Columns ``sim_1 .. sim_n``, rows in the fitted data's order and labels.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> sims = res.simulate(n=2, seed=1)
    >>> sims.shape, list(sims.columns)
    ((4057, 2), ['sim_1', 'sim_2'])
    """
    from .glmm_bootstrap import GLMMSource, is_glmm
    res = _unwrap(res)
    source = OrdinalSource(res) if is_ordinal(res) else GLMMSource(res) if is_glmm(res) else _Source(res, res.model)
    seeds = np.random.SeedSequence(seed).spawn(n)
    out = np.empty((res.model.nobs, n))
    for i, s in enumerate(seeds):
        out[source.order, i] = source.draw(np.random.default_rng(s))
    labels = res.model.frame.row_labels if res.model.frame is not None else None
    return pd.DataFrame(out, index=labels, columns=["sim_%d" % (i + 1) for i in range(n)])


class BootstrapResults:
    """Replicates of a parametric bootstrap.

    Attributes
    ----------
    estimate : pandas.Series
        The original estimates (``res.params``).
    replicates : pandas.DataFrame, shape (n, k_params)
        One row of re-estimated parameters per replicate.
    deviance : ndarray (n,)
        Deviance (or REML criterion) of every refit.
    converged : ndarray of bool (n,)
    entropy : int
        ``SeedSequence`` entropy: ``bootstrap(n, seed=entropy)`` repeats the run.
    seconds : float
        Wall time.
    """

    def __init__(self, estimate, replicates, deviance, converged, entropy, seconds, n_jobs):
        self.estimate = estimate
        self.replicates = replicates
        self.deviance = deviance
        self.converged = converged
        self.entropy = entropy
        self.seconds = seconds
        self.n_jobs = n_jobs

    @property
    def n(self):
        return len(self.replicates)

    @property
    def bse(self):
        """Bootstrap standard errors (sd of the replicates)."""
        return self.replicates.std(ddof=1).rename("bse")

    @property
    def bias(self):
        """Mean of the replicates minus the estimate."""
        return (self.replicates.mean() - self.estimate).rename("bias")

    def conf_int(self, alpha=0.05):
        """Percentile intervals: the ``alpha/2`` and ``1 - alpha/2`` quantiles of the replicates.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower``, ``upper``, one row per parameter.
        """
        q = self.replicates.quantile([alpha / 2, 1 - alpha / 2]).T
        q.columns = ["lower", "upper"]
        return q

    def summary(self, alpha=0.05):
        """Estimate, bias, bootstrap se and percentile interval of every parameter."""
        return pd.concat([self.estimate.rename("estimate"), self.bias, self.bse, self.conf_int(alpha)], axis=1)

    def __repr__(self):
        return ("Parametric bootstrap: %d replicates (%d not converged), %.1f s on %d process(es)\n%s"
                % (self.n, int((~self.converged).sum()), self.seconds, self.n_jobs, self.summary()))


def bootstrap(res, n=1000, seed=None, n_jobs=2, progress=False):
    """Parametric bootstrap of a mixed model fit (lme4's ``bootMer``).

    Parameters
    ----------
    res : MixedResults or GLMMResults
    n : int
        Number of replicates.
    seed : int, SeedSequence or None
    n_jobs : int or None
        Processes (``concurrent.futures.ProcessPoolExecutor``); ``None`` or -1: all cores.
        The results are the same for every ``n_jobs``.
    progress : bool
        Print the number of finished replicates to stderr.

    Returns
    -------
    BootstrapResults

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> boot = res.bootstrap(n=20, seed=1, n_jobs=1)
    >>> boot.replicates.shape
    (20, 4)
    >>> bool(boot.conf_int().loc["lrt", "lower"] < 0.5633 < boot.conf_int().loc["lrt", "upper"])
    True
    """
    res = _unwrap(res)
    task = _Task(res, [res])
    rows, entropy, seconds = _run(task, n, seed, n_jobs, progress, "bootstrap")
    names = list(res.model.exog_names) + res.model.report_names()
    k = len(names)
    return BootstrapResults(pd.Series(np.asarray(res.params), index=names, name="estimate"),
                            pd.DataFrame(rows[:, :k], columns=names), rows[:, k], rows[:, k + 1] > 0,
                            entropy, seconds, n_jobs)


@dataclasses.dataclass
class BootstrapLRTest:
    """Parametric-bootstrap likelihood-ratio test (pbkrtest's ``PBmodcomp``).

    ``pvalue = (1 + #{LR* >= LR}) / (n + 1)`` over the replicates' statistics ``LR*``,
    simulated under the smaller model. ``asymptotic`` is the chi2 / chibar2 test.
    """

    statistic: float
    pvalue: float
    n: int
    n_exceed: int
    replicates: np.ndarray = dataclasses.field(repr=False)
    asymptotic: object = dataclasses.field(repr=False)
    seconds: float = 0.0
    entropy: int = 0

    def __str__(self):
        return ("Parametric bootstrap LR test: LR = %.2f, Prob >= LR = %.4f (%d of %d replicates)\n%s"
                % (self.statistic, self.pvalue, self.n_exceed, self.n, self.asymptotic))


@checked
def bootstrap_lrtest(small, big, n=1000, seed=None, n_jobs=2, progress=False):
    """Bootstrap LR test of a model against a bigger one that nests it (e.g. a variance component).

    Responses are simulated from the fitted smaller model (the null hypothesis); both models
    are refitted to each, and the observed ``LR = 2 (llf_big - llf_small)`` is referred to the
    replicates' ``LR*``. Unlike the chi2 / chibar2 reference of ``hlmext.lrtest`` it needs no
    boundary correction.

    Parameters
    ----------
    small, big : MixedResults or GLMMResults
        Fits to the same rows by the same method (ML; REML only with the same fixed effects;
        the same quadrature for generalized models).
    n, seed, n_jobs, progress
        As for ``bootstrap``.

    Returns
    -------
    BootstrapLRTest

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.bootstrap import bootstrap_lrtest
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> rs = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    >>> test = bootstrap_lrtest(ri, rs, n=19, seed=1, n_jobs=1)
    >>> round(test.statistic, 2), test.pvalue
    (40.3, 0.05)
    """
    asym = lrtest(small, big)                   # validates: same rows, same method, comparable
    small, big = _unwrap(small), _unwrap(big)
    task = _Task(small, [small, big])
    rows, entropy, seconds = _run(task, n, seed, n_jobs, progress, "bootstrap LR test")
    w = task.targets[0].width
    lr = np.maximum(rows[:, w - 2] - rows[:, w + task.targets[1].width - 2], 0.0)
    stat = 2.0 * (big.llf - small.llf)
    exceed = int(np.sum(lr >= stat))
    return BootstrapLRTest(float(stat), (1 + exceed) / (n + 1), n, exceed, lr, asym, seconds, entropy)
