"""Hostile arguments to the compiled kernels end in a Python exception naming the argument.

Each call runs in a subprocess: before the checks these calls crashed the interpreter."""
import subprocess
import sys

import pytest

PRE = ("import numpy as np\nfrom hlmext._kernels import core as _core, gradient as _gradient, glmm as _glmm, row_order\n"
       "I = lambda a: np.array(a, dtype=np.intp)\n"
       "W = np.ones((10, 3))\n"
       "def factorize(stat_off=I([0, 3]), parent=I([-1, -1]), stats=np.ones(6)):\n"
       "    return _core.factorize(stats, np.eye(2).ravel(), np.ones(1), I([0]), I([0, 1]), 3, I([0, 2]), stat_off,\n"
       "                           parent, I([]), I([]), np.zeros(6), np.zeros(4))\n"
       "def rows(row_end=I([5, 10]), stat_off=I([0, 3]), stats=np.zeros(6)):\n"
       "    return _core.cross_products(W, I([0, 1]), I([0, 2]), I([0, 5]), row_end, stat_off, 0, stats)\n")

CASES = {
    "row_end": ("rows(row_end=I([5, 10 ** 7]))", "cross_products: cluster 1 has rows 5:10000000, outside the 10 rows"),
    "stat_off": ("rows(stat_off=I([0, 10 ** 8]))", r"cross_products: stat_off\[1\] = 100000000"),
    "short stats": ("rows(stats=np.zeros(2))", r"cross_products: stat_off\[0\] = 0 .* outside stats \(2 values\)"),
    "parent": ("factorize(parent=I([5, 10 ** 6]))", r"factorize: parent\[0\] = 5 is not a cluster of an outer level"),
    "parent length": ("factorize(parent=I([-1]))", "factorize: parent must have one entry per cluster"),
    "factor offsets": ("factorize(stat_off=I([0, 10 ** 7]))", r"factorize: stat_off\[1\] = 10000000"),
    "codes": ("row_order.counting_order(I([0, 7, 1]), I([1, 1, 1]), np.zeros(3, np.intp), np.zeros(3, np.intp))",
              "counting_order: codes must hold codes in 0..2, found 7"),
    "rank": ("row_order.scatter_rows(np.ones((3, 2)), I([0, 9, 1]), np.zeros((3, 2)), 0)",
             "scatter_rows: rank must hold codes in 0..2, found 9"),
    "level_first": ("_gradient.scratch_size(I([0, 1]), I([0, -5]), 0)", "scratch_size: level_first must have"),
    "glmm rows": ("n = 4; r = np.zeros(n)\n_glmm.cluster_loglik(0, np.ones((n, 1)), r, np.ones(n), r.copy(), I([0]), "
                  "I([10 ** 6]), np.ones((1, 1)), np.zeros((1, 1)), np.zeros(1), np.zeros((1, 1)), np.zeros(1), "
                  "np.zeros((1, 1, 1)), np.zeros((n, 1)), r.copy(), r.copy(), r.copy(), r.copy(), np.zeros((1, 1)), "
                  "np.zeros(1), np.zeros((1, 1)), np.zeros((n, 1)), r.copy(), np.zeros((1, 1)), False)",
                  "cluster_loglik: cluster 0 has rows 0:1000000, outside the 4 rows"),
    "dtype": ("rows(stat_off=np.array([0, 3], dtype=np.int32))", "Buffer dtype mismatch"),
    "contiguity": ("_core.cross_products(np.ones((10, 6))[:, ::2], I([0, 1]), I([0, 2]), I([0, 5]), I([5, 10]), "
                   "I([0, 3]), 0, np.zeros(6))", "not C-contiguous"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_kernel_call_raises(name):
    import re
    code, message = CASES[name]
    out = subprocess.run([sys.executable, "-c", PRE + code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, "crashed (%d): %s" % (out.returncode, out.stderr[-300:])
    assert "ValueError" in out.stderr and re.search(message, out.stderr), out.stderr[-400:]


def test_valid_call_still_works():
    out = subprocess.run([sys.executable, "-c", PRE + "print(factorize())"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
