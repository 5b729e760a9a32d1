"""Sampling weights (Stata ``pweight``) for multilevel models: the pseudo-likelihood.

With weights ``w_i|jk`` for observations, ``w_j|k`` for level-2 clusters and ``w_k`` for
level-3 clusters (each the inverse probability of selection given the unit above), the
pseudo-likelihood of Rabe-Hesketh & Skrondal (2006), JRSS-A 169:805, is

    L = prod_k [ int prod_j [ int prod_i f(y_ijk | u, v)^{w_i|jk} phi(u_jk) du_jk ]^{w_j|k} phi(v_k) dv_k ]^{w_k}

so observation weights act inside the innermost integral and a cluster's weight
multiplies its whole log contribution. The linear model evaluates it with the blocked
Cholesky of ``_core.factorize``: the statistics are accumulated with the row weights
``w_i|jk w_j|k w_k`` (the product of every weight of the row) and cluster ``c`` gets the
penalty ``a_c I`` and the log-determinant term ``a_c (log det M~_c - q log a_c)``, ``a_c``
the product of the weights of ``c`` and its ancestors (``docs/math.md``). The
generalized models multiply each row's log density by its observation weight and each
cluster's log integral by the cluster's weight; with nested levels (Laplace) the joint
mode and Hessian carry the same scaling as the linear model's factor.

Rescaling of the observation weights (``pwscale``, two-level models, as Stata's
``mixed ..., pwscale()``), per level-2 cluster j with n_j rows:

- ``"size"``: ``w_i* = w_i n_j / sum_j w_i`` (they sum to the cluster size);
- ``"effective"``: ``w_i* = w_i sum_j w_i / sum_j w_i^2`` (they sum to the effective
  cluster size ``(sum_j w_i)^2 / sum_j w_i^2``);
- ``"gk"`` (Graubard & Korn 1996): the level-2 weight becomes the cluster mean of
  ``w_i w_j`` and the observation weights become 1.

The level-2 weights are left unchanged by ``"size"`` and ``"effective"``. Default: no
rescaling (Stata's default).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import DataError, ModelError

PWSCALE = (None, "size", "effective", "gk")


def as_roles(pweights):
    """``pweights`` as extra per-row columns for the formula module: ``{"pw:<level>": spec}``.

    A column name or array is the observation weight; a dict maps level names and
    ``"obs"`` to columns or arrays.
    """
    if pweights is None:
        return {}
    if not isinstance(pweights, dict):
        return {"pw:obs": pweights}
    if not pweights:
        raise DataError("pweights is an empty dict; give {'obs': ..., '<level>': ...} or a column name")
    return {"pw:" + str(k): v for k, v in pweights.items()}


@dataclass
class SamplingWeights:
    """Validated sampling weights of one model, per row in the frame's row order.

    Attributes
    ----------
    obs : ndarray (n,)
        Observation weights (after ``pwscale``).
    levels : dict of str -> ndarray (n,)
        Weight of each row's cluster, per level name (levels without weights absent).
    pwscale : str or None
    """

    obs: np.ndarray
    levels: dict
    pwscale: str | None = None

    def row_weights(self):
        """Product of all weights of every row (the weights of the statistics)."""
        out = self.obs.copy()
        for w in self.levels.values():
            out = out * w
        return out

    def describe(self):
        """E.g. ``"obs, school"``: which levels carry weights."""
        names = (["obs"] if np.any(self.obs != 1.0) else []) + list(self.levels)
        text = ", ".join(names) if names else "none"
        return text + (" (pwscale %s)" % self.pwscale if self.pwscale else "")

    def cluster_weights(self, design):
        """Per chain cluster (core order) the product of its level's weight and its ancestors'."""
        if design.qd:
            raise ModelError("sampling weights need nested levels of random effects; crossed factors (%s) are not "
                             "supported" % ", ".join(lv.name for lv in design.crossed))
        out = np.ones(design.n_clusters)
        chain = design.levels[:design.n_chain]
        for i, lv in enumerate(chain):
            first_rows = design.order[lv._starts]
            c = np.ones(lv.n_groups)
            for outer in chain[i:]:
                if outer.name in self.levels:
                    c *= self.levels[outer.name][first_rows]
            out[lv.first:lv.first + lv.n_groups] = c
        return out


def from_frame(frame, arrays, pwscale=None):
    """Validate the ``pw:*`` arrays of ``model_frame_with_columns`` against the frame's levels.

    Parameters
    ----------
    frame : formula.ModelFrame
        Before its row arrays are released (the groups are read from it).
    arrays : dict
        Role -> values on the frame's rows, roles ``"pw:obs"`` and ``"pw:<level name>"``.
    pwscale : {None, "size", "effective", "gk"}

    Returns
    -------
    SamplingWeights, or None without ``pw:`` roles.
    """
    given = {role[3:]: np.asarray(v, dtype=float).ravel() for role, v in arrays.items() if role.startswith("pw:")}
    if not given:
        if pwscale is not None:
            raise ValueError("pwscale=%r needs pweights" % (pwscale,))
        return None
    if pwscale not in PWSCALE:
        raise ValueError("pwscale must be None, 'size', 'effective' or 'gk', not %r" % (pwscale,))
    groups = {}
    for block in frame.random:
        groups.setdefault(block.term.level, block.groups)
    unknown = [k for k in given if k != "obs" and k not in groups]
    if unknown:
        raise DataError("pweights for unknown level(s) %s; the model's levels are %s (and 'obs' for observations)"
                        % (", ".join(repr(k) for k in unknown), ", ".join(repr(k) for k in groups)))
    for name, w in given.items():
        if not np.all(np.isfinite(w)):
            raise DataError("pweights of %r contain NaN or inf; drop those rows or give them a weight" % name)
        if np.any(w <= 0):
            raise DataError("pweights of %r must be positive; %d rows have weights <= 0" % (name, int((w <= 0).sum())))
    n = len(frame.row_labels)
    obs = given.pop("obs", np.ones(n))
    codes = {name: _codes(groups[name], name) for name in groups}
    for name, w in given.items():
        c = codes[name]
        lo, hi = np.full(c.max() + 1, np.inf), np.full(c.max() + 1, -np.inf)
        np.minimum.at(lo, c, w)
        np.maximum.at(hi, c, w)
        bad = np.flatnonzero(hi - lo > 1e-12 * hi)
        if bad.size:
            raise DataError("pweights of level %r must be constant within its groups; %d groups have different "
                            "weights on their rows" % (name, bad.size))
    if pwscale is not None:
        if len(groups) != 1:
            raise ModelError("pwscale=%r is defined for two-level models (one level of random effects), this "
                             "model has %d" % (pwscale, len(groups)))
        (name, c), = codes.items()
        obs, lev = rescale(obs, c, given.get(name, np.ones(n)), pwscale)
        given = {name: lev} if pwscale == "gk" or name in given else {}
    return SamplingWeights(obs=obs, levels=given, pwscale=pwscale)


def rescale(obs, codes, level, method):
    """Stata's ``pwscale``: rescaled (observation, level-2) weights per row; see the module notes.

    Examples
    --------
    >>> import numpy as np
    >>> rescale(np.array([1.0, 3.0, 2.0]), np.array([0, 0, 1]), np.ones(3), "size")[0].tolist()
    [0.5, 1.5, 1.0]
    """
    size = np.bincount(codes).astype(float)
    s1 = np.bincount(codes, weights=obs)
    s2 = np.bincount(codes, weights=obs ** 2)
    if method == "size":
        return obs * (size / s1)[codes], level
    if method == "effective":
        return obs * (s1 / s2)[codes], level
    mean = np.bincount(codes, weights=obs * level) / size
    return np.ones_like(obs), mean[codes]


def glmm_rows(model, const):
    """The rows the GLMM kernel sees, with sampling weights (the identity without them).

    A row with weight w contributes ``w (y eta - b(eta))``: for the binomial that is a row
    with response ``w y`` and ``w n`` trials, for the Poisson one with response ``w y`` and
    offset ``log w`` less the constant ``w y log w``. One level: w is the observation
    weight and the cluster weights multiply the clusters' log integrals (``cweight``).
    Nested levels: w is the product of all the row's weights and the modes of cluster c
    get the prior precision ``a_c`` (``pen``; see ``_glmm_nested.nested_loglik``).

    Returns
    -------
    y, trials, offset : ndarray (n,)
    cweight : ndarray (G,) or None
    pen : ndarray (n_u,) or None
    const : ndarray (n,)
        Per-row data constants (log C(n, y) or -log y!), weighted.
    """
    from .._kernels import glmm as _glmm
    d, s = model.design, model.sampling
    if s is None:
        return model._y, model.trials, model.offset, None, None, const
    cweight = s.cluster_weights(d)
    w = s.obs[d.order] if not model.nested else s.row_weights()[d.order]
    y, trials, offset = np.ascontiguousarray(w * model._y), model.trials, model.offset
    if model._family_code == _glmm.BINOMIAL:
        trials = np.ascontiguousarray(w * model.trials)
        const = const * w
    elif model._kernel_family != _glmm.POISSON:   # other families: the kernel counts a row n times
        y, trials, const = model._y, np.ascontiguousarray(w * model.trials), const * w
    else:
        offset = model.offset + np.log(w)
        const = const * w - w * model._y * np.log(w)
    if not model.nested:
        return y, trials, offset, np.ascontiguousarray(cweight), None, const
    pen = np.concatenate([np.repeat(cweight[lv.first:lv.first + lv.n_groups], lv.q)
                          for lv in d.levels[:d.n_chain]])
    return y, trials, offset, None, np.ascontiguousarray(pen), const


def top_weights(model, level):
    """Weight of the top-level cluster of every cluster of chain level ``level`` (sampling weights).

    The linear model's factor holds every cluster's block scaled by the product ``a_c`` of
    its and its ancestors' weights, so the inverse of its blocks is the conditional
    covariance divided by the top-level weight: multiplying by it gives the conditional
    covariance of the random effects under the integrand of their top-level cluster.
    """
    d = model.design
    top = d.levels[d.n_chain - 1]
    lv = d.levels[level]
    return model._cweight[top.first + top.codes[lv._starts]]


def no_lr_test(model, what="likelihood-ratio tests"):
    """Raise ``ModelError`` for a model with sampling weights: a pseudo-likelihood has no LR tests,
    profile intervals, parametric bootstrap or Satterthwaite df."""
    if getattr(model, "sampling", None) is not None:
        raise ModelError("%s are not valid for a pseudo-likelihood (sampling weights); use Wald tests and "
                         "intervals (results.wald_test, conf_int()), which use the robust standard errors" % what)


def _codes(groups, name):
    from ..formula.grouping import group_codes
    return group_codes(groups, name)[0]
