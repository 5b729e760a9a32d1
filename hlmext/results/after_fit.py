"""What users do after the fit, shared by linear and generalized results: predictions with
standard errors, margins, group-level coefficients with standard errors.

``AfterFit`` is a base class of ``MixedResults`` and ``GLMMResults``; each method is a thin
front of a module of this floor (``predict_se``, ``margins``, ``blup_tables``).
"""
from __future__ import annotations

from . import blup_tables, diagnostics, margins as _margins, predict_se
from ..keywords import checked

__all__ = ["AfterFit"]


class AfterFit:
    """``get_prediction``, ``margins`` and ``coef_table`` of a mixed-model fit."""

    @checked
    def get_prediction(self, exog=None, which="conditional", new_groups="error", offset=None):
        """Predictions with standard errors and confidence intervals (statsmodels' conventions).

        Parameters
        ----------
        exog : pandas.DataFrame or array_like, optional
            New data with the formula's columns (and grouping columns for conditional
            predictions), or statsmodels-style rows of the fixed-effects design (each level
            then contributes a random intercept of an unseen group); default the fitted rows.
        which : {"conditional", "marginal", "linear"}
            ``"conditional"``: the mean given the groups' predicted effects, ``g^{-1}(x'beta +
            z'b)``; ``"linear"``: its linear predictor (the same for a linear model);
            ``"marginal"``: the population-averaged mean, ``x'beta`` for a linear model and
            the mean over the random-effects distribution for a generalized one (Stata's
            ``predict mu, marginal``).
        new_groups : {"error", "population"}
            Rows of groups the fit did not see: an error, or the prediction at ``b = 0`` with
            the random-effect variance ``z' Sigma z`` added to its variance.
        offset : array_like, optional
            Generalized models: offset (log scale) of new rows when the model's was an array.

        Returns
        -------
        hlmext.results.predict_se.PredictionResults
            ``predicted_mean``, ``se_mean``, ``conf_int(alpha)``, ``summary_frame(alpha)``.

        Notes
        -----
        Standard errors of conditional predictions include the fixed effects' covariance,
        the conditional covariance of the random effects and the covariance between the
        estimated fixed effects and the predicted random effects (the prediction error
        variance ``(x - E_g'z)' V (x - E_g'z) + z' C_g z``); the variance parameters are
        taken as known. Marginal standard errors of a linear model come from the fixed
        effects' covariance; those of a generalized model's population-averaged mean from
        the covariance of all parameters (delta method). See ``hlmext.results.predict_se``.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("sleepstudy")
        >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
        >>> res.get_prediction(df.head(2)).summary_frame().round(3)
              mean  mean_se  mean_ci_lower  mean_ci_upper  obs_ci_lower  obs_ci_upper
        0  253.664   12.255        229.645        277.683       198.050       309.277
        1  273.330   10.543        252.665        293.995       219.081       327.579
        """
        return predict_se.get_prediction(self, exog, which=which, new_groups=new_groups, offset=offset)

    @checked
    def margins(self, data, at=None, dydx=None, over=None, population_averaged=False, contrast=None,
                adjust="holm", alpha=0.05):
        """Marginal means and average marginal effects, with delta-method standard errors (Stata's ``margins``).

        Parameters
        ----------
        data : pandas.DataFrame
            The data the model was fitted on; the margins average over its rows (those of
            the estimation sample), as Stata's ``margins`` (``asobserved``).
        at : dict, optional
            Column -> value or list of values: the margins with the columns set to every
            combination of the values (``margins, at()``; ``margins period`` is
            ``at={"period": [1, 2, 3, 4]}``).
        dydx : str or list of str, optional
            Columns: average marginal effects, the mean derivative of the predicted mean in
            a numeric column (``margins, dydx(x)``); for a column the formula uses as a
            factor, the discrete change from its base (first) level to each other level,
            one row ``"var[level vs base]"`` each (``margins, dydx(i.var)``).
        over : str, optional
            A column: margins within each of its values (``margins, over()``).
        population_averaged : bool
            Generalized models: False (the default) averages the mean at ``b = 0``,
            ``g^{-1}(x'beta)`` (lme4's ``re.form = NA``, ``emmeans``' ``type = "response"``);
            True averages the population-averaged mean, the inverse link integrated over the
            random effects (Stata's ``predict(mu marginal)``). A linear model's mean is
            ``x'beta`` either way.
        contrast : {None, "pairwise"}
            ``"pairwise"``: every difference of two margins, first minus second (``emmeans``'
            ``pairs``), with p-values adjusted for multiplicity by ``adjust``.
        adjust : {"holm", "bonferroni", "sidak", "fdr_bh", "tukey", "none"}
            The multiplicity adjustment of pairwise p-values (``"tukey"``: the studentized
            range with infinite df, ``emmeans``' asymptotic Tukey).
        alpha : float
            1 - the intervals' level.

        Returns
        -------
        pandas.DataFrame
            One row per margin (index: the ``over`` and ``at`` values, and ``term`` for
            ``dydx``): ``margin`` (or ``dydx``), ``se``, ``z``, ``pvalue``, ``lower``, ``upper``.
            With ``contrast="pairwise"``, one row per pair: ``contrast``, ``se``, ``z``,
            ``pvalue`` (adjusted), ``pvalue_unadjusted``, ``lower``, ``upper`` (unadjusted).

        Examples
        --------
        >>> import hlmext
        >>> cbpp = hlmext.datasets.load("cbpp")
        >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", cbpp, trials="size").fit()
        >>> res.margins(cbpp, at={"period": [1, 2]}).round(4)
                margin      se       z  pvalue   lower   upper
        period
        1       0.1979  0.0371  5.3393  0.0000  0.1253  0.2706
        2       0.0839  0.0239  3.5097  0.0004  0.0370  0.1307
        """
        return _margins.margins(self, data, at=at, dydx=dydx, over=over, population_averaged=population_averaged,
                                contrast=contrast, adjust=adjust, alpha=alpha)

    @checked
    def coef_table(self, alpha=0.05):
        """Group-level coefficients (lme4's ``coef()``) with standard errors and intervals.

        The coefficient of a term in a group is its fixed effect plus the group's predicted
        effect; the standard error is that of the prediction error, including the fixed
        effect's variance, the effect's conditional variance and their covariance (see
        ``hlmext.results.blup_tables``).

        Returns
        -------
        pandas.DataFrame or dict of str -> pandas.DataFrame
            Index (group, term); columns ``estimate``, ``se``, ``lower``, ``upper``; a dict
            keyed by level (outermost first) when the model has several levels.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("sleepstudy")
        >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
        >>> res.coef_table().head(2).round(3)
                           estimate      se    lower    upper
        Subject term
        308     Intercept   253.664  12.255  229.645  277.683
                Days         19.666   2.336   15.087   24.245
        """
        return blup_tables.coef_table(self, alpha)

    # ------------------------------------------------------------------ diagnostics
    @checked
    def residuals(self, kind="raw", which="conditional"):
        """Residuals of the fitted rows, in the data's order (lme4's ``residuals``).

        Parameters
        ----------
        kind : {"raw", "pearson", "deviance", "standardized"}
            ``y - y-hat``; over the sd of ``y`` given the prediction; the signed root of the
            row's deviance; over the residual's own sd. See ``hlmext.results.diagnostics``
            (generalized models: ``hlmext.results.glmm_leverage``).
        which : {"conditional", "marginal"}
            Against ``x'beta + z'b`` (generalized: the conditional mean) or ``x'beta``
            (generalized: the population-averaged mean).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("sleepstudy")
        >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
        >>> res.residuals("standardized").head(3).round(4)
        0   -0.1827
        1   -0.6272
        2   -1.7645
        dtype: float64
        """
        return diagnostics.residuals(self, kind=kind, which=which)

    def hatvalues(self):
        """Leverages: the diagonal of the map from ``y`` to the conditional fitted values (lme4's
        ``hatvalues``; a generalized model's as lme4 defines them for ``glmer`` fits, see
        ``hlmext.results.glmm_leverage``). A Series in the data's row order."""
        return diagnostics.hatvalues(self)

    def cooks_distance(self):
        """Cook's distance of every observation, lme4's ``cooks.distance``:
        ``(r / (1 - h))^2 h / (sigma^2 p)`` (generalized models: ``r`` the Pearson residual,
        ``sigma^2`` the dispersion)."""
        return diagnostics.cooks_distance(self)

    @checked
    def influence(self, groups=None, exact=False, level=None):
        """Influence of each group: the fit without it (lme4's ``influence(fit, groups=)``).

        Each group's deletion is refitted (variance parameters re-estimated by the fit's
        criterion) from the full fit's estimates. A linear model with nested levels deletes
        from the fitted statistics minus the group's rows' (no other row is read again); a
        model with a crossed factor or weights, or a generalized one, is refitted on the
        design's rows without the group's (``hlmext.results.deletion_levels``).

        Parameters
        ----------
        groups : list, optional
            Group labels of ``level`` to delete one at a time; default every group.
        exact : bool
            One-level linear models: False: the deletions are solved all at once from the
            clusters' statistics (``hlmext.results.deletion``; any group it cannot settle is
            refitted); True: every deletion is refitted by the model's deviance, one at a
            time (slower).
        level : str, optional
            The level whose groups are deleted (``"batch"``, ``"batch:cask"``, a crossed
            factor); needed when the model has several. Deleting a group deletes the groups
            of other levels left without rows (a batch's casks).

        Returns
        -------
        pandas.DataFrame
            One row per group: ``dfbeta[term]`` (full-data minus deleted-fit fixed effects),
            ``nobs`` and ``cooks_distance`` (lme4's ``cooks.distance`` of the influence object).

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("sleepstudy")
        >>> res = hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", df).fit()
        >>> res.influence().sort_values("cooks_distance").tail(2).round(3)
                 dfbeta[Intercept]  dfbeta[Days]  nobs  cooks_distance
        Subject
        335                  0.684        -0.785    10           0.115
        309                 -2.726        -0.483    10           0.132
        """
        return diagnostics.group_influence(self, groups, exact=exact, level=level)
