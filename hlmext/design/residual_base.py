"""The interface every residual structure implements (``hlmext.design.residual_structures``)."""
from __future__ import annotations

import numpy as np

from ..exceptions import ModelError

MAX_CORR = 0.9999


class ResidualStructure:
    """The residual structure of a model: parameters, whitening, report (see the module docstring).

    Attributes
    ----------
    kind, order, label : the structure (``label`` as Stata prints it, e.g. ``"AR(1)"``)
    n_params : int
        Parameters ``psi`` the optimizer sees (on their own scale, see ``start``/``bounds``).
    """

    heteroscedastic = False

    def __init__(self, design, kind, order, rows, starts, ends, cluster, time, by, time_name, by_name,
                 same_clusters=True, where=None):
        self.kind, self.order = kind, order
        self.time_name, self.by_name = time_name, by_name
        self.n = design.nobs
        # rows[k]: the design row at position k (positions: clusters, then time); starts/ends:
        # the positions of every residual cluster; cluster: the residual cluster of every design row
        self.rows, self.starts, self.ends, self.cluster = rows, starts, ends, cluster
        self.time = time
        self.level = where
        self._setup(by)
        if same_clusters:
            self._check_identified(design)

    def _setup(self, by):
        """Structure-specific precomputation."""

    def _check_identified(self, design):
        """Structures that a random intercept of the innermost level duplicates."""
        lev = design.levels[0]
        if not self.covers_intercept:
            return
        z = design.W[:, :lev.q]
        const = np.flatnonzero(np.all(z == z[:1], axis=0) & (z[0] != 0)) if len(z) else []
        if self.covers_intercept == "any" and not len(const):
            raise ModelError("residuals=%r is not identified with random effects of %r: the residual covariance is "
                             "already any covariance of the occasions, so Z G Z' adds nothing the data can tell "
                             "apart; put the random effects on an outer level and give residual_group= (the "
                             "clusters of the residuals, nested in %r), or use a simpler structure"
                             % (self.label_kind, lev.name, lev.name))
        if len(const):
            raise ModelError("residuals=%r is not identified with a random intercept of %r: both make every pair "
                             "of rows of a cluster correlated alike (%s), so the data cannot tell the random "
                             "intercept's variance from the residual covariance; drop the random intercept of %r "
                             "or use residuals='ar1'" % (self.label_kind, lev.name, self.why_not, lev.name))

    covers_intercept = False
    why_not = ""

    @property
    def label_kind(self):
        return self.kind + ("" if self.order is None else str(self.order))

    # per-structure interface -------------------------------------------------
    def start(self):
        return np.zeros(self.n_params)

    def null_psi(self):
        """``psi`` of independent errors of equal variance (the null of the LR test against the regression)."""
        return np.zeros(self.n_params)

    def bounds(self):
        return [(-MAX_CORR, MAX_CORR)] * self.n_params

    def whiten(self, W, psi, out):
        """``C^{-1} W`` cluster by cluster into ``out``; returns ``sum_j log det R_j`` (inf: not PD)."""
        raise NotImplementedError

    def report(self, psi, sigma):
        """The reported values (before ``sigma``), as Stata shows them."""
        raise NotImplementedError

    def psi_from_report(self, values, sigma):
        raise NotImplementedError

    def statistics_at(self, psi, design, W):
        """``(stats, G0, sum log det R_j)`` at ``psi`` for the rows ``W`` (the design's, or scaled by
        precision weights) without a pass over them, or None when the structure has no such shortcut
        (then the model whitens the rows)."""
        return None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_basis"}

    def precision_bands(self, psi):
        """``R^{-1}`` by diagonals, in the positions' order (``rows``): ``[(lag, v)]`` with
        ``v[k] = R^{-1}[k, k + lag]`` (0 where ``k + lag`` leaves ``k``'s cluster); None if ``R`` is
        not positive definite. Crossed random effects need ``D' R^{-1} D`` and ``Z' R^{-1} D``."""
        raise NotImplementedError

    def matrix_for_rows(self, psi, r):
        """The relative covariance of the design rows ``r`` (zero between residual clusters)."""
        r = np.asarray(r)
        same = self.cluster[r][:, None] == self.cluster[r][None, :]
        return np.where(same, self._pairwise(psi, r), 0.0)

    def _pairwise(self, psi, r):
        raise NotImplementedError

    def param_names(self):
        """Names of the reported values in ``params`` (before ``sd(Residual)``)."""
        return ["%s[Residual]" % nm for nm in self.names]

    def display_rows(self):
        """``(position, label)`` of the summary's rows under ``Residual``: positions index the
        reported values from the first residual one (``n_params`` is ``sigma``)."""
        return [(i, nm) for i, nm in enumerate(self.names)] + [(self.n_params, "sd(e)")]
