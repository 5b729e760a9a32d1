"""The compiled kernels against their NumPy twins, on random clusters (sizes 1, 2, ragged)."""
import numpy as np
import pytest

from hlmext._kernels import core as _core, reference as _reference, row_order
from hlmext.design.layout import LevelSpec, MixedDesign


def random_design(rng, sizes_outer, inner_per_outer=None, q=(2,), p=3, crossed=None):
    """Random data with one level (sizes per group), two nested levels, or crossed levels."""
    n = int(np.sum(sizes_outer))
    outer = np.repeat(np.arange(len(sizes_outer)), sizes_outer)
    rng.shuffle(outer)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    levels = [LevelSpec("g", outer, np.column_stack([np.ones(n), rng.normal(size=(n, q[0] - 1))]),
                        [("unstructured", list(range(q[0])))], ["c%d" % i for i in range(q[0])])]
    if inner_per_outer is not None:
        inner = outer * 100 + rng.integers(0, inner_per_outer, size=n)
        z = np.column_stack([np.ones(n), rng.normal(size=(n, q[1] - 1))])
        levels.append(LevelSpec("g:h", inner, z, [("unstructured", list(range(q[1])))],
                                ["d%d" % i for i in range(q[1])]))
    for j, (n_groups, qc) in enumerate(crossed or []):
        z = np.column_stack([np.ones(n), rng.normal(size=(n, qc - 1))])
        levels.append(LevelSpec("c%d" % j, rng.integers(0, n_groups, size=n), z,
                                [("unstructured", list(range(qc)))], ["e%d" % i for i in range(qc)]))
    return MixedDesign(y, X, ["x%d" % i for i in range(p)], levels)


def random_lams(rng, design):
    out = []
    for lv in design.levels:
        lam = np.tril(rng.normal(size=(lv.q, lv.q)))
        lam[np.diag_indices(lv.q)] = np.abs(lam[np.diag_indices(lv.q)]) + 0.1
        out.append(lam)
    return out


def core_parts(d, lams):
    stats = np.zeros(d.stat_size)
    _core.cross_products(d.W, d.zoff, d.level_first, d.row_start, d.row_end, d.stat_off, 0, stats)
    xy = d.W[:, d.zoff[-1]:]
    G0 = np.ascontiguousarray(xy.T @ xy).ravel()
    lam_off = np.concatenate([[0], np.cumsum([lv.q ** 2 for lv in d.levels])[:-1]]).astype(np.intp)
    work, G = np.empty(d.stat_size), np.empty(G0.size)
    logdet, info = _core.factorize(stats, G0, np.concatenate([l.ravel() for l in lams]), lam_off, d.zoff, d.m,
                                   d.level_first, d.stat_off, d.parent, d.dense_q, d.dense_groups, work, G)
    assert info == 0
    p = d.k_fe
    L = np.tril(G.reshape(p + 1, p + 1))
    beta = np.linalg.solve(L[:p, :p].T, L[p, :p])
    u = np.empty(d.n_u)
    _core.solve_modes(work, G, beta, d.zoff, d.m, d.level_first, d.stat_off, d.parent, d.u_off, u)
    return stats, logdet, 2 * np.log(np.diag(L[:p, :p])).sum(), L[p, p] ** 2, beta, u


CASES = {
    "size-1 groups": dict(sizes_outer=[1] * 12, q=(1,)),
    "size-2 groups": dict(sizes_outer=[2] * 10),
    "ragged": dict(sizes_outer=[1, 2, 7, 3, 1, 15, 4]),
    "nested": dict(sizes_outer=[5, 9, 1, 12, 6], inner_per_outer=3, q=(2, 1)),
    "nested slopes": dict(sizes_outer=[8, 9, 3, 12, 6, 2], inner_per_outer=2, q=(1, 2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cross_products_match_twin(case):
    rng = np.random.default_rng(1)
    d = random_design(rng, **CASES[case])
    stats = core_parts(d, random_lams(rng, d))[0]
    twin = _reference.cross_products(d.W, d.zoff, d.level_first, d.row_start, d.row_end)
    got = [stats[d.stat_off[k]:d.stat_off[k] + t.size].reshape(t.shape) for k, t in enumerate(twin)]
    for a, b in zip(got, twin):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_factorization_matches_dense_twin(case):
    rng = np.random.default_rng(2)
    d = random_design(rng, **CASES[case])
    lams = random_lams(rng, d)
    _, logdet, logdet_rx, prss, beta, u = core_parts(d, lams)
    r_logdet, r_logdet_rx, r_prss, r_beta, r_u = _reference.deviance_parts(d, lams)
    np.testing.assert_allclose(logdet, r_logdet, rtol=1e-10)
    np.testing.assert_allclose(logdet_rx, r_logdet_rx, rtol=1e-10)
    np.testing.assert_allclose(prss, r_prss, rtol=1e-10)
    np.testing.assert_allclose(beta, r_beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(u, r_u, rtol=1e-8, atol=1e-10)


CROSSED = {
    "crossed intercepts": dict(sizes_outer=[12] * 15, q=(1,), crossed=[(6, 1)]),
    "crossed slopes": dict(sizes_outer=[3, 9, 1, 12, 6, 2, 7], q=(2,), crossed=[(5, 2), (3, 1)]),
}


@pytest.mark.parametrize("case", list(CROSSED))
def test_crossed_factorization_matches_dense_twin(case):
    """Crossed levels go through the model's factorization (kernels plus the dense block)."""
    from hlmext.public import LinearMixed
    rng = np.random.default_rng(4)
    d = random_design(rng, **CROSSED[case])
    assert d.qd > 0
    model = LinearMixed(design=d)
    theta = rng.uniform(0.2, 1.5, size=model.k_re)
    f = model.factorize(theta)
    r_logdet, r_logdet_rx, r_prss, r_beta, r_u = _reference.deviance_parts(d, model.lams(theta))
    r_beta[d.intercept_col] += d.y_shift          # the design centres y when X has an intercept
    np.testing.assert_allclose(f.logdet, r_logdet, rtol=1e-10)
    np.testing.assert_allclose(f.logdet_rx, r_logdet_rx, rtol=1e-10)
    np.testing.assert_allclose(f.prss, r_prss, rtol=1e-10)
    np.testing.assert_allclose(f.beta, r_beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(f.modes(model), r_u, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("sizes", [[1] * 9, [2] * 6, [1, 2, 7, 3, 1, 15, 4, 0]])
def test_counting_order_matches_twin(sizes):
    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(codes)
    order, rank = np.empty(len(codes), np.intp), np.empty(len(codes), np.intp)
    row_order.counting_order(codes, np.bincount(codes, minlength=len(sizes)), order, rank)
    twin_order, twin_rank = _reference.counting_order(codes)
    np.testing.assert_array_equal(order, twin_order)
    np.testing.assert_array_equal(rank, twin_rank)


def test_scatter_rows_matches_twin():
    rng = np.random.default_rng(6)
    src = rng.normal(size=(11, 3))
    rank = rng.permutation(11)
    for layout in (src, np.asfortranarray(src), src[:, 1:2]):
        W, expect = np.zeros((11, 5)), np.zeros((11, 5))
        assert row_order.scatter_rows(layout, rank, W, 1) == _reference.scatter_rows(layout, rank, expect, 1) == 0
        np.testing.assert_array_equal(W, expect)
    src[[2, 7], [0, 2]] = [np.nan, -np.inf]
    assert row_order.scatter_rows(src, rank, np.zeros((11, 3)), 0) == 2
    assert _reference.scatter_rows(src, rank, np.zeros((11, 3)), 0) == 2


@pytest.mark.parametrize("nested", [False, True])
def test_design_row_order_is_a_stable_lexsort(nested):
    """Rows sorted by the chain's groups (outermost first), ties in their original order."""
    rng = np.random.default_rng(7)
    n = 60
    outer = rng.integers(0, 5, size=n) * 10 + 3
    inner = outer * 100 + rng.integers(0, 3, size=n)
    levels = [LevelSpec("g", outer, np.ones(n), [("identity", [0])], ["Intercept"])]
    if nested:
        levels.append(LevelSpec("g:h", inner, np.ones(n), [("identity", [0])], ["Intercept"]))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    d = MixedDesign(rng.normal(size=n), X, ["Intercept", "x"], levels)
    expect = np.lexsort([inner, outer]) if nested else np.argsort(outer, kind="stable")
    np.testing.assert_array_equal(d.order, expect)
    np.testing.assert_array_equal(d.W[:, -2], X[expect, 1])


def test_evaluation_cost_does_not_depend_on_rows():
    """The statistics (all an evaluation reads) have the same size for 10x the rows."""
    rng = np.random.default_rng(3)
    small = random_design(rng, [10] * 20)
    big = random_design(rng, [100] * 20)
    assert small.stat_size == big.stat_size


@pytest.mark.parametrize("structure", ["unstructured", "independent", "identity", "exchangeable"])
@pytest.mark.parametrize("reml", [False, True])
def test_analytic_gradient_matches_finite_differences(structure, reml):
    from hlmext.public import LinearMixed
    from hlmext.models.optimize import central_gradient
    rng = np.random.default_rng(6)
    n, G = 300, 25
    g = rng.integers(0, G, n)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    Z = np.column_stack([np.ones(n), X[:, 1], rng.normal(size=n)])
    y = X @ [1, 2, -1] + (rng.normal(size=(G, 3)) * [1, .5, .3])[g].sum(axis=1) * 0 + rng.normal(size=n)
    model = LinearMixed(y, X, g, Z, cov=structure)
    assert model.has_analytic_gradient()
    theta = model.theta_start() * 0.7 + 0.05
    _, grad = model.deviance_and_gradient(theta, reml)
    fd = central_gradient(lambda t: model.deviance(t, reml), theta, step=1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)
