"""The likelihood-ratio test of a model against a bigger one that nests it (``hlmext.lrtest``)."""
from __future__ import annotations

from ..design.sampling_weights import no_lr_test
from ..exceptions import ModelError
from ..keywords import checked
from ..models.information import LRTest, boundary_lr_test
from .lr_checks import check_nested


@checked
def lrtest(small, big) -> LRTest:
    """Likelihood-ratio test of a model against a bigger one that nests it.

    Both must be fitted to the same rows. REML fits are comparable only when their
    fixed effects are the same; otherwise refit with ``reml=False``. When the models
    differ in variance parameters, the chi2 reference is conservative (the null is on
    the boundary), and one variance component uses ``chibar2(01)``.

    Comparisons that are not LR tests (different responses or rows, fixed or random
    parts that do not nest) raise ``ModelError`` naming the reason (``hlmext.inference.lr_checks``).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> rs = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    >>> print(round(hlmext.lrtest(ri, rs).statistic, 2))
    40.3
    """
    if small.k_params > big.k_params:           # either order: the model with fewer parameters is the null
        small, big = big, small
    for res in (small, big):
        no_lr_test(res.model)
    if small.nobs != big.nobs:
        raise ModelError("the models were fitted to different numbers of observations (%d and %d); "
                         "an LR test needs the same rows" % (small.nobs, big.nobs))
    if small.reml != big.reml:
        raise ModelError("one model is fitted by REML and the other by ML; refit both with reml=False")
    fe_small, fe_big = list(small.model.exog_names), list(big.model.exog_names)
    df = int(big.k_params - small.k_params)
    if df <= 0:
        raise ModelError("the second model must have more parameters than the first (%d vs %d)"
                         % (big.k_params, small.k_params))
    check_nested(small, big)
    versus = "the smaller model"
    if _random_part_size(big) == _random_part_size(small):   # residual structures only: interior nulls
        from scipy import stats
        stat = 2 * (big.llf - small.llf)
        return LRTest(stat, df, float(stats.chi2.sf(max(stat, 0), df)), "chi2(%d)" % df, False, versus)
    if big.model.k_re > small.model.k_re and fe_small == fe_big:
        return boundary_lr_test(big.llf, small.llf, df, versus)
    from scipy import stats
    stat = 2 * (big.llf - small.llf)
    conservative = big.model.k_re > small.model.k_re
    return LRTest(stat, df, float(stats.chi2.sf(max(stat, 0), df)), "chi2(%d)" % df, conservative, versus)


def _random_part_size(res):
    """Parameters of the random effects (without those of a residual structure)."""
    return getattr(res.model, "k_theta", res.model.k_re)
