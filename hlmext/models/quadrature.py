"""The product Gauss-Hermite rule of adaptive quadrature (the GLMM kernels' nodes and weights) and its limits."""
from __future__ import annotations

import numpy as np

MAX_NODES = 5000
MAX_NAGQ = 370      # numpy's Gauss-Hermite weights (the smallest ~ exp(-2 nagq)) underflow beyond this order


def gauss_hermite_rule(nagq, q):
    """Product Gauss-Hermite rule in q dimensions, as the kernels use it.

    Returns
    -------
    nodes : ndarray (nagq**q, q)
    logw : ndarray (nagq**q,)
        ``sum_d log w_{k_d} + |x_k|^2 - q/2 log(pi)``, so that for a standard normal
        density phi, ``int f(u) phi(u) du ~ sum_k exp(logw_k) f(sqrt(2) x_k) exp(-|x_k|^2)``.

    Examples
    --------
    >>> nodes, logw = gauss_hermite_rule(3, 2)
    >>> nodes.shape, round(float(np.exp(logw - (nodes ** 2).sum(1)).sum()), 12)
    ((9, 2), 1.0)
    """
    x, w = np.polynomial.hermite.hermgauss(int(nagq)) if nagq > 1 else (np.zeros(1), np.full(1, np.sqrt(np.pi)))
    grid = np.array(np.meshgrid(*[np.arange(len(x))] * q, indexing="ij")).reshape(q, -1).T
    nodes = np.ascontiguousarray(x[grid])
    logw = np.log(w)[grid].sum(axis=1) + (nodes ** 2).sum(axis=1) - 0.5 * q * np.log(np.pi)
    return nodes, np.ascontiguousarray(logw)
