"""Residual covariance structures at the innermost grouping level (Stata's ``residuals()``).

Within cluster ``j`` of the innermost level the errors are ``e_j ~ N(0, sigma^2 R_j)``, where
``R_j`` depends on a few parameters ``psi`` (and on the rows' times or ``by`` groups). With
``R_j = C_j C_j'`` the model for ``C_j^{-1} [Z_j | X_j | y_j]`` has independent errors, and

    -2 log L(theta, psi) = d(theta; statistics of C^{-1} W) + sum_j log det R_j ,

so every evaluation at a new ``psi`` prewhitens the rows (``whiten``) and recomputes the
per-cluster statistics; the profiled deviance of ``hlmext.models.linear`` does the rest.
``R_j`` has a unit diagonal except for ``by`` groups and the heteroscedastic structures
(``unstructured``, ``banded``), where the reference (first occasion, last ``by`` level)
has relative variance 1 and ``sigma`` is its sd.

How a structure is prewhitened, and the cost of one evaluation (``n_j`` rows in a cluster):

- ``ar1`` and ``exponential``: a Markov chain in time; ``_kernels.residuals.markov_whiten``,
  ``O(n_j)`` per cluster.
- ``independent`` with ``by``: rows divided by their group's relative sd, ``O(n_j)``.
- ``exchangeable``, ``ar<p>``, ``ma<q>``, ``toeplitz``, ``banded``, ``unstructured``: the
  clusters are grouped by their pattern of occasions; one Cholesky factor per pattern
  (``O(T^3)``) applied to every cluster with it, ``O(n_j^2)`` per cluster (``n_j <= T``).

Examples
--------
>>> import hlmext
>>> ovary = hlmext.datasets.load("ovary")
>>> model = hlmext.mixedlm("follicles ~ sin2pi + cos2pi + (1 | Mare)", ovary, residuals="ar1", time="occasion")
>>> model.residual.label, model.residual.n_params
('AR(1)', 1)
"""
from __future__ import annotations

import re

import numpy as np

from .._kernels import core as _core
from .._kernels import residuals as _kernel
from ..exceptions import DataError, ModelError
from .residual_base import MAX_CORR as _MAX_CORR, ResidualStructure
from .residual_patterns import _Arma, _Dense

_ALIASES = {"independent": "independent", "ind": "independent", "exchangeable": "exchangeable",
            "exc": "exchangeable", "unstructured": "unstructured", "un": "unstructured", "exponential": "exponential",
            "exp": "exponential", "ar": "ar", "ma": "ma", "toeplitz": "toeplitz", "toe": "toeplitz",
            "banded": "banded", "ban": "banded"}
KINDS = ("independent", "exchangeable", "ar<p>", "ma<q>", "unstructured", "banded", "toeplitz", "exponential")
_TIMED = ("ar", "ma", "toeplitz", "exponential", "unstructured", "banded")
_INTEGER_TIME = ("ar", "ma", "toeplitz")


def parse_kind(residuals):
    """``(kind, order)`` of a ``residuals=`` value: ``"ar1"``, ``"ar 2"``, ``"ma1"``,
    ``"toeplitz 2"``, ``"banded"`` (order None: all lags), ``"exchangeable"``, ...

    >>> parse_kind("ar 2"), parse_kind("unstructured"), parse_kind("toeplitz1")
    (('ar', 2), ('unstructured', None), ('toeplitz', 1))
    """
    if not isinstance(residuals, str):
        raise TypeError("residuals= takes a string, one of %s; got %r" % (", ".join(KINDS), residuals))
    m = re.fullmatch(r"\s*([a-z]+)\s*(\d*)\s*", residuals.lower())
    kind = _ALIASES.get(m.group(1)) if m else None
    if kind is None:
        raise ValueError("residuals=%r is not a residual structure; use one of %s" % (residuals, ", ".join(KINDS)))
    order = int(m.group(2)) if m.group(2) else None
    if kind in ("ar", "ma"):
        order = 1 if order is None else order
        if order < 1:
            raise ValueError("residuals=%r: the order of %s must be at least 1" % (residuals, kind.upper()))
    elif order is not None and kind not in ("toeplitz", "banded"):
        raise ValueError("residuals=%r: %s takes no order (orders apply to ar, ma, toeplitz and banded)"
                         % (residuals, kind))
    return kind, order


def build(design, residuals, time=None, by=None, group=None, time_name="time", by_name="by", group_name="group"):
    """The ``ResidualStructure`` of ``residuals`` for a design; ``time``, ``by`` and ``group`` (the
    residual clusters, default the innermost level's) in the design's sorted row order (or None)."""
    kind, order = ("none", None) if residuals is None else parse_kind(residuals)
    if getattr(design, "weights", None) is not None:
        raise ModelError("residuals=%r with frequency weights (weights=): a weighted row stands for several "
                         "identical rows, which have no place in a correlated series; drop weights=" % residuals)
    if by is not None and kind != "independent":
        raise ModelError("by= applies to residuals='independent' (a residual variance per group); "
                         "residuals=%r takes no by=" % residuals)
    if kind in _TIMED and time is None:
        raise ModelError("residuals=%r needs time= (the column of the rows' times or occasions)" % residuals)
    if kind == "none":
        rows = np.arange(design.nobs, dtype=np.intp)
        return _Plain(design, kind, None, rows, np.zeros(0, np.intp), np.zeros(0, np.intp), rows, None, None,
                      time_name, by_name, same_clusters=False, where=design.levels[0].name)
    if kind == "independent" and by is None:
        raise ModelError("residuals='independent' without by= is the default model; give by= for a residual "
                         "variance per group, or leave residuals= out")
    lev = design.levels[0]
    n = design.nobs
    inner = np.repeat(np.arange(design.level_first[1]), design.row_end[:design.level_first[1]]
                      - design.row_start[:design.level_first[1]])
    if group is None:
        codes, where = inner, lev.name
    else:
        codes = np.unique(np.asarray(group), return_inverse=True)[1].ravel()
        first_inner = np.full(codes.max() + 1, -1)
        first_inner[codes] = inner
        if np.any(first_inner[codes] != inner):
            raise DataError("residual_group=%r does not nest in the innermost level %r: its groups must lie within "
                            "the groups of %r" % (group_name, lev.name, lev.name))
        where = group_name
    if time is not None:
        time = _check_time(np.asarray(time, dtype=float) if np.asarray(time).dtype != object else np.asarray(time),
                           codes, kind, time_name, where, residuals)
    rows = np.lexsort((np.zeros(n) if time is None else time, codes, inner)).astype(np.intp)
    new = np.ones(n, dtype=bool)
    new[1:] = (codes[rows][1:] != codes[rows][:-1]) | (inner[rows][1:] != inner[rows][:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    cluster = np.empty(n, dtype=np.intp)
    cluster[rows] = np.cumsum(new) - 1
    classes = {"independent": _ByGroup, "ar": _Arma, "ma": _Arma, "exponential": _Markov}
    cls = classes.get(kind, _Dense)
    if kind == "ar" and order == 1:
        cls = _Markov
    return cls(design, kind, order, rows, starts, ends, cluster, time, by, time_name, by_name,
               same_clusters=group is None or len(starts) == design.level_first[1], where=where)


def _check_time(time, cluster, kind, name, level, residuals):
    if not np.issubdtype(time.dtype, np.number):
        raise DataError("time=%r must be numeric (the occasion or time of every row)" % name)
    time = time.astype(float)
    if not np.all(np.isfinite(time)):
        raise DataError("time=%r has missing or infinite values; drop those rows" % name)
    if kind in _INTEGER_TIME and np.any(time != np.round(time)):
        raise DataError("time=%r has non-integer values: residuals=%r needs integer occasions (for continuous "
                        "times use residuals='exponential')" % (name, residuals))
    order = np.lexsort((time, cluster))
    dup = (np.diff(cluster[order]) == 0) & (np.diff(time[order]) == 0)
    if dup.any():
        k = order[np.flatnonzero(dup)[0]]
        raise DataError("time=%r repeats the value %g within a cluster of %r: residuals=%r needs distinct times "
                        "within every cluster" % (name, time[k], level, residuals))
    return time

class _Plain(ResidualStructure):
    """Independent errors of equal (relative) variance: the structure of a model with precision
    weights only (``var_weights=``), whose rows the model scales before whitening."""

    def _setup(self, by):
        self.n_params, self.label, self.names = 0, None, []
        self.is_corr = np.zeros(0, dtype=bool)

    def whiten(self, W, psi, out):
        out[...] = W
        return 0.0

    def precision_bands(self, psi):
        return [(0, np.ones(self.n))]

    def report(self, psi, sigma):
        return np.zeros(0)

    def psi_from_report(self, values, sigma):
        return np.zeros(0)

    def display_rows(self):
        return [(0, "sd(Residual)")]

    def _pairwise(self, psi, r):
        return np.eye(len(r))


class _Markov(ResidualStructure):
    """AR(1) on integer occasions (gaps allowed: corr = rho^gap) and exponential (corr = rho^|dt|)."""

    def _setup(self, by):
        self.n_params = 1
        self.label = "AR(1)" if self.kind == "ar" else "Exponential"
        self.names = ["rho"]
        # the exponential's rho (per unit of time) can be tiny: its intervals on the log scale
        self.is_corr = np.array([self.kind == "ar"])
        t = self.time[self.rows]
        first = np.zeros(self.n, dtype=bool)
        first[self.starts] = True
        self.gap = np.where(first, 0.0, np.diff(t, prepend=t[0]))
        self.first = first

    # AR(1): psi = rho. Exponential: psi = log(range), rho = exp(-1 / range) (nlme's corExp has
    # corr = exp(-dt / range)), which keeps the search well scaled whatever the unit of time.

    def bounds(self):
        if self.kind == "ar":
            return [(-_MAX_CORR, _MAX_CORR)]
        return [(None, None)]

    def start(self):
        if self.kind == "ar":
            return np.array([0.0])
        gaps = self.gap[~self.first]
        return np.array([np.log(np.median(gaps)) if gaps.size else 0.0])

    def link_correlations(self, psi, gaps):
        """``phi`` of links with the given gaps."""
        if self.kind == "ar":
            return np.power(float(psi[0]), gaps)
        return np.exp(-np.asarray(gaps, float) * np.exp(-float(psi[0])))

    def statistics_at(self, psi, design, W):
        """With few distinct gaps between consecutive times, the whitened statistics are
        ``F + sum_d (B_d - phi_d C_d + phi_d^2 D_d) / (1 - phi_d^2)``: ``F`` from the clusters' first
        rows, ``B_d`` (``D_d``) from the later (earlier) rows of the links with gap ``d``, ``C_d`` from
        their symmetrized lag products. Those are computed once (``basis``); an evaluation then costs
        ``O(clusters x gaps)``, whatever the number of rows."""
        basis = self.basis(design, W)
        if basis is None:
            return None
        first, links = basis
        phi = self.link_correlations(psi, np.array([d for d, *_ in links]))
        if not np.all(np.abs(phi) < 1):
            return None, None, np.inf
        stats, G0 = first[0].copy(), first[1].copy()
        logdet = 0.0
        for f, (d, count, B, C, D) in zip(phi, links):
            c = 1.0 / (1.0 - f * f)
            for k in (0, 1):
                out = (stats, G0)[k]
                out += c * (B[k] - f * C[k] + f * f * D[k])
            logdet += count * np.log1p(-f * f)
        return stats, G0, logdet

    def basis(self, design, W, max_gaps=16):
        """The statistics ``F``, ``B_d``, ``C_d``, ``D_d`` (see ``statistics_at``); None with more
        than ``max_gaps`` distinct gaps (continuous times), computed on first use."""
        if getattr(self, "_basis", None) is None:
            gaps = np.unique(self.gap[~self.first])
            if len(gaps) > max_gaps or design.qd or not getattr(design, "has_rows", True):
                self._basis = False
                return None
            d = design
            Wp = W[self.rows]                       # positions: clusters, then time
            S = Wp.copy()
            S[1:] += Wp[:-1]                        # S_k = w_k + w_{k-1} (used only where k has a link)

            def products(M, weights):
                stats = np.zeros(d.stat_size)
                _core.cross_products(M, d.zoff, d.level_first, d.row_start, d.row_end, d.stat_off, 0, stats,
                                     weights)
                xy = M[:, d.zoff[-1]:]
                return stats, np.ascontiguousarray((xy * weights[:, None]).T @ xy).ravel()

            links = []
            for gap in gaps:
                at = (~self.first) & (self.gap == gap)
                before = np.zeros(self.n, dtype=bool)
                before[:-1] = at[1:]
                B, D, P = products(Wp, at.astype(float)), products(Wp, before.astype(float)), \
                    products(S, at.astype(float))
                C = tuple(p - b - e for p, b, e in zip(P, B, D))
                links.append((float(gap), int(at.sum()), B, C, D))
            self._basis = (products(Wp, self.first.astype(float)), links)
        return self._basis or None

    def null_psi(self):
        return np.array([0.0 if self.kind == "ar" else -700.0])      # range e^-700: no correlation

    def rho(self, psi):
        return float(psi[0]) if self.kind == "ar" else float(np.exp(-np.exp(-float(psi[0]))))

    def phi(self, psi):
        if self.kind == "ar":
            return np.where(self.first, 0.0, np.power(float(psi[0]), self.gap))
        return np.where(self.first, 0.0, np.exp(-self.gap * np.exp(-float(psi[0]))))

    def whiten(self, W, psi, out):
        if self.kind == "ar" and not abs(float(psi[0])) < 1:
            return np.inf
        phi = np.ascontiguousarray(self.phi(psi))
        if not np.all(np.abs(phi) < 1):
            return np.inf
        return _kernel.markov_whiten(W, self.rows, phi, None, out)

    def precision_bands(self, psi):
        """``R^{-1} = C^{-T} C^{-1}`` with ``C^{-1}`` lower bidiagonal (``a_k`` on the diagonal, ``-b_k``
        below it): tridiagonal."""
        phi = self.phi(psi)
        if not np.all(np.abs(phi) < 1):
            return None
        a = 1.0 / np.sqrt(1.0 - phi * phi)
        b = phi * a
        v0 = a * a
        v0[:-1] += b[1:] ** 2                       # b is 0 where the next position starts a cluster
        v1 = np.zeros(self.n)
        v1[:-1] = -a[1:] * b[1:]
        return [(0, v0), (1, v1)]

    def report(self, psi, sigma):
        return np.array([self.rho(psi)])

    def psi_from_report(self, values, sigma):
        rho = float(values[0])
        return np.array([rho if self.kind == "ar" else -np.log(-np.log(rho))])

    def _pairwise(self, psi, r):
        t = self.time[r]
        lag = np.abs(t[:, None] - t[None, :])
        if self.kind == "ar":
            return np.power(float(psi[0]), lag)
        return np.exp(-lag * np.exp(-float(psi[0])))


class _ByGroup(ResidualStructure):
    """Independent errors with a variance per level of ``by`` (the last level is the reference)."""

    heteroscedastic = True

    def _setup(self, by):
        levels, codes = np.unique(np.asarray(by), return_inverse=True)
        counts = np.bincount(codes, minlength=len(levels))
        if len(levels) < 2:
            raise DataError("by=%r has one level (%r): a residual variance per group needs at least two groups; "
                            "leave residuals= out" % (self.by_name, levels[0]))
        if counts.min() < 2:
            raise DataError("by=%r: level %r has %d observation, too few to estimate its residual variance; "
                            "merge it with another level" % (self.by_name, levels[np.argmin(counts)], counts.min()))
        self.levels, self.codes = levels, codes.astype(np.intp)
        self.n_params = len(levels) - 1
        self.label = "Independent, by %s" % self.by_name
        self.names = ["%s: sd(e)" % lv for lv in levels[:-1]]
        self.is_corr = np.zeros(self.n_params, dtype=bool)
        self.rows = np.arange(self.n, dtype=np.intp)         # no order needed: rows scaled one by one
        self.zero = np.zeros(self.n)

    def bounds(self):
        return [(-12.0, 12.0)] * self.n_params

    def param_names(self):
        return ["sd(e)[Residual:%s]" % lv for lv in self.levels[:-1]]

    def display_rows(self):
        return [(i, "%s: sd(e)" % lv) for i, lv in enumerate(self.levels)]

    def ratios(self, psi):
        return np.exp(np.append(psi, 0.0))

    def whiten(self, W, psi, out):
        scale = np.ascontiguousarray(self.ratios(psi)[self.codes])
        return _kernel.markov_whiten(W, self.rows, self.zero, scale, out)

    def precision_bands(self, psi):
        return [(0, 1.0 / self.ratios(psi)[self.codes[self.rows]] ** 2)]

    def report(self, psi, sigma):
        return sigma * np.exp(np.asarray(psi, float))

    def psi_from_report(self, values, sigma):
        return np.log(np.asarray(values, float) / sigma)

    def _pairwise(self, psi, r):
        return np.diag(self.ratios(psi)[self.codes[r]] ** 2)
