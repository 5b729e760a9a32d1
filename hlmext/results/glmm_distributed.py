"""Results of a mixed logit / Poisson fitted on partitions of the data (``hlmext.models.glmm_distributed``).

Everything that is a function of the estimates and of sums over the top-level clusters
is computed as in memory: the log-likelihood, the information matrix (finite
differences of the summed gradient), the cluster-robust covariance (each partition
returns its clusters' finite differences, summed: ``robust_pieces``), LR and Wald tests,
the summary. The rows stay on the partitions, so the BLUPs are computed there when first
asked for (``random_effects``: a DataFrame per level, or a Dask DataFrame per level for a
model built from a Dask DataFrame), and fitted values, residuals and what refits the
model to new responses (simulate, bootstrap, profile) need an in-memory fit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import ModelError
from ..threads import single_blas_thread
from .glmm import _conditional_modes, _information_cov
from .sandwich import glmm_cluster_loglik, phi_params, to_report


def part_modes(part, beta, theta):
    """A partition's BLUPs and their conditional variances: (dict level -> DataFrame) twice."""
    with part.lock, single_blas_thread():
        return _conditional_modes(part.model, beta, theta)


def part_robust(part, beta, values, is_corr, fixed, nagq, steps):
    """A partition's pieces of ``sandwich.robust_cov``: the sums of its clusters' contributions at
    every point the finite differences need, and ``sum_k s_k s_k'`` of its clusters' scores."""
    model = part.model
    of, phi0 = phi_params(beta.size, values, is_corr, fixed, lambda b, v: (b, model.theta_from_report(v)))
    x0 = np.concatenate([beta, phi0])

    def contrib(x):
        return glmm_cluster_loglik(model, *of(x), nagq)
    with part.lock, single_blas_thread():
        k = x0.size
        f0 = np.asarray(contrib(x0), float)
        scores, diag, cross = np.empty((f0.size, k)), np.empty(k), np.zeros((k, k))
        for i in range(k):
            e = np.zeros(k)
            e[i] = steps[i]
            fp, fm = np.asarray(contrib(x0 + e)), np.asarray(contrib(x0 - e))
            scores[:, i] = (fp - fm) / (2 * steps[i])
            diag[i] = fp.sum() - 2 * f0.sum() + fm.sum()
        for i in range(k):
            for j in range(i):
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = steps[i], steps[j]
                cross[i, j] = (np.sum(contrib(x0 + ei + ej)) - np.sum(contrib(x0 + ei - ej))
                               - np.sum(contrib(x0 - ei + ej)) + np.sum(contrib(x0 - ei - ej)))
    return dict(diag=diag, cross=cross, meat=scores.T @ scores, G=f0.size)


def robust_pieces(model, beta, values, is_corr, fixed, nagq, se_glm, correction):
    """``sandwich.glmm_robust`` with the partitions' pieces added up."""
    p = beta.size
    _, phi0 = phi_params(p, values, is_corr, fixed, lambda b, v: (b, v))
    steps = np.concatenate([1e-3 * se_glm, np.full(phi0.size, 1e-4)])
    pieces = model.parts.map(part_robust, beta, values, is_corr, fixed, nagq, steps)
    k = steps.size
    H = np.empty((k, k))
    diag, cross = sum(pc["diag"] for pc in pieces), sum(pc["cross"] for pc in pieces)
    for i in range(k):
        H[i, i] = -diag[i] / steps[i] ** 2
        for j in range(i):
            H[i, j] = H[j, i] = -cross[i, j] / (4 * steps[i] * steps[j])
    G = sum(pc["G"] for pc in pieces)
    if G < 2:
        raise ModelError("robust standard errors need at least two top-level clusters")
    meat = sum(pc["meat"] for pc in pieces) * (G / (G - 1) if correction == "CR1" else 1.0)
    try:
        Hinv = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        Hinv = None
    if Hinv is None or not np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) > 0):
        cov_x = np.full((k, k), np.nan)
    else:
        cov_x = Hinv @ meat @ Hinv
    return to_report(cov_x, p, values, is_corr, fixed)


class PartitionedResults:
    """What a ``GLMMResults`` of a fit on partitions does otherwise (put before it in the bases)."""

    @staticmethod
    def _not_identified(model):
        return list(model.not_identified)

    @staticmethod
    def _covariance(model, beta, values, is_corr, fixed, nagq, se_glm, robust):
        if robust is None:
            return _information_cov(model, beta, values, is_corr, fixed, nagq, se_glm)
        return robust_pieces(model, beta, values, is_corr, fixed, nagq, se_glm, robust)

    def _row_quantities(self, model, beta, theta):
        self._estimates = (np.array(beta, float), np.array(theta, float))
        self._eta_sorted = self._eta_cond_sorted = None
        self._modes = None

    def _blups(self):
        if self._modes is None:
            model = self.model
            if getattr(model, "lazy_modes", False):
                self._modes = _dask_modes(model, *self._estimates)
            else:
                out = model.parts.map(part_modes, *self._estimates)
                self._modes = tuple({name: pd.concat([o[w][name] for o in out]).sort_index() for name in out[0][w]}
                                    for w in (0, 1))
        return self._modes

    @property
    def random_effects(self):
        """BLUPs (conditional modes) b = Lambda u per group and level, computed on the partitions
        when first asked for (a Dask DataFrame per level for a model built from Dask data)."""
        return self._blups()[0]

    @property
    def random_effects_cov(self):
        """Conditional variances of the BLUPs, as ``random_effects``."""
        return self._blups()[1]

    @property
    def fittedvalues(self):
        raise ValueError(_NO_ROWS % "fitted values")

    @property
    def resid(self):
        raise ValueError(_NO_ROWS % "residuals")


_NO_ROWS = ("this model was fitted on partitions of the data and keeps no rows: compute %s chunk by chunk with "
            "results.predict(chunk, conditional=True), or fit in memory")


def _dask_modes(model, beta, theta):
    """The BLUPs as Dask DataFrames (one per level), computed on the partitions' workers."""
    import dask.dataframe as dd
    client = model.parts.client
    futures, _ = model.parts.submit(part_modes, beta, theta)
    first = futures[0].result()[0][1]
    out = []
    for w in (0, 1):
        levels = {}
        for name, meta in first[w].items():
            pieces = [client.submit(_pick, f, w, name, pure=False) for f in futures]
            levels[name] = dd.from_delayed(pieces, meta=meta.iloc[:0])
        out.append(levels)
    return tuple(out)


def _pick(results, w, name):
    """One level's table of one worker's partitions (``Partitions.submit`` gives (token, modes) per partition)."""
    return pd.concat([modes[w][name] for _, modes in results])
