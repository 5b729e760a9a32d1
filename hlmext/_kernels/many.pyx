# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Many responses, one design: a random-intercept model fitted to every column of ``Y``.

With one grouping factor and a random intercept, cluster k has ``n_k`` rows, the sums
``a_k = X_k'1`` of its fixed-effects rows and, for a response column, ``s_k = 1'y_k``.
With ``s = theta^2`` and ``w_k = s / (1 + s n_k)`` the penalized system of
``hlmext.models.linear`` reduces to

    A(s) = X'X - sum_k w_k a_k a_k',   b(s) = X'y - sum_k w_k a_k s_k,
    c(s) = y'y - sum_k w_k s_k^2,      beta = A^{-1} b,   prss = c - b'A^{-1} b,
    log det(Lambda'Z'Z Lambda + I) = sum_k log(1 + s n_k),   log det RX'RX = log det A,

so a column's statistics are ``s_k``, ``X'y`` and ``y'y`` and the design's are ``n_k``,
``a_k`` and ``X'X`` (downdated for the rows whose response is missing). With
``r_k = s_k - a_k'beta`` and ``w'_k = 1 / (1 + s n_k)^2`` the derivative of the profiled
criterion is

    dD/ds = sum_k n_k / (1 + s n_k) - [REML] sum_k w'_k a_k'A^{-1}a_k - dof sum_k w'_k r_k^2 / prss,

(the last term by the envelope theorem), and its root is found by bracketing and
Brent's method; ``dD/ds >= 0`` at ``s = 0`` is a boundary optimum. At the optimum the
kernel also returns the Hessian of the criterion in ``(theta, sigma)`` and the diagonals
of ``A^{-1}`` and ``A^{-1} A_s A^{-1}`` that the Satterthwaite df need
(``hlmext.models.many``). Columns run in parallel (OpenMP, without the GIL); each
thread owns its buffers.
"""
from cython.parallel cimport prange, parallel
from libc.math cimport log, sqrt, fabs, isfinite, NAN, copysign
from libc.stdlib cimport malloc, free

from hlmext._kernels.helpers cimport index_t, chol_ld
import numpy as np
from hlmext._kernels import boundary as _bd

cdef double LOG2PI = 1.8378770664093453
cdef double EPS = 2.220446049250313e-16

cdef enum:             # a column's status
    OK = 0
    BOUNDARY = 1      # theta = 0 is the optimum
    NO_OPTIMUM = 2    # the criterion decreases without bound in theta (residual variance -> 0)
    SINGULAR = 3      # X has not full rank on the column's rows
    TOO_FEW = 4       # no more rows than fixed effects, or at least as many groups as rows
    CONSTANT = 5      # the response takes one value on the column's rows

STATUS = {OK: "ok", BOUNDARY: "boundary", NO_OPTIMUM: "no optimum", SINGULAR: "singular X",
          TOO_FEW: "too few rows", CONSTANT: "constant response"}


cdef struct Col:
    index_t G, p
    double* nk
    double* ax
    double* xx
    double* sy
    double* xy
    double yy
    double dof
    int reml
    double* A         # p x p, lower factor after ``deriv``
    double* t         # p
    double* beta      # p
    double* r         # G: r_k = s_k - a_k'beta
    double* u         # p
    double* M         # p x p
    double* Linv      # p x p
    double ls, tr, ps, prss


cdef inline void forward(const double* L, index_t p, double* x) noexcept nogil:
    """x <- L^{-1} x (L lower, p x p, row-major)."""
    cdef index_t i, j
    cdef double s
    for i in range(p):
        s = x[i]
        for j in range(i):
            s -= L[i * p + j] * x[j]
        x[i] = s / L[i * p + i]


cdef inline void backward(const double* L, index_t p, double* x) noexcept nogil:
    """x <- L^{-T} x."""
    cdef index_t i, j
    cdef double s
    for i in range(p - 1, -1, -1):
        s = x[i]
        for j in range(i + 1, p):
            s -= L[j * p + i] * x[j]
        x[i] = s / L[i * p + i]


cdef double deriv(Col* c, double s) noexcept nogil:
    """dD/ds at ``s``; leaves the factor of A, beta, r and the parts of dD/ds in ``c``. NAN if A
    is not positive definite or prss is not positive."""
    cdef index_t G = c.G, p = c.p, k, i, j
    cdef double w, wd, n, cc = c.yy, v, syk
    cdef double* a
    for i in range(p * p):
        c.A[i] = c.xx[i]
    for i in range(p):
        c.t[i] = c.xy[i]
    c.ls = 0.0
    for k in range(G):
        n = c.nk[k]
        if n == 0.0:
            continue
        w = s / (1.0 + s * n)
        a = c.ax + k * p
        syk = c.sy[k]
        for i in range(p):
            v = w * a[i]
            for j in range(i + 1):
                c.A[i * p + j] -= v * a[j]
            c.t[i] -= v * syk
        cc -= w * syk * syk
        c.ls += n / (1.0 + s * n)
    if chol_ld(c.A, p, p) != 0:
        return NAN
    forward(c.A, p, c.t)
    v = 0.0
    for i in range(p):
        v += c.t[i] * c.t[i]
        c.beta[i] = c.t[i]
    c.prss = cc - v
    if not c.prss > 0.0:
        return NAN
    backward(c.A, p, c.beta)
    c.tr = 0.0
    c.ps = 0.0
    for k in range(G):
        n = c.nk[k]
        c.r[k] = 0.0
        if n == 0.0:
            continue
        wd = 1.0 / ((1.0 + s * n) * (1.0 + s * n))
        a = c.ax + k * p
        v = c.sy[k]
        for i in range(p):
            v -= a[i] * c.beta[i]
        c.r[k] = v
        c.ps -= wd * v * v
        if c.reml:
            for i in range(p):
                c.u[i] = a[i]
            forward(c.A, p, c.u)
            v = 0.0
            for i in range(p):
                v += c.u[i] * c.u[i]
            c.tr -= wd * v
    return c.ls + c.tr + c.dof * c.ps / c.prss


cdef double root(Col* c, double a, double b, double fa, double fb, int* ok) noexcept nogil:
    """Brent's root of dD/ds in [a, b] with fa < 0 < fb (Brent 1973, ``zeroin``)."""
    cdef double cc = a, fc = fa, d = b - a, e = b - a, tol, m, p_, q_, r_, s_
    cdef int it
    ok[0] = 1
    for it in range(300):
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            cc = a
            fc = fa
            d = b - a
            e = d
        if fabs(fc) < fabs(fb):
            a = b
            b = cc
            cc = a
            fa = fb
            fb = fc
            fc = fa
        tol = 2.0 * EPS * fabs(b) + 1e-300
        m = 0.5 * (cc - b)
        if fabs(m) <= tol or fb == 0.0:
            return b
        if fabs(e) < tol or fabs(fa) <= fabs(fb):
            d = m
            e = m
        else:
            s_ = fb / fa
            if a == cc:
                p_ = 2.0 * m * s_
                q_ = 1.0 - s_
            else:
                q_ = fa / fc
                r_ = fb / fc
                p_ = s_ * (2.0 * m * q_ * (q_ - r_) - (b - a) * (r_ - 1.0))
                q_ = (q_ - 1.0) * (r_ - 1.0) * (s_ - 1.0)
            if p_ > 0.0:
                q_ = -q_
            else:
                p_ = -p_
            if 2.0 * p_ < min(3.0 * m * q_ - fabs(tol * q_), fabs(e * q_)):
                e = d
                d = p_ / q_
            else:
                d = m
                e = m
        a = b
        fa = fb
        if fabs(d) > tol:
            b += d
        else:
            b += copysign(tol, m)
        fb = deriv(c, b)
        if not isfinite(fb):
            ok[0] = 0
            return b
    ok[0] = 0
    return b


cdef int fit_column(Col* c, double s_start, double* s_out) noexcept nogil:
    """Minimize the criterion over s >= 0: the status, the optimum in ``s_out``; ``c`` holds the
    factor at the optimum."""
    cdef double lo = 0.0, hi, glo, ghi, s
    cdef int ok
    glo = deriv(c, 0.0)
    if not isfinite(glo):
        return SINGULAR
    if glo >= 0.0:
        s_out[0] = 0.0
        return BOUNDARY
    hi = s_start
    while True:
        ghi = deriv(c, hi)
        if not isfinite(ghi):
            return NO_OPTIMUM
        if ghi > 0.0:
            break
        lo = hi
        glo = ghi
        hi *= 4.0
        if hi > 1e16:
            return NO_OPTIMUM
    s = root(c, lo, hi, glo, ghi, &ok)
    if not ok:
        return NO_OPTIMUM
    if deriv(c, s) != deriv(c, s) or not c.prss > 0.0:
        return NO_OPTIMUM
    s_out[0] = s
    return OK


cdef void finish(Col* c, double s, double* logdet, double* logdet_rx, double* hess, double* dinv,
                 double* qdiag) noexcept nogil:
    """At the optimum (``c`` factored at ``s``): the log determinants, the Hessian of
    D(theta, sigma) (theta-theta, theta-sigma, sigma-sigma), diag(A^{-1}) and diag(A^{-1} A_s A^{-1})."""
    cdef index_t G = c.G, p = c.p, k, i, j
    cdef double n, wd, wdd, lss = 0.0, trss = 0.0, pss = 0.0, v, sig2, fs, fss, th
    cdef double* a
    cdef double* M = c.M
    cdef double* Linv = c.Linv
    logdet[0] = 0.0
    logdet_rx[0] = 0.0
    for i in range(p):
        logdet_rx[0] += 2.0 * log(c.A[i * p + i])
        qdiag[i] = 0.0
        c.t[i] = 0.0            # v = sum_k w'_k a_k r_k
    for i in range(p * p):
        M[i] = 0.0
        Linv[i] = 0.0
    for i in range(p):
        Linv[i * p + i] = 1.0
    for i in range(p):          # column i of L^{-1}, stored as row i
        forward(c.A, p, Linv + i * p)
    for j in range(p):
        v = 0.0
        for i in range(p):
            v += Linv[j * p + i] * Linv[j * p + i]
        dinv[j] = v
    for k in range(G):
        n = c.nk[k]
        if n == 0.0:
            continue
        logdet[0] += log(1.0 + s * n)
        wd = 1.0 / ((1.0 + s * n) * (1.0 + s * n))
        wdd = -2.0 * n * wd / (1.0 + s * n)
        lss -= n * n * wd
        a = c.ax + k * p
        for i in range(p):
            c.u[i] = a[i]
            c.t[i] += wd * a[i] * c.r[k]
        forward(c.A, p, c.u)
        v = 0.0
        for i in range(p):
            v += c.u[i] * c.u[i]
            for j in range(i + 1):
                M[i * p + j] += wd * c.u[i] * c.u[j]
        trss -= wdd * v
        pss -= wdd * c.r[k] * c.r[k]
        backward(c.A, p, c.u)          # A^{-1} a_k
        for i in range(p):
            qdiag[i] -= wd * c.u[i] * c.u[i]
    v = 0.0
    for i in range(p):
        for j in range(i):
            v += 2.0 * M[i * p + j] * M[i * p + j]
        v += M[i * p + i] * M[i * p + i]
    trss -= v                           # - tr(A^{-1} A_s A^{-1} A_s)
    forward(c.A, p, c.t)
    v = 0.0
    for i in range(p):
        v += c.t[i] * c.t[i]
    pss -= 2.0 * v
    sig2 = c.prss / c.dof
    fs = c.ls + (c.tr if c.reml else 0.0)
    fss = lss + (trss if c.reml else 0.0)
    th = sqrt(s)
    hess[0] = 2.0 * (fs + c.ps / sig2) + 4.0 * s * (fss + pss / sig2)
    hess[1] = -4.0 * th * c.ps / (sig2 * sqrt(sig2))
    hess[2] = 4.0 * c.dof / sig2


def fit_many(const double[:, ::1] X, const Py_ssize_t[::1] cluster, const Py_ssize_t[::1] rows,
             const double[:, :] Y, Py_ssize_t n_groups, Py_ssize_t intercept_col, bint reml, int nthreads,
             double[:, ::1] beta, double[:, ::1] dinv, double[:, ::1] qdiag, double[:, ::1] hess,
             double[::1] theta, double[::1] sigma, double[::1] deviance, double[::1] nobs,
             double[::1] ngroups, int[::1] status):
    """Fit the random-intercept model to every column of ``Y``; outputs in the given arrays.

    ``X``: the fixed-effects rows in the design's order; ``cluster``: each row's cluster
    (0..n_groups-1); ``rows``: each row's row of ``Y``. Outputs, one entry (row) per column:
    ``beta``, ``dinv`` = diag(A^{-1}), ``qdiag`` = diag(A^{-1} A_s A^{-1}), ``hess`` (the
    Hessian of the criterion in (theta, sigma): theta-theta, theta-sigma, sigma-sigma),
    ``theta``, ``sigma``, ``deviance`` (-2 log-likelihood or the REML criterion), the rows
    and groups used and the status (``OK``, ``BOUNDARY``, ...).
    """
    cdef index_t n = X.shape[0], p = X.shape[1], G = n_groups, ncol = Y.shape[1]
    if cluster.shape[0] != n or rows.shape[0] != n:
        raise ValueError("fit_many: cluster and rows need one entry per row of X (%d)" % n)
    _bd.codes("fit_many", "cluster", np.asarray(cluster), max(G, 1))
    if n and (np.min(rows) < 0 or np.max(rows) >= Y.shape[0]):
        raise ValueError("fit_many: rows must index the %d rows of Y" % Y.shape[0])
    for name, arr, width in (("beta", beta, p), ("dinv", dinv, p), ("qdiag", qdiag, p), ("hess", hess, 3)):
        if arr.shape[0] != ncol or arr.shape[1] != width:
            raise ValueError("fit_many: %s must have shape (%d, %d)" % (name, ncol, width))
    for name, arr in (("theta", theta), ("sigma", sigma), ("deviance", deviance), ("nobs", nobs),
                      ("ngroups", ngroups), ("status", status)):
        if arr.shape[0] != ncol:
            raise ValueError("fit_many: %s must have %d entries" % (name, ncol))
    if not -1 <= intercept_col < p:
        raise ValueError("fit_many: intercept_col out of range")
    # the design's statistics over all rows (plain loops in row order: the same sums on any machine)
    cdef double[::1] nk0 = np.zeros(max(G, 1))
    cdef double[:, ::1] ax0 = np.zeros((max(G, 1), max(p, 1)))
    cdef double[:, ::1] xx0 = np.zeros((max(p, 1), max(p, 1)))
    cdef index_t j, i, k, t, u, nmiss, ng
    for i in range(n):
        k = cluster[i]
        nk0[k] += 1.0
        for t in range(p):
            ax0[k, t] += X[i, t]
            for u in range(t + 1):
                xx0[t, u] += X[i, t] * X[i, u]
    cdef double y, ybar, ymin, ymax, s, dof, ld, ldrx
    cdef int st
    cdef double* buf
    cdef Col* cp
    cdef index_t size = 3 * G + G * p + 4 * p * p + 4 * p + 8
    with nogil, parallel(num_threads=max(1, nthreads)):
        buf = <double*> malloc(size * sizeof(double))
        cp = <Col*> malloc(sizeof(Col))        # assigned here, so private to the thread
        for j in prange(ncol, schedule="dynamic", chunksize=16):
            cp.G = G
            cp.p = p
            cp.reml = reml
            cp.sy = buf
            cp.r = buf + G
            cp.xy = buf + 2 * G
            cp.A = cp.xy + p
            cp.t = cp.A + p * p
            cp.beta = cp.t + p
            cp.u = cp.beta + p
            cp.M = cp.u + p
            cp.Linv = cp.M + p * p
            # counts, mean and range of the column's observed rows
            nmiss = 0
            ybar = 0.0
            ymin = 1e308
            ymax = -1e308
            for i in range(n):
                y = Y[rows[i], j]
                if isfinite(y):
                    ybar = ybar + y
                    if y < ymin:
                        ymin = y
                    if y > ymax:
                        ymax = y
                else:
                    nmiss = nmiss + 1
            nobs[j] = n - nmiss
            ybar = ybar / (n - nmiss) if n > nmiss else 0.0
            if intercept_col < 0:
                ybar = 0.0
            if nmiss == 0:
                cp.nk = &nk0[0]
                cp.ax = &ax0[0, 0]
                cp.xx = &xx0[0, 0]
            else:                  # downdate the design's statistics for the missing rows
                cp.nk = cp.Linv + p * p
                cp.ax = cp.nk + G
                cp.xx = cp.ax + G * p
                for k in range(G):
                    cp.nk[k] = nk0[k]
                for k in range(G * p):
                    cp.ax[k] = ax0[k // p, k % p]
                for k in range(p * p):
                    cp.xx[k] = xx0[k // p, k % p]
                for i in range(n):
                    if not isfinite(Y[rows[i], j]):
                        k = cluster[i]
                        cp.nk[k] -= 1.0
                        for t in range(p):
                            cp.ax[k * p + t] -= X[i, t]
                            for u in range(t + 1):
                                cp.xx[t * p + u] -= X[i, t] * X[i, u]
            # the response's statistics (centred at its mean when X has an intercept)
            for k in range(G):
                cp.sy[k] = 0.0
            for t in range(p):
                cp.xy[t] = 0.0
            cp.yy = 0.0
            for i in range(n):
                y = Y[rows[i], j]
                if isfinite(y):
                    y = y - ybar
                    cp.sy[cluster[i]] = cp.sy[cluster[i]] + y
                    cp.yy = cp.yy + y * y
                    for t in range(p):
                        cp.xy[t] = cp.xy[t] + X[i, t] * y
            ng = 0
            for k in range(G):
                if cp.nk[k] > 0.0:
                    ng = ng + 1
            ngroups[j] = ng
            dof = (n - nmiss - p) if reml else (n - nmiss)
            cp.dof = dof
            theta[j] = NAN
            sigma[j] = NAN
            deviance[j] = NAN
            for t in range(p):
                beta[j, t] = NAN
                dinv[j, t] = NAN
                qdiag[j, t] = NAN
            for t in range(3):
                hess[j, t] = NAN
            if n - nmiss <= p or ng >= n - nmiss:
                status[j] = TOO_FEW
                continue
            if not ymax > ymin:
                status[j] = CONSTANT
                continue
            s = 0.0
            st = fit_column(cp, 1.0, &s)
            status[j] = st
            if st != OK and st != BOUNDARY:
                continue
            if st == BOUNDARY:
                deriv(cp, 0.0)
            finish(cp, s, &ld, &ldrx, &hess[j, 0], &dinv[j, 0], &qdiag[j, 0])
            for t in range(p):
                beta[j, t] = cp.beta[t]
            if intercept_col >= 0:
                beta[j, intercept_col] += ybar
            theta[j] = sqrt(s)
            sigma[j] = sqrt(cp.prss / dof)
            if reml:
                deviance[j] = ld + ldrx + dof * (1.0 + LOG2PI + log(cp.prss / dof))
            else:
                deviance[j] = ld + dof * (1.0 + LOG2PI + log(cp.prss / dof))
        free(buf)
        free(cp)
