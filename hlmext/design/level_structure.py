"""Which levels of random effects nest and which are crossed, from their group codes alone.

``grouped_specs`` turns the user's levels into a random-effects design and group codes each
(terms on the same grouping, lme4's ``(1 | g) + (0 + x | g)``, merged into one level of
blocks: ``merge_same_grouping``); ``chain_and_crossed`` splits the levels into the nested
chain and the crossed factors; ``check_group_structure`` refuses levels whose variances the
groups alone leave unidentified.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import sparse_coupling
from ..exceptions import DataError, ModelError
from ..formula.grouping import group_codes

__all__ = ["chain_and_crossed", "check_group_structure", "grouped_specs", "merge_same_grouping", "nests_in"]


def check_group_structure(levels, n_chain):
    """Identification checks that need only the groups: raise ``ModelError`` naming the level.

    A level with one group; random slopes where every group has one row; a nested level
    whose groups are its parent's (``levels[:n_chain]`` is the nested chain, innermost first).
    """
    for lev in levels:
        if lev.n_groups < 2:
            raise ModelError("level %r has a single group; a variance cannot be estimated from one "
                             "group: drop this random-effects term" % lev.name)
        if lev.q > 1 and np.all(lev.sizes == 1):
            raise ModelError("every group of level %r has one observation, so its %d random effects "
                             "(%s) are not identified; keep only a random intercept for %r"
                             % (lev.name, lev.q, ", ".join(lev.names), lev.name))
    chain = levels[:n_chain]
    for inner, outer in zip(chain[:-1], chain[1:]):
        if inner.n_groups == outer.n_groups:
            raise ModelError("level %r has the same groups as %r (each %r group holds a single %r group), "
                             "so their variances are not identified separately; drop one of the two levels"
                             % (inner.name, outer.name, outer.name, inner.name))


def merge_same_grouping(specs, codes, labels):
    """Terms on the same grouping (lme4 ``(1 | g) + (0 + x | g)``) become one level of blocks."""
    out_specs, out_codes, out_labels = [], [], []
    for (spec, z), c, lab in zip(specs, codes, labels):
        for i, (other, oz) in enumerate(out_specs):
            if other.name == spec.name:
                dup = set(other.names) & set(spec.names)
                if dup:
                    raise ModelError("level %r has the random-effects column(s) %s in more than one term"
                                     % (spec.name, ", ".join(sorted(dup))))
                q0 = oz.shape[1]
                merged = dataclasses.replace(
                    other, exog_re=None, blocks=other.blocks + [(k, [j + q0 for j in cols]) for k, cols in spec.blocks],
                    names=other.names + spec.names)
                out_specs[i] = (merged, np.hstack([oz, z]))
                break
        else:
            out_specs.append((spec, z))
            out_codes.append(c)
            out_labels.append(lab)
    return out_specs, out_codes, out_labels


def nests_in(inner, outer, n_inner):
    """True if every group of ``inner`` lies within one group of ``outer``."""
    outer_of_inner = np.empty(n_inner, dtype=np.int64)
    outer_of_inner[inner] = outer
    return bool(np.all(outer_of_inner[inner] == outer))


def chain_and_crossed(codes, qs=None, k_fe=0, columns=None):
    """Split the levels into a nested chain (outermost first) and crossed levels.

    If every level nests in the next one out (ordered by number of groups), all form the
    chain. Otherwise one level is the chain, eliminated cluster by cluster, and every other
    level is crossed (factored as one dense block), most groups first. The chain is the level
    whose choice costs least (``sparse_coupling.elimination_cost``, given the levels'
    numbers of random effects ``qs`` and of fixed effects ``k_fe``; ties and ``qs=None``: the
    level with the most groups). ``columns`` (a dict, with ``qs``): receives under ``"pattern"``
    the number of crossed columns the chain's clusters touch in all (its sparse coupling's size).
    """
    n_groups = [int(c.max()) + 1 for c in codes]
    order = sorted(range(len(codes)), key=lambda i: (n_groups[i], i))
    if all(nests_in(codes[inner], codes[outer], n_groups[inner])
           for outer, inner in zip(order[:-1], order[1:])):
        return order, []
    chain = order[-1]
    if qs is not None:
        touched = sparse_coupling.touched_columns(codes, qs)
        cost = sparse_coupling.elimination_cost(codes, qs, k_fe, touched)
        chain = min(order[::-1], key=lambda i: cost[i])
        if columns is not None:
            columns["pattern"] = float(np.sum(touched[chain]))
    return [chain], [i for i in order[::-1] if i != chain]


def grouped_specs(levels, n):
    """Per level: (spec, Z as a 2-d float array), the group codes and labels; same groupings merged."""
    specs, codes, labels = [], [], []
    for spec in levels:
        z = np.asarray(spec.exog_re, dtype=float)
        if z.ndim == 1:
            z = z[:, None]
        if z.shape[0] != n:
            raise DataError("random-effects design of level %r has %d rows, expected %d"
                            % (spec.name, z.shape[0], n))
        c, lab = group_codes(spec.groups, spec.name)
        if len(c) != n:
            raise DataError("groups of level %r have %d rows, expected %d" % (spec.name, len(c), n))
        specs.append((spec, z))
        codes.append(c)
        labels.append(lab)
    return merge_same_grouping(specs, codes, labels)
