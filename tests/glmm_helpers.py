"""Helpers of the GLMM tests: data and fits of the reference JSON files, random designs."""
import json
import re
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd

import hlmext
from conftest import REFERENCE, reference_names

DATA = REFERENCE.parent.parent / "hlmext" / "datasets" / "data"


def patsy_name(lme4_name):
    """lme4's coefficient names in patsy's spelling: ``C(x)2`` -> ``C(x)[T.2]``."""
    if lme4_name == "(Intercept)":
        return "Intercept"
    return ":".join(re.sub(r"^(C\(.*\))(.+)$", r"\1[T.\2]", part) for part in lme4_name.split(":"))


def level_key(name):
    """The grouping columns of a level name, whatever the engine's spelling (``a:(b:c)``)."""
    return frozenset(re.split(r"[:()]+", name)) - {""}


def glmm_cases():
    """(folder, name) of every binomial and Poisson reference JSON present."""
    cases = []
    for folder in ("lme4", "extra"):
        if (REFERENCE / folder).exists():
            cases += [(folder, n) for fam in ("binomial", "poisson") for n in reference_names(folder, fam)]
    return sorted(cases)


def load(folder, name):
    with open(REFERENCE / folder / (name + ".json")) as fh:
        return json.load(fh)


@lru_cache(maxsize=None)
def _fit(dataset, subset, family, formula, trials, offset, nagq):
    df = pd.read_csv(DATA / dataset)
    if subset:
        df = df.query(subset)
    off = None if offset is None else np.asarray(eval(offset, {"np": np}, dict(df.items())), float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hlmext.BoundaryWarning)
        if family == "binomial":
            return hlmext.melogit(formula, df, trials=trials, offset=off).fit(nagq=nagq)
        return hlmext.mepoisson(formula, df, offset=off).fit(nagq=nagq)


def fit_reference(ref):
    """The hlmext fit of a reference (fits shared by references of the same model are cached)."""
    return _fit(ref["dataset"], ref["subset"], ref["family"], ref["formula"], ref["trials"], ref["offset"],
                int(ref["nagq"]))


def blup_rows(head):
    """The reference's first conditional modes as an array (two JSON layouts exist)."""
    if head and isinstance(head[0], dict):
        return np.array([[v for k, v in row.items() if k != "group"] for row in head], float)
    return np.asarray(head, float)


def random_clusters(rng, sizes, q, family, p=2):
    """Random GLMM data in sorted cluster order: Z (n, q), X (n, p), y, trials, row ranges."""
    n = int(np.sum(sizes))
    Z = np.column_stack([np.ones(n), rng.normal(size=(n, q - 1))])
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    ends = np.cumsum(sizes).astype(np.intp)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.intp)
    g = np.repeat(np.arange(len(sizes)), sizes)
    b = rng.normal(scale=0.7, size=(len(sizes), q))
    eta = X @ np.array([-0.3, 0.5])[:p] + np.sum(Z * b[g], axis=1)
    if family == 0:
        trials = rng.integers(1, 5, size=n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    else:
        trials = np.ones(n)
        y = rng.poisson(np.exp(eta)).astype(float)
    return Z, X, y, trials, starts, ends
