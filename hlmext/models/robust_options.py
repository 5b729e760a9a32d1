"""The ``cov_type`` and ``cov_kwds`` options of ``fit()``: which covariance a fit reports.

The robust (sandwich) covariance itself is computed by the results (``hlmext.results.sandwich``).
"""
from ..exceptions import ModelError


def cov_options(sampling, cov_type, cov_kwds, reml):
    """Validate ``fit(cov_type=, cov_kwds=)``: (correction or None for model-based, scope).

    Sampling weights make ``"cluster"`` the default and the only choice (Stata: pweights
    imply ``vce(robust)``), with scope ``"all"``; REML fits allow scope ``"fixed"`` only.
    """
    if sampling is not None and cov_type not in (None, "cluster"):
        raise ModelError("with sampling weights the standard errors are robust (cov_type='cluster'); "
                         "model-based standard errors of a pseudo-likelihood are not valid")
    cov_type = ("cluster" if sampling is not None else "nonrobust") if cov_type is None else cov_type
    if cov_type not in ("nonrobust", "cluster"):
        raise ValueError("cov_type must be 'nonrobust' or 'cluster', not %r" % (cov_type,))
    kwds = dict(cov_kwds or {})
    unknown = set(kwds) - {"correction", "scope"}
    if unknown:
        raise ValueError("cov_kwds takes 'correction' and 'scope', not %s" % ", ".join(sorted(map(repr, unknown))))
    correction = kwds.get("correction", "CR1")
    if correction not in ("CR0", "CR1"):
        raise ValueError("cov_kwds['correction'] must be 'CR0' or 'CR1', not %r" % (correction,))
    scope = kwds.get("scope", "fixed" if reml else "all")
    if scope not in ("all", "fixed") or (reml and scope == "all"):
        raise ValueError("cov_kwds['scope'] must be 'all' or 'fixed' ('fixed' for REML fits: the REML "
                         "criterion is not a sum over clusters), not %r" % (scope,))
    if sampling is not None and scope != "all":
        raise ModelError("with sampling weights the robust covariance covers all parameters (scope 'all')")
    return (None if cov_type == "nonrobust" else correction), scope
