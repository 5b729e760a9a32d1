"""Covariance structures of the random effects at one level.

The random effects of a level are ``b = sigma * Lambda u`` with ``u ~ N(0, I)``, so
``Cov(b) = sigma^2 Lambda Lambda'``. A structure maps its parameters ``theta`` (what
the optimizer sees) to the lower-triangular relative factor ``Lambda``, and maps the
covariance to the reporting scale of Stata and lme4: standard deviations and
correlations, with ``phi`` = (log sd, atanh corr) the scale on which standard errors
and confidence intervals are computed.

A level may hold several blocks (lme4's ``(1 | g) + (0 + x | g)``); ``LevelCovariance``
is their block-diagonal composition.
"""
from __future__ import annotations

import functools

import numpy as np

STRUCTURES = ("unstructured", "independent", "identity", "exchangeable")


class Structure:
    """One block of random effects with ``q`` columns and a covariance pattern."""

    name = ""

    def __init__(self, q: int):
        self.q = int(q)

    # --- optimizer scale -------------------------------------------------------
    @property
    def n_theta(self) -> int:
        raise NotImplementedError

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """Relative Cholesky factor Lambda (q x q, lower triangular) of ``theta``."""
        raise NotImplementedError

    def cov_basis(self) -> list:
        """Symmetric q x q matrices ``B_k`` with the covariance ``sum_k phi_k B_k`` linear in its
        variance-covariance parameters ``phi`` (what Kenward-Roger differentiates)."""
        raise NotImplementedError

    def lam_derivatives(self, theta: np.ndarray) -> list:
        """``dLambda / dtheta_i`` for every parameter (exact: here Lambda is linear in theta, so
        they do not depend on it and are formed once, read-only)."""
        out = self.__dict__.get("_lam_derivatives")
        if out is None or len(out) != self.n_theta:
            out = []
            for i in range(self.n_theta):
                e = np.zeros(self.n_theta)
                e[i] = 1.0
                out.append(self.lam(e))
                out[-1].flags.writeable = False
            self._lam_derivatives = out
        return list(out)

    def theta_start(self) -> np.ndarray:
        raise NotImplementedError

    def theta_bounds(self) -> list:
        """Box for the optimizer. Diagonal entries of Lambda are left free: the sign of a
        column of Lambda does not change Lambda Lambda', so bounding them at 0 would only
        create false optima on the edge (``canonical`` restores positive diagonals)."""
        raise NotImplementedError

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The equivalent ``theta`` whose Lambda has a non-negative diagonal."""
        return np.abs(np.asarray(theta, float))

    def theta_from_lam(self, lam: np.ndarray) -> np.ndarray:
        """Nearest ``theta`` for a given factor (used for start values)."""
        raise NotImplementedError

    def theta_scale(self, rms: np.ndarray) -> np.ndarray:
        """Natural size of each ``theta`` given the root mean squares of the design columns.

        A random effect on a column of size ``rms`` has a relative sd of order ``1 / rms``;
        the optimizer works on ``theta / scale`` so that its steps are scale-free.
        """
        raise NotImplementedError

    # --- reporting scale ---------------------------------------------------------
    def report_names(self, cols: list[str]) -> list[str]:
        """Names of the reported parameters: sd(...) then corr(...)."""
        raise NotImplementedError

    def report(self, cov: np.ndarray) -> np.ndarray:
        """sd's and correlations (reporting scale) of an absolute covariance matrix."""
        raise NotImplementedError

    def cov_from_report(self, values: np.ndarray) -> np.ndarray:
        """Absolute covariance matrix from the reported sd's and correlations."""
        raise NotImplementedError

    def n_report(self) -> int:
        return len(self.report_names(["c%d" % i for i in range(self.q)]))

    def is_corr(self) -> np.ndarray:
        """Boolean mask over the reported parameters: True for correlations."""
        names = self.report_names(["c%d" % i for i in range(self.q)])
        return np.array([n.startswith("corr(") for n in names], dtype=bool)


def _sd_names(cols):
    return ["sd(%s)" % c for c in cols]


@functools.lru_cache(maxsize=64)
def _lower_triangle(q):
    """Row and column indices of the lower triangle of a q x q matrix, column by column (read-only:
    computed once per q, as every evaluation of the likelihood fills Lambda with them)."""
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))  # column-major
    rows, cols = rows[order], cols[order]
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


class Unstructured(Structure):
    """Any positive semi-definite covariance: Lambda lower triangular, q(q+1)/2 parameters.

    ``theta`` lists the lower triangle of Lambda column by column (lme4's order).
    """

    name = "unstructured"

    def cov_basis(self):
        """A variance per column (``E_ii``) and a covariance per pair (``E_ij + E_ji``)."""
        out = []
        for i in range(self.q):
            for j in range(i, self.q):
                b = np.zeros((self.q, self.q))
                b[i, j] = b[j, i] = 1.0
                out.append(b)
        return out

    @property
    def n_theta(self):
        return self.q * (self.q + 1) // 2

    def _index(self):
        return _lower_triangle(self.q)

    def lam(self, theta):
        out = np.zeros((self.q, self.q))
        out[self._index()] = theta
        return out

    def theta_start(self):
        return self.theta_from_lam(np.eye(self.q))

    def theta_scale(self, rms):
        rows, _ = self._index()
        return 1.0 / np.asarray(rms, float)[rows]

    def theta_bounds(self):
        return [(None, None)] * self.n_theta

    def canonical(self, theta):
        lam = self.lam(theta)
        signs = np.where(np.diag(lam) < 0, -1.0, 1.0)
        return self.theta_from_lam(lam * signs[None, :])

    def theta_from_lam(self, lam):
        return np.asarray(lam, float)[self._index()].copy()

    def report_names(self, cols):
        names = _sd_names(cols)
        for j in range(self.q):
            for i in range(j + 1, self.q):
                names.append("corr(%s,%s)" % (cols[j], cols[i]))
        return names

    def report(self, cov):
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        out = list(sd)
        for j in range(self.q):
            for i in range(j + 1, self.q):
                den = sd[i] * sd[j]
                out.append(cov[i, j] / den if den > 0 else np.nan)
        return np.array(out)

    def cov_from_report(self, values):
        sd = np.asarray(values[: self.q], float)
        corr = np.eye(self.q)
        k = self.q
        for j in range(self.q):
            for i in range(j + 1, self.q):
                # an undefined correlation (one of its sd's is zero) does not matter: use 0
                corr[i, j] = corr[j, i] = values[k] if np.isfinite(values[k]) else 0.0
                k += 1
        return corr * np.outer(sd, sd)


class Independent(Structure):
    """Uncorrelated random effects with their own variances: Lambda diagonal, q parameters."""

    name = "independent"

    def cov_basis(self):
        """A variance per column."""
        return [np.diag(np.eye(self.q)[i]) for i in range(self.q)]

    @property
    def n_theta(self):
        return self.q

    def lam(self, theta):
        return np.diag(np.asarray(theta, float))

    def theta_start(self):
        return np.ones(self.q)

    def theta_scale(self, rms):
        return 1.0 / np.asarray(rms, float)

    def theta_bounds(self):
        return [(None, None)] * self.q

    def theta_from_lam(self, lam):
        return np.sqrt(np.diag(np.asarray(lam) @ np.asarray(lam).T))

    def report_names(self, cols):
        return _sd_names(cols)

    def report(self, cov):
        return np.sqrt(np.clip(np.diag(cov), 0, None))

    def cov_from_report(self, values):
        return np.diag(np.asarray(values, float) ** 2)


class Identity(Structure):
    """Uncorrelated random effects with one common variance: Lambda = t I, one parameter."""

    name = "identity"

    def cov_basis(self):
        """One variance shared by the columns."""
        return [np.eye(self.q)]

    @property
    def n_theta(self):
        return 1

    def lam(self, theta):
        return float(theta[0]) * np.eye(self.q)

    def theta_start(self):
        return np.ones(1)

    def theta_scale(self, rms):
        return np.array([1.0 / np.mean(rms)])

    def theta_bounds(self):
        return [(None, None)]

    def theta_from_lam(self, lam):
        return np.array([np.sqrt(np.mean(np.diag(np.asarray(lam) @ np.asarray(lam).T)))])

    def report_names(self, cols):
        return ["sd(%s)" % " ".join(cols)] if self.q > 1 else _sd_names(cols)

    def report(self, cov):
        return np.array([np.sqrt(max(np.mean(np.diag(cov)), 0.0))])

    def cov_from_report(self, values):
        return float(values[0]) ** 2 * np.eye(self.q)


class Exchangeable(Structure):
    """Common variance and common correlation: Lambda = t chol((1 - r) I + r 11'), two parameters."""

    name = "exchangeable"

    def cov_basis(self):
        """The common variance and the common covariance."""
        return [np.eye(self.q), np.ones((self.q, self.q)) - np.eye(self.q)]

    @property
    def n_theta(self):
        return 2

    def _corr(self, r):
        return (1.0 - r) * np.eye(self.q) + r * np.ones((self.q, self.q))

    def lam(self, theta):
        t, r = float(theta[0]), float(theta[1])
        return t * np.linalg.cholesky(self._corr(r))

    def lam_derivatives(self, theta):
        """d/dt = chol(C); d/dr = t dchol(C)[11' - I], the derivative of the Cholesky factor."""
        t, r = float(theta[0]), float(theta[1])
        L = np.linalg.cholesky(self._corr(r))
        dC = np.ones((self.q, self.q)) - np.eye(self.q)
        phi = np.linalg.solve(L, np.linalg.solve(L, dC).T).T      # L^{-1} dC L^{-T}
        phi = np.tril(phi) - 0.5 * np.diag(np.diag(phi))
        return [L, t * L @ phi]

    def theta_start(self):
        return np.array([1.0, 0.0])

    def theta_scale(self, rms):
        return np.array([1.0 / np.mean(rms), 1.0])

    def theta_bounds(self):
        lower = -1.0 / (self.q - 1) if self.q > 1 else -1.0
        return [(None, None), (lower + 1e-6, 1.0 - 1e-6)]

    def canonical(self, theta):
        return np.array([abs(float(theta[0])), float(theta[1])])

    def theta_from_lam(self, lam):
        cov = np.asarray(lam) @ np.asarray(lam).T
        sd, r = self.report(cov)
        lower, upper = self.theta_bounds()[1]
        return np.array([sd, float(np.clip(0.0 if np.isnan(r) else r, lower, upper))])

    def report_names(self, cols):
        return ["sd(%s)" % " ".join(cols), "corr(%s)" % " ".join(cols)]

    def report(self, cov):
        var = np.mean(np.diag(cov))
        off = cov[~np.eye(self.q, dtype=bool)]
        r = np.mean(off) / var if var > 0 and off.size else np.nan
        return np.array([np.sqrt(max(var, 0.0)), r])

    def cov_from_report(self, values):
        return float(values[0]) ** 2 * self._corr(float(values[1]))


_CLASSES = {c.name: c for c in (Unstructured, Independent, Identity, Exchangeable)}


def make_structure(name: str, q: int) -> Structure:
    """The structure called ``name`` for ``q`` columns (one column is always identity)."""
    if name not in _CLASSES:
        raise ValueError("unknown covariance structure %r; use one of %s" % (name, ", ".join(STRUCTURES)))
    if q == 1:
        name = "identity"
    if name == "exchangeable" and q < 2:
        name = "identity"
    return _CLASSES[name](q)


def _factor(cov):
    """Lower-triangular L with L L' = cov, for positive semi-definite cov of any scaling.

    Works on the correlation matrix (so that columns of very different sizes do not
    matter), nudging it to positive definite only by a tiny relative amount; columns with
    zero variance get zero rows.
    """
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    safe = np.where(sd > 0, sd, 1.0)
    corr = cov / np.outer(safe, safe)
    corr[np.diag_indices_from(corr)] = 1.0
    w, v = np.linalg.eigh(corr)
    corr = (v * np.clip(w, 1e-12, None)) @ v.T
    return sd[:, None] * np.linalg.cholesky(corr)


class LevelCovariance:
    """Block-diagonal covariance of one level's random effects.

    Parameters
    ----------
    blocks : list of (Structure, list of str)
        Each block's structure and the names of its columns, in the order of the
        level's random-effects design columns.
    """

    def __init__(self, blocks):
        self.blocks = [(s, list(cols)) for s, cols in blocks]
        self.q = sum(s.q for s, _ in self.blocks)
        self.n_theta = sum(s.n_theta for s, _ in self.blocks)

    @property
    def names(self) -> list[str]:
        return [c for _, cols in self.blocks for c in cols]

    @property
    def label(self) -> str:
        """Structure name as Stata prints it (``Unstructured``, or ``Blocks`` for several)."""
        if len(self.blocks) == 1:
            return self.blocks[0][0].name.capitalize()
        kinds = {s.name for s, _ in self.blocks}
        if kinds == {"identity"} and all(s.q == 1 for s, _ in self.blocks):
            return "Independent"
        return "Blocks"

    def _split(self, vec, sizes):
        out, k = [], 0
        for n in sizes:
            out.append(np.asarray(vec[k:k + n], float))
            k += n
        return out

    def lam(self, theta) -> np.ndarray:
        if len(self.blocks) == 1:                 # one block of every column: its own factor
            return self.blocks[0][0].lam(np.asarray(theta, float))
        out = np.zeros((self.q, self.q))
        k = 0
        for (s, _), th in zip(self.blocks, self._split(theta, [s.n_theta for s, _ in self.blocks])):
            out[k:k + s.q, k:k + s.q] = s.lam(th)
            k += s.q
        return out

    def lam_derivatives(self, theta) -> list:
        """``dLambda / dtheta_i`` of the level's factor, one q x q matrix per parameter."""
        if len(self.blocks) == 1:
            return list(self.blocks[0][0].lam_derivatives(np.asarray(theta, float)))
        out, k = [], 0
        sizes = [s.n_theta for s, _ in self.blocks]
        for (s, _), th in zip(self.blocks, self._split(theta, sizes)):
            for block in s.lam_derivatives(th):
                full = np.zeros((self.q, self.q))
                full[k:k + s.q, k:k + s.q] = block
                out.append(full)
            k += s.q
        return out

    def theta_start(self) -> np.ndarray:
        return np.concatenate([s.theta_start() for s, _ in self.blocks])

    def theta_bounds(self) -> list:
        return [b for s, _ in self.blocks for b in s.theta_bounds()]

    def canonical(self, theta) -> np.ndarray:
        """Block by block, the equivalent ``theta`` with non-negative diagonals of Lambda."""
        sizes = [s.n_theta for s, _ in self.blocks]
        return np.concatenate([s.canonical(th) for (s, _), th in zip(self.blocks, self._split(theta, sizes))])

    def theta_scale(self, rms) -> np.ndarray:
        """Per-parameter scale of ``theta`` from the design columns' root mean squares."""
        out, k = [], 0
        rms = np.where(np.asarray(rms, float) > 0, rms, 1.0)
        for s, _ in self.blocks:
            out.append(s.theta_scale(rms[k:k + s.q]))
            k += s.q
        return np.concatenate(out)

    def theta_from_cov(self, cov_rel: np.ndarray) -> np.ndarray:
        """``theta`` of a relative covariance (Cov(b) / sigma^2), block by block."""
        out, k = [], 0
        for s, _ in self.blocks:
            out.append(s.theta_from_lam(_factor(np.asarray(cov_rel[k:k + s.q, k:k + s.q], float))))
            k += s.q
        return np.concatenate(out)

    def report_names(self) -> list[str]:
        return [n for s, cols in self.blocks for n in s.report_names(cols)]

    def report(self, cov: np.ndarray) -> np.ndarray:
        out, k = [], 0
        for s, _ in self.blocks:
            out.append(s.report(cov[k:k + s.q, k:k + s.q]))
            k += s.q
        return np.concatenate(out)

    def is_corr(self) -> np.ndarray:
        return np.concatenate([s.is_corr() for s, _ in self.blocks])

    def cov_from_report(self, values) -> np.ndarray:
        out = np.zeros((self.q, self.q))
        k = 0
        sizes = [s.n_report() for s, _ in self.blocks]
        for (s, _), vals in zip(self.blocks, self._split(values, sizes)):
            out[k:k + s.q, k:k + s.q] = s.cov_from_report(vals)
            k += s.q
        return out
