"""meologit / meoprobit fit(nagq=0): (beta, cuts) at the joint mode with the random effects, theta on
the Laplace likelihood there (lme4's nAGQ = 0; ordinal::clmm has no such estimator, so the reference is
an independent NumPy computation: the joint mode by scipy, the Laplace value at it, theta by scipy)."""
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import hlmext
from hlmext.exceptions import ModelError

CDF = {"logit": (special.expit, lambda x: special.expit(x) * special.expit(-x)), "probit": (stats.norm.cdf,
                                                                                          stats.norm.pdf)}


def simulated(seed=3, G=12, m=7, link="logit", slope_sd=0.0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    noise = rng.logistic(size=G * m) if link == "logit" else rng.normal(size=G * m)
    b = rng.normal(size=(G, 2)) * (0.9, slope_sd)
    lat = 0.8 * x + b[g, 0] + b[g, 1] * x + noise
    return pd.DataFrame({"y": np.digitize(lat, [-0.8, 0.7]) + 1, "x": x, "g": g})


class Reference:
    """The nAGQ = 0 estimator of ``y ~ x + (1 | g)`` from the definitions: theta = sd of the intercept."""

    def __init__(self, df, link):
        self.F, self.f = CDF[link]
        self.y, self.x = df["y"].to_numpy() - 1, df["x"].to_numpy(float)
        self.g = pd.factorize(df["g"])[0]
        self.G, self.K = self.g.max() + 1, self.y.max() + 1

    def rows(self, beta, cuts, eta_re):
        """Every row's log-likelihood and its derivative in eta."""
        c = np.concatenate([[-np.inf], cuts, [np.inf]])
        eta = self.x * beta + eta_re
        A, B = c[self.y + 1] - eta, c[self.y] - eta
        D = self.F(A) - self.F(B)
        fa, fb = np.where(np.isfinite(A), self.f(np.where(np.isfinite(A), A, 0)), 0.0), \
            np.where(np.isfinite(B), self.f(np.where(np.isfinite(B), B, 0)), 0.0)
        return np.log(D), -(fa - fb) / D, fa / D, -fb / D

    def h(self, z, sd):
        """-h(beta, cuts, u) and its gradient; z = (beta, cut1, log gap, u)."""
        with np.errstate(all="ignore"):           # the line search's trial points may leave the data's range
            return self._h(z, sd)

    def _h(self, z, sd):
        beta, cuts, u = z[0], z[1] + np.concatenate([[0.0], np.cumsum(np.exp(z[2:self.K]))]), z[self.K:]
        ll, score, la, lb = self.rows(beta, cuts, sd * u[self.g])
        ea = np.bincount(self.y[self.y < self.K - 1], la[self.y < self.K - 1], minlength=self.K - 1)
        eb = np.bincount(self.y[self.y > 0] - 1, lb[self.y > 0], minlength=self.K - 1)
        dcut = ea + eb
        dgap = np.exp(z[2:self.K]) * np.cumsum(dcut[::-1])[::-1][1:]
        gu = sd * np.bincount(self.g, score, minlength=self.G) - u
        grad = np.concatenate([[np.sum(score * self.x), dcut.sum()], dgap, gu])
        return -(ll.sum() - 0.5 * u @ u), -grad

    def mode(self, sd):
        z0 = np.concatenate([[0.0, -0.5, 0.0], np.zeros(self.G)])
        res = optimize.minimize(self.h, z0, args=(sd,), jac=True, method="BFGS", options={"gtol": 1e-11})
        return res.x

    def laplace(self, sd):
        """Laplace log-likelihood at the joint mode; the mode."""
        z = self.mode(sd)
        beta, cuts, u = z[0], z[1] + np.concatenate([[0.0], np.cumsum(np.exp(z[2:self.K]))]), z[self.K:]
        e = 1e-5                                  # w = -d score / d eta by central differences
        w = -(self.rows(beta, cuts, sd * u[self.g] + e)[1] - self.rows(beta, cuts, sd * u[self.g] - e)[1]) / (2 * e)
        logdet = np.sum(np.log1p(sd ** 2 * np.bincount(self.g, w, minlength=self.G)))
        return -self.h(z, sd)[0] - 0.5 * logdet, np.concatenate([[beta], cuts]), u

    def fit(self):
        res = optimize.minimize_scalar(lambda s: -self.laplace(s)[0], bounds=(0.05, 4.0), method="bounded",
                                       options={"xatol": 1e-9})
        ll, fe, u = self.laplace(res.x)
        return ll, fe, res.x, u

    def schur_se(self, fe, sd, u):
        """sqrt diag of the inverse Schur complement of -Hessian of h in (beta, cuts, u), by differences."""
        def grad(v):                              # gradient in (beta, cuts, u)
            cuts = v[1:self.K]
            ll, score, la, lb = self.rows(v[0], cuts, sd * v[self.K:][self.g])
            dc = (np.bincount(self.y[self.y < self.K - 1], la[self.y < self.K - 1], minlength=self.K - 1)
                  + np.bincount(self.y[self.y > 0] - 1, lb[self.y > 0], minlength=self.K - 1))
            return np.concatenate([[np.sum(score * self.x)], dc,
                                   sd * np.bincount(self.g, score, minlength=self.G) - v[self.K:]])
        v = np.concatenate([fe, u])
        N = np.empty((v.size, v.size))
        for i in range(v.size):
            e = np.zeros(v.size)
            e[i] = 1e-6
            N[i] = -(grad(v + e) - grad(v - e)) / 2e-6
        N = 0.5 * (N + N.T)
        p = self.K
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
    assert float(fit.params.iloc[-1]) == pytest.approx(sd, abs=1e-4)        # scipy's sd to ~1e-5
    ll_at, fe_at, _ = ref.laplace(float(fit.params.iloc[-1]))                # at the same sd: to 1e-6
    assert fit.llf == pytest.approx(ll_at, abs=1e-8)
    np.testing.assert_allclose(fit.fe_params.to_numpy(), fe_at, atol=1e-6)
    np.testing.assert_allclose(fit.bse_fe.to_numpy(), ref.schur_se(fit.fe_params.to_numpy(), sd,
                                                                   ref.mode(sd)[ref.K:]), rtol=1e-4)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (x | g)"])
def test_beta_and_cuts_are_at_the_joint_mode(formula):
    """At the fit the gradient of h in (beta, cuts), the modes u held, is zero, and the Laplace
    gradient in theta (beta and cuts moving with theta) is zero too."""
    from hlmext.models import ordinal_nagq0
    df = simulated(G=20, m=8, slope_sd=0.6)
    model = hlmext.meologit(formula, df)
    fit = model.fit(nagq=0)
    fe, theta = fit.fe_params.to_numpy(), fit.theta
    prof = ordinal_nagq0._Profile(model, theta, fe)
    assert np.max(np.abs(prof.state["grad"])) < 1e-7
    np.testing.assert_allclose(prof.fe, fe, atol=1e-8)
    for i in range(fe.size):                      # and the profile max_u h is lower on either side
        for sign in (1, -1):
            e = np.zeros(fe.size)
            e[i] = sign * 1e-3
            ll = model._kernel(fe + e, theta, 1, False)
            assert prof._state(ll)["h"] < prof.h


def test_theta_gradient_matches_differences_of_the_objective():
    from hlmext.models import ordinal_nagq0
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


def test_refused_with_sampling_weights_and_nested_levels():
    df = simulated().assign(w=1.5, wg=2.0, h=lambda d: d["g"] // 3)
    weighted = hlmext.meologit("y ~ x + (1 | g)", df, pweights={"obs": "w", "g": "wg"})
    with pytest.raises(ModelError, match="nagq=0 .* sampling weights"):
        weighted.fit(nagq=0)
    with pytest.raises(ModelError, match="nagq=0 .* one level"):
        hlmext.meologit("y ~ x + (1 | h/g)", df).fit(nagq=0)


def test_code_emission_writes_the_laplace_fit_with_a_note():
    wine = hlmext.datasets.load("wine")
    fast = hlmext.meologit("rating ~ temp + contact + (1 | judge)", wine).fit(nagq=0)
    stata, clmm = fast.to_stata(), fast.to_lme4()
    assert "intmethod(laplace)" in stata and "intpoints" not in stata and "no Stata equivalent" in stata
    assert "nAGQ" not in clmm.splitlines()[0] and "clmm has no nAGQ = 0" in clmm
