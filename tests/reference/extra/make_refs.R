## Reference fits (lme4 / glmmTMB) on the real data sets in hlmext/datasets/data/.
## Run from the repository root:  Rscript tests/reference/extra/make_refs.R
## Writes one JSON file per fit to tests/reference/extra/<id>.json.
## (The CSV files themselves are written by tests/reference/extra/make_data.R.)
##
## Conventions (see README.md in this folder):
##  * loglik includes every constant of the conditional density.  lme4's
##    nAGQ > 1 log-likelihood omits the saturated log-density, so it is added
##    back here and checked against direct numerical integration; Laplace
##    log-likelihoods are checked against a hand computation.
##  * GLMMs are fitted with a tight PIRLS tolerance (tolPwrss = 1e-13): with
##    lme4's default the Laplace log-likelihood can be off by ~1e-4.
##  * A fit with a convergence warning is refitted with several optimizers
##    and the best log-likelihood is kept (recorded in "warnings").
##  * Every lme4 optimum is then polished by a bobyqa restart with a tiny final
##    trust radius; an lmer variance parameter left at ~1e-8 is set to 0.
##  * Fixed parts are written so that patsy builds the same columns in the same
##    order as R: patsy puts terms without numeric variables (the C(x) terms)
##    first, so they are written first here too.
##  * For REML fits loglik / deviance / aic / bic are on the REML scale.
##  * aic = -2 loglik + 2 k, bic = -2 loglik + log(nobs) k, deviance = -2 loglik,
##    k = #fixed + #covariance parameters (+1 for the gaussian residual sd).
##  * lr_vs_regression: 2 (loglik - loglik of the same model without random
##    effects, same method: lm ML/REML or glm), df = #covariance parameters.

suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))

datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "extra")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")

ENGINE_LME4 <- paste("lme4", as.character(packageVersion("lme4")))
ENGINE_TMB <- paste("glmmTMB", as.character(packageVersion("glmmTMB")))

## ---------------------------------------------------------------------------
## The fits
## ---------------------------------------------------------------------------
f_hsb <- "mAch ~ meanses + cses + catholic + meanses:cses + cses:catholic + (cses | school)"
f_orth <- "distance ~ C(Sex) + age + (age | Subject)"
f_eg_ri <- "math ~ year + black + hispanic + (1 | schoolid) + (1 | childid)"
f_eg_sl <- "math ~ year + black + hispanic + (year | childid) + (1 | schoolid)"
f_oats <- "yld ~ C(Variety) + nitro + (1 | Block) + (1 | plot)"
f_oats_bn <- "yld ~ C(Variety) + nitro + (1 | Block) + (1 | plot) + (1 | blknit)"
f_eg_sl2 <- "math ~ year + black + hispanic + (year | childid) + (year | schoolid)"
f_scot <- "attain ~ C(sex) + verbal + (1 | primary) + (1 | second)"
f_bac_ri <- "y ~ C(trt) + week + (1 | ID)"
f_bac_sl <- "y ~ C(trt) + week + (week | ID)"
gu_fixed <- "immun ~ C(ord) + C(ethn) + C(momEd) + C(husEd) + kid2p + mom25p + momWork + rural + pcInd81"
f_gu_sl <- paste(gu_fixed, "+ (kid2p | comm)")
f_gu_3 <- paste(gu_fixed, "+ (1 | mom) + (1 | comm)")
f_verb <- "r2 ~ C(Gender) + C(btype) + C(situ) + C(mode) + Anger + (1 | id) + (1 | item)"
f_mm_1 <- "deaths ~ uvb + (1 | region)"
f_mm_2 <- "deaths ~ uvb + (1 | nation) + (1 | region)"

S <- function(id, dataset, formula, family = "gaussian", method = "REML",
              nagq = NULL, engine = "lme4", offset = NULL, offset_r = NULL) {
  list(id = id, dataset = dataset, formula = formula, family = family,
       method = method, nagq = nagq, engine = engine, offset = offset,
       offset_r = offset_r)
}
specs <- list(
  ## two-level linear, correlated random intercept and slope
  S("hsb82_slope_reml", "hsb82.csv", f_hsb, method = "REML"),
  S("hsb82_slope_ml", "hsb82.csv", f_hsb, method = "ML"),
  S("orthodont_slope_reml", "orthodont.csv", f_orth, method = "REML"),
  S("orthodont_slope_ml", "orthodont.csv", f_orth, method = "ML"),
  ## three-level nested linear
  S("egsingle_3lev_ri_reml", "egsingle.csv", f_eg_ri, method = "REML"),
  S("egsingle_3lev_ri_ml", "egsingle.csv", f_eg_ri, method = "ML"),
  S("egsingle_3lev_slope_reml", "egsingle.csv", f_eg_sl, method = "REML"),
  S("egsingle_3lev_slope_ml", "egsingle.csv", f_eg_sl, method = "ML"),
  S("oats_3lev_ri_reml", "oats.csv", f_oats, method = "REML"),
  S("oats_3lev_ri_ml", "oats.csv", f_oats, method = "ML"),
  S("egsingle_3lev_slope2_ml", "egsingle.csv", f_eg_sl2, method = "ML"),
  ## singular: the Block x nitrogen variance is estimated as exactly zero
  S("oats_singular_ml", "oats.csv", f_oats_bn, method = "ML"),
  S("oats_singular_reml", "oats.csv", f_oats_bn, method = "REML"),
  ## crossed linear
  S("scotssec_crossed_reml", "scotssec.csv", f_scot, method = "REML"),
  S("scotssec_crossed_ml", "scotssec.csv", f_scot, method = "ML"),
  ## binary logit
  S("bacteria_ri_laplace", "bacteria.csv", f_bac_ri, "binomial", "Laplace", 1),
  S("bacteria_ri_agq7", "bacteria.csv", f_bac_ri, "binomial", "AGQ", 7),
  S("bacteria_slope_laplace", "bacteria.csv", f_bac_sl, "binomial", "Laplace", 1),
  S("bacteria_slope_glmmtmb", "bacteria.csv", f_bac_sl, "binomial", "Laplace", 1, "glmmTMB"),
  S("guimmun_slope_laplace", "guimmun.csv", f_gu_sl, "binomial", "Laplace", 1),
  S("guimmun_slope_glmmtmb", "guimmun.csv", f_gu_sl, "binomial", "Laplace", 1, "glmmTMB"),
  S("guimmun_3lev_laplace", "guimmun.csv", f_gu_3, "binomial", "Laplace", 1),
  S("verbagg_crossed_laplace", "verbagg.csv", f_verb, "binomial", "Laplace", 1),
  ## Poisson with offset
  S("mmmec_region_laplace", "mmmec.csv", f_mm_1, "poisson", "Laplace", 1,
    offset = "np.log(expected)", offset_r = "log(expected)"),
  S("mmmec_region_agq7", "mmmec.csv", f_mm_1, "poisson", "AGQ", 7,
    offset = "np.log(expected)", offset_r = "log(expected)"),
  S("mmmec_3lev_laplace", "mmmec.csv", f_mm_2, "poisson", "Laplace", 1,
    offset = "np.log(expected)", offset_r = "log(expected)")
)

only <- commandArgs(trailingOnly = TRUE)
if (length(only)) specs <- Filter(function(s) s$id %in% only, specs)

## ---------------------------------------------------------------------------
## Helpers
## ---------------------------------------------------------------------------
LINKS <- c(gaussian = "identity", binomial = "logit", poisson = "log")
fam_obj <- function(f) switch(f, gaussian = gaussian(), binomial = binomial(),
                              poisson = poisson())

## Read a CSV; every C(x) variable and every grouping variable becomes a
## factor whose levels are the sorted unique values (numeric sort for
## numbers, byte order for strings).
read_data <- function(spec) {
  d <- read.csv(file.path(datadir, spec$dataset), stringsAsFactors = FALSE)
  fo <- as.formula(spec$formula)
  cvars <- regmatches(spec$formula, gregexpr("C\\(([A-Za-z0-9_.]+)\\)", spec$formula))[[1]]
  cvars <- sub("^C\\((.*)\\)$", "\\1", cvars)
  gvars <- unique(unlist(lapply(findbars(fo), function(b) all.vars(b[[3]]))))
  for (v in unique(c(cvars, gvars))) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]])))
  if (!is.null(spec$offset_r)) d$.offset <- eval(parse(text = spec$offset_r), d)
  d
}

## Evaluate expr, collecting warnings and messages instead of printing them.
quietly <- function(expr) {
  msgs <- character()
  val <- withCallingHandlers(
    tryCatch(expr, error = function(e) e),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  list(value = val, msgs = unique(trimws(msgs)))
}
is_singular_msg <- function(m) grepl("singular", m, fixed = TRUE)

## saturated log-density sum_i log f(y_i | mu_i = y_i)
saturated_ll <- function(family, y) {
  switch(family, gaussian = NA_real_,
         binomial = sum(dbinom(y, 1, y, log = TRUE)),
         poisson = sum(dpois(y, y, log = TRUE)))
}
cond_ll <- function(family, y, mu) {
  switch(family,
         binomial = sum(dbinom(y, 1, mu, log = TRUE)),
         poisson = sum(dpois(y, mu, log = TRUE)))
}

## One lme4 fit with a given optimizer.
fit_lme4_once <- function(spec, d, optimizer, tolPwrss = 1e-13) {
  fo <- as.formula(spec$formula)
  optc <- switch(optimizer,
                 nloptwrap = list(xtol_abs = 1e-10, ftol_abs = 1e-12, maxeval = 1e5,
                                  ranseed = 1L),
                 bobyqa = list(maxfun = 1e5),
                 Nelder_Mead = list(maxfun = 1e5),
                 list())
  if (spec$family == "gaussian") {
    ctrl <- lmerControl(optimizer = optimizer, optCtrl = optc)
    quietly(lmer(fo, data = d, REML = (spec$method == "REML"), control = ctrl))
  } else {
    ctrl <- glmerControl(optimizer = optimizer, optCtrl = optc, tolPwrss = tolPwrss)
    off <- if (is.null(spec$offset_r)) NULL else d$.offset
    quietly(glmer(fo, data = d, family = fam_obj(spec$family), nAGQ = spec$nagq,
                  offset = off, control = ctrl))
  }
}

OPTIMIZERS <- c("bobyqa", "nloptwrap", "Nelder_Mead", "nlminbwrap")

fit_lme4 <- function(spec, d) {
  first <- "bobyqa"  # minqa; deterministic (NLopt runs are not always)
  notes <- character()
  res <- NULL
  ## the PIRLS tolerance is relaxed only if the tight one fails
  for (tp in c(1e-13, 1e-12, 1e-11, 1e-10)) {
    res <- fit_lme4_once(spec, d, first, tp)
    if (!inherits(res$value, "error")) break
    notes <- c(notes, sprintf("%s with tolPwrss=%g failed: %s", first, tp,
                              conditionMessage(res$value)))
    if (spec$family == "gaussian") stop(conditionMessage(res$value))
  }
  if (inherits(res$value, "error")) stop(conditionMessage(res$value))
  conv <- res$msgs[!is_singular_msg(res$msgs)]
  if (length(conv)) {
    ## convergence trouble: try all optimizers, keep the best log-likelihood
    cands <- list(res)
    names(cands) <- first
    for (o in setdiff(OPTIMIZERS, first)) {
      r <- fit_lme4_once(spec, d, o, tp)
      if (!inherits(r$value, "error")) cands[[o]] <- r
    }
    lls <- sapply(cands, function(r) as.numeric(logLik(r$value)))
    best <- names(which.max(lls))
    notes <- c(notes, sprintf("%s: %s", first, conv),
               sprintf("refitted with optimizers %s; log-likelihoods %s; kept %s",
                       paste(names(lls), collapse = ", "),
                       paste(sprintf("%.6f", lls), collapse = ", "), best))
    res <- cands[[best]]
    first <- best
  }
  ## polish: restart bobyqa from the optimum with a tiny final trust radius
  ## and keep the result if its log-likelihood is higher
  pol <- polish_lme4(spec, d, res$value, tp)
  if (!inherits(pol$value, "error") &&
      as.numeric(logLik(pol$value)) > as.numeric(logLik(res$value))) {
    cat(sprintf("   polished: log-likelihood %+.2e\n",
                as.numeric(logLik(pol$value)) - as.numeric(logLik(res$value))))
    res <- pol
    first <- paste(first, "+ bobyqa polish")
  }
  ## boundary: a diagonal Cholesky element that is numerically zero is set to
  ## exactly zero if that does not lower the log-likelihood by more than 1e-8
  if (spec$family == "gaussian") {
    sn <- snap_lmer(spec, d, res$value)
    if (!is.null(sn)) {
      notes <- c(notes, sn$note)
      res$value <- sn$fit
    }
  }
  list(fit = res$value, msgs = res$msgs, notes = notes, optimizer = first)
}

snap_lmer <- function(spec, d, m) {
  th <- getME(m, "theta")
  idx <- which(getME(m, "lower") == 0 & th > 0 & th < 1e-5)
  if (!length(idx)) return(NULL)
  th0 <- th
  th0[idx] <- 0
  lmod <- lFormula(as.formula(spec$formula), data = d, REML = (spec$method == "REML"))
  devfun <- do.call(mkLmerDevfun, lmod)
  val <- devfun(th0)
  opt <- list(par = th0, fval = val, conv = 0, feval = NA_integer_, message = "")
  m0 <- mkMerMod(environment(devfun), opt, lmod$reTrms, fr = lmod$fr, mc = m@call)
  dll <- as.numeric(logLik(m0)) - as.numeric(logLik(m))
  if (dll < -1e-8) return(NULL)
  cat(sprintf("   snapped theta[%s] = %s to 0: log-likelihood %+.2e\n",
              paste(idx, collapse = ","), paste(signif(th[idx], 3), collapse = ","), dll))
  list(fit = m0, note = sprintf(
    "optimizer stopped at theta[%s] = %s; set to exactly 0 (log-likelihood change %+.1e)",
    paste(idx, collapse = ","), paste(signif(th[idx], 3), collapse = ","), dll))
}

polish_lme4 <- function(spec, d, m, tolPwrss) {
  fo <- as.formula(spec$formula)
  optc <- list(rhobeg = 1e-4, rhoend = 1e-12, maxfun = 1e5)
  if (spec$family == "gaussian") {
    ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = optc)
    quietly(lmer(fo, data = d, REML = (spec$method == "REML"), control = ctrl,
                 start = list(theta = getME(m, "theta"))))
  } else {
    ctrl <- glmerControl(optimizer = "bobyqa", optCtrl = optc, tolPwrss = tolPwrss,
                         nAGQ0initStep = FALSE)
    off <- if (is.null(spec$offset_r)) NULL else d$.offset
    quietly(glmer(fo, data = d, family = fam_obj(spec$family), nAGQ = spec$nagq,
                  offset = off, control = ctrl,
                  start = list(theta = getME(m, "theta"), fixef = fixef(m))))
  }
}

fit_tmb <- function(spec, d) {
  fo <- as.formula(spec$formula)
  if (!is.null(spec$offset_r)) fo <- update(fo, . ~ . + offset(.offset))
  res <- quietly(glmmTMB(fo, data = d, family = fam_obj(spec$family),
                         REML = (spec$method == "REML")))
  if (inherits(res$value, "error")) stop(conditionMessage(res$value))
  list(fit = res$value, msgs = res$msgs, notes = character(), optimizer = "nlminb")
}

## Fixed-effects-only fit for the likelihood-ratio statistic.
null_loglik <- function(spec, d) {
  fo <- nobars(as.formula(spec$formula))
  if (spec$family == "gaussian") {
    m0 <- lm(fo, data = d)
    as.numeric(logLik(m0, REML = (spec$method == "REML")))
  } else {
    off <- if (is.null(spec$offset_r)) NULL else d$.offset
    m0 <- glm(fo, data = d, family = fam_obj(spec$family), offset = off)
    as.numeric(logLik(m0))
  }
}

## Exact marginal log-likelihood of a scalar random-intercept GLMM by
## adaptive numerical integration over each group (check of AGQ fits).
exact_ll_scalar <- function(spec, d, beta, sd, X, gname) {
  y <- model.response(model.frame(nobars(as.formula(spec$formula)), d))
  eta0 <- drop(X %*% beta) + (if (is.null(spec$offset_r)) 0 else d$.offset)
  g <- d[[gname]]
  total <- 0
  for (lev in levels(g)) {
    i <- which(g == lev)
    h <- function(b) cond_ll(spec$family, y[i], fam_obj(spec$family)$linkinv(eta0[i] + b)) +
      dnorm(b, 0, sd, log = TRUE)
    mode <- optimize(h, c(-20 * sd - 20, 20 * sd + 20), maximum = TRUE, tol = 1e-10)
    c0 <- mode$objective
    f <- function(bs) sapply(bs, function(b) exp(h(b) - c0))
    total <- total + c0 + log(integrate(f, mode$maximum - 30 * sd, mode$maximum + 30 * sd,
                                        rel.tol = 1e-12, subdivisions = 1000L)$value)
  }
  total
}

## ---------------------------------------------------------------------------
## Extraction into the reference schema
## ---------------------------------------------------------------------------
blups_rows <- function(re) {
  ## re: data.frame of conditional modes, rows = groups in engine order
  h <- re[seq_len(min(5, nrow(re))), , drop = FALSE]
  lapply(seq_len(nrow(h)), function(i) {
    row <- list(group = rownames(h)[i])
    for (nm in colnames(h)) row[[nm]] <- h[i, nm]
    row
  })
}

vc_entries <- function(vc) {
  lapply(names(vc), function(lvl) {
    v <- vc[[lvl]]
    sds <- attr(v, "stddev")
    list(level = lvl, terms = I(names(sds)), sd = I(unname(sds)),
         corr = if (length(sds) > 1) unname(attr(v, "correlation")) else NULL)
  })
}

extract_lme4 <- function(spec, d, r) {
  m <- r$fit
  y <- model.response(model.frame(m))
  warn <- character()
  v <- quietly(vcov(m))
  if (length(v$msgs)) warn <- c(warn, paste("vcov:", v$msgs))
  se <- sqrt(diag(as.matrix(v$value)))
  ll_engine <- as.numeric(logLik(m))
  ll <- ll_engine
  if (spec$family != "gaussian") {
    if (spec$nagq > 1) {
      ## lme4's AGQ log-likelihood omits the saturated log-density
      ll <- ll_engine + saturated_ll(spec$family, y)
      if (length(getME(m, "theta")) == 1) {
        ex <- exact_ll_scalar(spec, d, fixef(m), getME(m, "theta")[[1]],
                              getME(m, "X"), names(getME(m, "flist"))[1])
        cat(sprintf("   AGQ check: lme4 %.8f + saturated %.8f = %.8f; exact integral %.8f (diff %.2e)\n",
                    ll_engine, saturated_ll(spec$family, y), ll, ex, ll - ex))
        if (abs(ll - ex) > 0.05) stop("AGQ log-likelihood check failed")
      }
    } else {
      u <- getME(m, "u")
      man <- cond_ll(spec$family, y, fitted(m)) - 0.5 * (sum(u^2) + m@devcomp$cmp[["ldL2"]])
      cat(sprintf("   Laplace check: lme4 %.10f, by hand %.10f (diff %.2e)\n", ll_engine, man, ll_engine - man))
      if (abs(ll_engine - man) > 1e-6) stop("Laplace log-likelihood check failed")
    }
  }
  theta <- getME(m, "theta")
  k <- length(fixef(m)) + length(theta) + (spec$family == "gaussian")
  n <- nobs(m)
  ll0 <- null_loglik(spec, d)
  sing <- isSingular(m, tol = 1e-4)
  conv <- r$msgs[!is_singular_msg(r$msgs)]
  warn <- c(r$notes, r$msgs, warn)
  if (sing && !any(is_singular_msg(r$msgs)))
    warn <- c(warn, "boundary (singular) fit: see help('isSingular')")
  re <- ranef(m)
  list(
    fit = m, ll = ll, k = k, n = n, ll0 = ll0, ntheta = length(theta),
    fixed = lapply(names(fixef(m)), function(nm)
      list(name = nm, estimate = unname(fixef(m)[nm]), se = unname(se[nm]))),
    random = vc_entries(VarCorr(m)),
    sigma = if (spec$family == "gaussian") sigma(m) else NULL,
    ngroups = as.list(ngrps(m)),
    converged_cleanly = length(conv) == 0,
    warnings = warn,
    blups = setNames(lapply(names(re), function(l) blups_rows(re[[l]])), names(re)),
    engine = ENGINE_LME4
  )
}

extract_tmb <- function(spec, d, r) {
  m <- r$fit
  warn <- r$msgs
  fe <- fixef(m)$cond
  se <- sqrt(diag(vcov(m)$cond))
  ll <- as.numeric(logLik(m))
  vc <- VarCorr(m)$cond
  ntheta <- sum(names(m$fit$par) == "theta")
  k <- length(fe) + ntheta + (spec$family == "gaussian")
  n <- nobs(m)
  ll0 <- null_loglik(spec, d)
  re <- ranef(m)$cond
  conv_ok <- m$fit$convergence == 0 && isTRUE(m$sdr$pdHess)
  if (m$fit$convergence != 0) warn <- c(warn, paste("nlminb:", m$fit$message))
  if (!isTRUE(m$sdr$pdHess)) warn <- c(warn, "non-positive-definite Hessian")
  sds <- unlist(lapply(vc, function(v) attr(v, "stddev")))
  cors <- unlist(lapply(vc, function(v) { cc <- attr(v, "correlation"); if (length(cc) > 1) cc[upper.tri(cc)] }))
  if (any(sds < 1e-4) || any(abs(cors) > 0.9999))
    warn <- c(warn, "boundary (singular) fit: a standard deviation is ~0 or a correlation is ~ +/-1")
  list(
    fit = m, ll = ll, k = k, n = n, ll0 = ll0, ntheta = ntheta,
    fixed = lapply(names(fe), function(nm)
      list(name = nm, estimate = unname(fe[nm]), se = unname(se[nm]))),
    random = vc_entries(vc),
    sigma = if (spec$family == "gaussian") sigma(m) else NULL,
    ngroups = lapply(re, nrow),
    converged_cleanly = conv_ok && length(r$msgs) == 0,
    warnings = warn,
    blups = setNames(lapply(names(re), function(l) blups_rows(re[[l]])), names(re)),
    engine = ENGINE_TMB
  )
}

## ---------------------------------------------------------------------------
## Main loop
## ---------------------------------------------------------------------------
for (spec in specs) {
  cat(sprintf("== %s: %s [%s, %s]\n", spec$id, spec$formula, spec$family, spec$method))
  d <- read_data(spec)
  t0 <- proc.time()[["elapsed"]]
  r <- if (spec$engine == "glmmTMB") fit_tmb(spec, d) else fit_lme4(spec, d)
  secs <- proc.time()[["elapsed"]] - t0
  e <- if (spec$engine == "glmmTMB") extract_tmb(spec, d, r) else extract_lme4(spec, d, r)
  out <- list(
    id = spec$id,
    dataset = spec$dataset,
    subset = NULL,
    family = spec$family,
    link = unname(LINKS[spec$family]),
    formula = spec$formula,
    trials = NULL,
    offset = spec$offset,
    method = spec$method,
    nagq = spec$nagq,
    engine = e$engine,
    nobs = e$n,
    ngroups = e$ngroups,
    fixed = e$fixed,
    random = e$random,
    sigma = e$sigma,
    loglik = e$ll,
    deviance = -2 * e$ll,
    aic = -2 * e$ll + 2 * e$k,
    bic = -2 * e$ll + log(e$n) * e$k,
    lr_vs_regression = list(chi2 = 2 * (e$ll - e$ll0), df = e$ntheta),
    converged_cleanly = e$converged_cleanly,
    warnings = I(as.character(e$warnings)),
    blups_head = e$blups
  )
  js <- toJSON(out, auto_unbox = TRUE, null = "null", na = "null", digits = NA, pretty = TRUE)
  writeLines(js, file.path(outdir, paste0(spec$id, ".json")))
  cat(sprintf("   nobs %d, groups %s, loglik %.6f, %.1f s, optimizer %s%s\n", e$n,
              paste(sprintf("%s=%d", names(e$ngroups), unlist(e$ngroups)), collapse = " "),
              e$ll, secs, r$optimizer,
              if (length(e$warnings)) paste0("\n   warnings: ", paste(e$warnings, collapse = " | ")) else ""))
}
