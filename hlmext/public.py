"""The user-facing model and results classes, composed from the floors below.

Each class here is a lower-floor class plus the methods that need a higher floor:

- ``MixedResults`` and ``GLMMResults`` (``hlmext.results``: estimates, covariances, BLUPs,
  predictions, lme4 idioms) gain profile and bootstrap intervals, small-sample df tests
  (``hlmext.inference``), summaries and plots (``hlmext.output``) and ``update``
  (``hlmext.update``);
- ``LinearMixed``, ``MixedLogit`` and ``MixedPoisson`` (``hlmext.models``) name the results
  class their ``fit()`` returns, and gain ``to_lme4``/``to_stata`` (``hlmext.output.emit``)
  and ``refit``.

So no floor imports one above it: the models fit without knowing the results classes, and
the results hold a fit without knowing inference or output. ``hlmext.api`` and ``hlmext``
hand out these classes.
"""
from __future__ import annotations

from .design.sampling_weights import no_lr_test
from .exceptions import ModelError
from .inference import glmm_bootstrap, kenward_roger, ordinal_bootstrap, satterthwaite
from .inference.bootstrap import bootstrap, simulate, with_endog
from .inference.kenward_roger import df_method
from .inference.ordinal_profile import OrdinalProfile
from .inference.profile import GLMMProfile, profile_ci
from .inference.term_tests import anova as term_anova
from .keywords import check_keywords, checked
from .models import families as _families
from .models import glmm_distributed as _glmm_distributed
from .models import linear as _linear
from .models import many as _many
from .models import mixed_family as _mixed_family
from .models import ordinal as _ordinal
from .models import ordinal_partitions as _ordinal_partitions
from .models.residual_linear import ResidualModel
from .output import ordinal as _ordinal_output
from .output.diagnostic_plots import plot_influence, plot_qq, plot_residuals
from .output.emit import to_lme4, to_stata
from .output.emit_glmm import glmm_to_lme4, glmm_to_stata
from .output.nlme_emit import to_nlme
from .output.plotting import plot_per_group_fits, plot_random_effects, plot_shrinkage
from .output.summary import MixedSummary
from .results import glmm as _glmm_results
from .results import linear as _linear_results
from .results import ordinal as _ordinal_results
from .results.glmm import GLMMResultsWrapper
from .results.glmm_distributed import PartitionedResults
from .results.linear import MixedResultsWrapper
from .results.many import ManyResults
from .update import CONSTRUCTORS, update

__all__ = ["MixedResults", "GLMMResults", "LinearMixed", "MixedLogit", "MixedPoisson", "MixedFamily",
           "DistributedGLM", "DistributedGLMMResults", "OrdinalResults", "MixedOrdinal", "DistributedOrdinal",
           "DistributedOrdinalResults"]


class _RefitsAndPlots:
    """``update`` and the plots, shared by linear and GLMM results."""

    def update(self, formula=None, data=None, **changes):
        """Refit with a changed formula, data or option, keeping the others (lme4's ``update``).

        ``formula`` may use ``.`` for the old parts: ``". ~ . - x"``, ``". ~ . + z"``,
        ``". ~ . - (x | g) + (1 | g)"``; see :func:`hlmext.update.update`.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
        >>> rs = hlmext.mixedlm("gcse ~ lrt + schavg + (lrt | school)", df).fit(reml=False)
        >>> small = rs.update(". ~ . - schavg")
        >>> small.model.formula, small.reml
        ('gcse ~ lrt + (lrt | school)', False)
        """
        return update(self, formula, data, **changes)

    # ------------------------------------------------------------------ plots
    def plot_random_effects(self, level=None, term=None, ax=None, alpha=0.05):
        """Caterpillar plot of the BLUPs; see :func:`hlmext.output.plotting.plot_random_effects`."""
        return plot_random_effects(self, level=level, term=term, ax=ax, alpha=alpha)

    def plot_per_group_fits(self, data, x=None, ax=None, max_groups=None):
        """Per-group fits against the mixed model's lines; see :func:`hlmext.output.plotting.plot_per_group_fits`."""
        return plot_per_group_fits(self, data, x=x, ax=ax, max_groups=max_groups)

    def plot_shrinkage(self, data=None, terms=None, ax=None, min_obs=5):
        """Per-group estimates against the mixed model's; see :func:`hlmext.output.plotting.plot_shrinkage`."""
        return plot_shrinkage(self, data=data, terms=terms, ax=ax, min_obs=min_obs)

    def plot_residuals(self, kind="pearson", which="conditional", ax=None):
        """Residuals against fitted values; see :func:`hlmext.output.diagnostic_plots.plot_residuals`."""
        return plot_residuals(self, kind=kind, which=which, ax=ax)

    def plot_qq(self, kind="pearson"):
        """Normal QQ plots of the residuals and of every level's BLUPs; see
        :func:`hlmext.output.diagnostic_plots.plot_qq`."""
        return plot_qq(self, kind=kind)

    def plot_influence(self, influence=None, ax=None, label=5, level=None):
        """Cook's distance of every group (of ``level``, when the model has several); see
        :func:`hlmext.output.diagnostic_plots.plot_influence`."""
        return plot_influence(self, influence=influence, ax=ax, label=label, level=level)


class MixedResults(_RefitsAndPlots, _linear_results.MixedResults):
    __doc__ = _linear_results.MixedResults.__doc__

    @checked
    def profile_ci(self, alpha=0.05, cols=None, criterion=None):
        """Profile-likelihood intervals (lme4's ``confint(method="profile")``); see ``hlmext.inference.profile``.

        A REML fit is profiled on the ML likelihood (lme4's convention) unless
        ``criterion="reml"`` (variance parameters only).

        Returns
        -------
        pandas.DataFrame
            ``lower`` and ``upper`` per parameter.
        """
        no_lr_test(self.model, "profile-likelihood intervals")
        return profile_ci(self, alpha=alpha, cols=cols, criterion=criterion)

    def simulate(self, n=1, seed=None):
        """``n`` responses drawn from the fitted model (DataFrame, nobs x n); see ``hlmext.inference.bootstrap``."""
        return simulate(self, n=n, seed=seed)

    @checked
    def bootstrap(self, n=1000, seed=None, n_jobs=2, progress=False):
        """Parametric bootstrap: ``n`` simulated responses, each refitted (``BootstrapResults``).

        The replicates are the same for every ``n_jobs`` (processes); see ``hlmext.inference.bootstrap``.
        """
        no_lr_test(self.model, "parametric bootstrap intervals")
        return bootstrap(self, n=n, seed=seed, n_jobs=n_jobs, progress=progress)

    @checked
    def t_test(self, r_matrix, cov_p=None, use_t=None, df=None):
        """statsmodels' ``t_test``; ``df="satterthwaite"`` or ``"kenward-roger"`` for small-sample t tests.

        With a ``df`` method the hypothesis may involve fixed effects only and every row
        gets its own denominator df (lmerTest's ``contest1D``): ``hlmext.inference.satterthwaite``, or
        ``hlmext.inference.kenward_roger`` (REML fits; adjusted standard errors as well).
        """
        if df is None:
            return super().t_test(r_matrix, cov_p=cov_p, use_t=use_t)
        return self._df_module(df).t_test(self, r_matrix)

    @checked
    def f_test(self, r_matrix, cov_p=None, invcov=None, df=None):
        """statsmodels' ``f_test``; ``df="satterthwaite"`` or ``"kenward-roger"`` for a small-sample F test.

        With a ``df`` method the hypothesis may involve fixed effects only: Satterthwaite df
        as lmerTest's ``contest`` (``hlmext.inference.satterthwaite.f_test``), or Kenward-Roger's
        scaled F as pbkrtest's ``KRmodcomp`` (``hlmext.inference.kenward_roger.f_test``).
        """
        if df is None:
            return super().f_test(r_matrix, cov_p=cov_p, invcov=invcov)
        return self._df_module(df).f_test(self, r_matrix)

    @checked
    def anova(self, ddf="satterthwaite"):
        """F test of every fixed-effects term, with Satterthwaite or Kenward-Roger df; see
        ``hlmext.inference.term_tests.anova``."""
        self._df_module(ddf)
        return term_anova(self, ddf=ddf)

    def _df_module(self, name):
        """The module of a small-sample df method (checked against this fit)."""
        method = kenward_roger.df_method(name)
        no_lr_test(self.model, "Satterthwaite degrees of freedom" if method == "satterthwaite"
                   else "Kenward-Roger degrees of freedom")
        return satterthwaite if method == "satterthwaite" else kenward_roger

    @checked
    def summary(self, alpha=0.05, dfmethod=None):
        """Stata-style summary (text with ``print``, HTML in notebooks, ``as_latex()``).

        ``dfmethod="satterthwaite"``: t tests of the fixed effects with Satterthwaite df
        (the table's figures: ``hlmext.inference.satterthwaite.fe_table``); ``dfmethod="kenward-roger"``
        (Stata's ``kroger``; REML fits): Kenward-Roger adjusted standard errors and df
        (``hlmext.inference.kenward_roger.fe_table``).
        """
        if dfmethod is None:
            return MixedSummary(self, alpha=alpha)
        self._df_module(dfmethod)
        return MixedSummary(self, alpha=alpha, dfmethod=df_method(dfmethod))

    def _repr_html_(self):
        return self.summary()._repr_html_()


class GLMMResults(_RefitsAndPlots, _glmm_results.GLMMResults):
    __doc__ = _glmm_results.GLMMResults.__doc__

    @checked
    def profile_ci(self, alpha=0.05, cols=None, criterion=None):
        """Profile-likelihood intervals of the fit's own likelihood (Laplace or AGHQ); see
        ``hlmext.inference.profile.GLMMProfile``. ``criterion`` must be None (no REML here).

        Returns
        -------
        pandas.DataFrame
            ``lower`` and ``upper`` per parameter.
        """
        no_lr_test(self.model, "profile-likelihood intervals")
        return GLMMProfile(self, criterion).conf_int(alpha, cols)

    def simulate(self, n=1, seed=None):
        """``n`` responses drawn from the fitted model (DataFrame, nobs x n); see ``hlmext.inference.glmm_bootstrap``.

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("cbpp")
        >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
        >>> sims = res.simulate(n=3, seed=1)
        >>> sims.shape, bool((sims.to_numpy() <= df[["size"]].to_numpy()).all())
        ((56, 3), True)
        """
        return simulate(self, n=n, seed=seed)

    @checked
    def bootstrap(self, n=1000, seed=None, n_jobs=2, progress=False):
        """Parametric bootstrap: ``n`` simulated responses, each refitted by this fit's method.

        Returns ``hlmext.inference.bootstrap.BootstrapResults`` (percentile intervals, bootstrap se);
        the replicates are the same for every ``n_jobs`` (processes).

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("cbpp")
        >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
        >>> boot = res.bootstrap(n=10, seed=1, n_jobs=1)
        >>> boot.replicates.shape
        (10, 5)
        """
        return bootstrap(self, n=n, seed=seed, n_jobs=n_jobs, progress=progress)

    def refit(self, new_endog):
        """The same model and method fitted to a new response (fitted rows' order), from this fit."""
        return glmm_bootstrap.refit(self, new_endog)

    @checked
    def summary(self, eform=False, alpha=0.05):
        """Stata-style summary (text with ``print``, HTML in notebooks, ``as_latex()``).

        ``eform=True`` shows odds ratios (logit) or incidence-rate ratios (Poisson).
        """
        return MixedSummary(self, eform=eform, alpha=alpha)

    def _repr_html_(self):
        return self.summary()._repr_html_()

    def to_stata(self):
        """The Stata command of this fit, its integration method included, e.g.
        ``melogit incidence i.period || herd:, binomial(size) intmethod(mvaghermite) intpoints(7)``.

        See :func:`hlmext.output.emit_glmm.glmm_to_stata`.

        Examples
        --------
        >>> import hlmext
        >>> ticks = hlmext.datasets.load("grouseticks")
        >>> res = hlmext.mepoisson("TICKS ~ cHEIGHT + (1 | LOCATION/BROOD)", ticks).fit(nagq=1)
        >>> print(res.to_stata())
        mepoisson TICKS cHEIGHT || LOCATION: || BROOD:, intmethod(laplace)
        """
        return glmm_to_stata(self)

    def to_lme4(self, data="df"):
        """The R call of this fit (lme4's ``glmer`` / ``glmer.nb``, or glmmTMB), with its ``nAGQ``.

        See :func:`hlmext.output.emit_glmm.glmm_to_lme4`.

        Examples
        --------
        >>> import hlmext
        >>> ticks = hlmext.datasets.load("grouseticks")
        >>> res = hlmext.mepoisson("TICKS ~ cHEIGHT + (1 | BROOD)", ticks).fit(nagq=1)
        >>> print(res.to_lme4(data="grouseticks"))
        glmer(TICKS ~ cHEIGHT + (1 | BROOD), data = grouseticks, family = poisson)
        """
        return glmm_to_lme4(self, data=data)


class LinearMixed(_linear.LinearMixed):
    __doc__ = _linear.LinearMixed.__doc__
    results_class, wrapper_class = MixedResults, MixedResultsWrapper

    def to_lme4(self, reml=True, data="df"):
        """The equivalent lme4 call, e.g. ``lmer(gcse ~ lrt + (lrt | school), data = df)``.

        See :func:`hlmext.output.emit.to_lme4`; ``reml=False`` adds ``REML = FALSE``.
        """
        return to_lme4(self, reml=reml, data=data)

    def to_stata(self, reml=True):
        """The equivalent Stata command, e.g. ``mixed gcse lrt || school: lrt, covariance(unstructured) reml``.

        See :func:`hlmext.output.emit.to_stata`; ``reml=False`` writes ``mle``.
        """
        return to_stata(self, reml=reml)

    def refit(self, endog, reml=True, start=None, **kwargs):
        """Fit the same model to a new response without rebuilding the design.

        Only the cross-products that involve ``y`` are recomputed (``Z_lk' y`` per cluster,
        ``X'y``, ``y'y``): one O(n q) pass (``hlmext.inference.bootstrap.with_endog``).

        Parameters
        ----------
        endog : array_like, shape (nobs,)
            New response, in the row order of the fitted data.
        reml, start, **kwargs
            As for ``fit``.

        Returns
        -------
        MixedResults
        """
        check_keywords(LinearMixed.refit, kwargs, extra=("maxiter", "disp", "cov_type", "cov_kwds"))
        return with_endog(self, endog).fit(reml=reml, start=start, **kwargs)

    def fit_many(self, Y, reml=True, **kwargs):
        """Fit this model to every column of ``Y`` at once (a model per gene, per simulated response).

        The design's cross-products are computed once and only the response's per column;
        the columns are fitted in compiled code on ``hlmext.get_num_threads()`` threads.
        The model must have one grouping factor with a random intercept, as
        ``hlmext.mixedlm("~ condition + age + (1 | donor)", data)``. Its formula may be
        one-sided; a response on the left is ignored (each column of ``Y`` is the response,
        and the response column's missing values drop no rows).

        Parameters
        ----------
        Y : pandas.DataFrame, 2-D array_like, or a Dask array or DataFrame
            One column per response, one row per row of ``data`` (by position). Rows where
            a column is missing (or not finite) are left out of that column's fit only.
            A Dask ``Y`` (larger than memory) is fitted in blocks of columns, as tasks on
            the default Dask client's workers if there is one.
        reml : bool
            REML (default) or ML, as ``fit``.

        Returns
        -------
        hlmext.results.many.ManyResults
            ``tidy`` (response, term, estimate, se, t, df, pvalue; Satterthwaite df),
            ``variances`` (standard deviations, llf, convergence), ``variance_partition``
            and ``result(name)``, the full fit of one column alone. Each column's numbers
            are those of fitting it alone.

        Examples
        --------
        >>> import numpy as np, pandas as pd, hlmext
        >>> rng = np.random.default_rng(0)
        >>> data = pd.DataFrame({"donor": np.repeat(np.arange(10), 6), "x": np.tile([0.0, 1.0], 30)})
        >>> Y = pd.DataFrame(rng.normal(size=(60, 3)) + rng.normal(size=(10, 3))[data.donor],
        ...                  columns=["g1", "g2", "g3"])
        >>> many = hlmext.mixedlm("~ x + (1 | donor)", data).fit_many(Y)
        >>> many.tidy.shape, list(many.tidy.columns)
        ((6, 7), ['response', 'term', 'estimate', 'se', 't', 'df', 'pvalue'])
        >>> single = many.result("g2")
        >>> bool(np.isclose(single.fe_params["x"], many.tidy.estimate[3]))
        True
        """
        check_keywords(LinearMixed.fit_many, kwargs)
        reml = True if reml is None else bool(reml)
        model = self if getattr(self, "one_sided", False) else self._one_sided()
        design, fit, names, column_of = _many.fit_responses(model, Y, reml)

        def single_fit(j, name):
            formula, column = _many.column_formula(model, name)
            data = model.call.data.assign(**{column: column_of(j, name)})
            options = dict(model.call.options, missing="drop")
            return CONSTRUCTORS["mixedlm"](formula, data, **options).fit(reml=reml)
        return ManyResults(fit, names, design.exog_names, design.level, model.report_names(), reml, single_fit)

    def _one_sided(self):
        """This model built again from its one-sided formula (for ``fit_many``)."""
        call = getattr(self, "call", None)
        if call is None or call.constructor != "mixedlm":
            raise ModelError("fit_many needs a model built by hlmext.mixedlm(formula, data)")
        return CONSTRUCTORS["mixedlm"]("~" + call.formula.split("~", 1)[1], call.data, **call.options)


def _not_with_residuals(what, instead):
    return ModelError("%s is not available for models with a residual structure or precision weights yet; %s"
                      % (what, instead))


class ResidualMixedResults(MixedResults):
    """``MixedResults`` of a model with a residual structure: the tools that refit or simulate the
    model through the statistics of independent errors are refused by name."""

    def profile_ci(self, alpha=0.05, cols=None, criterion=None):
        raise _not_with_residuals("profile_ci()", "use conf_int() (Wald intervals on the log-sd / atanh scale)")

    def simulate(self, n=1, seed=None):
        raise _not_with_residuals("simulate()", "simulate from res.wcorrelation(group, covariance=True)")

    def bootstrap(self, n=1000, seed=None, n_jobs=2, progress=False):
        raise _not_with_residuals("bootstrap()", "use the model-based standard errors")

    def _df_module(self, name):
        raise _not_with_residuals("%s degrees of freedom" % name, "use the large-sample z tests (dfmethod=None)")

    def _check_icc(self):
        raise _not_with_residuals("icc()", "the model-implied correlations are in res.wcorrelation(group)")

    # the diagnostics and standard errors of predictions below are those of independent errors
    def get_prediction(self, exog=None, which="conditional", new_groups="error", offset=None):
        if which != "marginal":
            raise _not_with_residuals("get_prediction(which=%r)" % (which,),
                                      "which='marginal' gives the fixed part with its standard errors")
        pred = super().get_prediction(exog, which=which, new_groups=new_groups, offset=offset)
        pred.se_obs = None                 # a new observation's variance depends on the residual structure
        return pred

    def residuals(self, kind="raw", which="conditional"):
        if kind != "raw":
            raise _not_with_residuals("residuals(kind=%r)" % (kind,), "use kind='raw'")
        return super().residuals(kind=kind, which=which)

    def hatvalues(self):
        raise _not_with_residuals("hatvalues()", "fit without residuals= / var_weights= for leverage")

    def cooks_distance(self):
        raise _not_with_residuals("cooks_distance()", "fit without residuals= / var_weights= for influence")

    def influence(self, groups=None, exact=False):
        raise _not_with_residuals("influence()", "refit without a group by hand to see its influence")

    def coef_table(self, alpha=0.05):
        raise _not_with_residuals("coef_table()", "res.coef() gives the group-level coefficients without "
                                  "standard errors")


class LinearMixedResiduals(ResidualModel, LinearMixed):
    """``LinearMixed`` with a residual covariance structure: built by ``hlmext.mixedlm(...,
    residuals=..., time=..., by=...)`` (see ``hlmext.models.residual_linear``)."""

    results_class = ResidualMixedResults

    def to_lme4(self, reml=True, data="df"):
        """lme4 has no residual structures: the equivalent nlme call, ``lme(..., correlation = ...)``
        (:func:`hlmext.output.nlme_emit.to_nlme`)."""
        return to_nlme(self, reml=reml, data=data)

    def fit_many(self, Y, reml=True, **kwargs):
        """Not available with a residual structure or precision weights (``fit_many`` fits independent errors)."""
        raise _not_with_residuals("fit_many()", "fit each response with fit()")

    def refit(self, endog, reml=True, start=None, **kwargs):
        """Not available with a residual structure (the whitened statistics depend on it)."""
        raise ModelError("refit() (and the parametric bootstrap) is not available for models with a residual "
                         "structure yet; build the model again with the new response")


class _GLMMCode:
    """``to_lme4`` and ``to_stata`` of a generalized model (before or without a fit)."""

    def to_lme4(self, nagq=None, data="df"):
        """The R call of this model (lme4's ``glmer`` / ``glmer.nb``, or glmmTMB); see
        :func:`hlmext.output.emit_glmm.glmm_to_lme4` (``nagq``: default that of ``fit()``)."""
        return glmm_to_lme4(self, nagq=nagq, data=data)

    def to_stata(self, nagq=None):
        """The Stata command of this model; see :func:`hlmext.output.emit_glmm.glmm_to_stata`."""
        return glmm_to_stata(self, nagq=nagq)


class MixedLogit(_GLMMCode, _families.MixedLogit):
    __doc__ = _families.MixedLogit.__doc__
    results_class, wrapper_class = GLMMResults, GLMMResultsWrapper


class MixedPoisson(_GLMMCode, _families.MixedPoisson):
    __doc__ = _families.MixedPoisson.__doc__
    results_class, wrapper_class = GLMMResults, GLMMResultsWrapper


class MixedFamily(_GLMMCode, _mixed_family.MixedFamily):
    __doc__ = _mixed_family.MixedFamily.__doc__
    results_class, wrapper_class = GLMMResults, GLMMResultsWrapper


class DistributedGLMMResults(PartitionedResults, GLMMResults):
    """Results of a mixed logit / Poisson fitted on partitions of the data: as ``GLMMResults``
    (``hlmext.results.glmm_distributed`` says what differs); what refits the model to new
    responses needs every row in one process and refuses."""

    def _in_memory_only(self, what):
        raise ModelError("%s refit the model to new responses row by row, which needs all the rows in one process: "
                         "fit the model in memory (hlmext.%s(formula, df) with a pandas DataFrame) for %s"
                         % (what, self.model.constructor, what))

    def profile_ci(self, alpha=0.05, cols=None, criterion=None):
        self._in_memory_only("profile-likelihood intervals")

    def simulate(self, n=1, seed=None):
        self._in_memory_only("simulated responses")

    def bootstrap(self, n=1000, seed=None, n_jobs=2, progress=False):
        self._in_memory_only("bootstrap intervals")

    def refit(self, new_endog):
        self._in_memory_only("refits")

    def _rows_only(self, what):
        raise ModelError("%s needs the fitted rows in one process, which a fit on partitions does not keep: fit the "
                         "model in memory (hlmext.%s(formula, df) with a pandas DataFrame) for %s"
                         % (what, self.model.constructor, what))

    def get_prediction(self, exog=None, which="conditional", new_groups="error", offset=None):
        self._rows_only("get_prediction()")

    def margins(self, data, *args, **kwargs):
        self._rows_only("margins()")

    def residuals(self, kind="raw", which="conditional"):
        self._rows_only("residuals()")

    def influence(self, groups=None, exact=False):
        self._rows_only("influence()")

    def coef_table(self, alpha=0.05):
        self._rows_only("coef_table()")


class DistributedGLM(_glmm_distributed.DistributedGLM):
    __doc__ = _glmm_distributed.DistributedGLM.__doc__
    results_class, wrapper_class = DistributedGLMMResults, GLMMResultsWrapper


class OrdinalResults(_RefitsAndPlots, _ordinal_results.OrdinalResults):
    __doc__ = _ordinal_results.OrdinalResults.__doc__

    @checked
    def summary(self, eform=False, alpha=0.05):
        """Stata-style summary (text with ``print``, HTML in notebooks, ``as_latex()``).

        The cut points follow the fixed effects; ``eform=True`` shows odds ratios (logit)
        of the fixed effects, not of the cut points; a probit has no such ratios.
        """
        if eform and self.link != "logit":
            raise ValueError("eform=True shows odds ratios, which a probit model does not have: its "
                             "coefficients are on the latent normal scale; use eform=False")
        return _ordinal_output.OrdinalSummary(self, eform=eform, alpha=alpha)

    @checked
    def profile_ci(self, alpha=0.05, cols=None, criterion=None):
        """Profile-likelihood intervals of the fit's own likelihood (Laplace or AGHQ), cut points included; see
        ``hlmext.inference.ordinal_profile.OrdinalProfile``. ``criterion`` must be None (no REML here).

        Returns
        -------
        pandas.DataFrame
            ``lower`` and ``upper`` per parameter.
        """
        no_lr_test(self.model, "profile-likelihood intervals")
        return OrdinalProfile(self, criterion).conf_int(alpha, cols)

    def simulate(self, n=1, seed=None):
        """``n`` responses drawn from the fitted model: a DataFrame (nobs x n) of ordered Categoricals of the
        response's categories; see ``hlmext.inference.ordinal_bootstrap``.

        Examples
        --------
        >>> import hlmext
        >>> wine = hlmext.datasets.load("wine")
        >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
        >>> sims = res.simulate(n=3, seed=1)
        >>> sims.shape, list(sims["sim_1"].cat.categories)
        ((72, 3), [1, 2, 3, 4, 5])
        """
        return ordinal_bootstrap.as_categories(self, simulate(self, n=n, seed=seed))

    @checked
    def bootstrap(self, n=1000, seed=None, n_jobs=2, progress=False):
        """Parametric bootstrap: ``n`` simulated responses, each refitted by this fit's method.

        Returns ``hlmext.inference.bootstrap.BootstrapResults`` (percentile intervals, bootstrap se);
        the replicates are the same for every ``n_jobs`` (processes). A simulated response
        with an empty category has no finite cut points: its replicate is NaN and counted
        as not converged.

        Examples
        --------
        >>> import hlmext
        >>> wine = hlmext.datasets.load("wine")
        >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
        >>> boot = res.bootstrap(n=10, seed=1, n_jobs=1)
        >>> boot.replicates.shape
        (10, 7)
        """
        return bootstrap(self, n=n, seed=seed, n_jobs=n_jobs, progress=progress)

    def refit(self, new_endog):
        """The same model and method fitted to a new response (the categories, in the fitted rows' order)."""
        return ordinal_bootstrap.refit(self, new_endog)

    def get_prediction(self, exog=None, which="conditional", new_groups="error", offset=None):
        """Not defined for ordinal models (no single mean per row): ``predict()`` gives every category's probability."""
        raise ModelError("get_prediction() (one mean per row, with its standard error) is not defined for an ordinal "
                         "model, which predicts a probability per category: use predict(data, conditional=...) for "
                         "the category probabilities")

    def margins(self, data, at=None, dydx=None, over=None, population_averaged=False, contrast=None, adjust="holm",
                alpha=0.05):
        """Not available for ordinal models yet; ``predict()`` on data at the values of interest."""
        raise ModelError("margins() is not available for ordinal models yet: average predict(data) (the category "
                         "probabilities) over data set at the values of interest")

    def coef_table(self, alpha=0.05):
        """Not available for ordinal models yet; ``ranef(condvar=True)`` and the fixed effects."""
        raise ModelError("coef_table() is not available for ordinal models yet: add ranef(condvar=True) to the fixed "
                         "effects (fe_params)")

    def to_lme4(self, data="df"):
        """The ``ordinal::clmm`` call of this fit (lme4 has no ordinal family); see ``hlmext.output.ordinal``."""
        return _ordinal_output.to_clmm(self, data=data)

    def to_stata(self):
        """The Stata ``meologit`` / ``meoprobit`` command of this fit; see ``hlmext.output.ordinal``."""
        return _ordinal_output.to_stata(self)

    def _repr_html_(self):
        return self.summary()._repr_html_()


class MixedOrdinal(_ordinal.MixedOrdinal):
    __doc__ = _ordinal.MixedOrdinal.__doc__
    results_class, wrapper_class = OrdinalResults, _ordinal_results.OrdinalResultsWrapper

    def to_lme4(self, nagq=7, data="df"):
        """The ``ordinal::clmm`` call of this model; see ``hlmext.output.ordinal.to_clmm``."""
        return _ordinal_output.to_clmm(self, nagq=nagq, data=data)

    def to_stata(self, nagq=7):
        """The Stata ``meologit`` / ``meoprobit`` command of this model; see ``hlmext.output.ordinal``."""
        return _ordinal_output.to_stata(self, nagq=nagq)


class DistributedOrdinalResults(PartitionedResults, OrdinalResults):
    """Results of an ordinal model fitted on partitions of the data: as ``OrdinalResults`` where
    they come from sums over the clusters; what needs the rows in one process refuses, as for
    ``DistributedGLMMResults``."""

    _in_memory_only = DistributedGLMMResults._in_memory_only
    _rows_only = DistributedGLMMResults._rows_only
    profile_ci = DistributedGLMMResults.profile_ci
    simulate = DistributedGLMMResults.simulate
    bootstrap = DistributedGLMMResults.bootstrap
    refit = DistributedGLMMResults.refit
    influence = DistributedGLMMResults.influence
    residuals = DistributedGLMMResults.residuals


class DistributedOrdinal(_ordinal_partitions.DistributedOrdinal):
    __doc__ = _ordinal_partitions.DistributedOrdinal.__doc__
    results_class, wrapper_class = DistributedOrdinalResults, _ordinal_results.OrdinalResultsWrapper
