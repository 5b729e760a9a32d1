"""The public entry points: model constructors by formula, LR tests, per-group OLS."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .design.chunked import is_chunked
from .exceptions import DataError, ModelError
from .inference.lrtest import lrtest  # noqa: F401  (hlmext.lrtest)
from .keywords import check_keywords
from .public import DistributedGLM, DistributedOrdinal, LinearMixed, MixedFamily, MixedLogit, MixedOrdinal, MixedPoisson
from .update import CONSTRUCTORS, remember


def mixedlm(formula, data, cov=None, missing="drop", weights=None, pweights=None, pwscale=None, groups=None,
            re_formula=None, vc_formula=None, residuals=None, time=None, by=None, residual_group=None,
            var_weights=None, freq_weights=None, allow_large_crossed=False, **chunk_options):
    """Linear mixed model from a formula, lme4 or Stata style.

    Parameters
    ----------
    formula : str
        lme4 style ``"y ~ x + (x | g)"`` (``(x || g)`` uncorrelated, ``(1 | a/b)`` nested,
        ``(0 + x | g)`` no intercept) or Stata style ``"y ~ x || g: x"`` (levels written
        outermost first: ``"y ~ x || district: || school: x"``).
    data : pandas.DataFrame, or data read in chunks
        A DataFrame; or, for data larger than memory, a list of DataFrames, a function
        returning a fresh iterator of DataFrames, a Parquet file or directory, or a Dask
        DataFrame: the fit then runs on statistics accumulated chunk by chunk
        (``hlmext.design.chunked``; fitted values and residuals need ``chunked.residuals``).
    cov : str or dict, optional
        Covariance structure of the random effects: ``"unstructured"``,
        ``"independent"``, ``"identity"``, ``"exchangeable"``; one for every level or a
        dict by level name. Defaults: lme4 ``(x | g)`` unstructured, Stata independent
        (identity for an intercept alone).
    missing : {"drop", "raise"}
        Rows with missing or non-finite values in used columns are dropped (and
        counted in ``model.frame.n_dropped``) or raise an error.
    weights : str or array_like, optional
        Frequency weights (Stata ``fweight``): a row with weight w counts as w identical
        rows; ``nobs`` is their sum. A column name or one value per row of ``data``.
    pweights : str, array_like or dict, optional
        Sampling weights (Stata ``[pw=...]`` and ``pweight()``): a column name or array
        of observation weights, or a dict mapping ``"obs"`` and level names (as in the
        summary, e.g. ``"school"``, or ``"school:class"`` for ``(1 | school/class)``) to
        columns or arrays; a level's weights must be constant within its groups. The
        fit maximizes the pseudo-likelihood (ML only) and its standard errors are robust,
        clustered at the outermost level; see ``hlmext.design.sampling_weights``.
    pwscale : {None, "size", "effective", "gk"}
        Rescaling of the observation weights within level-2 clusters (two-level models;
        Stata's ``pwscale()``); default none.
    groups, re_formula, vc_formula : optional
        statsmodels ``MixedLM.from_formula`` style, for a formula without random terms:
        the grouping column (or one label per row), its random effects (default
        ``"~1"`` without ``vc_formula``, as statsmodels; correlated) and variance
        components nested in the groups
        (``{"class": "0 + C(class)"}`` is ``(1 | groups:class)``); see
        ``hlmext.formula.mixedlm_keywords``.
    residuals : str, optional
        Covariance structure of the errors within the clusters of the innermost level
        (Stata's ``residuals()``, nlme's ``correlation=`` and ``weights=varIdent``):
        ``"independent"`` with ``by=`` (a residual sd per group), ``"exchangeable"``,
        ``"ar1"`` (``"ar<p>"``), ``"ma1"`` (``"ma<q>"``), ``"toeplitz"`` (``"toeplitz<k>"``),
        ``"banded"`` (``"banded<k>"``), ``"unstructured"`` or ``"exponential"``
        (``corr = rho^|t - t'|`` in continuous time); see
        ``hlmext.design.residual_structures``. In-memory data, no weights.
    time : str or array_like, optional
        The rows' times: integer occasions for ``ar``, ``ma`` and ``toeplitz``, any
        numbers for ``exponential``, the occasions' labels for ``unstructured`` and ``banded``.
    by : str or array_like, optional
        The groups of ``residuals="independent"``.
    var_weights : str or array_like, optional
        Precision weights (lme4's and MixedModels.jl's ``weights``, statsmodels GLM's
        ``var_weights``): the residual variance of row ``i`` is ``sigma^2 / w_i``. A column
        name or one value per row; with a residual structure, ``Cov(e) = sigma^2 D R D``
        with ``D = diag(w)^(-1/2)``.
    freq_weights : str or array_like, optional
        Another name of ``weights`` (frequency weights), as statsmodels spells it.
    residual_group : str or array_like, optional
        The clusters of the residual structure when they are finer than the innermost
        level of random effects (students within schools with ``(1 | school)``; Stata's
        ``|| student:, noconstant``); they must nest in it. Default: that level's groups.
    allow_large_crossed : bool
        Crossed factors are fitted with one dense block for the groups of every factor but
        the one eliminated group by group; its Cholesky factor and inverse at every
        evaluation cost about ``n^3`` operations for ``n`` columns. Beyond 6,000 columns
        (a fit of more than a few minutes) the model is refused, before the data are
        sorted, with the memory and work it would need; ``True`` builds it anyway.
    **chunk_options
        For chunked data only: ``batch_size`` (Parquet rows per batch), ``categories``
        (levels of categorical columns); see ``hlmext.design.chunked.from_formula``.

    Returns
    -------
    LinearMixed
        Call ``.fit(reml=...)`` on it.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> res = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    >>> round(res.llf, 3)
    -13998.439

    Sampling weights (here a made-up weight of 2 for girls): a pseudo-likelihood fit by ML
    with robust standard errors.

    Counts serially correlated within each mare: AR(1) errors on the counts' occasions.

    >>> ovary = hlmext.datasets.load("ovary")
    >>> ar1 = hlmext.mixedlm("follicles ~ sin2pi + cos2pi + (1 | Mare)", ovary, residuals="ar1", time="occasion")
    >>> round(float(ar1.fit().params["rho[Residual]"]), 3)
    0.607

    >>> survey = df.assign(w=1.0 + (df.sex == "F"))
    >>> pw = hlmext.mixedlm("gcse ~ lrt + (1 | school)", survey, pweights="w").fit()
    >>> round(pw.llf, 3), pw.cov_type
    (-22325.049, "cluster (CR1, 64 clusters of 'school')")
    """
    from .design.chunked import is_chunked
    from .formula.mixedlm_keywords import with_groups
    from .models.many import with_placeholder
    formula, data, one_sided = with_placeholder(formula, data)
    formula, data = with_groups(formula, data, groups, re_formula, vc_formula)
    check_keywords(mixedlm, chunk_options, extra=("batch_size", "categories"))
    if freq_weights is not None:
        if weights is not None:
            raise TypeError("mixedlm(): weights= and freq_weights= are the same (frequency weights); give one")
        weights = freq_weights
    inline = _inline_residuals(formula, dict(residuals=residuals, time=time, by=by, residual_group=residual_group))
    if inline:
        residuals, time = inline.get("residuals"), inline.get("time")
        by, residual_group = inline.get("by"), inline.get("residual_group")
    if residuals is not None or time is not None or by is not None or residual_group is not None \
            or var_weights is not None:
        return _with_residuals(formula, data, cov, missing, weights, pweights, pwscale, residuals, time, by,
                               residual_group, var_weights, chunk_options)
    if is_chunked(data):
        if weights is not None or pweights is not None:
            raise TypeError("weights are not supported for chunked data yet; fit in memory")
        from .design.chunked import from_formula
        design, frame = from_formula(formula, data, cov=cov, missing=missing, eval_env=1, **chunk_options)
        return remember(LinearMixed(design=design, frame=frame, formula=formula),
                        "mixedlm", formula, data, dict(cov=cov, missing=missing, **chunk_options))
    if chunk_options:
        raise TypeError("mixedlm() got keyword argument(s) %s, which apply to chunked data only"
                        % ", ".join(sorted(chunk_options)))
    model = LinearMixed.from_formula(formula, data, cov=cov, missing=missing, eval_env=1, weights=weights,
                                     pweights=pweights, pwscale=pwscale, allow_large_crossed=allow_large_crossed)
    model.one_sided = one_sided                 # a placeholder response: for fit_many only
    return remember(model, "mixedlm", formula, data,
                    dict(cov=cov, missing=missing, weights=weights, pweights=pweights, pwscale=pwscale,
                         allow_large_crossed=allow_large_crossed))


def _inline_residuals(formula, given):
    """Stata's ``residuals()`` option in the formula, merged with the keywords (None without it)."""
    from .formula.grammar import parse
    inline = parse(formula).residuals if isinstance(formula, str) and "||" in formula else None
    if not inline:
        return None
    both = [k for k, v in given.items() if v is not None]
    if both:
        raise TypeError("mixedlm(): the formula's residuals() option and the keyword %s= both give the residual "
                        "structure; use one of them" % both[0])
    return inline


def _with_residuals(formula, data, cov, missing, weights, pweights, pwscale, residuals, time, by, residual_group,
                    var_weights, chunk_options):
    from .design.chunked import is_chunked
    from .public import LinearMixedResiduals
    if residuals is None and var_weights is None:
        raise TypeError("mixedlm(): time= and by= belong to a residual structure; give residuals= too "
                        "(e.g. residuals='ar1', time=...; residuals='independent', by=...)")
    if is_chunked(data) or chunk_options:
        raise TypeError("residuals= and var_weights= need the data in memory (a DataFrame), not in chunks")
    model = LinearMixedResiduals.from_formula(formula, data, residuals=residuals, time=time, by=by,
                                              residual_group=residual_group, cov=cov, missing=missing, eval_env=2,
                                              weights=weights, pweights=pweights, pwscale=pwscale,
                                              var_weights=var_weights)
    return remember(model, "mixedlm", formula, data, dict(cov=cov, missing=missing, residuals=residuals, time=time,
                                                          by=by, residual_group=residual_group, var_weights=var_weights))


def per_group_ols(formula, data, groups, min_obs=5):
    """Separate OLS regressions per group (Stata ``statsby``), one row per group.

    Parameters
    ----------
    formula : str
        Fixed-effects formula, e.g. ``"gcse ~ lrt"``.
    data : pandas.DataFrame
    groups : str
        Grouping column.
    min_obs : int
        Groups with fewer rows are skipped.

    Returns
    -------
    pandas.DataFrame
        Coefficients (columns named as in the formula) and ``nobs``, indexed by group.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> coefs = hlmext.per_group_ols("gcse ~ lrt", df, "school")
    >>> coefs.shape
    (64, 3)
    """
    from .formula import grammar as fm
    from .formula import frames
    parsed = fm.ParsedFormula(response=formula.split("~")[0].strip(), fixed=formula.split("~", 1)[1],
                              random=(fm.RandomTerm((groups,), "1", "identity"),), syntax="lme4")
    frame = frames.model_frame(parsed, data, missing="drop")
    keys = frame.random[0].groups[:, 0]
    rows, index = [], []
    for key in pd.unique(keys):
        sel = keys == key
        if sel.sum() < max(min_obs, frame.exog.shape[1]):
            continue
        coef = np.linalg.lstsq(frame.exog[sel], frame.endog[sel], rcond=None)[0]
        rows.append(np.append(coef, sel.sum()))
        index.append(key)
    out = pd.DataFrame(rows, index=pd.Index(index, name=groups), columns=frame.exog_names + ["nobs"])
    out["nobs"] = out["nobs"].astype(int)
    return out.sort_index()


def melogit(formula, data, trials=None, offset=None, cov=None, missing="drop", pweights=None, pwscale=None,
            **kwargs):
    """Mixed-effects logistic regression from a formula (Stata ``melogit``, lme4 ``glmer``).

    Parameters
    ----------
    formula : str
        As for ``mixedlm``: ``"y ~ x + (1 | g)"``, ``"y ~ x + (x | g)"``, ``"y ~ x || g:"``,
        nested ``"(1 | a/b)"``, crossed ``"(1 | a) + (1 | b)"``. The response is 0/1, or the
        number of successes with ``trials``.
    data : pandas.DataFrame, or data read in chunks
        A DataFrame; or a list of DataFrames, a function returning a fresh iterator of
        DataFrames, a Parquet file or directory, or a Dask DataFrame: the rows are then
        shuffled once so that every top-level cluster is in one partition, and the fit runs
        on the partitions (``hlmext.models.glmm_distributed``; nested levels written as
        ``(1 | a/b)``, no crossed factors; ``trials``/``offset`` as column names).
    trials : str or array_like, optional
        Column (or array over the rows of ``data``) with the number of binomial trials.
    offset : str or array_like, optional
        Offset added to the linear predictor.
    cov : str or dict, optional
        Covariance structure of the random effects (see ``mixedlm``).
    missing : {"drop", "raise"}
        Rows with missing values in used columns (trials and offset included).
    pweights, pwscale : optional
        Sampling weights and their rescaling, as for ``mixedlm`` (nested levels, not
        crossed): the fit maximizes the pseudo-likelihood and its standard errors are
        robust, clustered at the outermost level.
    **kwargs
        For chunked data only: ``npartitions``, ``client`` (a ``distributed.Client``; default
        the current one, else this process), ``progress`` (a line per evaluation),
        ``batch_size``, ``categories`` (as for ``mixedlm``), ``tmpdir`` (where chunks are
        partitioned). Others raise ``TypeError`` naming the one meant (``nAGQ`` belongs to
        ``fit(nagq=...)``).

    Returns
    -------
    MixedLogit
        Call ``.fit(nagq=7)`` (adaptive Gauss-Hermite, 7 points per random effect) or
        ``.fit(nagq=1)`` (Laplace; the default with nested or crossed levels, and the only method
        with crossed ones), or ``.fit(nagq=0)`` (lme4's fast estimator).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("cbpp")
    >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=7)
    >>> round(res.llf, 3), round(float(res.params["sd(Intercept)[herd]"]), 4)
    (-91.983, 0.6475)
    """
    if is_chunked(data):
        return _distributed(MixedLogit, "melogit", formula, data, dict(trials=trials, offset=offset), cov, missing,
                            pweights, kwargs)
    check_keywords(melogit, kwargs)
    model = MixedLogit.from_formula(formula, data, trials=trials, offset=offset, cov=cov, missing=missing,
                                    pweights=pweights, pwscale=pwscale,
                                    eval_env=1)
    return remember(model, "melogit", formula, data, dict(trials=trials, offset=offset, cov=cov, missing=missing,
                                                          pweights=pweights, pwscale=pwscale))


def mepoisson(formula, data, offset=None, exposure=None, cov=None, missing="drop", pweights=None, pwscale=None,
              **kwargs):
    """Mixed-effects Poisson regression from a formula (Stata ``mepoisson``, lme4 ``glmer``).

    Parameters
    ----------
    formula : str
        As for ``mixedlm``; the response is a count.
    data : pandas.DataFrame, or data read in chunks
        As for ``melogit`` (``offset``/``exposure`` as column names for chunked data).
    offset : str or array_like, optional
        Offset added to the linear predictor (log scale).
    exposure : str or array_like, optional
        Exposure; enters as ``log(exposure)`` in the offset and must be positive.
    cov : str or dict, optional
    missing : {"drop", "raise"}
    pweights, pwscale : optional
        Sampling weights, as for ``melogit``.
    **kwargs
        For chunked data, as for ``melogit``.

    Returns
    -------
    MixedPoisson
        Call ``.fit(nagq=7)`` or ``.fit(nagq=1)`` (Laplace; the default with nested or crossed levels).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("grouseticks")
    >>> res = hlmext.mepoisson("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", df).fit(nagq=15)
    >>> round(res.llf, 3)
    -988.955
    """
    if is_chunked(data):
        return _distributed(MixedPoisson, "mepoisson", formula, data, dict(offset=offset, exposure=exposure), cov,
                            missing, pweights, kwargs)
    check_keywords(mepoisson, kwargs)
    model = MixedPoisson.from_formula(formula, data, offset=offset, exposure=exposure, cov=cov, missing=missing,
                                      pweights=pweights, pwscale=pwscale,
                                      eval_env=1)
    return remember(model, "mepoisson", formula, data, dict(offset=offset, exposure=exposure, cov=cov,
                                                            missing=missing, pweights=pweights, pwscale=pwscale))


def meglm(formula, data, family=None, trials=None, offset=None, exposure=None, cov=None, missing="drop",
          pweights=None, pwscale=None, **kwargs):
    """Generalized linear mixed model of any family and link (Stata ``meglm``, lme4 ``glmer``, glmmTMB).

    Parameters
    ----------
    formula : str
        As for ``mixedlm``.
    data : pandas.DataFrame, or data read in chunks
        As for ``melogit`` (``trials``/``offset``/``exposure`` as column names for chunked
        data; a dispersion is then profiled over the partitions' sums).
    family : statsmodels family instance
        ``sm.families.Binomial`` (links Logit, Probit, CLogLog, Cauchy, Log), ``Poisson``
        (Log, Identity, Sqrt), ``Gamma`` (Log, InversePower, Identity), ``Gaussian``
        (Identity, Log, InversePower), ``InverseGaussian`` (InverseSquared, Log, InversePower,
        Identity); e.g. ``sm.families.Gamma(link=sm.families.links.Log())``. The dispersion
        of Gamma, Gaussian and inverse Gaussian models is estimated by maximum likelihood
        (``res.dispersion``). Negative binomial models: ``menbreg``.
    trials : str or array_like, optional
        Binomial trials (binomial family only).
    offset, exposure : str or array_like, optional
        Offset added to the linear predictor; exposure, entered as its log.
    cov, missing, pweights, pwscale
        As for ``melogit``.
    **kwargs
        For chunked data, as for ``melogit``.

    Returns
    -------
    MixedFamily
        Call ``.fit(nagq=7)`` (adaptive Gauss-Hermite) or ``.fit(nagq=1)`` (Laplace).

    Examples
    --------
    >>> import hlmext, statsmodels.api as sm
    >>> df = hlmext.datasets.load("cbpp")
    >>> cloglog = sm.families.Binomial(link=sm.families.links.CLogLog())
    >>> res = hlmext.meglm("incidence ~ C(period) + (1 | herd)", df, family=cloglog, trials="size").fit(nagq=7)
    >>> round(res.llf, 3)
    -91.745
    """
    return _family_model("meglm", formula, data, family, dict(trials=trials, offset=offset, exposure=exposure,
                                                              cov=cov, missing=missing, pweights=pweights,
                                                              pwscale=pwscale), kwargs)


def meprobit(formula, data, trials=None, offset=None, cov=None, missing="drop", pweights=None, pwscale=None,
             **kwargs):
    """Mixed-effects probit regression (Stata ``meprobit``; ``glmer(family=binomial("probit"))``).

    Parameters as for ``melogit`` (chunked data included); the model is ``meglm`` with the
    binomial family and the probit link. ``icc()`` is on the latent scale with residual variance 1.

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("cbpp")
    >>> res = hlmext.meprobit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=7)
    >>> round(res.llf, 3), round(float(res.params["sd(Intercept)[herd]"]), 4)
    (-92.567, 0.3396)
    """
    return _family_model("meprobit", formula, data, _binomial("Probit"),
                         dict(trials=trials, offset=offset, cov=cov, missing=missing, pweights=pweights,
                              pwscale=pwscale), kwargs)


def mecloglog(formula, data, trials=None, offset=None, cov=None, missing="drop", pweights=None, pwscale=None,
              **kwargs):
    """Mixed-effects complementary log-log regression (Stata ``mecloglog``).

    Parameters as for ``melogit`` (chunked data included); the model is ``meglm`` with the
    binomial family and the cloglog link (``summary(eform=True)`` shows hazard ratios, exp(b)).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("cbpp")
    >>> res = hlmext.mecloglog("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=7)
    >>> round(res.llf, 3)
    -91.745
    """
    return _family_model("mecloglog", formula, data, _binomial("CLogLog"),
                         dict(trials=trials, offset=offset, cov=cov, missing=missing, pweights=pweights,
                              pwscale=pwscale), kwargs)


def menbreg(formula, data, dispersion="mean", offset=None, exposure=None, cov=None, missing="drop", pweights=None,
            pwscale=None, **kwargs):
    """Mixed-effects negative binomial regression (Stata ``menbreg``, glmmTMB ``nbinom2``/``nbinom1``).

    Parameters
    ----------
    formula : str
        As for ``mixedlm``; the response is a count.
    data : pandas.DataFrame, or data read in chunks
        As for ``mepoisson``.
    dispersion : {"mean", "constant"}
        ``"mean"``: Var(y | b) = mu (1 + alpha mu) (NB2; glmmTMB ``nbinom2``, lme4
        ``glmer.nb``); ``"constant"``: Var(y | b) = mu (1 + delta) (NB1; glmmTMB ``nbinom1``).
        alpha or delta is estimated by maximum likelihood and reported as Stata does
        (``res.dispersion``: ``/lnalpha`` and ``alpha``), with the LR test of alpha = 0
        against the Poisson model (``res.dispersion_lr``, chibar2(01)).
    offset, exposure : str or array_like, optional
    cov, missing, pweights, pwscale
        As for ``mepoisson``.
    **kwargs
        For chunked data, as for ``melogit``.

    Returns
    -------
    MixedFamily

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("grouseticks")
    >>> res = hlmext.menbreg("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", df).fit(nagq=1)
    >>> round(res.llf, 3), round(float(res.dispersion.loc["alpha", "estimate"]), 4)
    (-890.203, 0.3024)
    """
    if dispersion not in ("mean", "constant"):
        raise ValueError("dispersion must be 'mean' (NB2: Var = mu (1 + alpha mu)) or 'constant' (NB1: "
                         "Var = mu (1 + delta)), not %r" % (dispersion,))
    model = _family_model("menbreg", formula, data, "nb2" if dispersion == "mean" else "nb1",
                          dict(offset=offset, exposure=exposure, cov=cov, missing=missing, pweights=pweights,
                               pwscale=pwscale), kwargs)
    model.call.options["dispersion"] = dispersion
    return model


def _binomial(link):
    from statsmodels.genmod import families
    return families.Binomial(link=getattr(families.links, link)())


def _family_model(name, formula, data, family, options, kwargs):
    extra = {} if name in ("meprobit", "mecloglog", "menbreg") else {"family": family}
    if is_chunked(data):
        roles = {k: options.pop(k) for k in ("trials", "offset", "exposure") if k in options}
        options.pop("pwscale", None)
        model = _distributed(MixedFamily, name, formula, data, roles, options["cov"], options["missing"],
                             options.get("pweights"), kwargs, {"family": family}, skip=3)
        model.call.options.update(extra)
        return model
    check_keywords(globals()[name], kwargs)
    model = MixedFamily.from_formula(formula, data, family=family, eval_env=2, **options)
    return remember(model, name, formula, data, {**extra, **options})


DISTRIBUTED_OPTIONS = ("npartitions", "client", "progress", "batch_size", "categories", "tmpdir")


def _distributed(family, name, formula, data, extra, cov, missing, pweights, options, family_options=None, skip=2):
    """A generalized model on partitions of chunked, Parquet or Dask data (``hlmext.models.glmm_distributed``)."""
    check_keywords(globals()[name], options, extra=DISTRIBUTED_OPTIONS)
    if pweights is not None:
        raise TypeError("pweights are not supported for chunked data yet; fit in memory")
    from .models.glmm_distributed import from_formula
    model = from_formula(DistributedGLM, family, formula, data, extra, cov=cov, missing=missing, eval_env=skip,
                         options=family_options, **options)
    model.constructor = name
    return remember(model, name, formula, data, dict(extra, cov=cov, missing=missing, **options))


def _distributed_ordinal(name, formula, data, link, cov, missing, options):
    """An ordinal model on partitions of chunked, Parquet or Dask data (``hlmext.models.ordinal_partitions``)."""
    from .models.ordinal_partitions import from_formula
    model = from_formula(DistributedOrdinal, formula, data, link=link, cov=cov, missing=missing, eval_env=2,
                         **options)
    model.constructor = name
    return remember(model, name, formula, data, dict(cov=cov, missing=missing, **options))


def _no_sampling_weights(name, pweights, pwscale):
    if pweights is not None or pwscale is not None:
        raise ModelError("%s on chunked, Parquet or Dask data takes no sampling weights (pweights=, pwscale=): "
                         "fit the data in memory for sampling weights; fit(cov_type='cluster') gives standard "
                         "errors robust to the clustering" % name)


def meologit(formula, data, cov=None, missing="drop", pweights=None, pwscale=None, **kwargs):
    """Mixed-effects ordered logistic regression from a formula (Stata ``meologit``, R ``ordinal::clmm``).

    ``P(y <= k | b) = F(cut_k - x'beta - z'b)`` with F the logistic CDF: Stata's and clmm's
    signs. The fixed part has no intercept (the formula's is dropped; the cut points
    ``/cut1``, ... take its place).

    Parameters
    ----------
    formula : str
        As for ``mixedlm``, with one level of random effects: ``"y ~ x + (1 | g)"``,
        ``"y ~ x + (x | g)"``, ``"y ~ x || g:"``, or nested levels: ``"y ~ x + (1 | school/class)"``,
        ``"y ~ x || school: || class:"`` (not crossed factors). The response must be a column of
        ``data``: an ordered pandas Categorical (its order of categories; every category
        must occur), or numbers or strings, whose categories are then their sorted
        distinct values (strings sort alphabetically: use an ordered Categorical when
        that is not their order).
    data : pandas.DataFrame, or data read in chunks
        A DataFrame; or chunks, Parquet or a Dask DataFrame, fitted on partitions as for
        ``melogit`` (``hlmext.models.ordinal_partitions``: the categories come from all
        the chunks).
    cov : str or dict, optional
        Covariance structure of the random effects (see ``mixedlm``).
    missing : {"drop", "raise"}
    pweights, pwscale : optional
        Sampling weights and their rescaling, as for ``mixedlm`` (``{"obs": ..., "<level>":
        ...}``): the fit maximizes the pseudo-likelihood and its standard errors are
        robust, clustered at the level of the random effects.
    **kwargs
        For chunked data, as for ``melogit`` (``npartitions``, ``client``, ``progress``,
        ...); otherwise none: an unknown keyword raises ``TypeError``.

    Returns
    -------
    MixedOrdinal (DistributedOrdinal for chunked data)
        Call ``.fit(nagq=7)`` (adaptive Gauss-Hermite, the default) or ``.fit(nagq=1)``
        (Laplace).

    Examples
    --------
    >>> import hlmext
    >>> wine = hlmext.datasets.load("wine")
    >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=7)
    >>> round(res.llf, 4), res.params.round(4).tolist()
    (-81.5325, [3.0619, 1.8334, -1.6235, 1.5128, 4.2271, 6.0862, 1.1348])
    """
    check_keywords(meologit, kwargs, aliases={"link": ("hlmext.meoprobit fits the probit link",)},
                   extra=DISTRIBUTED_OPTIONS if is_chunked(data) else ())
    if is_chunked(data):
        _no_sampling_weights("meologit", pweights, pwscale)
        return _distributed_ordinal("meologit", formula, data, "logit", cov, missing, kwargs)
    model = MixedOrdinal.from_formula(formula, data, link="logit", cov=cov, missing=missing, pweights=pweights,
                                      pwscale=pwscale, eval_env=1)
    return remember(model, "meologit", formula, data, dict(cov=cov, missing=missing, pweights=pweights,
                                                            pwscale=pwscale))


def meoprobit(formula, data, cov=None, missing="drop", pweights=None, pwscale=None, **kwargs):
    """Mixed-effects ordered probit regression from a formula (Stata ``meoprobit``, ``clmm(link = "probit")``).

    As ``meologit`` with F the standard normal CDF.

    Examples
    --------
    >>> import hlmext
    >>> wine = hlmext.datasets.load("wine")
    >>> res = hlmext.meoprobit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
    >>> round(res.llf, 4)
    -80.9306
    """
    check_keywords(meoprobit, kwargs, aliases={"link": ("hlmext.meologit fits the logit link",)},
                   extra=DISTRIBUTED_OPTIONS if is_chunked(data) else ())
    if is_chunked(data):
        _no_sampling_weights("meoprobit", pweights, pwscale)
        return _distributed_ordinal("meoprobit", formula, data, "probit", cov, missing, kwargs)
    model = MixedOrdinal.from_formula(formula, data, link="probit", cov=cov, missing=missing, pweights=pweights,
                                      pwscale=pwscale, eval_env=1)
    return remember(model, "meoprobit", formula, data, dict(cov=cov, missing=missing, pweights=pweights,
                                                             pwscale=pwscale))


# update() rebuilds a model with the function that built it
CONSTRUCTORS.update(mixedlm=mixedlm, melogit=melogit, mepoisson=mepoisson, meglm=meglm, meprobit=meprobit,
                    mecloglog=mecloglog, menbreg=menbreg, meologit=meologit, meoprobit=meoprobit)
