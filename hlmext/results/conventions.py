"""Members every statsmodels results object has, for linear and GLMM results alike.

``df_model``, ``llnull``, ``remove_data``, ``t_test_pairwise`` and a readable ``repr``,
in the meaning statsmodels gives them (``LikelihoodModelResults``); ``save`` and
``load`` are statsmodels' own (pickling, which ``hlmext.formula.design_state`` makes possible
for models built from a formula).

Examples
--------
>>> import hlmext
>>> df = hlmext.datasets.load("gcse").query("nstu > 4")
>>> res = hlmext.mixedlm("gcse ~ lrt + C(sex) + (1 | school)", df).fit(reml=False)
>>> res.df_model, round(res.llnull, 3)
(2, -14198.461)
>>> res.t_test_pairwise("C(sex)").result_frame.index.tolist()
['M-F']
"""
from __future__ import annotations

import numpy as np

__all__ = ["ResultsConventions", "load"]


class ResultsConventions:
    """statsmodels' standard results members, mixed into ``MixedResults`` and ``GLMMResults``."""

    @property
    def df_model(self) -> int:
        """Fixed effects other than the intercept (statsmodels' ``df_model``: the Wald chi2's df)."""
        return int(self.k_fe - self.model.k_constant)

    @property
    def llnull(self) -> float:
        """Log-likelihood of the model without random effects, fitted by ML.

        Linear models: the OLS log-likelihood of the same fixed effects (also for REML
        fits, whose criterion has no counterpart without random effects); GLMMs: the
        GLM's. statsmodels' ``MixedLM`` has no ``llnull``; this is the null model of
        the LR test against the regression (``lr_test_vs_regression``).
        """
        if getattr(self, "_llnull", None) is None:
            self._llnull = float(self._null_llf())
        return self._llnull

    def _null_llf(self):
        model = self.model
        return -0.5 * model.deviance(model.theta_null(), reml=False)

    def t_test_pairwise(self, term_name, method="hs", alpha=0.05, factor_labels=None, ignore=False):
        """Pairwise t tests of the levels of a categorical fixed-effects term (statsmodels').

        Parameters
        ----------
        term_name : str
            The term as the formula writes it, e.g. ``"C(period)"``.
        method : str or list of str
            Multiple-testing correction(s) (``statsmodels.stats.multitest.multipletests``).
        alpha : float
        factor_labels : list of str, optional
            Names of the levels (default: their values in the data).
        ignore : bool
            Allow an interaction term (its first factor's levels are compared).

        Returns
        -------
        statsmodels.stats.contrast.MultiCompResult
            ``result_frame``: one row per pair ``"b-a"`` (level b minus level a), with the
            t test and the corrected p-values; ``contrasts``: the restriction matrix.
        """
        from statsmodels.stats.contrast import MultiCompResult, t_test_multi
        frame = getattr(self.model, "frame", None)
        if frame is None:
            raise ValueError("t_test_pairwise needs a model built from a formula (the term's levels come "
                             "from it); with arrays, build the contrasts and call t_test")
        info = frame.fixed_design_info
        if term_name not in info.term_names:
            raise ValueError("term_name %r is not a fixed-effects term; terms are: %s"
                             % (term_name, ", ".join(info.term_names)))
        term = info.terms[info.term_names.index(term_name)]
        if len(term.factors) > 1 and not ignore:
            raise ValueError("t_test_pairwise compares the levels of one factor, and %r is an interaction; "
                             "pass ignore=True to compare the levels of its first factor" % term_name)
        factor = term.factors[0]
        levels = info.factor_infos[factor].categories
        if levels is None:
            raise ValueError("term %r is numeric; t_test_pairwise needs a categorical term such as C(x)" % term_name)
        if factor_labels is not None:
            if len(factor_labels) != len(levels):
                raise ValueError("factor_labels has %d names for %d levels" % (len(factor_labels), len(levels)))
            levels = factor_labels
        coding = info.term_codings[term][0].contrast_matrices[factor].matrix
        i, j = np.triu_indices(len(levels), 1)
        pairs = np.zeros((len(i), len(levels)))
        pairs[np.arange(len(i)), i], pairs[np.arange(len(i)), j] = -1.0, 1.0
        contrasts = np.zeros((len(i), len(self.params)))
        contrasts[:, info.term_slices[term]] = pairs @ coding
        labels = ["%s-%s" % (levels[b], levels[a]) for a, b in zip(i, j)]
        table = t_test_multi(self, contrasts, method=method, alpha=alpha, contrast_names=labels)
        table.index.name, table.columns.name = "pair", term_name
        return MultiCompResult(result_frame=table, contrasts=contrasts, term=term, contrast_labels=labels,
                               term_encoding_matrix=coding)

    def remove_data(self):
        """Drop the per-row arrays of the results and the model (statsmodels' ``remove_data``).

        Estimates, standard errors, ``summary()``, ``t_test``, ``wald_test``, conditional
        modes and their variances, and ``predict`` on new data keep working; fitted
        values, residuals and refits (bootstrap, profiles) need the data and raise.
        Saved results become small: ``res.save(path, remove_data=True)``.
        """
        self._keep_before_removing_data()
        self.llnull
        super().remove_data()
        model = self.model
        design = model.design
        n_rows = design.nobs
        for owner in (self.__dict__, model.__dict__, design.__dict__):
            for name, value in list(owner.items()):
                if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == n_rows \
                        and name not in ("_stats", "_G0"):
                    owner[name] = None
        for level in design.levels:
            level._codes = level.z = None
        design.has_rows = False
        self._data_removed = True

    def _keep_before_removing_data(self):
        """What the results compute from the rows on demand, computed now (see ``remove_data``)."""
        self.random_effects_cov

    def _check_rows(self):
        if getattr(self, "_data_removed", False):
            raise ValueError("the data were removed from these results (remove_data()); fitted values, "
                             "residuals and refits need them: fit the model again")

    def __repr__(self):
        model = self.model
        what = model.formula or "%s on %d regressors" % (model.endog_names, self.k_fe)
        return "<%s: %s, %s, nobs=%d, llf=%.3f>" % (type(self).__name__, self.model_label, what, self.nobs,
                                                    float(self.llf))


def load(fname):
    """Results (or a model) saved by ``results.save(fname)`` (statsmodels' ``load_pickle``).

    Parameters
    ----------
    fname : str, path or file-like

    Examples
    --------
    >>> import os, tempfile, hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit()
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.pickle")
    >>> res.save(path)
    >>> again = hlmext.load(path)
    >>> again.llf == res.llf, again.predict(df.head(2)).round(3).tolist()
    (True, [3.518, 1.19])
    """
    from statsmodels.iolib.smpickle import load_pickle
    return load_pickle(fname)
