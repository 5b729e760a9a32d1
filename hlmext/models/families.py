"""The families of the generalized mixed model: mixed logit and mixed Poisson regression."""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln
from statsmodels.genmod import families

from .._kernels import glmm as _glmm
from ..exceptions import DataError
from ..keywords import check_keywords
from .glmm import MixedGLM
from .design_input import caller_env
from .links import check_binomial


class MixedLogit(MixedGLM):
    """Mixed-effects logistic regression (Stata ``melogit``, lme4 ``glmer(family=binomial)``).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("cbpp")
    >>> res = hlmext.melogit("incidence ~ C(period) + (1 | herd)", df, trials="size").fit(nagq=1)
    >>> round(res.llf, 3)
    -92.026
    """

    _family_code = _glmm.BINOMIAL
    _sm_family = families.Binomial
    model_label = "Mixed-effects logistic regression"
    eform_label = "Odds Ratio"
    versus = "logistic regression"
    latent_variance = np.pi ** 2 / 3

    @classmethod
    def from_formula(cls, formula, data, trials=None, offset=None, cov=None, missing="drop", eval_env=0, **kwargs):
        """Build the model from a formula; see ``hlmext.melogit``."""
        check_keywords(MixedLogit.from_formula, kwargs, extra=("pweights", "pwscale"))
        return cls._from_formula(formula, data, {"trials": trials, "offset": offset}, cov=cov, missing=missing,
                                 eval_env=caller_env(eval_env), **kwargs)

    @staticmethod
    def _row_constant(y, ntr):
        return gammaln(ntr + 1) - gammaln(y + 1) - gammaln(ntr - y + 1)

    def _check_response(self, y, ntr, name, trials_name):
        check_binomial(y, ntr, name, trials_name, self.has_trials, "logit")

class MixedPoisson(MixedGLM):
    """Mixed-effects Poisson regression (Stata ``mepoisson``, lme4 ``glmer(family=poisson)``).

    Examples
    --------
    >>> import hlmext
    >>> df = hlmext.datasets.load("grouseticks")
    >>> res = hlmext.mepoisson("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", df).fit(nagq=1)
    >>> round(res.llf, 3)
    -989.038
    """

    _family_code = _glmm.POISSON
    _sm_family = families.Poisson
    model_label = "Mixed-effects Poisson regression"
    eform_label = "IRR"
    versus = "Poisson regression"

    @classmethod
    def from_formula(cls, formula, data, offset=None, exposure=None, cov=None, missing="drop", eval_env=0,
                     **kwargs):
        """Build the model from a formula; see ``hlmext.mepoisson``."""
        check_keywords(MixedPoisson.from_formula, kwargs, extra=("pweights", "pwscale"))
        return cls._from_formula(formula, data, {"offset": offset, "exposure": exposure}, cov=cov,
                                 missing=missing, eval_env=caller_env(eval_env), **kwargs)

    @staticmethod
    def _row_constant(y, ntr):
        return -gammaln(y + 1)

    def _check_response(self, y, ntr, name, trials_name):
        bad = (y < 0) | (np.abs(y - np.round(y)) > 1e-8)
        if bad.any():
            raise DataError("response %r must be a non-negative whole-number count for a Poisson model; %d rows "
                            "are not (e.g. %g)" % (name, bad.sum(), y[bad][0]))
