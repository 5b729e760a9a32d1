"""What linear and GLMM results share: the boundary warning, the rows in the data's order, the icc."""
from __future__ import annotations

import warnings

from ..exceptions import BoundaryWarning
from ..models import information
from ..stacklevel import user_stacklevel
from .rows import original_order


class FitResults:
    """Base class of ``MixedResults`` and ``GLMMResults`` (``hlmext.results.linear``, ``.glmm``).

    A subclass sets ``on_boundary`` (the variance parameters estimated at zero), ``re_params``,
    ``model`` and ``k_fe``, and gives ``_icc_variances`` (the residual variance, estimated or
    fixed on a latent scale).
    """

    def _warn_boundary(self):
        """Warn (at the user's line) about the variance parameters estimated on the boundary."""
        if self.on_boundary:
            warnings.warn("on the boundary of the parameter space: %s; the random-effects part is more "
                          "complex than the data support, drop the term(s) from the random part"
                          % ", ".join(self.on_boundary), BoundaryWarning, stacklevel=user_stacklevel())

    def _original_order(self, sorted_values):
        """Values in the core's row order put back in the data's row order."""
        self._check_rows()
        if sorted_values is None or not self.model.design.has_rows:
            raise ValueError("this model was fitted from statistics accumulated over chunks, without keeping "
                             "the rows: compute fitted values and residuals chunk by chunk with "
                             "results.predict(chunk, which='conditional')")
        return original_order(self.model, sorted_values)

    def _check_icc(self):
        """Raise if this model has no intraclass correlation (a subclass's check)."""

    def icc(self, alpha=0.05):
        """Intraclass correlations of a random-intercept model (Stata ``estat icc``).

        For a logit model they are on the latent-response scale (residual variance pi^2/3).

        Returns
        -------
        pandas.DataFrame
            One row per level (outermost first): icc, se and CI (logit scale).
        """
        self._check_icc()
        levels = self.model.levels[::-1]
        if any(lv.q != 1 or lv.names[0] != "Intercept" for lv in levels):
            raise ValueError("icc() needs random intercepts only; with random slopes the intraclass "
                             "correlation depends on the covariates")
        k = len(levels)
        sds = self.re_params["estimate"].to_numpy()
        resid_var, cov_var = self._icc_variances(sds, k)
        return information.icc_table(sds[:k] ** 2, resid_var, cov_var, [lv.name for lv in levels], alpha)
