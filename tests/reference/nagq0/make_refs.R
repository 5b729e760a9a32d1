## glmer(nAGQ = 0) reference fits on the CSV files in hlmext/datasets/data/.
## Run from the repository root:  Rscript tests/reference/nagq0/make_refs.R
## Writes tests/reference/nagq0/<id>.json.
##
## nAGQ = 0: the fixed effects are found inside the penalized IRLS (the joint mode of
## (beta, u) given theta) and only theta is optimized; the reported standard errors are
## those of vcov(), which for nAGQ = 0 come from the PIRLS factor RX at the optimum
## (no Hessian in (beta, theta) is computed).
## loglik: logLik() of the fit; laplace_check recomputes the Laplace log-likelihood with
## every constant at the reported (beta, theta) by a separate nAGQ = 1 deviance function,
## which shows that the two agree (lme4's Laplace deviance keeps the binomial/Poisson
## constants, so no conversion is needed).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "nagq0")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")
ctrl <- glmerControl(tolPwrss = 1e-13)

fit_one <- function(id, dataset, formula, family, trials = NULL, prep = identity) {
  df <- prep(read.csv(file.path(datadir, dataset)))
  rform <- gsub("C\\((\\w+)\\)", "factor(\\1)", formula)
  if (!is.null(trials)) {
    df$.w <- df[[trials]]
    lhs <- sub("~.*", "", rform)
    rform <- sub("^[^~]*~", paste0("cbind(", trimws(lhs), ", .w - ", trimws(lhs), ") ~"), rform)
  }
  t0 <- proc.time()[["elapsed"]]
  m <- glmer(as.formula(rform), data = df, family = family, nAGQ = 0L, control = ctrl)
  secs <- proc.time()[["elapsed"]] - t0
  ## the Laplace log-likelihood at the same (theta, beta), from lme4's nAGQ = 1 deviance
  m1 <- glmer(as.formula(rform), data = df, family = family, nAGQ = 1L, control = ctrl, devFunOnly = TRUE)
  lap <- -0.5 * m1(c(getME(m, "theta"), fixef(m)))
  vc <- as.data.frame(VarCorr(m))
  fe <- fixef(m)
  se <- sqrt(diag(as.matrix(vcov(m))))
  out <- list(
    id = id, dataset = dataset, family = family, formula = formula, trials = trials,
    method = "nAGQ=0", nagq = 0, engine = paste("lme4", as.character(packageVersion("lme4"))),
    nobs = nobs(m), ngroups = as.list(getME(m, "l_i")),
    fixed = lapply(seq_along(fe), function(i) list(name = gsub("factor\\((\\w+)\\)", "C(\\1)", names(fe)[i]),
                                                   estimate = unname(fe[i]),
                                                   se = unname(se[i]))),
    random = lapply(seq_len(nrow(vc)), function(i) list(level = vc$grp[i], sd = vc$sdcor[i])),
    theta = unname(getME(m, "theta")),
    loglik = as.numeric(logLik(m)), laplace_check = lap,
    fit_seconds = secs)
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
             file.path(outdir, paste0(id, ".json")))
  cat(id, "loglik", out$loglik, "laplace", lap, "\n")
}

fit_one("cbpp_ri_nagq0", "cbpp.csv", "incidence ~ C(period) + (1 | herd)", "binomial", trials = "size")
fit_one("grouseticks_ri_nagq0", "grouseticks.csv", "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", "poisson")
fit_one("grouseticks_nested_nagq0", "grouseticks.csv", "TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)",
        "poisson")
