"""A mixed logit (random intercept) on many rows from Parquet, fitted on a 2-worker LocalCluster.

    python benchmarks/big_glmm.py --rows 10000000 --groups 100000      # generate once, then fit
    python benchmarks/big_glmm.py --rows 2000000 --groups 20000 --mode parquet
    python benchmarks/big_glmm.py --rows 2000000 --groups 20000 --compare   # also in memory, side by side

The data (``y ~ Bernoulli(logit^-1(-0.5 + 0.5 x + b[g]))``, ``sd(b) = 1``; the rows of a
cluster are spread over every file) are written as Parquet files of one million rows,
one at a time. The fit ``hlmext.melogit("y ~ x + (1 | g)", data).fit(nagq=1)`` runs with a
``LocalCluster(n_workers=2, threads_per_worker=1)``, from

- ``--mode dask`` (default): ``dd.read_parquet(folder)``, shuffled on ``g`` by Dask;
- ``--mode parquet``: the folder itself, hash-partitioned by this process into a
  temporary directory that the workers read.

Printed (one JSON line): the time to build the model (reading, shuffling, building the
partitions' models), the time of the fit, the number of evaluations of the
log-likelihood (each a pass over every cluster on the workers), the time per evaluation,
and the peak resident memory (RSS) of the client and of each worker.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from big_files import peak_rss_mb, rss_mb, write_files

FORMULA = "y ~ x + (1 | g)"


def generate(folder, rows, groups, seed=0):
    b = np.random.default_rng(seed).normal(size=groups)

    def columns(r, n):
        g = r.integers(0, groups, n)
        x = r.normal(size=n)
        return {"y": (r.random(n) < 1 / (1 + np.exp(-(-0.5 + 0.5 * x + b[g])))).astype(np.int8), "x": x, "g": g}
    write_files(folder, rows, columns, seed)
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--dir", default=None, help="data folder (default big_glmm_<rows>)")
    ap.add_argument("--mode", choices=("dask", "parquet"), default="dask")
    ap.add_argument("--npartitions", type=int, default=None)
    ap.add_argument("--compare", action="store_true", help="also fit in memory and compare")
    ap.add_argument("--progress", action="store_true", help="print a line per evaluation (before the JSON line)")
    args = ap.parse_args()
    folder = generate(args.dir or "big_glmm_%d" % args.rows, args.rows, args.groups)

    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import hlmext
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="6GB", silence_logs=40)
    client = Client(cluster)
    out = {"rows": args.rows, "groups": args.groups, "mode": args.mode}
    t0 = time.perf_counter()
    data = dd.read_parquet(folder) if args.mode == "dask" else folder
    model = hlmext.melogit(FORMULA, data, npartitions=args.npartitions, progress=args.progress)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    out["rss_workers_after_build_mb"] = sorted(round(v) for v in client.run(rss_mb).values())
    t0 = time.perf_counter()
    res = model.fit(nagq=1)
    out["fit_s"] = round(time.perf_counter() - t0, 1)
    out["evaluations"] = model.n_evals
    out["s_per_evaluation"] = round(out["fit_s"] / model.n_evals, 3)
    out["partitions"] = len(model.parts)
    out["llf"] = float(res.llf)
    out["params"] = {k: round(float(v), 6) for k, v in res.params.items()}
    out["rss_client_mb"] = round(peak_rss_mb())
    out["rss_workers_mb"] = sorted(round(v) for v in client.run(peak_rss_mb).values())
    out["rss_workers_after_fit_mb"] = sorted(round(v) for v in client.run(rss_mb).values())
    if args.compare:
        import pandas as pd
        df = pd.read_parquet(folder)
        t0 = time.perf_counter()
        ref = hlmext.melogit(FORMULA, df).fit(nagq=1)
        out["memory_fit_s"] = round(time.perf_counter() - t0, 1)       # build and fit, in this process
        out["memory_evaluations"] = ref.opt.n_evals
        out["max_rel_diff"] = float(np.max(np.abs(np.asarray(ref.params) / np.asarray(res.params) - 1)))
    print(json.dumps(out), flush=True)
    client.close()
    cluster.close()


if __name__ == "__main__":
    sys.exit(main())
