"""Profile-likelihood intervals of ordinal fits (``meologit`` / ``meoprobit``).

As for the mixed logit (``hlmext.inference.profile.GLMMProfile``): the profile deviance of
a parameter held at ``x`` is ``-2 loglik`` (the fit's own Laplace or AGHQ likelihood)
minimized over all the others, and the interval's ends are the roots of
``zeta(x) = -+z_{1-alpha/2}``. The cut points must stay ordered, so the inner
minimization works with one cut point (the anchor) and the logs of the gaps between
neighbouring cut points,

    cut_a = anchor,   cut_{m+1} - cut_m = exp(l_m),

the anchor being the held cut point when a cut point is profiled (then only the log gaps
move, the other cut points on both sides of it) and the first cut point otherwise. Every
point the optimizer tries is then a valid ordinal model.
"""
from __future__ import annotations

import numpy as np

from .profile import GLMMProfile


class OrdinalProfile(GLMMProfile):
    """Profiled deviance of every parameter of an ordinal fit: fixed effects, cut points, sd's and correlations.

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.ordinal_profile import OrdinalProfile
    >>> wine = hlmext.datasets.load("wine")
    >>> res = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=1)
    >>> OrdinalProfile(res).conf_int(cols=["/cut1", "sd(Intercept)[judge]"]).round(3)
                          lower  upper
    /cut1                -3.117 -0.331
    sd(Intercept)[judge]  0.501  2.267
    """

    def __init__(self, res, criterion=None):
        super().__init__(res, criterion)
        model = self.model
        self.k_beta, self.k_cut = model.k_beta, model.k_cut
        kb, kc = self.k_beta, self.k_cut
        gaps = np.diff(self.estimate[kb:kb + kc])
        # the scale of the log gaps: a cut point's standard error over its gap, as the fit's optimizer
        self._scale_all = self._scale_all.copy()
        self._scale_all[kb + 1:kb + kc] = np.clip(self._step[kb + 1:kb + kc] / gaps, 0.01, 1.0)

    def _anchor(self, i):
        """The cut point (position among the cut points) that the coordinates hold as such."""
        j = i - self.k_beta
        return j if 0 <= j < self.k_cut else 0

    def _held(self, i):
        """A held cut point is the anchor coordinate; any other parameter is its own coordinate."""
        kb = self.k_beta
        return kb if kb <= i < kb + self.k_cut else i

    def _coordinates(self, full, i):
        """(beta, cut_anchor, log gaps, reported variance parameters) of ``full``."""
        kb, kc = self.k_beta, self.k_cut
        cuts = full[kb:kb + kc]
        return np.concatenate([full[:kb], [cuts[self._anchor(i)]], np.log(np.diff(cuts)), full[kb + kc:]])

    def _full(self, y, i):
        """(beta, cuts, values) of the coordinates ``y``, and d full / d y."""
        kb, kc = self.k_beta, self.k_cut
        anchor = self._anchor(i)
        gaps = np.exp(y[kb + 1:kb + kc])
        up = np.concatenate([[0.0], np.cumsum(gaps)])                  # cut_m - cut_0
        cuts = y[kb] + up - up[anchor]
        jac = np.eye(y.size)
        block = np.zeros((kc, kc))
        block[:, 0] = 1.0
        for j in range(kc - 1):                   # gap j lies between cut j and cut j + 1
            for m in range(kc):
                if anchor <= j < m:
                    block[m, j + 1] = gaps[j]
                elif m <= j < anchor:
                    block[m, j + 1] = -gaps[j]
        jac[kb:kb + kc, kb:kb + kc] = block
        return np.concatenate([y[:kb], cuts, y[kb + kc:]]), jac
