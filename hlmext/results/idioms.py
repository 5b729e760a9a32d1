"""lme4 and Stata idioms shared by linear and generalized mixed-model results.

``Lme4Idioms`` is a base class of ``MixedResults`` and ``GLMMResults``: ``coef()``
(lme4's group-level coefficients), ``ranef()`` (with conditional standard errors) and
``estat_group()`` (Stata's group sizes). ``update()`` (refit with a changed formula, data or
option) and the plots of ``hlmext.output.plotting`` join them in ``hlmext.public``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Lme4Idioms"]


def _named(index, level):
    """A copy of a group index named by the level's grouping columns."""
    names = level.split(":")
    index = index.copy()
    if index.nlevels == len(names):
        index.names = names
    else:
        index.name = level
    return index


def _one_or_dict(tables):
    return next(iter(tables.values())) if len(tables) == 1 else tables


def _label(group):
    return ":".join(str(g) for g in group) if isinstance(group, tuple) else group


class Lme4Idioms:
    """``coef``, ``ranef``, ``update``, ``estat_group`` and plots of a mixed-model fit."""

    def coef(self):
        """Group-level coefficients: the fixed effects plus each group's random effects (lme4's ``coef``).

        Every fixed effect is a column; a term with a random effect at the level gets its
        fixed value plus the group's conditional mode, the others their fixed value for every
        group (a random term without a fixed one starts at 0, as in lme4). As in lme4, the
        table of a level adds that level's random effects only: with ``(1 | school/class)``
        the ``school:class`` table does not include the school's effect.

        Returns
        -------
        pandas.DataFrame or dict of str -> pandas.DataFrame
            One row per group (index named by the grouping columns); a dict keyed by level
            (outermost first) when the model has several levels.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
        >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
        >>> res.coef().head(3).round(3)
                Intercept    lrt
        school
        1           3.636  0.682
        2           4.590  0.721
        3           4.686  0.637
        """
        fe = self.fe_params
        out = {}
        for level, blups in self.random_effects.items():
            extra = [c for c in blups.columns if c not in fe.index]
            row = np.concatenate([np.zeros(len(extra)), fe.to_numpy()])
            table = pd.DataFrame(np.tile(row, (len(blups), 1)), index=_named(blups.index, level),
                                 columns=extra + list(fe.index))
            table[list(blups.columns)] += blups.to_numpy()
            out[level] = table
        return _one_or_dict(out)

    def ranef(self, condvar=False):
        """Random effects (conditional modes, BLUPs), optionally with their conditional standard errors.

        Parameters
        ----------
        condvar : bool
            False: per level a table of the groups' effects (as ``random_effects``, index
            named). True: one long table, as lme4's ``as.data.frame(ranef(fit, condVar =
            TRUE))``: index (level, group, term), columns ``estimate`` and ``se`` (the square
            root of the conditional variance, ``random_effects_cov``); groups of a nested
            level are labelled ``"outer:inner"``.

        Returns
        -------
        pandas.DataFrame, or dict of str -> pandas.DataFrame when ``condvar`` is False and
        there are several levels.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
        >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
        >>> res.ranef(condvar=True).head(2).round(4)
                                estimate      se
        level  group term
        school 1     Intercept    3.7439  0.8265
               2     Intercept    4.6978  0.9448
        """
        if not condvar:
            return _one_or_dict({lv: b.set_axis(_named(b.index, lv)) for lv, b in self.random_effects.items()})
        rows, index = [], []
        cov = self.random_effects_cov
        for level, blups in self.random_effects.items():
            labels = [_label(g) for g in blups.index]
            for term in blups.columns:
                var = cov[level]["var(%s)" % term].reindex(blups.index).to_numpy(float)
                rows.append(np.column_stack([blups[term].to_numpy(float), np.sqrt(np.clip(var, 0, None))]))
                index.extend((level, g, term) for g in labels)
        return pd.DataFrame(np.vstack(rows), columns=["estimate", "se"],
                            index=pd.MultiIndex.from_tuples(index, names=["level", "group", "term"]))

    def estat_group(self):
        """Number of groups and observations per group at every level (Stata's ``estat group``).

        Returns
        -------
        pandas.DataFrame
            Index ``level`` (outermost first); columns ``n_groups``, ``min``, ``mean``, ``max``.

        Examples
        --------
        >>> import hlmext
        >>> pastes = hlmext.datasets.load("pastes")
        >>> hlmext.mixedlm("strength ~ 1 + (1 | batch/cask)", pastes).fit().estat_group()
                    n_groups  min  mean  max
        level
        batch             10    6   6.0    6
        batch:cask        30    2   2.0    2
        """
        info = self.level_info
        return pd.DataFrame({"n_groups": [d["n_groups"] for d in info], "min": [d["min"] for d in info],
                             "mean": [d["avg"] for d in info], "max": [d["max"] for d in info]},
                            index=pd.Index([d["name"] for d in info], name="level"))
