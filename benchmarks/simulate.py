"""Simulated data for the benchmarks: one fixed seed per scenario, vectorized numpy.

``make(name, size)`` returns ``(spec, df)``: the DataFrame and a ``Spec`` saying how
to fit it with hlmext, statsmodels and lme4. Every scenario is simulated from its own
seed, so its data do not depend on which other scenarios are run. ``size`` scales rows
and groups together (group sizes stay the same): small 0.1, default 1, large 10.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCALE = {"small": 0.1, "default": 1.0, "large": 10.0}
ORDER = ["ri_small", "rs_medium", "rs_large", "nested3", "crossed", "logit_ri", "logit_rs", "poisson_ri", "nb_ri",
         "probit_ri", "ologit_ri"]
EXTRA = ["logit_crossed", "insteval", "insteval_dept", "crossed_maximal",
         "crossed_large"]          # run only when named (``--scenarios logit_crossed``)
NO_STATSMODELS = {"insteval", "insteval_dept", "crossed_maximal", "crossed_large"}
INSTEVAL_CSV = Path(__file__).resolve().parent / "data" / "insteval.csv"


@dataclass
class Spec:
    name: str
    family: str                 # gaussian, binomial, poisson, nb2 (alpha 0.5), probit (binomial), ordinal
    formula: str                # hlmext and lme4 (same syntax)
    fe: list                    # fixed covariates (an intercept is added)
    groups: list                # grouping columns, outermost first
    slope: list = field(default_factory=list)   # random-slope covariates (on groups[-1])
    offset: str | None = None   # offset column (already on the log scale)
    fits: list = field(default_factory=lambda: [("ML", {})])   # (label, kwargs of .fit)
    note: str = ""

    @property
    def two_level_gaussian(self):
        return self.family == "gaussian" and len(self.groups) == 1


def _seed(name):
    return zlib.crc32(name.encode())


def _n(base, size):
    return max(int(round(base * SCALE[size])), 2)


def _covariates(rng, n, k):
    return {"x%d" % (j + 1): rng.standard_normal(n) for j in range(k)}


def _re(rng, n_groups, sd, corr=0.0):
    """Random effects of ``n_groups`` groups: shape (n_groups, len(sd)), correlated."""
    sd = np.asarray(sd, float)
    c = np.full((len(sd), len(sd)), corr)
    np.fill_diagonal(c, 1.0)
    chol = np.linalg.cholesky(c * np.outer(sd, sd))
    return rng.standard_normal((n_groups, len(sd))) @ chol.T


def _two_level(name, size, rows, groups, k, slope, family="gaussian", offset=False):
    rng = np.random.default_rng(_seed(name))
    n, n_g = _n(rows, size), _n(groups, size)
    x = _covariates(rng, n, k)
    g = rng.integers(n_g, size=n)
    beta = np.array([1.0, 0.5, -0.3, 0.2, 0.1][:k + 1])
    eta = beta[0] + sum(beta[j + 1] * x["x%d" % (j + 1)] for j in range(k))
    if family != "gaussian":
        eta = eta * 0.5 - 0.5                      # keep probabilities and counts moderate
    b = _re(rng, n_g, [0.8, 0.4] if slope else [0.8], corr=0.3)
    eta = eta + b[g, 0] + (b[g, 1] * x["x1"] if slope else 0.0)
    df = pd.DataFrame(x)
    df["g"] = g
    if offset:
        df["logexp"] = np.log(rng.uniform(0.5, 2.0, size=n))
        eta = eta + df["logexp"].to_numpy()
    if family == "gaussian":
        df["y"] = eta + rng.standard_normal(n)
    elif family == "binomial":
        df["y"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    elif family == "probit":
        df["y"] = (rng.standard_normal(n) < eta).astype(np.int64)
    elif family == "nb2":                          # Var = mu (1 + alpha mu), alpha = 0.5
        df["y"] = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(eta)))
    elif family == "ordinal":                      # 4 categories of a logistic latent variable
        df["y"] = np.digitize(eta + rng.logistic(size=n), [-1.5, -0.3, 1.0]) + 1
    else:
        df["y"] = rng.poisson(np.exp(eta))
    fe = list(x)
    rhs = " + ".join(fe)
    formula = "y ~ %s + (%s | g)" % (rhs, "x1" if slope else "1")
    return formula, fe, df


def make(name, size="default"):
    """The spec and data of scenario ``name`` at ``size`` (small, default, large)."""
    if name == "ri_small":
        f, fe, df = _two_level(name, size, 5_000, 100, 1, slope=False)
        return Spec(name, "gaussian", f, fe, ["g"]), df
    if name in ("rs_medium", "rs_large"):
        rows, groups = (100_000, 2_000) if name == "rs_medium" else (1_000_000, 20_000)
        f, fe, df = _two_level(name, size, rows, groups, 4, slope=True)
        return Spec(name, "gaussian", f, fe, ["g"], slope=["x1"]), df
    if name == "nested3":
        return _nested3(size)
    if name == "crossed":
        return _crossed(size)
    if name in ("logit_ri", "logit_rs"):
        slope = name == "logit_rs"
        rows = 50_000 if slope else 100_000
        f, fe, df = _two_level(name, size, rows, rows // 50, 2, slope=slope, family="binomial")
        fits = [("Laplace", {"nagq": 1}), ("AGHQ7", {"nagq": 7})]
        return Spec(name, "binomial", f, fe, ["g"], slope=["x1"] if slope else [], fits=fits), df
    if name == "poisson_ri":
        f, fe, df = _two_level(name, size, 100_000, 2_000, 2, slope=False, family="poisson", offset=True)
        return Spec(name, "poisson", f, fe, ["g"], offset="logexp", fits=[("AGHQ7", {"nagq": 7})]), df
    if name == "nb_ri":
        f, fe, df = _two_level(name, size, 100_000, 2_000, 2, slope=False, family="nb2", offset=True)
        return Spec(name, "nb2", f, fe, ["g"], offset="logexp", fits=[("Laplace", {"nagq": 1})],
                    note="R: glmmTMB nbinom2 (Laplace)"), df
    if name == "probit_ri":
        f, fe, df = _two_level(name, size, 100_000, 2_000, 2, slope=False, family="probit")
        fits = [("Laplace", {"nagq": 1}), ("AGHQ7", {"nagq": 7})]
        return Spec(name, "probit", f, fe, ["g"], fits=fits), df
    if name == "ologit_ri":
        f, fe, df = _two_level(name, size, 100_000, 2_000, 2, slope=False, family="ordinal")
        return Spec(name, "ordinal", f, fe, ["g"], fits=[("AGHQ7", {"nagq": 7})]), df
    if name == "logit_crossed":
        return _logit_crossed(size)
    if name in ("insteval", "insteval_dept"):
        return _insteval(name)
    if name == "crossed_maximal":
        return _crossed_maximal(size)
    if name == "crossed_large":
        return _crossed_large(size)
    raise KeyError("unknown scenario %r; choose from %s" % (name, ", ".join(ORDER + EXTRA)))


def _nested3(size):
    """200 districts > 2,000 schools (ids unique across districts) > rows."""
    rng = np.random.default_rng(_seed("nested3"))
    n, n_d = _n(200_000, size), _n(200, size)
    n_s = n_d * 10
    x = _covariates(rng, n, 2)
    school = rng.integers(n_s, size=n)
    district = school // 10
    u_d = rng.standard_normal(n_d) * 0.6
    u_s = rng.standard_normal(n_s) * 0.4
    df = pd.DataFrame(x)
    df["district"], df["school"] = district, school
    df["y"] = 1.0 + 0.5 * x["x1"] - 0.3 * x["x2"] + u_d[district] + u_s[school] + rng.standard_normal(n)
    return Spec("nested3", "gaussian", "y ~ x1 + x2 + (1 | district/school)", list(x),
                ["district", "school"]), df


def _crossed(size):
    """Two crossed random intercepts, 1,000 x 500 levels."""
    rng = np.random.default_rng(_seed("crossed"))
    n, n_a, n_b = _n(200_000, size), _n(1_000, size), _n(500, size)
    x = _covariates(rng, n, 1)
    a, b = rng.integers(n_a, size=n), rng.integers(n_b, size=n)
    df = pd.DataFrame(x)
    df["a"], df["b"] = a, b
    df["y"] = (1.0 + 0.5 * x["x1"] + rng.standard_normal(n_a)[a] * 0.7 + rng.standard_normal(n_b)[b] * 0.5
               + rng.standard_normal(n))
    return Spec("crossed", "gaussian", "y ~ x1 + (1 | a) + (1 | b)", list(x), ["a", "b"]), df


def _logit_crossed(size):
    """A binary response with crossed random intercepts (subjects x items), 1,000 x 200 levels."""
    rng = np.random.default_rng(_seed("logit_crossed"))
    n, n_a, n_b = _n(50_000, size), _n(1_000, size), _n(200, size)
    x = _covariates(rng, n, 1)
    a, b = rng.integers(n_a, size=n), rng.integers(n_b, size=n)
    eta = -0.3 + 0.5 * x["x1"] + rng.standard_normal(n_a)[a] * 0.8 + rng.standard_normal(n_b)[b] * 0.5
    df = pd.DataFrame(x)
    df["a"], df["b"] = a, b
    df["y"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return Spec("logit_crossed", "binomial", "y ~ x1 + (1 | a) + (1 | b)", list(x), ["a", "b"],
                fits=[("Laplace", {"nagq": 1})]), df


def unavailable(name):
    """Why scenario ``name`` cannot run here (its data are missing), or None."""
    if name in ("insteval", "insteval_dept") and not INSTEVAL_CSV.exists():
        return ("skipped: %s is missing; export lme4's InstEval with `Rscript benchmarks/data/export_insteval.R`"
                % INSTEVAL_CSV.name)
    return None


def _insteval(name):
    """lme4's InstEval (73,421 ratings, 2,972 students x 1,128 instructors, 14 departments),
    exported by ``benchmarks/data/export_insteval.R`` (not bundled). ``service`` is 0/1, so
    ``service`` equals lme4's and statsmodels' ``C(service)``; ``dept`` is a factor."""
    df = pd.read_csv(INSTEVAL_CSV, dtype={"s": str, "d": str, "dept": str})
    df["service"] = df["service"].astype(float)
    df["y"] = df["y"].astype(float)
    if name == "insteval":
        formula, groups = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", ["s", "d", "dept"]
    else:                          # dept among the groups: R reads it as a factor
        formula, groups = "y ~ 1 + service * dept + (1 | s) + (1 | d)", ["s", "d", "dept"]
    return Spec(name, "gaussian", formula, ["service"], groups), df


def _crossed_maximal(size):
    """The classic psycholinguistics design: 56 subjects x 32 items, every subject sees every item
    once (1,792 trials, 3 lost: 1,789 rows), three two-level factors (+-0.5) in a Latin square,
    and the maximal random part ``(1 + a*b*c | subj) + (1 + a*b*c | item)`` (72 parameters).
    ``size`` is ignored: the design is the point."""
    rng = np.random.default_rng(_seed("crossed_maximal"))
    n_subj, n_item = 56, 32
    subj, item = np.repeat(np.arange(n_subj), n_item), np.tile(np.arange(n_item), n_subj)
    cond = (subj + item) % 8
    a, b, c = (cond & 1) - 0.5, ((cond >> 1) & 1) - 0.5, ((cond >> 2) & 1) - 0.5
    X = np.column_stack([np.ones_like(a), a, b, a * b, c, a * c, b * c, a * b * c])
    sd = np.array([0.8, 0.4, 0.3, 0.2, 0.3, 0.15, 0.15, 0.1])
    b_s, b_i = _re(rng, n_subj, sd, corr=0.2), _re(rng, n_item, sd * 0.7, corr=0.2)
    beta = np.array([5.0, 0.3, -0.2, 0.1, 0.25, 0.0, 0.05, 0.0])
    y = X @ beta + np.sum(X * b_s[subj], axis=1) + np.sum(X * b_i[item], axis=1) + rng.standard_normal(len(a))
    keep = np.ones(len(a), dtype=bool)
    keep[rng.choice(len(a), 3, replace=False)] = False
    df = pd.DataFrame({"subj": subj, "item": item, "a": a, "b": b, "c": c, "y": y})[keep].reset_index(drop=True)
    return Spec("crossed_maximal", "gaussian", "y ~ a * b * c + (1 + a * b * c | subj) + (1 + a * b * c | item)",
                ["a", "b", "c"], ["subj", "item"]), df


def _crossed_large(size):
    """Ratings: 10 million rows of 100,000 users x 20,000 items (x 0.1 / x 10 with ``size``), item
    popularity skewed (Zipf-like, exponent 1), random intercepts for both."""
    rng = np.random.default_rng(_seed("crossed_large"))
    n, n_u, n_i = _n(10_000_000, size), _n(100_000, size), _n(20_000, size)
    pop = 1.0 / np.arange(1, n_i + 1)
    item = rng.choice(n_i, size=n, p=pop / pop.sum()).astype(np.int32)
    user = rng.integers(n_u, size=n).astype(np.int32)
    x = _covariates(rng, n, 1)
    df = pd.DataFrame(x)
    df["user"], df["item"] = user, item
    df["y"] = (1.0 + 0.5 * x["x1"] + rng.standard_normal(n_u)[user] * 0.7 + rng.standard_normal(n_i)[item] * 0.5
               + rng.standard_normal(n))
    return Spec("crossed_large", "gaussian", "y ~ x1 + (1 | user) + (1 | item)", list(x), ["user", "item"]), df


def arrays(spec, df):
    """(endog, exog, groups, exog_re, offset) for the array interfaces (intercept first)."""
    n = len(df)
    exog = np.column_stack([np.ones(n)] + [df[c].to_numpy(float) for c in spec.fe])
    exog_re = np.column_stack([np.ones(n)] + [df[c].to_numpy(float) for c in spec.slope])
    offset = df[spec.offset].to_numpy(float) if spec.offset else None
    return df["y"].to_numpy(float), exog, df[spec.groups[-1]].to_numpy(), exog_re, offset


def slope_arrays(n, n_groups, seed=0):
    """(y, X, groups, Z) of the random intercept and slope model (4 covariates), for scaling.py."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 4))])
    g = rng.integers(n_groups, size=n)
    b = _re(rng, n_groups, [0.8, 0.4], corr=0.3)
    y = X @ np.array([1.0, 0.5, -0.3, 0.2, 0.1]) + b[g, 0] + b[g, 1] * X[:, 1] + rng.standard_normal(n)
    return y, X, g, X[:, :2].copy()
