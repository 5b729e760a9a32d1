"""How the linear model's time and memory grow with rows and with clusters.

``python benchmarks/scaling.py [--big] [--plot] [--repeats N]``

Model: random intercept and slope (correlated), 5 fixed effects, fitted by ML from
arrays (``hlmext.LinearMixed``). Two series, each point in a fresh process:

- rows 1e4, 1e5, 1e6 (and 1e7 with ``--big``) with 1,000 clusters;
- clusters 1e3, 1e4, 1e5 at 1e6 rows.

Timed separately: (a) model construction (sorting, the design and the one pass over
the rows that forms the per-cluster cross-products) and (b) the fit (optimization and
the results). ``ms/eval`` is one deviance evaluation at the optimum: it depends on the
clusters, not on the rows. Peak MB: tracemalloc peak of construction + fit (numpy and
Python allocations), the input arrays excluded; ``peak/data`` divides it by the size of
the data (y, X and the group codes; the random slope is a column of X).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402

import simulate  # noqa: E402

COLUMNS = [("series", 8), ("rows", 10), ("clusters", 9), ("build s", 9), ("fit s", 8), ("evals", 6),
           ("ms/eval", 8), ("peak MB", 9), ("peak/data", 9), ("llf", 16)]


def point(n, n_groups, repeats):
    """Measure one (rows, clusters) point in this process (or say why it cannot be fitted)."""
    y, X, g, Z = simulate.slope_arrays(n, n_groups, seed=n_groups + n % 9973)
    try:
        return _measure(y, X, g, Z, repeats)
    except Exception as exc:  # e.g. more random effects than rows: report, do not fail
        return {"rows": n, "clusters": int(np.unique(g).size),
                "error": "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0])}


def _measure(y, X, g, Z, repeats):
    import hlmext
    build, fit, res, model = [], [], None, None
    warnings.simplefilter("ignore")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = hlmext.LinearMixed(y, X, g, Z)
        t1 = time.perf_counter()
        res = model.fit(reml=False)
        build.append(t1 - t0)
        fit.append(time.perf_counter() - t1)
    theta, llf = res.theta, float(res.llf)
    n_evals = int(getattr(getattr(res, "opt", None), "n_evals", 0))
    evals = []
    for _ in range(20):
        t0 = time.perf_counter()
        model.deviance(theta, reml=False)
        evals.append(time.perf_counter() - t0)
    del model, res
    tracemalloc.start()
    hlmext.LinearMixed(y, X, g, Z).fit(reml=False)
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return {"rows": len(y), "clusters": int(np.unique(g).size), "build_s": float(np.median(build)),
            "fit_s": float(np.median(fit)), "ms_per_eval": 1e3 * float(np.median(evals)), "peak_mb": peak,
            "data_mb": (y.nbytes + X.nbytes + g.nbytes) / 2 ** 20, "evals": n_evals, "llf": llf}


def run_point(n, n_groups, repeats):
    cmd = [sys.executable, __file__, "--point", str(n), str(n_groups), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"rows": n, "clusters": n_groups,
            "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}


def line(series, r):
    if "error" in r:
        cells = [series, "%d" % r["rows"], "%d" % r["clusters"]]
        return " ".join(c.rjust(w) if i else c.ljust(w) for i, (c, (_, w)) in
                        enumerate(zip(cells, COLUMNS))) + "  " + r["error"][:90]
    cells = [series, "%d" % r["rows"], "%d" % r["clusters"], "%.3f" % r["build_s"], "%.3f" % r["fit_s"],
             "%d" % r["evals"], "%.3f" % r["ms_per_eval"], "%.1f" % r["peak_mb"],
             "%.2f" % (r["peak_mb"] / r["data_mb"]), "%.3f" % r["llf"]]
    return " ".join(c.rjust(w) if i else c.ljust(w) for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS)))


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for col, key in enumerate(("rows", "clusters")):
        pts = [r for s, r in results if s == key and "error" not in r]
        x = [r[key] for r in pts]
        ax = axes[0, col]
        ax.loglog(x, [r["build_s"] for r in pts], "o-", label="(a) model construction")
        ax.loglog(x, [r["fit_s"] for r in pts], "s-", label="(b) fit")
        ax.loglog(x, [r["ms_per_eval"] / 1e3 for r in pts], "^--", label="one deviance evaluation")
        ax.set_ylabel("seconds")
        ax = axes[1, col]
        ax.loglog(x, [r["peak_mb"] for r in pts], "o-", label="peak memory of (a) + (b)")
        ax.loglog(x, [r["data_mb"] for r in pts], "s--", label="the data arrays")
        ax.set_ylabel("MB")
        ax.set_xlabel(key + (" (1,000 clusters)" if key == "rows" else " (1e6 rows)"))
        for ax in axes[:, col]:
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.suptitle("hlmext LinearMixed, random intercept and slope, ML")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print("plot written to %s" % path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--big", action="store_true", help="also 1e7 rows (about 4 GB of memory)")
    p.add_argument("--plot", action="store_true", help="write a plot (needs matplotlib)")
    p.add_argument("--plot-path", default=str(HERE.parent / "docs" / "_static" / "scaling.png"))
    p.add_argument("--repeats", type=int, default=3, help="median of this many builds and fits per point")
    p.add_argument("--point", nargs=2, type=int, metavar=("ROWS", "CLUSTERS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.point:
        print("RESULT " + json.dumps(point(*args.point, max(args.repeats, 1))), flush=True)
        return 0
    plan = [("rows", n, 1_000) for n in (10_000, 100_000, 1_000_000) + ((10_000_000,) if args.big else ())]
    plan += [("clusters", 1_000_000, c) for c in (1_000, 10_000, 100_000)]
    head = " ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(COLUMNS))
    print(head + "\n" + "-" * len(head), flush=True)
    results = []
    for series, n, c in plan:
        r = run_point(n, c, args.repeats)
        results.append((series, r))
        print(line(series, r), flush=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "scaling.json").write_text(json.dumps([dict(r, series=s) for s, r in results], indent=1))
    if args.plot:
        plot(results, args.plot_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
