"""meologit / meoprobit fit(nagq=0): (beta, cuts) at the joint mode with the random effects, theta on
the Laplace likelihood there (lme4's nAGQ = 0; ordinal::clmm has no such estimator, so the reference is
an independent NumPy computation: the joint mode by scipy, the Laplace value at it, theta by scipy)."""
import os

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import hlmext
from hlmext.exceptions import ModelError
from hlmext.models import ordinal_nagq0

CDF = {"logit": (special.expit, lambda x: special.expit(x) * special.expit(-x)), "probit": (stats.norm.cdf,
                                                                                          stats.norm.pdf)}

NESTED = "y ~ x + z + (1 | school/class)"


def nested_data():
    return pd.read_csv(os.path.join(os.path.dirname(__file__), "reference", "ordinal_nested", "nested.csv"))


def simulated(seed=3, G=12, m=7, link="logit", slope_sd=0.0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    noise = rng.logistic(size=G * m) if link == "logit" else rng.normal(size=G * m)
    b = rng.normal(size=(G, 2)) * (0.9, slope_sd)
    lat = 0.8 * x + b[g, 0] + b[g, 1] * x + noise
    return pd.DataFrame({"y": np.digitize(lat, [-0.8, 0.7]) + 1, "x": x, "g": g})


class Reference:
    """The nAGQ = 0 estimator of random intercepts from the definitions: ``levels`` their groups'
    columns, theta the intercepts' sd's, u = every level's standardized effects one after another."""

    def __init__(self, df, link, covariates=("x",), levels=("g",)):
        self.F, self.f = CDF[link]
        self.y, self.X = df["y"].to_numpy() - 1, df[list(covariates)].to_numpy(float)
        self.idx = [pd.factorize(df[list(lv)].apply(tuple, axis=1) if isinstance(lv, tuple) else df[lv])[0]
                    for lv in levels]
        self.sizes = [i.max() + 1 for i in self.idx]
        self.kb, self.K = self.X.shape[1], self.y.max() + 1
        self.p = self.kb + self.K - 1

    def rows(self, beta, cuts, eta_re):
        """Every row's log-likelihood and its derivatives in eta, A and B."""
        c = np.concatenate([[-np.inf], cuts, [np.inf]])
        eta = self.X @ beta + eta_re
        A, B = c[self.y + 1] - eta, c[self.y] - eta
        D = self.F(A) - self.F(B)
        fa, fb = np.where(np.isfinite(A), self.f(np.where(np.isfinite(A), A, 0)), 0.0), \
            np.where(np.isfinite(B), self.f(np.where(np.isfinite(B), B, 0)), 0.0)
        return np.log(D), -(fa - fb) / D, fa / D, -fb / D

    def split_u(self, u):
        return np.split(u, np.cumsum(self.sizes)[:-1])

    def eta_re(self, sd, u):
        return sum(s * ul[i] for s, ul, i in zip(sd, self.split_u(u), self.idx))

    def grad(self, beta, cuts, u, sd):
        """(log p(y | ...) - |u|^2 / 2, its gradient in (beta, cuts, u))."""
        ll, score, la, lb = self.rows(beta, cuts, self.eta_re(sd, u))
        dcut = (np.bincount(self.y[self.y < self.K - 1], la[self.y < self.K - 1], minlength=self.K - 1)
                + np.bincount(self.y[self.y > 0] - 1, lb[self.y > 0], minlength=self.K - 1))
        gu = [s * np.bincount(i, score, minlength=n) for s, i, n in zip(sd, self.idx, self.sizes)]
        return ll.sum() - 0.5 * u @ u, np.concatenate([self.X.T @ score, dcut, np.concatenate(gu) - u])

    def unpack(self, z):
        """(beta, cuts, u) of z = (beta, cut1, log gaps, u)."""
        kb, K = self.kb, self.K
        cuts = z[kb] + np.concatenate([[0.0], np.cumsum(np.exp(z[kb + 1:kb + K - 1]))])
        return z[:kb], cuts, z[kb + K - 1:]

    def h(self, z, sd):
        """-h and its gradient in z."""
        with np.errstate(all="ignore"):           # the line search's trial points may leave the data's range
            beta, cuts, u = self.unpack(z)
            val, g = self.grad(beta, cuts, u, sd)
            kb, K = self.kb, self.K
            dcut = g[kb:kb + K - 1]
            dgap = np.exp(z[kb + 1:kb + K - 1]) * np.cumsum(dcut[::-1])[::-1][1:]
            return -val, -np.concatenate([g[:kb], [dcut.sum()], dgap, g[kb + K - 1:]])

    def mode(self, sd):
        z0 = np.concatenate([np.zeros(self.kb), [-0.5], np.zeros(self.K - 2), np.zeros(sum(self.sizes))])
        res = optimize.minimize(self.h, z0, args=(sd,), jac=True, method="BFGS", options={"gtol": 1e-11})
        return res.x

    def laplace(self, sd):
        """Laplace log-likelihood at the joint mode; (beta, cuts) and u there."""
        sd = np.atleast_1d(sd)
        z = self.mode(sd)
        beta, cuts, u = self.unpack(z)
        e, re = 1e-5, self.eta_re(sd, u)          # w = -d score / d eta by central differences
        w = -(self.rows(beta, cuts, re + e)[1] - self.rows(beta, cuts, re - e)[1]) / (2 * e)
        M = np.hstack([s * (i[:, None] == np.arange(n)) for s, i, n in zip(sd, self.idx, self.sizes)])
        logdet = np.linalg.slogdet(np.eye(M.shape[1]) + M.T @ (w[:, None] * M))[1]
        return -self.h(z, sd)[0] - 0.5 * logdet, np.concatenate([beta, cuts]), u

    def fit(self):
        if len(self.idx) == 1:
            res = optimize.minimize_scalar(lambda s: -self.laplace(s)[0], bounds=(0.05, 4.0), method="bounded",
                                           options={"xatol": 1e-9})
        else:
            res = optimize.minimize(lambda s: -self.laplace(s)[0], np.full(len(self.idx), 0.6),
                                    method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12})
        ll, fe, u = self.laplace(res.x)
        return ll, fe, np.atleast_1d(res.x), u

    def schur_se(self, fe, sd, u):
        """sqrt diag of the inverse Schur complement of -Hessian of h in (beta, cuts, u), by differences."""
        sd, p = np.atleast_1d(sd), self.p
        v = np.concatenate([fe, u])
        N = np.empty((v.size, v.size))
        for i in range(v.size):
            e = np.zeros(v.size)
            e[i] = 1e-6
            hi, lo = v + e, v - e
            N[i] = -(self.grad(hi[:self.kb], hi[self.kb:p], hi[p:], sd)[1]
                     - self.grad(lo[:self.kb], lo[self.kb:p], lo[p:], sd)[1]) / 2e-6
        N = 0.5 * (N + N.T)
        S = N[:p, :p] - N[:p, p:] @ np.linalg.solve(N[p:, p:], N[p:, :p])
        return np.sqrt(np.diag(np.linalg.inv(S)))


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_nagq0_matches_an_independent_numpy_computation(link):
    df = simulated(link=link)
    fit = (hlmext.meologit if link == "logit" else hlmext.meoprobit)("y ~ x + (1 | g)", df).fit(nagq=0)
    ref = Reference(df, link)
    ll, fe, sd, u = ref.fit()
    assert fit.converged
    assert fit.llf == pytest.approx(ll, abs=1e-6)
    np.testing.assert_allclose(fit.fe_params.to_numpy(), fe, atol=2e-5)      # the optimum in sd is flat:
    assert float(fit.params.iloc[-1]) == pytest.approx(sd[0], abs=1e-4)     # scipy's sd to ~1e-5
    sd_fit = float(fit.params.iloc[-1])
    ll_at, fe_at, u_at = ref.laplace(sd_fit)                                 # at the same sd: to 1e-6
    assert fit.llf == pytest.approx(ll_at, abs=1e-8)
    np.testing.assert_allclose(fit.fe_params.to_numpy(), fe_at, atol=1e-6)
    np.testing.assert_allclose(fit.bse_fe.to_numpy(), ref.schur_se(fe_at, sd_fit, u_at), rtol=1e-4)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (x | g)"])
def test_beta_and_cuts_are_at_the_joint_mode(formula):
    """At the fit the gradient of h in (beta, cuts), the modes u held, is zero, and the profile
    max_u h is lower on either side of (beta, cuts)."""
    df = simulated(G=20, m=8, slope_sd=0.6)
    model = hlmext.meologit(formula, df)
    fit = model.fit(nagq=0)
    fe, theta = fit.fe_params.to_numpy(), fit.theta
    prof = ordinal_nagq0._Profile(model, theta, fe)
    assert np.max(np.abs(prof.state["grad"])) < 1e-7
    np.testing.assert_allclose(prof.fe, fe, atol=1e-8)
    for i in range(fe.size):
        for sign in (1, -1):
            e = np.zeros(fe.size)
            e[i] = sign * 1e-3
            ll = model._kernel(fe + e, theta, 1, False)
            assert prof._state(fe + e, ll)["h"] < prof.h


def test_theta_gradient_matches_differences_of_the_objective():
    df = simulated(G=20, m=8)
    model = hlmext.meologit("y ~ x + (x | g)", df)
    obj = ordinal_nagq0._ThetaObjective(model, model.null_fit()[0])
    theta = np.array([0.8, 0.2, 0.4])
    g = obj.grad(theta)
    num = np.empty(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-5
        num[i] = (obj.value(theta + e) - obj.value(theta - e)) / 2e-5
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)


def test_near_the_laplace_fit_on_wine():
    wine = hlmext.datasets.load("wine")
    model = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine)
    fast, lap = model.fit(nagq=0), model.fit(nagq=1)
    assert fast.nagq == 0 and "nagq=0" in fast.method
    assert lap.llf - 0.05 < fast.llf < lap.llf    # the Laplace maximum is higher, by 0.03
    assert np.all(np.abs(fast.params - lap.params) < 0.25 * lap.bse)
    assert np.all(fast.cuts.diff().dropna() > 0)


def test_refused_with_sampling_weights():
    df = simulated().assign(w=1.5, wg=2.0)
    weighted = hlmext.meologit("y ~ x + (1 | g)", df, pweights={"obs": "w", "g": "wg"})
    with pytest.raises(ModelError, match="nagq=0 .* sampling weights"):
        weighted.fit(nagq=0)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_nested_levels_match_an_independent_numpy_computation(link):
    """Pupils in classes in schools: at the fit's sd's the joint mode, its Laplace value and the
    Schur complement's SEs from the definitions; moving either sd lowers that Laplace value."""
    df = nested_data().query("school <= 12")
    fit = (hlmext.meologit if link == "logit" else hlmext.meoprobit)(NESTED, df).fit(nagq=0)
    ref = Reference(df, link, ("x", "z"), ("school", ("school", "class")))
    sd = fit.params[["sd(Intercept)[school]", "sd(Intercept)[school:class]"]].to_numpy()
    ll, fe, u = ref.laplace(sd)
    assert fit.converged
    assert fit.llf == pytest.approx(ll, abs=1e-6)
    np.testing.assert_allclose(fit.fe_params.to_numpy(), fe, atol=1e-6)
    np.testing.assert_allclose(fit.bse_fe.to_numpy(), ref.schur_se(fe, sd, u), rtol=1e-4)
    for i in range(2):
        for sign in (1, -1):
            e = np.zeros(2)
            e[i] = sign * 1e-2
            assert ref.laplace(sd + e)[0] < ll


def test_nested_theta_gradient_matches_differences():
    df = nested_data()
    model = hlmext.meologit("y ~ x + z + (x | school) + (1 | school:class)", df)
    obj = ordinal_nagq0._ThetaObjective(model, model.null_fit()[0])
    theta = np.array([0.7, 0.1, 0.3, 0.5])
    g = obj.grad(theta)
    num = np.empty(theta.size)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = 1e-5
        num[i] = (obj.value(theta + e) - obj.value(theta - e)) / 2e-5
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)


def test_code_emission_writes_the_laplace_fit_with_a_note():
    wine = hlmext.datasets.load("wine")
    fast = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=0)
    stata, clmm = fast.to_stata(), fast.to_lme4()
    assert "intmethod(laplace)" in stata and "intpoints" not in stata and "no Stata equivalent" in stata
    assert "nAGQ" not in clmm.splitlines()[0] and "clmm has no nAGQ = 0" in clmm
