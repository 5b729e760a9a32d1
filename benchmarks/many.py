"""Benchmarks of per-fit overhead: ``python benchmarks/many.py many_responses|small_fits [size]``.

- ``many_responses``: 20,000 responses x 400 samples (size small: 2,000), ``~ condition + age
  + (1 | donor)`` with 40 donors, REML with Satterthwaite p-values: ``fit_many`` on one
  thread and on the default threads, against an lme4 + lmerTest loop over the first 200
  columns (scaled to all of them) when R has both.
- ``small_fits``: the median time of a formula fit from a DataFrame of sleepstudy's
  random-slope model (REML) and of the seed model (``gcse ~ lrt + (lrt | school)``, ML),
  and ``bootstrap(1000)`` of the seed model; beside them in the same run, sleepstudy's fit
  by statsmodels ``MixedLM`` (from its formula), an OLS formula fit of ``Reaction ~ Days``,
  and lme4's ``lmer`` (timed inside R, median of 51) when R has lme4.

``run.py --scenarios many_responses,small_fits`` runs this script in a fresh process.
"""
from __future__ import annotations

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

R_LOOP = r"""
suppressPackageStartupMessages(library(lmerTest))
meta <- read.csv("%(meta)s"); Y <- read.csv("%(y)s")
t0 <- proc.time()[["elapsed"]]
for (g in names(Y)) {
  meta$y <- Y[[g]]
  m <- lmer(y ~ condition + age + (1 | donor), data = meta, REML = TRUE)
  co <- summary(m)$coefficients
}
cat("RESULT", proc.time()[["elapsed"]] - t0, co[2, "df"], co[2, "Estimate"], "\n")
"""

R_SLEEP = r"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv("%(data)s")
fit <- function() lmer(Reaction ~ Days + (Days | Subject), data = d, REML = TRUE)
invisible(fit())
times <- sapply(1:51, function(i) system.time(fit())[["elapsed"]])
cat("RESULT", median(times), "\n")
"""


def many_data(n_responses, n_rows=400, n_donors=40, seed=1):
    rng = np.random.default_rng(seed)
    donor = np.repeat(np.arange(n_donors), n_rows // n_donors)
    meta = pd.DataFrame({"donor": ["d%d" % d for d in donor], "condition": rng.choice(["ctrl", "treat"], n_rows),
                         "age": np.round(rng.normal(50, 10, n_donors), 1)[donor]})
    sd = rng.uniform(0, 1, n_responses)
    Y = (rng.normal(size=(n_rows, n_responses)) + rng.normal(size=(n_donors, n_responses))[donor] * sd
         + 0.3 * (meta.condition == "treat").to_numpy()[:, None])
    return meta, pd.DataFrame(Y, columns=["g%d" % j for j in range(n_responses)])


def median_time(fn, repeats):
    return median_times(fn, repeats)[0]


def median_times(fn, repeats):
    """Median wall time and median CPU time of this process (``time.process_time``) of ``fn()``;
    on a shared machine the CPU time leaves out the time the process waited for a core."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def many_responses(size):
    J = 2_000 if size == "small" else 20_000
    meta, Y = many_data(J)
    model = hlmext.mixedlm("~ condition + age + (1 | donor)", meta)

    def run():
        many = model.fit_many(Y)
        many.tidy, many.variances, many.variance_partition
        return many
    run()
    hlmext.set_num_threads(1)
    one = median_time(run, 3)
    hlmext.set_num_threads(None)
    default = median_time(run, 3)
    many = run()
    print("many_responses: %d responses x %d rows: fit_many + tables %.2f s on 1 thread, %.2f s on %d threads; "
          "%d converged" % (J, len(meta), one, default, hlmext.get_num_threads(), int(many.variances.converged.sum())))
    k = 200
    with tempfile.TemporaryDirectory() as tmp:
        meta.to_csv(os.path.join(tmp, "meta.csv"), index=False)
        Y.iloc[:, :k].to_csv(os.path.join(tmp, "y.csv"), index=False)
        script = os.path.join(tmp, "loop.R")
        Path(script).write_text(R_LOOP % {"meta": os.path.join(tmp, "meta.csv"), "y": os.path.join(tmp, "y.csv")})
        try:
            out = subprocess.run(["Rscript", script], capture_output=True, text=True, timeout=3600).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
    line = [s for s in out.splitlines() if s.startswith("RESULT")]
    if not line:
        print("many_responses: lme4 + lmerTest not available; no comparison")
        return
    r_time, r_df, r_est = map(float, line[0].split()[1:4])
    last = many.tidy[(many.tidy.response == Y.columns[k - 1])].iloc[1]
    scaled = r_time * J / k
    print("many_responses: lme4 + lmerTest loop over %d columns %.1f s, scaled to %d: %.0f s; ratio to fit_many "
          "(default threads) %.0fx; column %s: df %.6g (lmerTest %.6g), estimate %.8g (lme4 %.8g)"
          % (k, r_time, J, scaled, scaled / default, Y.columns[k - 1], last.df, r_df, last.estimate, r_est))


def small_fits(repeats=51):
    sleep = hlmext.datasets.load("sleepstudy")
    gcse = hlmext.datasets.load("gcse").query("nstu > 4")

    def sleep_fit():
        return hlmext.mixedlm("Reaction ~ Days + (Days | Subject)", sleep).fit()

    def seed_fit():
        return hlmext.mixedlm("gcse ~ lrt + (lrt | school)", gcse, cov="unstructured").fit(reml=False)
    sleep_fit(), seed_fit()
    t_sleep, c_sleep = median_times(sleep_fit, repeats)
    t_seed, c_seed = median_times(seed_fit, max(5, repeats // 5))
    res = seed_fit()
    t0, c0 = time.perf_counter(), time.process_time()
    res.bootstrap(n=1000, seed=1, n_jobs=1)
    t_boot, c_boot = time.perf_counter() - t0, time.process_time() - c0
    print("small_fits: sleepstudy random-slope REML from a DataFrame %.1f ms (median of %d; CPU %.1f ms); seed model "
          "ML %.1f ms (CPU %.1f ms); seed model bootstrap(1000), one process, %.1f s (CPU %.1f s)"
          % (1e3 * t_sleep, repeats, 1e3 * c_sleep, 1e3 * t_seed, 1e3 * c_seed, t_boot, c_boot))
    others = sleepstudy_elsewhere(sleep, repeats)
    print("small_fits: sleepstudy from its formula: " + "; ".join(
        "%s %.1f ms (%.1fx ours)" % (name, 1e3 * t, t / t_sleep) for name, t in others))


def sleepstudy_elsewhere(sleep, repeats):
    """Median times of sleepstudy's fit by statsmodels MixedLM, of an OLS formula fit and of lme4."""
    import statsmodels.formula.api as smf
    out = [("statsmodels MixedLM", median_time(lambda: smf.mixedlm(
               "Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit(reml=True), max(5, repeats // 5))),
           ("OLS", median_time(lambda: smf.ols("Reaction ~ Days", sleep).fit(), repeats))]
    with tempfile.TemporaryDirectory() as tmp:
        sleep.to_csv(os.path.join(tmp, "sleep.csv"), index=False)
        script = os.path.join(tmp, "sleep.R")
        Path(script).write_text(R_SLEEP % {"data": os.path.join(tmp, "sleep.csv")})
        try:
            res = subprocess.run(["Rscript", script], capture_output=True, text=True, timeout=600).stdout
        except (OSError, subprocess.TimeoutExpired):
            res = ""
    line = [s for s in res.splitlines() if s.startswith("RESULT")]
    if line:
        out.append(("lme4 lmer", float(line[0].split()[1])))
    return out


if __name__ == "__main__":
    name = sys.argv[1]
    size = sys.argv[2] if len(sys.argv) > 2 else "default"
    {"many_responses": lambda: many_responses(size), "small_fits": small_fits}[name]()
