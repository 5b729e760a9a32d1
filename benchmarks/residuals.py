"""Benchmarks of residual covariance structures: ``python benchmarks/residuals.py [--scenarios ...]``.

``ar1_large``: 1,000,000 rows in 20,000 clusters of 50 occasions, a random intercept and AR(1)
errors; the AR(1) fit against the same model without the residual structure (time ratio; goal
<= 20). ``ar1_nlme``: the same design with 50,000 rows in 1,000 clusters, against nlme's
``lme(..., correlation = corAR1())`` (time of the ``lme`` call only; goal: 20 times faster).
statsmodels and lme4 have no residual structures, so ``run.py`` does not cover these. Timings
are the median of ``--repeats`` fits, each of a model built from the DataFrame.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import hlmext  # noqa: E402

SCENARIOS = {"ar1_large": (1_000_000, 20_000), "ar1_nlme": (50_000, 1_000)}
FORMULA = "y ~ x1 + x2 + (1 | g)"
R_SCRIPT = """
suppressMessages(library(nlme))
a <- commandArgs(TRUE)
df <- read.csv(a[1])
t <- system.time(f <- lme(y ~ x1 + x2, df, random = ~ 1 | g, correlation = corAR1(form = ~ t | g),
                          method = "ML"))[["elapsed"]]
cat("RESULT", t, as.numeric(logLik(f)), coef(f$modelStruct$corStruct, unconstrained = FALSE), "\\n")
"""


def simulate(rows, groups, rho=0.6, seed=19):
    """``rows / groups`` occasions per cluster, x1, x2 normal, random intercept sd 0.8, AR(1) errors."""
    rng = np.random.default_rng(seed)
    per = rows // groups
    g = np.repeat(np.arange(groups), per)
    t = np.tile(np.arange(per), groups)
    e = np.empty(rows)
    z = rng.standard_normal(rows)
    e[t == 0] = z[t == 0]
    for k in range(1, per):
        e[t == k] = rho * e[t == k - 1] + np.sqrt(1 - rho * rho) * z[t == k]
    x1, x2 = rng.standard_normal(rows), rng.standard_normal(rows)
    y = 1 + 0.5 * x1 - 0.3 * x2 + 0.8 * rng.standard_normal(groups)[g] + e
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g, "t": t})


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def nlme_time(df):
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = os.path.join(tmp, "data.csv"), os.path.join(tmp, "fit.R")
        df.to_csv(csv, index=False)
        Path(script).write_text(R_SCRIPT)
        proc = subprocess.run(["Rscript", script, csv], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            _, t, llf, rho = line.split()[:4]
            return {"nlme_s": float(t), "nlme_llf": float(llf), "nlme_rho": float(rho)}
    return {"nlme_error": (proc.stderr.strip().splitlines() or ["Rscript failed"])[-1][:200]}


def run(name, repeats):
    rows, groups = SCENARIOS[name]
    df = simulate(rows, groups)
    out = {"scenario": name, "rows": rows, "clusters": groups}
    t_ar1, res = median_time(lambda: hlmext.mixedlm(FORMULA, df, residuals="ar1", time="t").fit(reml=False),
                             repeats)
    out.update(ar1_s=t_ar1, ar1_llf=res.llf, rho=float(res.params["rho[Residual]"]), converged=res.converged,
               n_evals=res.opt.n_evals)
    if name == "ar1_large":
        t_plain, plain = median_time(lambda: hlmext.mixedlm(FORMULA, df).fit(reml=False), repeats)
        out.update(plain_s=t_plain, ratio=t_ar1 / t_plain)
    else:
        out.update(nlme_time(df))
        if "nlme_s" in out:
            out["speedup"] = out["nlme_s"] / t_ar1
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for name in args.scenarios.split(","):
        print(json.dumps(run(name, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
