"""Adaptive Gauss-Hermite quadrature for two nested levels of a generalized mixed model.

Stata's multilevel ``mvaghermite``: the outer level's integral is a product rule centred at
the joint conditional mode and scaled by the curvature left after the inner effects are
eliminated (both from the Laplace kernel), and inside every outer node each inner
cluster's integral is its own adaptive rule, centred at the inner mode given that node
(``hlmext._kernels.nested_aghq``). One point per level is the Laplace approximation.

Point-count rule: an inner cluster's integral is evaluated at every outer node, so a
cluster costs ``nagq**q2 * nagq**q1`` evaluations of its rows; that product may be at
most ``MAX_NODES`` (5,000). The gradient is by central differences: 2 (p + k_re) + 1
likelihood evaluations per gradient, each a quadrature over every cluster.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._kernels import nested_aghq as _kernel
from ..exceptions import ModelError
from .quadrature import MAX_NODES, gauss_hermite_rule
from ..threads import get_num_threads


def check(model, nagq):
    """Refuse (ModelError) a nested model or point count the nested quadrature does not cover."""
    d = model.design
    names = ", ".join(lv.name for lv in model.levels[::-1])
    if d.n_chain != d.n_levels:
        raise ModelError("nagq=%d: adaptive quadrature covers nested levels, not crossed factors (%s); fit "
                         "crossed models by the Laplace approximation: pass nagq=1" % (nagq, names))
    if len(model.levels) != 2:
        raise ModelError("nagq=%d: adaptive quadrature covers one or two nested levels; this model has %d (%s): "
                         "pass nagq=1 (Laplace) or drop a level" % (nagq, len(model.levels), names))
    if model._pen is not None:
        raise ModelError("nagq=%d: with sampling weights, nested models are fitted by the Laplace "
                         "approximation: pass nagq=1" % nagq)
    q1, q2 = (lv.q for lv in model.levels)
    if nagq ** (q1 + q2) > MAX_NODES:
        best = int(MAX_NODES ** (1.0 / (q1 + q2)) + 1e-9)
        raise ModelError("nagq=%d with %d random effects at level %r and %d at level %r needs %d quadrature points "
                         "per inner cluster (nagq**%d outer nodes times nagq**%d inner), more than %d; use "
                         "nagq=%d or fewer, or nagq=1 (Laplace)" % (nagq, q1, model.levels[0].name, q2,
                                                                   model.levels[1].name, nagq ** (q1 + q2), q2,
                                                                   q1, MAX_NODES, best))


class _Layout:
    """Rows sorted by inner cluster, inner clusters by outer cluster (the kernel's order): the
    design's layout only, so that copies with another response (the bootstrap's) share it."""

    def __init__(self, model):
        d = model.design
        inner, outer = model.levels
        G1 = inner.n_groups
        self.parent = d.parent[:G1] - d.level_first[1]          # outer cluster of every inner cluster
        self.child_order = np.argsort(self.parent, kind="stable")
        rank = np.empty(G1, dtype=np.intp)
        rank[self.child_order] = np.arange(G1)
        c_row = model._cl[:, 0] - d.level_first[0]
        self.rows = np.argsort(rank[c_row], kind="stable")
        self.row_start = np.concatenate([[0], np.cumsum(np.bincount(rank[c_row], minlength=G1))]).astype(np.intp)
        self.child_start = np.concatenate([[0], np.cumsum(np.bincount(self.parent, minlength=outer.n_groups))
                                           ]).astype(np.intp)
        zoff = d.zoff
        Z = model._Z[self.rows]
        self.Z1, self.Z2 = Z[:, zoff[0]:zoff[1]], Z[:, zoff[1]:zoff[2]]


def _layout(model):
    lay = model.__dict__.get("_nested_aghq_layout")
    if lay is None:
        lay = model.__dict__["_nested_aghq_layout"] = _Layout(model)
    return lay


@lru_cache(maxsize=16)
def _rules(nagq, q1, q2):
    """The two levels' product rules (read-only arrays, shared by every call)."""
    n1, w1 = gauss_hermite_rule(nagq, q1)
    n2, w2 = gauss_hermite_rule(nagq, q2)
    for a in (n1, w1, n2, w2):
        a.flags.writeable = False
    return n1, w1, n2, w2


def loglik(model, beta, theta, nagq):
    """Log-likelihood (with the data constants) by nested adaptive quadrature; -inf on failure."""
    lay = _layout(model)
    lap = model._kernel(beta, theta, 1, False)           # the joint modes and the factor at them
    if not np.isfinite(lap):
        return -np.inf
    d, t = model.design, model._tree
    inner, outer = model.levels
    q1, q2 = inner.q, outer.q
    lam1, lam2 = model.lams(theta)
    u, S = model._u, model._S
    G1, G2 = inner.n_groups, outer.n_groups
    u_mode = u[t["u_off"][:G1, None] + np.arange(q1)][lay.child_order]
    k = np.arange(d.level_first[1], d.level_first[2])
    v_mode = u[t["u_off"][k, None] + np.arange(q2)]
    D = q2 + 1
    blocks = S[t["blk_off"][k, None] + (np.arange(q2)[:, None] * D + np.arange(q2)).ravel()].reshape(G2, q2, q2)
    v_chol = np.ascontiguousarray(np.tril(blocks))
    eta0 = (model._X @ beta + model._koff)[lay.rows]
    ll = np.empty(G2)
    failed = _kernel.two_level_loglik(model._kernel_family, np.ascontiguousarray(lay.Z1 @ lam1),
                                      np.ascontiguousarray(lay.Z2 @ lam2), model._ky[lay.rows],
                                      model._kn[lay.rows], eta0, lay.row_start,
                                      lay.child_start, np.ascontiguousarray(v_mode), v_chol,
                                      np.ascontiguousarray(u_mode), *_rules(nagq, q1, q2), ll,
                                      n_threads=get_num_threads())
    if failed:
        return -np.inf
    return float(ll.sum()) + model._const


def loglike_theta(model, beta, theta, nagq, grad=False, h=1e-6):
    """``MixedGLM.loglike_theta`` for nested AGHQ: the value and, with ``grad``, its gradient
    in (beta, theta) by central differences."""
    ll = loglik(model, beta, theta, nagq)
    if not grad:
        return ll
    x = np.concatenate([beta, theta])
    p, g = beta.size, np.empty(x.size)
    if not np.isfinite(ll):
        return ll, np.full(x.size, np.nan)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h * max(1.0, abs(x[i]))
        fp = loglik(model, *np.split(x + e, [p]), nagq)
        fm = loglik(model, *np.split(x - e, [p]), nagq)
        g[i] = (fp - fm) / (2 * e[i])
    loglik(model, beta, theta, nagq)                     # last: the work arrays are those at x
    return ll, g
