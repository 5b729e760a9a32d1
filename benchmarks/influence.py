"""Group-deletion influence against one fit: every group of a scenario deleted in turn and refitted.

``python benchmarks/influence.py [--scenario rs_large] [--repeats 3] [--check 3]``

In one process, alternately: the fit from the DataFrame (``hlmext.mixedlm(...).fit(reml=False)``)
and ``results.influence()`` of every group (each deletion re-estimates the variance
parameters). Prints the best times of each and their ratio, how many groups were solved at
once (the others are refitted one by one from the downdated statistics), and, for the
``--check`` most influential groups, the largest difference of the fixed effects from a
real refit without the group.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402

import hlmext  # noqa: E402
import simulate  # noqa: E402
from hlmext.results import deletion  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="rs_large")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check", type=int, default=3)
    args = ap.parse_args(argv)
    spec, df = simulate.make(args.scenario)
    fits, infs = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = hlmext.mixedlm(spec.formula, df).fit(reml=False)
        fits.append(time.perf_counter() - t)
        t = time.perf_counter()
        inf = res.influence()
        infs.append(time.perf_counter() - t)
    fast = deletion.fast_deletions(res.model, np.asarray(res.theta), res.opt.hessian, False)
    settled = 0 if fast is None else int(fast[2].sum())
    group = spec.groups[0]
    worst = 0.0
    for g in inf.sort_values("cooks_distance").index[-args.check:]:
        refit = hlmext.mixedlm(spec.formula, df[df[group] != g]).fit(reml=False)
        got = inf.loc[g].iloc[:res.k_fe].to_numpy(float)
        worst = max(worst, float(np.max(np.abs((res.fe_params - refit.fe_params).to_numpy() - got))))
    print("scenario %s: %d groups; fit %.3f s, influence %.3f s (best of %d): %.1f fits; %d groups solved at once; "
          "max |dfbeta - real refit| of the %d most influential groups %.2g"
          % (args.scenario, len(inf), min(fits), min(infs), args.repeats, min(infs) / min(fits), settled,
             args.check, worst))


if __name__ == "__main__":
    main()
