"""The results of one model fitted to many responses (``LinearMixed.fit_many``): tables, one row
per response (and term), and any one response's full fit on request."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


class ManyResults:
    """One random-intercept model fitted to every column of ``Y``.

    Attributes
    ----------
    tidy : pandas.DataFrame
        One row per response and fixed effect: ``response``, ``term``, ``estimate``,
        ``se``, ``t``, ``df`` (Satterthwaite), ``pvalue`` (two-sided, t with ``df``).
    variances : pandas.DataFrame
        One row per response: ``nobs`` and ``n_groups`` used, the standard deviations
        (named as in a single fit's ``params``), ``llf`` (the REML criterion's for REML
        fits, as ``MixedResults.llf``), ``converged`` and ``status`` (``"ok"``,
        ``"boundary"``: the group variance is 0; otherwise why the column has no fit).
    variance_partition : pandas.DataFrame
        The fraction of the variance (given the fixed effects) of every component: the
        group's and the residual's, summing to 1 (variancePartition's fractions of the
        random components).
    reml : bool
    names : list
        The responses, in the order of ``Y``'s columns.

    Examples
    --------
    See :meth:`hlmext.LinearMixed.fit_many`.
    """

    def __init__(self, fit, names, exog_names, level, report_names, reml, single_fit):
        self.names = list(names)
        self.reml = bool(reml)
        self.exog_names = list(exog_names)
        self._single_fit = single_fit
        self._position = {name: j for j, name in enumerate(self.names)}
        self._fit = fit
        self._level = level
        self._report_names = list(report_names)

    def __len__(self):
        return len(self.names)

    @property
    def tidy(self) -> pd.DataFrame:
        fit, p = self._fit, len(self.exog_names)
        est = fit["beta"]
        se = np.sqrt(fit["sigma"][:, None] ** 2 * fit["dinv"])
        t = est / se
        df = fit["df"]
        with np.errstate(invalid="ignore"):
            pvalue = 2.0 * stats.t.sf(np.abs(t), df)
        return pd.DataFrame({"response": np.repeat(np.asarray(self.names, dtype=object), p),
                             "term": np.tile(np.asarray(self.exog_names, dtype=object), len(self.names)),
                             "estimate": est.ravel(), "se": se.ravel(), "t": t.ravel(), "df": df.ravel(),
                             "pvalue": pvalue.ravel()})

    @property
    def variances(self) -> pd.DataFrame:
        fit = self._fit
        status = np.array([_status_text(s) for s in fit["status"]], dtype=object)
        out = pd.DataFrame({"response": np.asarray(self.names, dtype=object),
                            "nobs": fit["nobs"].astype(np.int64), "n_groups": fit["ngroups"].astype(np.int64),
                            self._report_names[0]: fit["sigma"] * fit["theta"],
                            self._report_names[1]: fit["sigma"], "llf": -0.5 * fit["deviance"],
                            "converged": np.isin(fit["status"], (0, 1)), "status": status})
        return out

    @property
    def variance_partition(self) -> pd.DataFrame:
        fit = self._fit
        group = fit["theta"] ** 2
        total = group + 1.0
        return pd.DataFrame({"response": np.asarray(self.names, dtype=object), self._level: group / total,
                             "Residual": 1.0 / total})

    def result(self, name):
        """The full results (``MixedResults``) of response ``name``: that column fitted alone.

        Parameters
        ----------
        name : label
            A column name of ``Y`` (or its position, for an array).
        """
        if name not in self._position:
            raise KeyError("no response %r; the responses are %s" % (name, _preview(self.names)))
        if self._single_fit is None:
            raise ValueError("these results were unpickled without the data and responses: result() needs them; "
                             "call fit_many again to fit single responses")
        return self._single_fit(self._position[name], name)

    def __getstate__(self):
        """The tables' arrays only: the data and the responses are not pickled (``result`` then
        needs a new ``fit_many``)."""
        return {**self.__dict__, "_single_fit": None}

    def __repr__(self):
        fit = self._fit
        return ("<ManyResults: %d responses, %s, %d converged (%d on the boundary); tables: tidy, variances, "
                "variance_partition; result(name) for one fit>"
                % (len(self.names), "REML" if self.reml else "ML", int(np.isin(fit["status"], (0, 1)).sum()),
                   int(np.sum(fit["status"] == 1))))


STATUS_TEXT = {0: "ok", 1: "boundary", 2: "no optimum", 3: "singular X", 4: "too few rows", 5: "constant response"}


def _status_text(code):
    return STATUS_TEXT.get(int(code), "failed")


def _preview(names, k=5):
    shown = ", ".join(repr(n) for n in names[:k])
    return "[%s%s]" % (shown, ", ..." if len(names) > k else "")
