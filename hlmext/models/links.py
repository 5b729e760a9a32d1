"""The families and links of ``hlmext.meglm``: statsmodels' family and link objects as the
kernel's codes (``_kernels/helpers.pxd``, ``row_loglik``), what each family's response
must be, its data constant and its dispersion parameter.

=====================  ==========================================  =========================
family                 links                                       dispersion (estimated by ML)
=====================  ==========================================  =========================
Binomial               logit, probit, cloglog, cauchit, log        none
Poisson                log, identity, sqrt                         none
Gamma                  log, inverse, identity                      shape k (Var = mu^2 / k)
Gaussian               identity, log, inverse                      sd sigma
InverseGaussian        1/mu^2, log, inverse, identity              lambda (Var = mu^3 / lambda)
NegativeBinomial NB2   log                                         alpha (Var = mu (1 + alpha mu))
NegativeBinomial NB1   log                                         delta (Var = mu (1 + delta))
=====================  ==========================================  =========================

Each dispersion parameter is reported on the scale Stata's ``meglm`` and ``menbreg`` print
it: ``/lnalpha`` and ``alpha`` (NB2), ``/lndelta`` and ``delta`` (NB1), ``/lnshape`` and
``shape`` (Gamma), ``/lnsigma`` and ``sigma`` (Gaussian), ``/lnlambda`` and ``lambda``
(inverse Gaussian).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln
from statsmodels.genmod import families
from statsmodels.genmod.families import links as sm_links

from ..exceptions import DataError

BINOMIAL, POISSON, GAMMA, GAUSSIAN, NB2, NB1, INVGAUSS = range(7)
LOGIT, LOG, PROBIT, CLOGLOG, CAUCHIT, IDENTITY, INVERSE, SQRT, INVERSE_SQUARED = range(9)

LINK_NAMES = {LOGIT: "logit", LOG: "log", PROBIT: "probit", CLOGLOG: "cloglog", CAUCHIT: "cauchit",
              IDENTITY: "identity", INVERSE: "inverse", SQRT: "sqrt", INVERSE_SQUARED: "1/mu^2"}
FAMILY_NAMES = {BINOMIAL: "Binomial", POISSON: "Poisson", GAMMA: "Gamma", GAUSSIAN: "Gaussian",
                NB2: "NegativeBinomial", NB1: "NegativeBinomial", INVGAUSS: "InverseGaussian"}
#: the links each family takes, its own first
FAMILY_LINKS = {BINOMIAL: (LOGIT, PROBIT, CLOGLOG, CAUCHIT, LOG), POISSON: (LOG, IDENTITY, SQRT),
                GAMMA: (LOG, INVERSE, IDENTITY), GAUSSIAN: (IDENTITY, LOG, INVERSE),
                INVGAUSS: (INVERSE_SQUARED, LOG, INVERSE, IDENTITY), NB2: (LOG,), NB1: (LOG,)}
#: name of the dispersion parameter as reported (its log is what the fit estimates)
DISPERSION = {GAMMA: "shape", GAUSSIAN: "sigma", NB2: "alpha", NB1: "delta", INVGAUSS: "lambda"}
#: the latent residual variance of a binary model's threshold form (for the ICC)
LATENT_VARIANCE = {LOGIT: np.pi ** 2 / 3, PROBIT: 1.0, CLOGLOG: np.pi ** 2 / 6}

_LINK_CLASSES = ((sm_links.LogLog, -1), (sm_links.CLogLog, CLOGLOG), (sm_links.Probit, PROBIT),
                 (sm_links.Cauchy, CAUCHIT), (sm_links.Logit, LOGIT), (sm_links.Log, LOG),
                 (sm_links.Identity, IDENTITY), (sm_links.InverseSquared, INVERSE_SQUARED),
                 (sm_links.InversePower, INVERSE), (sm_links.Sqrt, SQRT))
_POWERS = {1.0: IDENTITY, -1.0: INVERSE, 0.5: SQRT, -2.0: INVERSE_SQUARED}
_FAMILY_CLASSES = ((families.Binomial, BINOMIAL), (families.Poisson, POISSON), (families.Gamma, GAMMA),
                   (families.Gaussian, GAUSSIAN), (families.InverseGaussian, INVGAUSS))


@dataclass(frozen=True)
class FamilySpec:
    """One family and link of the generalized mixed model (picklable; ``resolve`` builds it)."""

    family: int
    link: int

    @property
    def name(self):
        return {NB2: "negative binomial (mean dispersion)",
                NB1: "negative binomial (constant dispersion)"}.get(self.family, FAMILY_NAMES[self.family])

    @property
    def link_name(self):
        return LINK_NAMES[self.link]

    @property
    def dispersion(self):
        """Name of the dispersion parameter, or None."""
        return DISPERSION.get(self.family)

    @property
    def latent_variance(self):
        """Residual variance of the latent response (binary logit, probit, cloglog), or None."""
        return LATENT_VARIANCE.get(self.link) if self.family == BINOMIAL else None

    def sm_family(self, dispersion=1.0):
        """The statsmodels family (for the mean function and GLM comparisons)."""
        link = _sm_link(self.link)
        if self.family in (NB2, NB1):
            return families.NegativeBinomial(link=link, alpha=dispersion if self.family == NB2 else 1.0)
        cls = dict((code, c) for c, code in _FAMILY_CLASSES)[self.family]
        return cls(link=link)

    def row_constant(self, y, ntr):
        """The part of every row's log-density that depends on the data only (the kernel adds the rest)."""
        if self.family == BINOMIAL:
            return gammaln(ntr + 1) - gammaln(y + 1) - gammaln(ntr - y + 1)
        if self.family in (POISSON, NB2, NB1):
            return -gammaln(y + 1)
        if self.family == GAMMA:
            return -np.log(y)
        if self.family == GAUSSIAN:
            return np.full(y.shape, -0.5 * np.log(2 * np.pi))
        return -0.5 * np.log(2 * np.pi * y ** 3)

    def check_response(self, y, ntr, name, trials_name, has_trials):
        """Raise DataError for a response outside the family's support."""
        if not np.all(np.isfinite(y)):
            raise DataError("response %r contains NaN or inf; drop those rows" % name)
        if self.family == BINOMIAL:
            return check_binomial(y, ntr, name, trials_name, has_trials, self.link_name)
        if self.family in (POISSON, NB2, NB1):
            bad = (y < 0) | (np.abs(y - np.round(y)) > 1e-8)
            if bad.any():
                raise DataError("response %r must be a non-negative whole-number count for a %s model; %d rows "
                                "are not (e.g. %g)" % (name, self.name, bad.sum(), y[bad][0]))
        elif self.family in (GAMMA, INVGAUSS):
            bad = y <= 0
            if bad.any():
                raise DataError("response %r must be positive for a %s model; %d rows are <= 0 (e.g. %g): drop "
                                "them or model a shifted or different response" % (name, self.name, bad.sum(),
                                                                                   y[bad][0]))
        if has_trials:
            raise DataError("trials apply to the binomial family only, not to %s" % self.name)


def resolve(family, dispersion=None):
    """The ``FamilySpec`` of a statsmodels family instance (``meglm``), or of ``"nb2"``/``"nb1"``.

    Raises ValueError naming what is supported when the family or its link is not.
    """
    if family in ("nb2", "nb1"):
        return FamilySpec(NB2 if family == "nb2" else NB1, LOG)
    if isinstance(family, type) and issubclass(family, families.Family):
        raise TypeError("family must be a statsmodels family instance, e.g. sm.families.%s(), not the class"
                        % family.__name__)
    if isinstance(family, families.NegativeBinomial):
        raise ValueError("the negative binomial has its own function: hlmext.menbreg(formula, data, "
                         "dispersion='mean' (NB2) or 'constant' (NB1)), which estimates its dispersion")
    code = next((c for cls, c in _FAMILY_CLASSES if isinstance(family, cls)), None)
    if code is None:
        raise ValueError("family %r is not supported; pass one of statsmodels' families: %s"
                         % (family, supported()))
    link = _link_code(family.link)
    if link not in FAMILY_LINKS[code]:
        raise ValueError("the %s family does not take the %s link; its links are %s"
                         % (FAMILY_NAMES[code], type(family.link).__name__,
                            ", ".join(LINK_NAMES[k] for k in FAMILY_LINKS[code])))
    return FamilySpec(code, link)


def supported():
    """The families and links ``meglm`` takes, as text."""
    return "; ".join("%s (%s)" % (FAMILY_NAMES[c], ", ".join(LINK_NAMES[k] for k in FAMILY_LINKS[c]))
                     for _, c in _FAMILY_CLASSES)


def _link_code(link):
    for cls, code in _LINK_CLASSES:             # subclasses first (CLogLog and Probit are Logits)
        if isinstance(link, cls):
            return code
    power = getattr(link, "power", None)
    if type(link) is sm_links.Power and float(power) in _POWERS:
        return _POWERS[float(power)]
    return -1


def _sm_link(code):
    return {LOGIT: sm_links.Logit, PROBIT: sm_links.Probit, CLOGLOG: sm_links.CLogLog, CAUCHIT: sm_links.Cauchy,
            LOG: sm_links.Log, IDENTITY: sm_links.Identity, INVERSE: sm_links.InversePower,
            SQRT: sm_links.Sqrt, INVERSE_SQUARED: sm_links.InverseSquared}[code]()


def check_binomial(y, ntr, name, trials_name, has_trials, link):
    """A binomial response (0/1 without trials; whole successes out of whole positive trials), or a ``DataError``."""
    if not has_trials:
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise DataError("response %r must be 0 or 1 for a binomial (%s) model without trials; %d rows have "
                            "other values (e.g. %g); for binomial counts pass trials=<column of the number of "
                            "trials>" % (name, link, bad.sum(), y[bad][0]))
        return
    for arr, what in ((ntr, "trials %r" % trials_name), (y, "response %r" % name)):
        frac = np.abs(arr - np.round(arr)) > 1e-8
        if frac.any():
            raise DataError("%s must hold whole numbers; %d rows do not (e.g. %g)" % (what, frac.sum(), arr[frac][0]))
    if np.any(ntr < 1):
        raise DataError("trials %r must be positive; %d rows have trials < 1: drop them"
                        % (trials_name, np.sum(ntr < 1)))
    if np.any(y < 0):
        raise DataError("response %r (successes) must not be negative; %d rows are" % (name, np.sum(y < 0)))
    over = y > ntr
    if over.any():
        raise DataError("response %r (successes) exceeds trials %r in %d rows (e.g. %g > %g); the response must "
                        "count successes out of the trials" % (name, trials_name, over.sum(), y[over][0],
                                                               ntr[over][0]))
