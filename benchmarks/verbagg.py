"""VerbAgg (lme4's data, bundled as ``hlmext.datasets.load("verbagg")``), a mixed logit with
crossed subjects and items, side by side with lme4's Laplace fit:
``python benchmarks/verbagg.py [--repeats 5]``.

Model: ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)`` (7,584 rows, 316 x 24).
Our time is the median of ``--repeats`` formula fits in this process (one BLAS thread); lme4's
the median of as many ``glmer`` calls inside R (``system.time``, the data read before), on
lme4's own copy of the data. Prints both times, their ratio and both log-likelihoods.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]          # benchmark this checkout's hlmext

import numpy as np  # noqa: E402

import hlmext  # noqa: E402
from hlmext.models.optimize import single_blas_thread  # noqa: E402

FORMULA = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"

R_SCRIPT = """
suppressMessages(library(lme4))
data(VerbAgg, package = "lme4")
times <- c()
for (i in seq_len(%d)) {
  t <- system.time(m <- glmer(%s, data = VerbAgg, family = binomial))[["elapsed"]]
  times <- c(times, t)
}
cat(sprintf("LME4 %%.6f %%.6f\\n", median(times), as.numeric(logLik(m))))
"""


def ours(repeats):
    df = hlmext.datasets.load("verbagg")
    times = []
    with single_blas_thread():
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = hlmext.melogit(FORMULA, df).fit(nagq=1)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(res.llf)


def lme4(repeats):
    if shutil.which("Rscript") is None:
        return None, None
    out = subprocess.run(["Rscript", "-e", R_SCRIPT % (repeats, FORMULA)], capture_output=True, text=True)
    line = [s for s in out.stdout.splitlines() if s.startswith("LME4 ")]
    if not line:
        return None, None
    t, llf = line[0].split()[1:]
    return float(t), float(llf)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    t_ours, llf_ours = ours(args.repeats)
    t_r, llf_r = lme4(args.repeats)
    print("ours  %.3f s  llf %.4f" % (t_ours, llf_ours))
    if t_r is None:
        print("lme4  not available (Rscript with lme4 is needed)")
    else:
        print("lme4  %.3f s  llf %.4f" % (t_r, llf_r))
        print("lme4 / ours: %.1f" % (t_r / t_ours))


if __name__ == "__main__":
    main()
