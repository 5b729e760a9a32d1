"""Profile-likelihood intervals of meologit / meoprobit fits.

Each end of an interval is checked against a direct profile computed here: the
log-likelihood maximized over all the other parameters (BFGS in this file's own
coordinates: the cut points as the first one and the logs of the gaps, the sd on the log
scale) with the profiled parameter held at the end, where the deviance must have risen by
the chi2(1) quantile.
"""
import numpy as np
import pytest
from scipy import optimize, stats

import hlmext
from hlmext.exceptions import ModelError

FORMULA = "rating ~ temp + contact + (1 | judge)"
CHI2 = stats.chi2.ppf(0.95, 1)


@pytest.fixture(scope="module")
def wine():
    return hlmext.datasets.load("wine")


def direct_profile_deviance(res, name, value):
    """-2 max loglik with parameter ``name`` held at ``value`` (the fit's own likelihood), over the
    other parameters as they are (the sd on the log scale; disordered cut points are walls)."""
    model = res.model
    i = list(res.params.index).index(name)
    kb, kc = model.k_beta, model.k_cut

    def deviance(z):
        params = np.insert(z, i, value)
        params[-1] = np.exp(params[-1]) if i != params.size - 1 else params[-1]
        if not np.all(np.diff(params[kb:kb + kc]) > 0):
            return 1e10
        theta = model.theta_from_report(params[kb + kc:])
        return -2 * model.loglike_theta(params[:kb + kc], theta, res.nagq)

    start = np.asarray(res.params, float).copy()
    if kb <= i < kb + kc:                        # a held cut point: the others shifted with it
        start[kb:kb + kc] += value - start[i]
    if i != start.size - 1:
        start[-1] = np.log(start[-1])
    z0 = np.delete(start, i)
    best = optimize.minimize(deviance, z0, method="BFGS", options={"gtol": 1e-7})
    again = optimize.minimize(deviance, best.x, method="Nelder-Mead",
                              options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20000})
    return min(best.fun, again.fun)


@pytest.mark.parametrize("link,nagq,names", [("logit", 1, ["temp[T.warm]", "/cut2", "sd(Intercept)[judge]"]),
                                             ("probit", 5, ["contact[T.yes]", "/cut4"])])
def test_limits_are_where_the_direct_profile_reaches_the_chi2_quantile(wine, link, nagq, names):
    build = hlmext.meologit if link == "logit" else hlmext.meoprobit
    res = build(FORMULA, wine).fit(nagq=nagq)
    ci = res.profile_ci(cols=names)
    for name in names:
        for end in ci.loc[name]:
            assert direct_profile_deviance(res, name, end) - (-2 * res.llf) == pytest.approx(CHI2, abs=2e-3)
        wald = res.conf_int(cols=[name]).loc[name]
        assert ci.loc[name, "lower"] < res.params[name] < ci.loc[name, "upper"]
        assert abs(ci.loc[name, "lower"] - wald.iloc[0]) < 0.5 * (wald.iloc[1] - wald.iloc[0])


def test_conf_int_method_profile(wine):
    res = hlmext.meologit(FORMULA, wine).fit(nagq=1)
    ci = res.conf_int(method="profile", cols=["/cut1"])
    assert list(ci.index) == list(res.params.index)
    assert np.isnan(ci.loc["temp[T.warm]"]).all() and np.isfinite(ci.loc["/cut1"]).all()
    with pytest.raises(ValueError, match="no REML criterion"):
        res.profile_ci(criterion="reml")
