"""One benchmark job in a fresh process: ``python benchmarks/workers.py KIND SCENARIO SIZE REPEATS``.

KIND is ``ours`` (hlmext, the OLS/GLM floor and peak memory), ``statsmodels`` or
``lme4``. The job prints one line ``RESULT {json}``; ``run.py`` starts it with a
timeout. Each scenario's data are simulated again in the job (fixed seed, same data).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]   # benchmark this checkout's hlmext

import numpy as np  # noqa: E402

import simulate  # noqa: E402


def _median_time(fn, repeats):
    times, out = [], None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _floor(spec, df, repeats):
    """Time of one OLS (lstsq) or GLM fit of the fixed part on the same arrays."""
    y, X, _, _, offset = simulate.arrays(spec, df)
    if spec.family == "gaussian":
        return _median_time(lambda: np.linalg.lstsq(X, y, rcond=None), repeats)[0], "OLS lstsq"
    if spec.family == "ordinal":              # statsmodels' ordinal regression, without the intercept
        from statsmodels.miscmodels.ordinal_model import OrderedModel
        return _median_time(lambda: OrderedModel(y, X[:, 1:], distr="logit").fit(method="bfgs", disp=False),
                            repeats)[0], "OrderedModel"
    import statsmodels.api as sm
    if spec.family == "nb2":                      # the NB2 GLM by ML (alpha estimated)
        return _median_time(lambda: sm.NegativeBinomial(y, X, offset=offset).fit(disp=0), repeats)[0], "NB2 ML"
    fam = {"binomial": sm.families.Binomial(), "probit": sm.families.Binomial(link=sm.families.links.Probit()),
           "poisson": sm.families.Poisson()}[spec.family]
    return _median_time(lambda: sm.GLM(y, X, family=fam, offset=offset).fit(), repeats)[0], "GLM"


def _builder(spec, df):
    """A function building our model from the DataFrame, or a reason why there is none."""
    import hlmext
    if spec.family == "gaussian":
        return lambda: hlmext.mixedlm(spec.formula, df)
    ctor = getattr(hlmext, {"binomial": "melogit", "poisson": "mepoisson", "nb2": "menbreg",
                            "probit": "meprobit", "ordinal": "meologit"}[spec.family], None)
    if ctor is None:
        return "not available"
    if spec.offset:
        offset = df[spec.offset].to_numpy(float)
        return lambda: ctor(spec.formula, df, offset=offset)
    return lambda: ctor(spec.formula, df)


def _fit_kwargs(spec, kw):
    return dict(kw, reml=False) if spec.family == "gaussian" else dict(kw)


def _describe_error(exc):
    from hlmext import ModelError
    if isinstance(exc, ModelError) and "crossed" in str(exc):
        return "not available"
    if isinstance(exc, (TypeError, NotImplementedError)) and "nagq" in str(exc):
        return "not available"
    return "error: %s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200])


BUILD_ONLY = {"crossed_large"}     # a fit takes hours here: the refusal, the build and what a fit needs


def _build_only(spec, df):
    """How soon the model is refused, then (with ``allow_large_crossed=True``) build it once: time,
    peak RSS, the tail's size and the memory a fit would need."""
    import hlmext
    from hlmext.design.memory import memory_needed
    t0 = time.perf_counter()
    try:
        _builder(spec, df)()
        refused = "not refused"
    except hlmext.ModelError as exc:
        refused = "refused in %.1f s: %s" % (time.perf_counter() - t0, exc)
    print(refused, flush=True)
    t0 = time.perf_counter()
    model = hlmext.mixedlm(spec.formula, df, allow_large_crossed=True)
    d = model.design
    need = memory_needed(d.stat_size, d.qd, d.k_fe) / 1e9
    return {"status": "built in %.1f s; a fit needs %.1f GB (a %d x %d dense tail, %d coupling values) and one "
                      "Cholesky of the tail per evaluation" % (time.perf_counter() - t0, need, d.qd, d.qd,
                                                              d.coupling.size if d.coupling else 0),
            "build_s": time.perf_counter() - t0, "memory_needed_gb": need, "refusal": refused}


def ours(name, size, repeats):
    spec, df = simulate.make(name, size)
    if name in BUILD_ONLY and size != "small":
        out = {"rows": len(df), "fits": {label: _build_only(spec, df) for label, _ in spec.fits[:1]}}
        out["maxrss_mb"] = _maxrss_mb()
        return out
    y, X, _, _, _ = simulate.arrays(spec, df)     # data: response, fixed design and every grouping column
    out = {"rows": len(df), "maxrss_data_mb": _maxrss_mb(), "fits": {},
           "data_mb": (y.nbytes + X.nbytes + sum(df[c].to_numpy().nbytes for c in spec.groups)) / 2 ** 20}
    del y, X
    out["floor_s"], out["floor_kind"] = _floor(spec, df, repeats)
    build = _builder(spec, df)
    for label, kw in spec.fits:
        row = out["fits"][label] = {}
        if isinstance(build, str):
            row["status"] = build
            continue
        kwargs = _fit_kwargs(spec, kw)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                row["formula_s"], res = _median_time(lambda: build().fit(**kwargs), repeats)
            row["llf"] = float(res.llf)
            row["converged"] = bool(getattr(res, "converged", True))
            row["n_evals"] = int(getattr(getattr(res, "opt", None), "n_evals", 0)) or None
            row["warnings"] = sorted({type(w.message).__name__ for w in caught})
            if spec.two_level_gaussian:
                import hlmext
                y, X, g, Z, _ = simulate.arrays(spec, df)
                row["arrays_s"], res_a = _median_time(
                    lambda: hlmext.LinearMixed(y, X, g, Z).fit(reml=False), repeats)
                row["arrays_llf"] = float(res_a.llf)
            tracemalloc.start()
            build().fit(**kwargs)
            row["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
            tracemalloc.stop()
            row["status"] = "ok"
        except Exception as exc:  # report, never fail the whole run
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            row["status"] = _describe_error(exc)
    out["maxrss_mb"] = _maxrss_mb()
    return out


def _vc_matrix(groups, values=None):
    """Sparse indicator (or ``values`` in place of ones) matrix of the groups, rows x groups."""
    import pandas as pd
    from scipy import sparse
    codes = pd.factorize(groups)[0]
    n, k = len(codes), int(codes.max()) + 1
    vals = np.ones(n) if values is None else values
    return sparse.csr_array((vals, (np.arange(n), codes)), shape=(n, k))


def _alarm(seconds):
    """Raise TimeoutError in this process after ``seconds`` (run.py also kills it later)."""
    def handler(signum, frame):
        raise TimeoutError("time limit %g s" % seconds)
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def statsmodels_fit(name, size, limit):
    """statsmodels MixedLM (ML) or the Bayes GLMM's fit_vb, timed from the DataFrame."""
    spec, df = simulate.make(name, size)
    warnings.simplefilter("ignore")
    _alarm(limit)
    fe = "y ~ " + " + ".join(spec.fe)
    if spec.family == "ordinal":              # statsmodels has no ordinal mixed model
        return {"status": "n/a"}
    if spec.family == "gaussian":
        from statsmodels.regression.mixed_linear_model import MixedLM
        if spec.name == "nested3":
            def fit():
                return MixedLM.from_formula(fe, df, groups=df["district"], re_formula="1",
                                            vc_formula={"school": "0 + C(school)"}).fit(reml=False)
        elif spec.name == "crossed":
            def fit():
                return MixedLM.from_formula(fe, df, groups=np.ones(len(df)), re_formula="0", use_sparse=True,
                                            vc_formula={"a": "0 + C(a)", "b": "0 + C(b)"}).fit(reml=False)
        else:
            re = "~" + " + ".join(["1"] + spec.slope)
            def fit():
                return MixedLM.from_formula(fe, df, groups=df["g"], re_formula=re).fit(reml=False)
        try:
            t, res = _median_time(fit, 1)
        except TimeoutError:
            return {"timeout": True}
        return {"time_s": t, "llf": float(res.llf), "maxrss_mb": _maxrss_mb(),
                "converged": bool(res.converged)}
    from scipy import sparse
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM, PoissonBayesMixedGLM
    if spec.family not in ("binomial", "poisson"):
        return {"status": "n/a"}                  # no Bayes GLMM of this family in statsmodels
    cls = BinomialBayesMixedGLM if spec.family == "binomial" else PoissonBayesMixedGLM

    def fit():
        y, X, g, _, offset = simulate.arrays(spec, df)
        if offset is not None:      # no offset in the Bayes GLMM: log exposure as a covariate
            X = np.column_stack([X, offset])
        if len(spec.groups) > 1:    # crossed factors: one variance component each
            mats = [_vc_matrix(df[c].to_numpy()) for c in spec.groups]
        else:
            mats = [_vc_matrix(g)] + [_vc_matrix(g, df[c].to_numpy(float)) for c in spec.slope]
        ident = np.repeat(np.arange(len(mats)), [m.shape[1] for m in mats])
        return cls(y, X, sparse.hstack(mats).tocsr(), ident).fit_vb()
    try:
        t, _ = _median_time(fit, 1)
    except TimeoutError:
        return {"timeout": True}
    return {"time_s": t, "llf": None, "maxrss_mb": _maxrss_mb()}


R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
for (g in strsplit(args[2], ",")[[1]]) d[[g]] <- factor(d[[g]])
if (args[4] == "ordinal") { suppressMessages(library(ordinal)); d$y <- factor(d$y, ordered = TRUE) }
form <- as.formula(args[3])
for (spec in strsplit(args[5], ",")[[1]]) {
  setTimeLimit(elapsed = as.numeric(args[6]), transient = TRUE)
  parts <- strsplit(spec, "=")[[1]]; label <- parts[1]; nagq <- as.integer(parts[2])
  t <- system.time(m <- tryCatch(
    if (args[4] == "gaussian") lmer(form, data = d, REML = FALSE)
    else if (args[4] == "nb2") glmmTMB::glmmTMB(form, data = d, family = glmmTMB::nbinom2)
    else if (args[4] == "probit") glmer(form, data = d, family = binomial(link = "probit"), nAGQ = nagq)
    else if (args[4] == "ordinal") clmm(form, data = d, nAGQ = nagq)
    else glmer(form, data = d, family = args[4], nAGQ = nagq),
    error = function(e) conditionMessage(e)))[["elapsed"]]
  setTimeLimit(elapsed = Inf)
  if (is.character(m)) {
    message(m)
    cat("RESULT", label, if (grepl("time limit", m)) "TIMEOUT" else "NA", "NA\n")
  } else {
    llf <- as.numeric(logLik(m))   # nAGQ > 1 omits the saturated log-likelihood (lme4 issue #161)
    if (args[4] == "poisson" && nagq > 1) llf <- llf + sum(dpois(d$y, d$y, log = TRUE))
    cat("RESULT", label, sprintf("%.6f %.6f", t, llf), "\n")
  }
}
"""


def lme4_available():
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "suppressMessages(library(lme4))"], capture_output=True)
    return probe.returncode == 0


def lme4_fit(name, size, limit):
    """Time only the lmer/glmer call inside R (system.time); the CSV is read before."""
    spec, df = simulate.make(name, size)
    formula = spec.formula + (" + offset(%s)" % spec.offset if spec.offset else "")
    fits = ",".join("%s=%d" % (label, kw.get("nagq", 1)) for label, kw in spec.fits)
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = os.path.join(tmp, "data.csv"), os.path.join(tmp, "fit.R")
        df.to_csv(csv, index=False)
        Path(script).write_text(R_SCRIPT)
        proc = subprocess.run(["Rscript", script, csv, ",".join(spec.groups), formula, spec.family, fits,
                               str(limit)],
                              capture_output=True, text=True)
    out = {"fits": {}}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            _, label, t, llf = line.split()[:4]
            out["fits"][label] = ({"timeout": True} if t == "TIMEOUT" else {"status": "n/a"} if t == "NA"
                                  else {"time_s": float(t), "llf": float(llf)})
            if spec.family == "poisson" and "AGHQ" in label and "llf" in out["fits"][label]:
                out["fits"][label]["note"] = ("logLik of nAGQ > 1 shifted by the saturated log-likelihood "
                                              "(lme4 issue #161)")
    if proc.returncode != 0 or not out["fits"]:
        out["error"] = (proc.stderr.strip().splitlines() or ["Rscript failed"])[-1][:200]
    return out


JOBS = {"ours": ours, "statsmodels": statsmodels_fit, "lme4": lme4_fit}

if __name__ == "__main__":
    kind, scenario, size, number = sys.argv[1:5]   # number: repeats (ours) or time limit in s
    result = JOBS[kind](scenario, size, int(float(number)) if kind == "ours" else float(number))
    print("RESULT " + json.dumps(result), flush=True)
