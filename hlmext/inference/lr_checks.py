"""Is a likelihood-ratio test of two fitted models meaningful? ``check_nested(small, big)``
raises ``ModelError`` naming the reason when it is not.

An LR test compares two models of the same response on the same rows, the smaller one a
special case of the bigger: its fixed-effects columns span a subspace of the bigger one's
(checked by least squares on the rows, or from the chunked fits' cross-products ``X'X``,
``X'y``, ``y'y``), and each of its levels of random effects, with its random-effects
columns, is in the bigger model too. REML likelihoods are comparable only with the same
fixed-effects design. What the fits do not keep (chunked fits keep no rows) is compared as
far as their statistics allow.
"""
from __future__ import annotations

import numpy as np

from ..exceptions import ModelError

#: relative tolerance of the numerical comparisons (sums over rows agree to about 1e-12)
RTOL = 1e-8


def check_nested(small, big):
    """Raise ``ModelError`` unless ``big`` nests ``small`` (results of the same kind of model).

    Examples
    --------
    >>> import hlmext
    >>> from hlmext.inference.lr_checks import check_nested
    >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
    >>> a = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    >>> b = hlmext.mixedlm("lrt ~ gcse + (1 | school)", df).fit(reml=False)
    >>> check_nested(a, b)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hlmext.exceptions.ModelError: the models have different responses ('gcse' and 'lrt'): ...
    """
    ms, mb = small.model, big.model
    if not (isinstance(ms, type(mb)) or isinstance(mb, type(ms))):    # a residual structure's subclass compares
        raise ModelError("the models are of different kinds (%s and %s): an LR test compares two models of the "
                         "same family fitted to the same response" % (type(ms).__name__, type(mb).__name__))
    if getattr(small, "nagq", None) != getattr(big, "nagq", None):
        raise ModelError("the models were fitted with different quadrature (nagq=%s and nagq=%s), so their "
                         "log-likelihoods are not comparable; refit both with the same nagq"
                         % (small.nagq, big.nagq))
    ds, db = ms.design, mb.design
    rows = getattr(ds, "has_rows", True) and getattr(db, "has_rows", True)
    if rows:
        _check_rows(ms, mb)
        _check_response(ms, mb)
        xs, xb = _original(ds, ds.exog), _original(db, db.exog)
        _check_fixed(ms.exog_names, mb.exog_names, _outside(xs, xb), small.reml, _outside(xb, xs))
    else:
        _check_statistics(ms, mb, small.reml)
    _check_random(ms, mb, rows)


# --------------------------------------------------------------------------- rows and response

def _original(design, sorted_values):
    """Values of the design's sorted rows back in the order of its input rows."""
    out = np.empty_like(sorted_values)
    out[np.asarray(design.order)] = sorted_values
    return out


def _check_rows(ms, mb):
    labels = [getattr(getattr(m, "frame", None), "row_labels", None) for m in (ms, mb)]
    if all(lab is not None and len(lab) == m.design.nobs for lab, m in zip(labels, (ms, mb))):
        if not labels[0].equals(labels[1]):
            only = labels[0].difference(labels[1]).union(labels[1].difference(labels[0]))
            raise ModelError("the models were fitted to different rows (e.g. row %r is used by one only); an LR "
                             "test needs the same rows: drop the rows with missing values in any variable of "
                             "either model before fitting both" % (only[0] if len(only) else labels[0][0],))
    ws, wb = (getattr(m.design, "weights", None) for m in (ms, mb))
    if (ws is None) != (wb is None) or (ws is not None and not np.array_equal(_original(ms.design, ws),
                                                                               _original(mb.design, wb))):
        raise ModelError("the models have different frequency weights: an LR test needs the same weighted rows")


def _check_response(ms, mb):
    ys, yb = _original(ms.design, ms.design.endog), _original(mb.design, mb.design.endog)
    differ = ~_close(ys, yb)
    if differ.any():
        _different_response(ms, mb, "in %d of the %d rows (e.g. %g and %g)"
                            % (differ.sum(), len(ys), ys[differ][0], yb[differ][0]))
    for role in ("trials", "offset"):
        a, b = getattr(ms, role, None), getattr(mb, role, None)
        if a is not None and not np.all(_close(_original(ms.design, a), _original(mb.design, b))):
            raise ModelError("the models have different %s: an LR test compares models of the same response "
                             "with the same %s" % (role, role))


def _different_response(ms, mb, where):
    names = ms.design.endog_name, mb.design.endog_name
    if names[0] != names[1]:
        raise ModelError("the models have different responses (%r and %r): an LR test compares two models of "
                         "the same response" % names)
    raise ModelError("the models' responses %r differ %s: an LR test compares two models of the same response "
                     "on the same rows" % (names[0], where))


def _close(a, b):
    return np.abs(a - b) <= RTOL * np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))


# --------------------------------------------------------------------------- fixed effects

def _outside(x, span):
    """Columns of ``x`` (indices) not in the column space of ``span`` (least squares residual)."""
    if x.shape[1] == 0:
        return []
    if span.shape[1] == 0:
        return list(range(x.shape[1]))
    scale = np.sqrt(np.sum(span ** 2, axis=0))
    scale[scale == 0] = 1.0
    coef = np.linalg.lstsq(span / scale, x, rcond=None)[0]
    resid = x - (span / scale) @ coef
    norm = np.sqrt(np.sum(x ** 2, axis=0))
    return [j for j in range(x.shape[1]) if np.sqrt(np.sum(resid[:, j] ** 2)) > 1e-7 * max(norm[j], 1e-300)]


def _check_fixed(names_small, names_big, small_outside, reml, big_outside=()):
    if small_outside:
        cols = ", ".join(repr(names_small[j]) for j in small_outside)
        raise ModelError("the models are not nested: the smaller model's fixed effect(s) %s are not in the span "
                         "of the bigger model's fixed effects, so this is not a valid LR test; compare "
                         "non-nested models by AIC or BIC instead" % cols)
    if reml and big_outside:
        raise ModelError("REML likelihoods of models with different fixed effects (%s only in the bigger model) "
                         "are not comparable; refit both with reml=False"
                         % ", ".join(repr(names_big[j]) for j in big_outside))


def _check_statistics(ms, mb, reml):
    """Chunked fits: the response's sums and the fixed part's cross-products, by column name."""
    (xx_s, xy_s, yy_s), (xx_b, xy_b, yy_b) = _raw_statistics(ms), _raw_statistics(mb)
    if not _close(yy_s, yy_b):
        _different_response(ms, mb, "(their sums of squares are %.10g and %.10g)" % (yy_s, yy_b))
    ns, nb = list(ms.exog_names), list(mb.exog_names)
    missing = [j for j, name in enumerate(ns) if name not in nb]
    if missing:
        raise ModelError("the smaller model's fixed effect(s) %s are not in the bigger model (models fitted "
                         "chunk by chunk are compared by column name), so this is not a valid LR test"
                         % ", ".join(repr(ns[j]) for j in missing))
    idx = [nb.index(name) for name in ns]
    if not (np.all(_close(xx_s, xx_b[np.ix_(idx, idx)])) and np.all(_close(xy_s, xy_b[idx]))):
        raise ModelError("fixed-effects columns of the same names hold different values in the two models "
                         "(their cross-products X'X or X'y differ): they were fitted to different data or "
                         "codings, so this is not a valid LR test")
    _check_fixed(ns, nb, [], reml, [j for j, name in enumerate(nb) if name not in ns])


def _raw_statistics(model):
    """``X'X``, ``X'y`` and ``y'y`` of a fit from statistics (undoing the centring of y)."""
    d = model.design
    p, qd = d.k_fe, d.qd
    G = np.asarray(model._G0).reshape(qd + p + 1, qd + p + 1)
    xx, xyc, yyc = G[qd:qd + p, qd:qd + p], G[qd:qd + p, -1], G[-1, -1]
    shift = float(getattr(d, "y_shift", 0.0))
    if not shift:
        return xx, xyc, yyc
    ones = xx[:, d.intercept_col]                      # X'1
    return xx, xyc + shift * ones, yyc + 2 * shift * xyc[d.intercept_col] + d.nobs * shift ** 2


# --------------------------------------------------------------------------- random effects

def _check_random(ms, mb, rows):
    big_levels = {lv.name: (i, lv) for i, lv in enumerate(mb.design.levels)}
    for i, lv in enumerate(ms.design.levels):
        if lv.name not in big_levels:
            raise ModelError("the models are not nested: the smaller model's level %r of random effects is not "
                             "in the bigger model (its levels: %s), so this is not a valid LR test"
                             % (lv.name, ", ".join(map(repr, big_levels))))
        j, other = big_levels[lv.name]
        extra = [name for name in lv.names if name not in other.names]
        if extra:
            raise ModelError("the models are not nested: the random effect(s) %s of level %r are not in the "
                             "bigger model's level %r (%s), so this is not a valid LR test"
                             % (", ".join(map(repr, extra)), lv.name, lv.name, ", ".join(other.names)))
        if lv.n_groups != other.n_groups or (rows and not _same_partition(
                _original(ms.design, lv.codes), _original(mb.design, other.codes))):
            raise ModelError("level %r groups the rows differently in the two models (%d and %d groups): an LR "
                             "test needs the same grouping" % (lv.name, lv.n_groups, other.n_groups))


def _same_partition(a, b):
    """Whether two codings of the rows make the same groups."""
    pairs = np.unique(np.stack([a, b]).astype(np.int64), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))
