"""The family, link and dispersion of a generalized model fitted on partitions (``meglm``,
``meprobit``, ``mecloglog``, ``menbreg`` on chunked, Parquet or Dask data).

Every partition builds a ``MixedFamily`` of the model's ``FamilySpec`` on its rows, and its
kernels take the family and the link: a family without a dispersion parameter needs
nothing more than ``hlmext.models.glmm_distributed``. With a dispersion parameter phi the
in-memory model profiles log phi out at every (beta, theta) by Newton steps over the whole
log-likelihood (``MixedFamily.profile_dispersion``). Here the same steps run on the driver
(``FamilyOnPartitions``): each value at a trial log phi is the partitions' sum, and the
partitions then evaluate (beta, theta) at the driver's log phi. Every cluster sees the same
kernel calls in the same order as in memory, so its conditional modes warm-start from the
same values. The start of the profile is the in-memory moment estimate from the response's
mean and variance, summed over the partitions.

The negative binomial's LR test of alpha = 0 fits the Poisson model on the same partitions:
``SpecView`` switches the partitions' models to the Poisson family for each call, each
family keeping its own conditional modes.
"""
from __future__ import annotations

import types
import warnings

import numpy as np
from scipy import stats

from ..exceptions import ModelError
from . import dispersion_laplace, links
from .glmm import MixedGLM
from .mixed_family import MixedFamily, log_phi_from_moments
from ..threads import single_blas_thread


# --------------------------------------------------------------------------- on a partition

def part_kernel(part, beta, theta, nagq, log_phi):
    """The partition's log-likelihood at (beta, theta) and the given log phi (the profile's values)."""
    with part.lock, single_blas_thread():
        part.model._set_log_phi(log_phi)
        return part.model._kernel(beta, theta, nagq, False)


def part_dlogphi(part, beta, theta, log_phi):
    """The partition's d loglik / d log phi (Laplace) at (beta, theta) and the given log phi."""
    with part.lock, single_blas_thread():
        part.model._set_log_phi(log_phi)
        part.model._kernel(beta, theta, 1, False)
        return dispersion_laplace.laplace_dlogphi(part.model, beta, theta)


def part_sq_dev(part, centre):
    """The sum of squared deviations of the partition's response from ``centre``."""
    with part.lock:
        return float(np.sum((part.model._y - centre) ** 2))


def _with_spec(part, spec, func, *args):
    """``func(part, *args)`` with the partition's model switched to the family ``spec`` (its own modes)."""
    m = part.model
    with part.lock:
        own_u, own_spec = m._u.copy(), m.spec
        views = part.__dict__.setdefault("views", {})
        m._u[:] = views.get(spec, 0.0)
        m.spec = spec
        try:
            return func(part, *args)
        finally:
            views[spec] = m._u.copy()
            m._u[:] = own_u
            m.spec = own_spec


class SpecView:
    """The partitions with their models read as another family (``spec``), call by call."""

    def __init__(self, parts, spec):
        self.parts, self.spec, self.client = parts, spec, parts.client

    def __len__(self):
        return len(self.parts)

    def map(self, func, *args):
        return self.parts.map(_with_spec, self.spec, func, *args)


# --------------------------------------------------------------------------- on the driver

class _DriverBuffers:
    """The profile's state on the driver (log phi, its last curvature): one set, as
    ``MixedFamily`` keeps per thread."""

    def __init__(self):
        self.state = types.SimpleNamespace()

    def get(self, model):
        return self.state


def check_nagq(model, nagq):
    """``MixedFamily._check_nagq`` for the driver."""
    nagq = MixedGLM._check_nagq(model, nagq)
    spec = model.spec
    if spec.dispersion and (nagq == 0 or (model.nested and nagq > 1)):
        raise ModelError("%s with its dispersion parameter (%s) is fitted by Laplace (nagq=1) or, with one level "
                         "of random effects, adaptive quadrature (nagq > 1); %s is not available for it yet"
                         % (spec.name, spec.dispersion, "nagq=0" if nagq == 0 else "nested adaptive quadrature"))
    return nagq


class FamilyOnPartitions:
    """What ``DistributedGLM`` does for a ``MixedFamily``: the family's labels, and the
    dispersion profiled on the driver (nothing without a dispersion parameter)."""

    spec = None
    _log_phi0 = 0.0
    _log_phi = MixedFamily._log_phi
    _set_log_phi = MixedFamily._set_log_phi
    profile_dispersion = MixedFamily.profile_dispersion
    _fitted_or_profiled = MixedFamily._fitted_or_profiled
    dispersion_table = MixedFamily.dispersion_table
    _information_variance = MixedFamily._information_variance
    exact_profile = MixedFamily.exact_profile

    def _laplace_dlogphi(self, beta, theta):
        """``MixedFamily._laplace_dlogphi``: the partitions' sum, each from its own kernel call."""
        return float(sum(self.parts.map(part_dlogphi, beta, theta, self._log_phi)))

    def _init_family(self):
        """The profile's start from the response's moments (after ``_summarize``)."""
        self._buffers = _DriverBuffers()
        if self._dispersion:
            m = self._y_sum / self.nobs
            v = sum(self.parts.map(part_sq_dev, m)) / self.nobs
            self._log_phi0 = log_phi_from_moments(self.spec.family, m, v)

    @property
    def _dispersion(self):
        return self.spec is not None and self.spec.dispersion is not None

    def _profiled(self, beta, theta, nagq):
        """log phi at its maximum at (beta, theta), or None without a dispersion parameter."""
        return self.profile_dispersion(beta, theta, nagq) if self._dispersion else None

    def _kernel(self, beta, theta, nagq, grad):
        """The log-likelihood at (beta, theta) and the current log phi: the partitions' sum."""
        out = self.parts.map(part_kernel, beta, theta, nagq, self._log_phi)
        self._report(out, False)
        return float(sum(out)) if all(np.isfinite(out)) else -np.inf

    def loglike_at(self, beta, theta, log_phi, nagq=1, grad=False):
        """Log-likelihood at (beta, theta) and the given log dispersion (not profiled)."""
        self._set_log_phi(log_phi)
        return self._evaluate(np.asarray(beta, float), np.asarray(theta, float), nagq, grad, float(log_phi))

    def _start_family(self, robust):
        if self._dispersion:
            if robust is not None:
                raise ModelError("cov_type='cluster' is not available for the %s family yet: its dispersion is "
                                 "profiled out and the robust covariance would leave out its variability; fit "
                                 "with cov_type='nonrobust'" % self.spec.name)
            self._set_log_phi(self._log_phi0)

    def _finish_family(self, res):
        """``MixedFamily._fit``'s last steps: the dispersion's rows, its count in AIC/BIC, NB's LR test."""
        if not self._dispersion:
            return res
        beta, theta = np.asarray(res.fe_params, float), np.asarray(res.theta, float)
        inner = res._results
        inner.k_params += 1
        inner.aic = inner.deviance + 2 * inner.k_params
        inner.bic = inner.deviance + np.log(inner.nobs) * inner.k_params
        inner.dispersion = self.dispersion_table(beta, theta, res.nagq)
        self.fitted_log_phi = self.profile_dispersion(beta, theta, res.nagq)
        inner.dispersion_lr = _dispersion_lr(self, res)
        return res


def _dispersion_lr(model, res):
    """``mixed_family._dispersion_lr`` with the Poisson model fitted on the same partitions."""
    if model.spec.family not in (links.NB2, links.NB1):
        return None
    spec = links.FamilySpec(links.POISSON, links.LOG)
    poisson = type(model)(model.family, SpecView(model.parts, spec), model.frame, model.formula, model.columns,
                          progress=model.progress, options={"family": spec})
    poisson.constructor = getattr(model, "constructor", "meglm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # the Poisson fit's own notes are not this fit's
        ll0 = poisson.fit(nagq=res.nagq).llf
    stat = max(0.0, 2 * (res.llf - ll0))
    return {"parameter": model.spec.dispersion, "chibar2": stat,
            "pvalue": float(0.5 * stats.chi2.sf(stat, 1)) if stat > 0 else 1.0, "llf_poisson": ll0}
