"""A random-intercept-and-slope model on 20 million rows on disk: chunked, with Dask, in memory.

    python benchmarks/big_parquet.py                       # generate once, then run every fit
    python benchmarks/big_parquet.py --rows 2000000        # a quick run
    python benchmarks/big_parquet.py --json out.json       # also write the figures as JSON

The data (``y ~ 1 + 0.5 x + b0[g] + b1[g] x + e``, 200,000 groups whose rows are spread
over every file) is written as Parquet files of one million rows each, one file at a
time, so it is never all in memory. Then, each in its own process so that its peak
resident memory (RSS) is its own:

- ``chunked``: ``hlmext.mixedlm(formula, folder)``: pyarrow record batches, three passes;
- ``dask``: ``hlmext.mixedlm(formula, dd.read_parquet(folder))`` on a
  ``LocalCluster(n_workers=2, threads_per_worker=1)``; the workers report their peak RSS;
- ``memory``: the in-memory fit of the first ``--subset`` rows (2 million by default),
  and ``chunked-subset``, the chunked fit of the same rows (its estimates must agree).

Times are wall-clock seconds for building the model (reading and the passes over the
data) and for the fit (the optimizer on the statistics).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from big_files import ROWS_PER_FILE, peak_rss_mb, write_files

FORMULA = "y ~ x + (x | g)"


def generate(folder, rows, groups, seed=0):
    """Parquet files of ROWS_PER_FILE rows, written one at a time."""
    rng = np.random.default_rng(seed)
    b0 = rng.normal(size=groups)
    b1 = 0.5 * (0.3 * b0 + np.sqrt(1 - 0.09) * rng.normal(size=groups))

    def columns(r, n):
        g = r.integers(0, groups, n)
        x = r.normal(size=n)
        return {"y": 1.0 + 0.5 * x + b0[g] + b1[g] * x + r.normal(size=n), "x": x, "g": g}
    return write_files(folder, rows, columns, seed, row_group_size=ROWS_PER_FILE // 4)


def summary(res):
    return {"llf": float(res.llf), "fe_params": res.fe_params.round(10).to_dict(),
            "re_params": res.re_params["estimate"].round(10).to_dict(), "nobs": int(res.nobs),
            "n_groups": {k: int(v) for k, v in res.n_groups.items()}, "converged": bool(res.converged)}


def run_mode(args):
    """One fit in this process; prints one JSON line."""
    import hlmext
    base = peak_rss_mb()
    files = sorted(os.path.join(args.dir, f) for f in os.listdir(args.dir) if f.endswith(".parquet"))
    out = {"mode": args.mode, "rss_after_import_mb": round(base)}
    t0 = time.perf_counter()
    if args.mode == "memory":
        import pyarrow.parquet as pq
        k = -(-args.subset // ROWS_PER_FILE)
        df = pq.read_table(files[:k]).to_pandas().iloc[:args.subset]
        out["read_s"] = round(time.perf_counter() - t0, 2)
        model = hlmext.mixedlm(FORMULA, df)
    elif args.mode == "chunked-subset":
        k = -(-args.subset // ROWS_PER_FILE)
        model = hlmext.mixedlm(FORMULA, _first_rows(files[:k], args.subset, args.batch_size))
    elif args.mode == "chunked":
        model = hlmext.mixedlm(FORMULA, args.dir, batch_size=args.batch_size)
    elif args.mode == "dask":
        import dask.dataframe as dd
        from distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
        client = Client(cluster)
        worker_base = client.run(peak_rss_mb)
        t0 = time.perf_counter()
        model = hlmext.mixedlm(FORMULA, dd.read_parquet(args.dir, columns=["y", "x", "g"]))
    out["build_s"] = round(time.perf_counter() - t0, 2)
    t1 = time.perf_counter()
    res = model.fit(reml=False)
    out["fit_s"] = round(time.perf_counter() - t1, 2)
    out["total_s"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mb"] = round(peak_rss_mb())
    if args.mode == "dask":
        out["worker_rss_after_start_mb"] = [round(v) for v in worker_base.values()]
        out["worker_peak_rss_mb"] = [round(v) for v in client.run(peak_rss_mb).values()]
        client.close()
        cluster.close()
    out["result"] = summary(res)
    print(json.dumps(out))


def _first_rows(files, rows, batch_size):
    """A chunk source over the first ``rows`` rows of ``files`` (the rows of the in-memory fit)."""
    import pyarrow.dataset as ds
    dataset = ds.dataset(files, format="parquet")

    def chunks():
        left = rows
        for batch in dataset.to_batches(batch_size=batch_size):
            if left <= 0:
                return
            df = batch.to_pandas().iloc[:left]
            left -= len(df)
            yield df
    return chunks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--groups", type=int, default=200_000)
    parser.add_argument("--subset", type=int, default=2_000_000)
    parser.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "hlmext_big_parquet"))
    parser.add_argument("--batch-size", type=int, default=500_000)
    parser.add_argument("--modes", default="memory,chunked-subset,chunked,dask")
    parser.add_argument("--json", help="write the figures to this file too")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return run_mode(args)
    folder = os.path.join(args.dir, "rows%d_groups%d" % (args.rows, args.groups))
    t0 = time.perf_counter()
    files = generate(folder, args.rows, args.groups)
    size = sum(os.path.getsize(f) for f in files)
    print("data: %d rows, %d groups, %d files, %.0f MB on disk (%.1f s to generate or check)"
          % (args.rows, args.groups, len(files), size / 1e6, time.perf_counter() - t0), flush=True)
    results = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode, "--dir", folder,
               "--subset", str(args.subset), "--batch-size", str(args.batch_size)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit("mode %s failed" % mode)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(out)
        r = out["result"]
        extra = (" workers: peak RSS %s MB (after start %s)" % (out["worker_peak_rss_mb"],
                                                                out["worker_rss_after_start_mb"])
                 if mode == "dask" else "")
        print("%-15s nobs %9d  build %7.2f s  fit %6.2f s  peak RSS %6d MB (after import %d)%s"
              % (mode, r["nobs"], out["build_s"], out["fit_s"], out["peak_rss_mb"], out["rss_after_import_mb"],
                 extra), flush=True)
        print("%15s llf %.6f  fe %s  re %s" % ("", r["llf"], r["fe_params"], r["re_params"]), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": args.rows, "groups": args.groups, "files": len(files), "bytes": size,
                       "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
