"""Benchmarks of hlmext against statsmodels (and lme4 when R has it): ``python benchmarks/run.py``.

Every scenario runs in fresh processes (``workers.py``): one for hlmext (times, the
OLS/GLM floor, peak memory by tracemalloc), one for statsmodels and one for lme4, the
last two killed at ``--time-limit``. Prints one row per fit and a final table, and
writes ``benchmarks/results/latest.json`` and ``latest.csv``. See docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import simulate  # noqa: E402
from workers import lme4_available  # noqa: E402

MEMORY = ("tracemalloc peak of one formula fit (Python and numpy allocations; the input DataFrame excluded); "
          "peak/data = peak MB over the MB of the response, fixed design and every grouping column as arrays")
COLUMNS = [("scenario", 13), ("fit", 7), ("rows", 9), ("ours df s", 13), ("ours arr s", 10),
           ("peak MB", 8), ("ours llf", 15), ("sm s", 8), ("sm llf", 15), ("lme4 s", 8),
           ("lme4 llf", 15), ("floor s", 8), ("df/floor", 8), ("arr/floor", 9), ("sm/ours", 8),
           ("peak/data", 9)]


PER_FIT = ["many_responses", "small_fits"]     # run only when named; see many.py
RESIDUALS = ["ar1_large", "ar1_nlme"]           # run only when named; see residuals.py (nlme, not lme4)


def run_job(kind, scenario, size, number, timeout, threads=None):
    """Run ``workers.py`` in a fresh process; its result dict, or {"timeout"/"error": ...}."""
    cmd = [sys.executable, str(HERE / "workers.py"), kind, scenario, size, str(number)]
    env = dict(os.environ)
    if threads:
        env.update({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"timeout": True}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1][:300]}


def fmt_t(t):
    if t is None:
        return ""
    return "%.5f" % t if t < 0.01 else "%.4f" % t if t < 0.1 else "%.3f" % t if t < 10 else "%.1f" % t


def fmt(v, spec="%.3f"):
    return "" if v is None else v if isinstance(v, str) else spec % v


def fmt_ratio(v):
    return "" if v is None else "%.1f" % v if v < 100 else "%.0f" % v


def other_time(res, limit):
    """(seconds or None, text) of a statsmodels/lme4 result."""
    if res is None:
        return None, "n/a"
    if res.get("timeout"):
        return None, "> %g" % limit
    if "time_s" in res:
        return res["time_s"], fmt_t(res["time_s"])
    return None, res.get("status", "error" if "error" in res else "n/a")


def scenario_rows(name, args, use_lme4):
    missing = simulate.unavailable(name)
    if missing:
        print("%s: %s" % (name, missing), flush=True)
        return []
    spec, _ = simulate.make(name, "small")          # only the fit labels are needed here
    th = args.blas_threads
    ours = run_job("ours", name, args.size, args.repeats, max(1800, 10 * args.time_limit), th)
    allowance = args.time_limit + 120                # imports, simulation, writing/reading the CSV
    sm = None if args.no_statsmodels or name in simulate.NO_STATSMODELS else \
        run_job("statsmodels", name, args.size, args.time_limit, allowance, th)
    r = run_job("lme4", name, args.size, args.time_limit, allowance, th) if use_lme4 else None
    rows = []
    for label, _ in spec.fits:
        fit = ours.get("fits", {}).get(label, {"status": "error: " + ours.get("error", "timeout")})
        ok = fit.get("status") == "ok"
        t_ours = fit.get("formula_s") if ok else None
        sm_t, sm_text = other_time(sm, args.time_limit) if not args.no_statsmodels else (None, "skipped")
        lme4_res = None if r is None else r.get("fits", {}).get(label, {"error": r.get("error", "n/a")})
        if r is not None and r.get("timeout"):
            lme4_res = {"timeout": True}
        lme4_t, lme4_text = other_time(lme4_res, args.time_limit)
        if r is None and args.no_lme4:
            lme4_text = "skipped"
        floor = ours.get("floor_s")
        t_arrays, data_mb = fit.get("arrays_s") if ok else None, ours.get("data_mb")
        sm_ratio = None
        if t_ours and sm_t:
            sm_ratio = "%.1f" % (sm_t / t_ours)
        elif t_ours and sm is not None and sm.get("timeout"):
            sm_ratio = "> %.0f" % (args.time_limit / t_ours)
        sm_llf = None if sm is None else sm.get("llf")
        sm_note = None
        if spec.family not in ("gaussian", "ordinal") and sm is not None:
            sm_note = "fit_vb (variational Bayes): llf not comparable" + (
                "; no offset, log exposure as a covariate" if spec.offset else "")
        rows.append({
            "scenario": name, "fit": label, "rows": ours.get("rows"),
            "ours_formula_s": t_ours, "ours_arrays_s": fit.get("arrays_s"), "peak_mb": fit.get("peak_mb"),
            "ours_llf": fit.get("llf"), "ours_status": fit.get("status"), "ours_converged": fit.get("converged"),
            "ours_n_evals": fit.get("n_evals"), "ours_warnings": fit.get("warnings"),
            "ours_maxrss_mb": ours.get("maxrss_mb"),
            "sm_s": sm_t, "sm_text": sm_text, "sm_llf": sm_llf, "sm_note": sm_note,
            "sm_error": (sm or {}).get("error"),
            "lme4_s": lme4_t, "lme4_text": lme4_text, "lme4_llf": (lme4_res or {}).get("llf"),
            "lme4_note": (lme4_res or {}).get("note"), "ours_arrays_llf": fit.get("arrays_llf"),
            "floor_s": floor, "floor_kind": ours.get("floor_kind"),
            "ours_over_floor": t_ours / floor if t_ours and floor else None, "sm_over_ours": sm_ratio,
            "ours_arrays_over_floor": t_arrays / floor if t_arrays and floor else None, "data_mb": data_mb,
            "peak_over_data": fit["peak_mb"] / data_mb if ok and data_mb and fit.get("peak_mb") else None,
        })
    return rows


def table_line(row):
    ok = row["ours_status"] == "ok"
    sm_llf = row["sm_llf"] if row["sm_s"] is not None else None
    if row["sm_s"] is not None and row["sm_llf"] is None:
        sm_llf = "n/a"
    cells = [row["scenario"], row["fit"], fmt(row["rows"], "%d"),
             fmt_t(row["ours_formula_s"]) if ok else row["ours_status"][:13],
             fmt_t(row["ours_arrays_s"]), fmt(row["peak_mb"], "%.1f"), fmt(row["ours_llf"]),
             row["sm_text"], fmt(sm_llf), row["lme4_text"], fmt(row["lme4_llf"]),
             fmt_t(row["floor_s"]), fmt_ratio(row["ours_over_floor"]), fmt_ratio(row["ours_arrays_over_floor"]),
             fmt(row["sm_over_ours"]), fmt(row["peak_over_data"], "%.2f")]
    return " ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, (_, w)) in
                    enumerate(zip(cells, COLUMNS)))


def header():
    head = " ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(COLUMNS))
    return head + "\n" + "-" * len(head)


def machine_info():
    def git(*a):
        try:
            return subprocess.run(["git", "-C", str(HERE.parent), *a], capture_output=True, text=True).stdout
        except OSError:
            return ""
    commit = git("rev-parse", "--short", "HEAD").strip()
    dirty = any(ln[3:].startswith("hlmext/") for ln in git("status", "--porcelain").splitlines())
    import numpy
    import statsmodels
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "numpy": numpy.__version__,
            "statsmodels": statsmodels.__version__, "git_commit": commit,
            "hlmext_modified": dirty, "loadavg_start": round(os.getloadavg()[0], 2)}


def write_results(rows, args, info, elapsed):
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*.json\n*.csv\n")
    meta = dict(info, loadavg_end=round(os.getloadavg()[0], 2), size=args.size, repeats=args.repeats,
                time_limit_s=args.time_limit, blas_threads=args.blas_threads, memory=MEMORY,
                elapsed_s=round(elapsed, 1))
    (out / "latest.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    with open(out / "latest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["scenario"])
        w.writeheader()
        for row in rows:
            w.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()})
    return out / "latest.json"


def notes_of(rows):
    """Lines to print under the table: what differs from a plain comparison."""
    notes = set()
    for r in rows:
        where = "%s/%s" % (r["scenario"], r["fit"])
        if r["sm_note"]:
            notes.add("%s: statsmodels %s" % (r["scenario"], r["sm_note"]))
        if r["sm_error"]:
            notes.add("%s: statsmodels %s" % (r["scenario"], r["sm_error"]))
        if r["ours_status"] not in ("ok", "not available"):
            notes.add("%s: %s" % (where, r["ours_status"]))
        if r["ours_warnings"]:
            notes.add("%s: ours warned %s" % (where, ", ".join(r["ours_warnings"])))
        if r["ours_converged"] is False:
            notes.add("%s: ours did not converge" % where)
        if r["lme4_note"]:
            notes.add("%s: lme4 %s" % (where, r["lme4_note"]))
        a, f = r["ours_arrays_llf"], r["ours_llf"]
        if a is not None and f is not None and abs(a - f) > 1e-6 * abs(f):
            notes.add("%s: llf from arrays %.6f differs from the formula fit" % (where, a))
    return sorted(notes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default=",".join(simulate.ORDER),
                   help="comma-separated subset of: " + ", ".join(simulate.ORDER)
                   + " (default: all of these), and " + ", ".join(simulate.EXTRA + PER_FIT + RESIDUALS))
    p.add_argument("--repeats", type=int, default=3, help="our time is the median of this many fits")
    p.add_argument("--size", choices=list(simulate.SCALE), default="default",
                   help="small: rows and groups / 10; large: x 10")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds for each statsmodels/lme4 fit")
    p.add_argument("--no-statsmodels", action="store_true")
    p.add_argument("--no-lme4", action="store_true", help="skip lme4 even when R has it")
    p.add_argument("--blas-threads", type=int, help="set OPENBLAS/OMP/MKL_NUM_THREADS for every job")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    known = simulate.ORDER + simulate.EXTRA + PER_FIT + RESIDUALS
    unknown = [s for s in names if s not in known]
    if unknown:
        p.error("unknown scenario(s) %s; choose from %s" % (", ".join(unknown), ", ".join(known)))
    for name in [s for s in names if s in PER_FIT]:        # per-fit overhead: their own report (many.py)
        subprocess.run([sys.executable, str(HERE / "many.py"), name, args.size], check=False)
    residual = [s for s in names if s in RESIDUALS]        # residual structures: their own report (residuals.py)
    if residual:
        subprocess.run([sys.executable, str(HERE / "residuals.py"), "--scenarios", ",".join(residual),
                        "--repeats", str(args.repeats)], check=False)
    names = [s for s in names if s not in PER_FIT + RESIDUALS]
    if not names:
        return
    use_lme4 = not args.no_lme4 and lme4_available()
    info = machine_info()
    print("hlmext benchmarks, size=%s, repeats=%d, time limit %g s, lme4 %s, %s, %d cpus (load %.1f), "
          "BLAS threads %s, commit %s%s" % (args.size, args.repeats, args.time_limit, "on" if use_lme4 else "n/a",
                                            info["date"], info["cpus"], info["loadavg_start"],
                                            args.blas_threads or "default", info["git_commit"],
                                            " (hlmext/ modified)" if info["hlmext_modified"] else ""))
    print(header(), flush=True)
    t0, rows = time.perf_counter(), []
    for name in names:
        for row in scenario_rows(name, args, use_lme4):
            rows.append(row)
            print(table_line(row), flush=True)
    elapsed = time.perf_counter() - t0
    print("\nFinal table (times in seconds; peak MB = %s)\n" % MEMORY)
    print(header())
    for row in rows:
        print(table_line(row))
    for note in notes_of(rows):
        print("note: " + note)
    path = write_results(rows, args, info, elapsed)
    print("\n%d rows in %.0f s (load average %.1f at the start, %.1f at the end); written to %s (and latest.csv)"
          % (len(rows), elapsed, info["loadavg_start"], os.getloadavg()[0], path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
