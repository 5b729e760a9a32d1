"""Refits without one group, for every group at once (``hlmext.results.diagnostics.group_influence``).

One level of random effects, ``Lambda`` linear in ``theta``. For a cluster ``g`` with
``A_g = Lambda' Z_g'Z_g Lambda + I = L_g L_g'`` and ``C_g = L_g^{-1} Lambda' Z_g'[X y]``, the
profiled deviance depends on theta through

    logdet(theta) = sum_g 2 log det L_g,     R(theta) = [X y]'[X y] - sum_g C_g'C_g,

the log determinant and the reduced ``[X y]`` system. Deleting group ``k`` takes its own terms
out, exactly at any theta: ``logdet - 2 log det L_k`` and ``R + C_k'C_k - [X y]_k'[X y]_k``.
What is expensive is the whole fit's ``(logdet, R)`` at a theta other than the fit's (a pass
over every cluster), and every deletion has its own optimum; but these optima lie in a small
box around the fit's theta (a group moves the estimates by about 1/G; the box is twice
the one-step moves of all but the few groups, at most 20 and 2%, that move most). So ``(logdet, R)`` is
replaced by a polynomial in theta of total degree 5 (7 if 5 fails the check), fitted by least squares to exact
evaluations (the compiled factorization) at points spread over that box: it is analytic in
theta, so the error falls as a high power of the box's size, and it is checked against
exact evaluations at the box's corners (relative error at most 1e-11, else the route is not
taken). Each deletion's deviance, with its analytic gradient (the polynomial's derivative
and differences of the one cluster's terms), is then minimised by Newton steps from the
fit's theta with the full fit's Hessian, all groups at once (vectorised over the groups):
a few evaluations per group, none of which touches the other groups. A group whose steps do
not converge, or whose optimum leaves the box, is left to the caller (an exact refit).
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["fast_deletions", "cluster_stats"]

DEGREES = (5, 7)       # total degree of the polynomial: 5, or 7 when 5 fails the check
CHECK_RTOL = 1e-11


def cluster_stats(model):
    """Per cluster: Z'Z (G, q, q), Z'[X y] (G, q, p + 1), [X y]'[X y] (G, p + 1, p + 1), sizes."""
    d = model.design
    lv = d.levels[0]
    q, p = lv.q, d.k_fe
    S = model._stats.reshape(lv.n_groups, q, q + p + 1)
    xy = d.W[:, d.zoff[-1]:]
    starts = np.concatenate([[0], np.cumsum(lv.sizes)[:-1]])
    own = np.empty((lv.n_groups, p + 1, p + 1))
    block = max(1, int(2e7 // ((p + 1) ** 2 * max(1, int(lv.sizes.mean())))))
    for a in range(0, lv.n_groups, block):
        b = min(lv.n_groups, a + block)
        lo, hi = starts[a], starts[b - 1] + lv.sizes[b - 1]
        outer = np.einsum("ni,nj->nij", xy[lo:hi], xy[lo:hi]).reshape(hi - lo, -1)
        own[a:b] = np.add.reduceat(outer, starts[a:b] - lo, axis=0).reshape(-1, p + 1, p + 1)
    return S[:, :, :q].copy(), S[:, :, q:].copy(), own, lv.sizes.astype(float)


def _lam_basis(model, theta):
    """``E_j`` with ``Lambda(theta) = sum_j theta_j E_j``, or None when Lambda is not linear in theta."""
    k = theta.size
    E = np.array([model.lams(np.eye(k)[j])[0] for j in range(k)])
    for t in (theta, 2 * theta + 0.5):
        if not np.allclose(np.einsum("j,jab->ab", t, E), model.lams(t)[0], rtol=1e-14, atol=1e-14):
            return None
    return E


def _per_cluster(theta, E, ZtZ, ZtXy):
    """2 log det L_g and C_g'C_g of every cluster at ``theta`` ((k,) for all, or (G, k) one each):
    the Cholesky factor and the triangular solve written out over the q columns, each step
    vectorised over the clusters (q is small)."""
    lam = np.einsum("...j,jab->...ab", theta, E)
    lt = np.swapaxes(lam, -1, -2)
    A = lt @ ZtZ @ lam
    B = lt @ ZtXy
    q = A.shape[-1]
    L = np.zeros(A.shape)
    for j in range(q):
        L[..., j, j] = np.sqrt(1.0 + A[..., j, j] - np.sum(L[..., j, :j] ** 2, axis=-1))
        for i in range(j + 1, q):
            L[..., i, j] = (A[..., i, j] - np.sum(L[..., i, :j] * L[..., j, :j], axis=-1)) / L[..., j, j]
    C = np.empty(B.shape)
    for i in range(q):
        C[..., i, :] = (B[..., i, :] - np.einsum("...k,...kj->...j", L[..., i, :i], C[..., :i, :])) \
            / L[..., i, i][..., None]
    logdet = 2 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    return logdet, np.swapaxes(C, -1, -2) @ C


def _reduced(model, theta):
    """The whole fit's log det and reduced system ``[X y]'[X y] - M`` at ``theta`` (the compiled
    factorization: its lower factor L of the reduced block gives it as L L')."""
    f = model.factorize(theta)
    if not f.ok:
        return np.full(1 + (model.k_fe + 1) ** 2, np.nan)
    return np.concatenate([[f.logdet], (f.L @ f.L.T).ravel()])


class _Surrogate:
    """Polynomial of total degree ``degree`` in ``u = (theta - centre) / radius`` fitted to the
    whole fit's log det and reduced system."""

    def __init__(self, centre, radius, model, degree, seed=0):
        k = centre.size
        self.degree = degree
        self.centre, self.radius = centre, radius
        self.powers = np.array([e for e in itertools.product(range(degree + 1), repeat=k) if sum(e) <= degree])
        n = 2 * len(self.powers) + 1
        U = np.vstack([np.zeros(k), np.random.default_rng(seed).uniform(-1, 1, (n - 1, k))])
        Y = np.array([_reduced(model, centre + radius * u) for u in U])
        self.coef = np.linalg.lstsq(self._basis(U), Y, rcond=None)[0]

    def _basis(self, U, dj=None):
        """The monomials at the rows of U (or their derivatives in u_j)."""
        out = np.ones((U.shape[0], len(self.powers)))
        for j in range(U.shape[1]):
            e = self.powers[:, j]
            table = U[:, j, None] ** np.arange(self.degree + 1)
            if j == dj:
                table = np.hstack([np.zeros((U.shape[0], 1)), table[:, :-1] * np.arange(1, self.degree + 1)])
            out *= table[:, e]
        return out

    def __call__(self, theta):
        """Values (n, m) and derivatives in theta (n, k, m) at the rows of ``theta``."""
        U = (theta - self.centre) / self.radius
        val = self._basis(U) @ self.coef
        grads = [self._basis(U, j) @ self.coef / self.radius[j] for j in range(U.shape[1])]
        return val, np.stack(grads, axis=1)


def _deviance_parts(total, dtotal, own, down, dd, n, p, reml):
    """Deviance and gradient of each deletion from the whole fit's log det and reduced system
    ``total`` (and derivatives ``dtotal``), the deleted cluster's ``own`` = [X y]'[X y]_k and
    ``down``/``dd`` (its log det and C'C and their derivatives), with ``n`` rows left; and beta
    (without the response's shift)."""
    m = own.shape[-1]
    ld = total[:, 0] - down[:, 0]
    Mred = (total[:, 1:] + down[:, 1:]).reshape(-1, m, m) - own
    dld = dtotal[:, :, 0] - dd[:, :, 0]
    dM = (dtotal[:, :, 1:] + dd[:, :, 1:]).reshape(dd.shape[0], dd.shape[1], m, m)
    Mxx, mxy = Mred[:, :p, :p], Mred[:, :p, p]
    beta = np.linalg.solve(Mxx, mxy[..., None])[..., 0]
    prss = Mred[:, p, p] - np.einsum("gi,gi->g", mxy, beta)
    dprss = (dM[:, :, p, p] - 2 * np.einsum("gi,gki->gk", beta, dM[:, :, :p, p])
             + np.einsum("gi,gkij,gj->gk", beta, dM[:, :, :p, :p], beta))
    dof = n - p if reml else n
    dev = ld + dof * (1 + np.log(2 * np.pi) + np.log(prss / dof))
    grad = dld + dof[:, None] * dprss / prss[:, None]
    if reml:
        dev = dev + np.linalg.slogdet(Mxx)[1]
        inv = np.linalg.inv(Mxx)
        grad = grad + np.einsum("gij,gkji->gk", inv, dM[:, :, :p, :p])
    return dev, grad, beta


def fast_deletions(model, theta_hat, H0, reml):
    """Deleted-fit beta (without the response shift) of every group of the level, or None when the
    fast route does not apply; with a mask of the groups it settled (the others need refits)."""
    E = _lam_basis(model, theta_hat)
    if E is None or theta_hat.size > 4:
        return None
    stats = cluster_stats(model)
    ZtZ, ZtXy, own, sizes = stats
    G, k = len(sizes), theta_hat.size
    p = model.k_fe
    n_left = model.nobs - sizes
    scale = np.maximum(np.abs(theta_hat), 1e-3 * model.theta_scale())
    h = 1e-6 * scale
    tol = 1e-9 * np.maximum(np.abs(theta_hat), model.theta_scale())

    def cluster_terms(theta):
        ld, M = _per_cluster(theta, E, ZtZ, ZtXy)
        val = np.column_stack([ld, M.reshape(G, -1)])
        grads = []
        for j in range(k):
            up, dn = theta.copy(), theta.copy()
            up[:, j] += h[j]
            dn[:, j] -= h[j]
            lu, Mu = _per_cluster(up, E, ZtZ, ZtXy)
            ldn, Mdn = _per_cluster(dn, E, ZtZ, ZtXy)
            grads.append(np.column_stack([lu - ldn, (Mu - Mdn).reshape(G, -1)]) / (2 * h[j]))
        return val, np.stack(grads, axis=1)

    # the box: one Newton step from theta-hat with the exact sums and their differences
    theta0 = np.tile(theta_hat, (G, 1))
    exact = _reduced(model, theta_hat)
    dexact = np.array([(_reduced(model, theta_hat + h[j] * np.eye(k)[j])
                        - _reduced(model, theta_hat - h[j] * np.eye(k)[j])) / (2 * h[j]) for j in range(k)])
    down, dd = cluster_terms(theta0)
    _, g, _ = _deviance_parts(np.tile(exact, (G, 1)), np.tile(dexact, (G, 1, 1)), own, down, dd, n_left, p, reml)
    step = np.linalg.solve(H0, g.T).T
    # the box: twice the one-step moves, but for the few largest (left to exact refits)
    few = min(20, G // 50)
    radius = 2.0 * np.sort(np.abs(step), axis=0)[G - 1 - few] + 1e-6 * scale
    corners = theta_hat + radius * np.array(list(itertools.product([-1, 1], repeat=k)))
    want = np.array([_reduced(model, c) for c in corners])
    for degree in DEGREES:
        surrogate = _Surrogate(theta_hat, radius, model, degree)
        if np.max(np.abs(surrogate(corners)[0] - want)) <= CHECK_RTOL * np.max(np.abs(want)):
            break
    else:
        return None

    theta = theta0.copy()
    done = np.zeros(G, dtype=bool)
    for _ in range(25):
        total, dtotal = surrogate(theta)
        down, dd = cluster_terms(theta)
        _, g, beta = _deviance_parts(total, dtotal, own, down, dd, n_left, p, reml)
        step = np.linalg.solve(H0, g.T).T
        theta = theta - step
        done = np.all(np.abs(step) <= tol, axis=1)     # rounding leaves steps of ~1e-11
        if done.all():
            break
    total, dtotal = surrogate(theta)
    down, dd = cluster_terms(theta)
    _, _, beta = _deviance_parts(total, dtotal, own, down, dd, n_left, p, reml)
    inside = np.all(np.abs(theta - theta_hat) <= radius, axis=1)
    return beta, theta, done & inside & np.all(np.isfinite(beta), axis=1)
