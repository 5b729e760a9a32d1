"""Residual structures with a matrix over occasions, grouped by each cluster's pattern of occasions:
exchangeable, Toeplitz, banded, unstructured, AR(p) and MA(q) (``hlmext.design.residual_structures``).

One Cholesky factor per pattern (``O(T^3)``), its inverse applied to every cluster with that
pattern by ``_kernels.residuals.pattern_whiten`` (``O(n_j^2)`` per cluster and column).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from .._kernels import residuals as _kernel
from ..exceptions import DataError
from .residual_base import MAX_CORR, ResidualStructure


class _Patterned(ResidualStructure):
    """Structures with a matrix over occasions: clusters grouped by their pattern of occasions."""

    def _occasions(self):
        """Occasion index of every row (0 .. T-1) and the occasions' labels."""
        raise NotImplementedError

    def _setup(self, by):
        occ, self.labels = self._occasions()
        self.T = len(self.labels)
        self.occ = occ
        sizes = self.ends - self.starts
        number = {}
        self.pattern = np.array([number.setdefault(tuple(occ[self.rows[a:b]]), len(number))
                                 for a, b in zip(self.starts, self.ends)], dtype=np.intp)
        self.patterns = [np.array(p, dtype=np.intp) for p in number]
        self.factor_off = np.concatenate([[0], np.cumsum([len(p) ** 2 for p in self.patterns])[:-1]]).astype(np.intp)
        self.count = np.bincount(self.pattern, minlength=len(self.patterns))
        self.max_size = int(sizes.max())
        self._init_params()

    def matrix(self, psi):
        """The ``T x T`` relative covariance over occasions (None: not positive definite)."""
        raise NotImplementedError

    def precision_bands(self, psi):
        M = self.matrix(psi)
        bands = np.zeros((self.max_size, self.n))
        for p, occ in enumerate(self.patterns):
            try:
                Rinv = np.linalg.inv(np.linalg.cholesky(M[np.ix_(occ, occ)]))
            except np.linalg.LinAlgError:
                return None
            Rinv = Rinv.T @ Rinv
            starts = self.starts[self.pattern == p]
            for i in range(len(occ)):
                for j in range(i, len(occ)):
                    bands[j - i, starts + i] = Rinv[i, j]
        return [(lag, bands[lag]) for lag in range(self.max_size)]

    def whiten(self, W, psi, out):
        M = self.matrix(psi)
        if M is None:
            return np.inf
        logdet, factors = 0.0, []
        for occ, count in zip(self.patterns, self.count):
            try:
                C = np.linalg.cholesky(M[np.ix_(occ, occ)])
            except np.linalg.LinAlgError:
                return np.inf
            factors.append(np.linalg.inv(C).ravel())
            logdet += count * 2.0 * np.sum(np.log(np.diag(C)))
        _kernel.pattern_whiten(W, self.rows, self.starts, self.ends, self.pattern, np.concatenate(factors),
                               self.factor_off, out)
        return logdet

    def _pairwise(self, psi, r):
        o = self.occ[r]
        return self.matrix(psi)[np.ix_(o, o)]


class _Dense(_Patterned):
    """exchangeable, toeplitz, banded and unstructured."""

    def _occasions(self):
        if self.kind == "exchangeable":
            pos = np.empty(self.n, dtype=np.intp)
            pos[self.rows] = np.arange(self.n) - np.repeat(self.starts, self.ends - self.starts)
            return pos, [str(i + 1) for i in range(int(pos.max()) + 1)]
        if self.kind == "toeplitz":
            t0 = self.time.min()
            occ = (self.time - t0).astype(np.intp)
            return occ, [fmt_time(t0 + i) for i in range(int(occ.max()) + 1)]
        values, occ = np.unique(self.time, return_inverse=True)
        return occ.astype(np.intp), [fmt_time(v) for v in values]

    def _init_params(self):
        T, kind = self.T, self.kind
        if T < 2 and kind != "exchangeable":
            raise DataError("residuals=%r: time=%r has a single occasion; nothing to correlate"
                            % (kind, self.time_name))
        if kind == "exchangeable":
            self.label, self.names, self.n_params = "Exchangeable", ["rho"], 1
            self.covers_intercept, self.why_not = True, "a common correlation"
        elif kind == "toeplitz":
            k = T - 1 if self.order is None else min(self.order, T - 1)
            self.lags = k
            self.label = "Toeplitz(%d)" % k
            self.names = ["rho%d" % i for i in range(1, k + 1)]
            self.n_params = k
            self.covers_intercept, self.why_not = k >= T - 1, "every lag has its own correlation"
        else:                                                 # banded, unstructured: sd per occasion
            k = T - 1 if (kind == "unstructured" or self.order is None) else min(self.order, T - 1)
            self.band = k
            self.heteroscedastic = True
            self.pairs = [(i, j) for j in range(T) for i in range(j + 1, T) if i - j <= k]
            self.label = "Unstructured" if kind == "unstructured" else "Banded(%d)" % k
            lab = self.labels
            self.names = (["sd(e%s)" % lab[t] for t in range(1, T)]
                          + ["corr(e%s,e%s)" % (lab[j], lab[i]) for i, j in self.pairs])
            self.n_params = len(self.names)
            self.covers_intercept = "any" if k >= T - 1 else False
            self.why_not = "any covariance of the occasions"
        self.is_corr = np.array([not nm.startswith("sd(") for nm in self.names])

    # unstructured: psi = the lower Cholesky factor of the relative covariance with L[0, 0] = 1 (its
    # log diagonal, then the entries below it), positive definite everywhere. banded: log relative
    # sd's, then the correlations within the band (a matrix that is not positive definite: inf).

    def bounds(self):
        if self.kind == "unstructured":
            return [(-12.0, 12.0)] * (self.T - 1) + [(None, None)] * len(self.pairs)
        if self.heteroscedastic:
            return [(-12.0, 12.0)] * (self.T - 1) + [(-MAX_CORR, MAX_CORR)] * len(self.pairs)
        return [(-MAX_CORR, MAX_CORR)] * self.n_params

    def _cholesky(self, psi):
        T = self.T
        L = np.diag(np.exp(np.concatenate([[0.0], psi[:T - 1]])))
        for (i, j), v in zip(self.pairs, psi[T - 1:]):
            L[i, j] = v
        return L

    def matrix(self, psi):
        T = self.T
        psi = np.asarray(psi, float)
        if self.kind == "unstructured":
            L = self._cholesky(psi)
            return L @ L.T
        if self.kind == "exchangeable":
            return (1 - psi[0]) * np.eye(T) + psi[0]
        if self.kind == "toeplitz":
            acf = np.zeros(T)
            acf[0] = 1.0
            acf[1:self.lags + 1] = psi
            return linalg.toeplitz(acf)
        sd = np.exp(np.concatenate([[0.0], psi[:T - 1]]))
        corr = np.eye(T)
        for (i, j), r in zip(self.pairs, psi[T - 1:]):
            corr[i, j] = corr[j, i] = r
        return corr * np.outer(sd, sd)

    def display_rows(self):
        if not self.heteroscedastic:
            return super().display_rows()
        return ([(self.n_params, "sd(e%s)" % self.labels[0])] + [(i, nm) for i, nm in enumerate(self.names)])

    def report(self, psi, sigma):
        psi = np.asarray(psi, float)
        if self.kind == "unstructured":
            M = self.matrix(psi)
            sd = np.sqrt(np.diag(M))
            return np.concatenate([sigma * sd[1:], [M[i, j] / (sd[i] * sd[j]) for i, j in self.pairs]])
        if self.heteroscedastic:
            return np.concatenate([sigma * np.exp(psi[:self.T - 1]), psi[self.T - 1:]])
        return psi.copy()

    def psi_from_report(self, values, sigma):
        values = np.asarray(values, float)
        if self.kind == "unstructured":
            T = self.T
            sd = np.concatenate([[1.0], values[:T - 1] / sigma])
            M = np.eye(T)
            for (i, j), r in zip(self.pairs, values[T - 1:]):
                M[i, j] = M[j, i] = r
            L = np.linalg.cholesky(M * np.outer(sd, sd))
            return np.concatenate([np.log(np.diag(L)[1:]), [L[i, j] for i, j in self.pairs]])
        if self.heteroscedastic:
            return np.concatenate([np.log(values[:self.T - 1] / sigma), values[self.T - 1:]])
        return values.copy()


class _Arma(_Patterned):
    """AR(p) and MA(q) on integer occasions, stationary and invertible through partial
    autocorrelations (``psi = atanh(pacf)``, as nlme's ``corARMA``); reported as coefficients."""

    def _occasions(self):
        t0 = self.time.min()
        occ = (self.time - t0).astype(np.intp)
        return occ, [fmt_time(t0 + i) for i in range(int(occ.max()) + 1)]

    def _init_params(self):
        p = self.order
        self.n_params = p
        sym = "phi" if self.kind == "ar" else "theta"
        self.label = "%s(%d)" % (self.kind.upper(), p)
        self.names = ["%s%d" % (sym, i) for i in range(1, p + 1)]
        self.is_corr = np.ones(p, dtype=bool)
        if self.T < 2:
            raise DataError("residuals=%r: time=%r has a single occasion" % (self.label_kind, self.time_name))

    def bounds(self):
        return [(-5.0, 5.0)] * self.n_params

    def coefficients(self, psi):
        return pacf_to_coefficients(np.tanh(np.asarray(psi, float)))

    def matrix(self, psi):
        from statsmodels.tsa.arima_process import arma_acf
        c = self.coefficients(psi)
        if self.kind == "ar":
            acf = arma_acf(np.r_[1.0, -c], [1.0], lags=self.T)
        else:
            acf = arma_acf([1.0], np.r_[1.0, c], lags=self.T)
        return linalg.toeplitz(acf)

    def report(self, psi, sigma):
        return self.coefficients(psi)

    def psi_from_report(self, values, sigma):
        return np.arctanh(coefficients_to_pacf(np.asarray(values, float)))


def pacf_to_coefficients(pacf):
    """Durbin-Levinson: the AR coefficients of the partial autocorrelations (|pacf| < 1:
    stationary; used for MA polynomials too, giving invertible ones)."""
    phi = np.zeros(0)
    for k, a in enumerate(pacf):
        phi = np.append(phi - a * phi[::-1], a) if k else np.array([a])
    return phi


def coefficients_to_pacf(phi):
    """Inverse of ``pacf_to_coefficients``."""
    phi = np.asarray(phi, float).copy()
    out = np.zeros(len(phi))
    for k in range(len(phi) - 1, -1, -1):
        a = phi[k]
        out[k] = a
        if k:
            phi = (phi[:k] + a * phi[:k][::-1]) / (1 - a * a)
    return out


def fmt_time(v):
    return "%d" % v if float(v).is_integer() else "%g" % v
