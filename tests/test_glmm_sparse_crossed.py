"""Generalized models with crossed factors on the design's sparse coupling pattern: the Laplace
kernel's factor and selected inverse touch only the crossed columns each chain cluster meets,
and the deviance, its gradient and the modes equal those of the noted (dense) columns."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hlmext
from hlmext._kernels import glmm_nested
from hlmext.design import layout
from hlmext.models import glmm


def _crossed(seed, n_subj=30, n_item=16, seen=6, family="binomial"):
    """Subjects x items, each subject sees ``seen`` items; a slope of x on both factors."""
    rng = np.random.default_rng(seed)
    rows = [(s, i) for s in range(n_subj) for i in rng.choice(n_item, seen, replace=False)]
    df = pd.DataFrame(rows * 2, columns=["subj", "item"])
    df["x"] = rng.choice([-0.5, 0.5], size=len(df))
    bs, bi = rng.normal(size=(n_subj, 2)), rng.normal(size=(n_item, 2))
    eta = (-0.2 + 0.5 * df.x + 0.8 * bs[df.subj, 0] + 0.3 * bs[df.subj, 1] * df.x + 0.6 * bi[df.item, 0]
           + 0.4 * bi[df.item, 1] * df.x)
    df["y"] = rng.poisson(np.exp(eta)) if family == "poisson" else rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df["subj"], df["item"] = "s" + df.subj.astype(str), "i" + df.item.astype(str)
    return df


def _three_crossed(seed, n=500, family="binomial"):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.integers(0, 60, n), "b": rng.integers(0, 25, n), "c": rng.integers(0, 8, n)})
    df["x"] = rng.normal(size=n)
    eta = 0.3 * df.x + rng.normal(size=60)[df.a] + 0.7 * rng.normal(size=25)[df.b] + 0.5 * rng.normal(size=8)[df.c]
    df["y"] = rng.poisson(np.exp(eta)) if family == "poisson" else rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return df


def _probit(formula, data):
    return hlmext.meglm(formula, data, family=sm.families.Binomial(link=sm.families.links.Probit()))


FAMILIES = {"logit": hlmext.melogit, "poisson": hlmext.mepoisson, "probit": _probit}
CASES = [
    ("y ~ x + (1 + x | subj) + (1 + x | item)", _crossed),
    ("y ~ x + (1 | subj) + (1 + x | item)", _crossed),
    ("y ~ x + (1 | a) + (1 | b) + (1 | c)", _three_crossed),
    ("y ~ x + (1 | a) + (x | b) + (1 | c)", _three_crossed),
]


def _model(formula, data, family, sparse, monkeypatch):
    monkeypatch.setattr(layout, "DENSE_FILL", 1.0)       # the design's pattern, however full
    monkeypatch.setattr(glmm, "SPARSE_CROSSED", sparse)
    model = FAMILIES[family](formula, data)
    assert bool(model._pattern) == sparse
    return model


def _point(model, seed=4):
    rng = np.random.default_rng(seed)
    beta = 0.1 * rng.normal(size=model.k_fe)
    return beta, model.theta_start() * (1 + 0.4 * rng.uniform(size=model.k_re))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("formula, make", CASES)
def test_pattern_kernel_equals_noted_columns(formula, make, family, monkeypatch):
    data = make(7, family="poisson" if family == "poisson" else "binomial")
    out = []
    for sparse in (True, False):
        model = _model(formula, data, family, sparse, monkeypatch)
        beta, theta = _point(model)
        model._u[:] = 0.0
        ll, grad = model.loglike_theta(beta, theta, 1, grad=True)
        assert np.isfinite(ll)
        out.append((ll, grad, model._u.copy()))
    (ll_s, g_s, u_s), (ll_d, g_d, u_d) = out
    assert abs(ll_s - ll_d) <= 1e-10 * abs(ll_d)
    np.testing.assert_allclose(g_s, g_d, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(u_s, u_d, rtol=1e-10, atol=1e-10)


def test_pattern_gradient_equals_differences(monkeypatch):
    model = _model(*CASES[0][:1], CASES[0][1](3), "logit", True, monkeypatch)
    beta, theta = _point(model)
    x = np.concatenate([beta, theta])
    _, grad = model.loglike_theta(beta, theta, 1, grad=True)
    num = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = 1e-5
        num[i] = (model.loglike_theta(*np.split(x + e, [beta.size]), 1)
                  - model.loglike_theta(*np.split(x - e, [beta.size]), 1)) / 2e-5
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-5)


def test_pattern_fit_equals_noted_columns_fit(monkeypatch):
    data = _three_crossed(11)
    fits = [_model(CASES[2][0], data, "logit", sparse, monkeypatch).fit() for sparse in (True, False)]
    assert abs(fits[0].llf - fits[1].llf) < 1e-8
    np.testing.assert_allclose(fits[0].params, fits[1].params, rtol=1e-6, atol=1e-7)


def test_sparse_crossed_follows_the_designs_fill(monkeypatch):
    data = _crossed(5, n_subj=40, n_item=16, seen=16)          # every subject sees every item
    monkeypatch.setattr(glmm, "SPARSE_CROSSED", True)
    assert not hlmext.melogit("y ~ x + (1 | subj) + (1 | item)", data)._pattern
    thin = _crossed(5, n_subj=40, n_item=200, seen=4)
    assert hlmext.melogit("y ~ x + (1 | subj) + (1 | item)", thin)._pattern


def test_pattern_missing_a_rows_column_is_refused(monkeypatch):
    model = _model(CASES[2][0], _three_crossed(2), "logit", True, monkeypatch)
    ptr, cols = model._pattern["pptr"], model._pattern["pcols"]
    t = model._tree
    glmm_nested.check_pattern(ptr, cols, model._top, model._cl, t["level_first"], t["zoff"])
    k = int(np.argmax(np.diff(ptr)))                          # drop one column of one cluster
    keep = np.ones(len(cols), bool)
    keep[ptr[k]] = False
    short = np.ascontiguousarray(cols[keep])
    ptr2 = ptr.copy()
    ptr2[k + 1:] -= 1
    with pytest.raises(ValueError, match="every crossed column"):
        glmm_nested.check_pattern(ptr2, short, model._top, model._cl, t["level_first"], t["zoff"])
    with pytest.raises(ValueError, match="pcols must be columns"):
        bad = cols.copy()
        bad[0] = 10 ** 6
        glmm_nested.check_pattern(ptr, bad, model._top, model._cl, t["level_first"], t["zoff"])
