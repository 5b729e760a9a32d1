## Reference values for hlmext's inference tools (profile CIs, Satterthwaite df).
## Run from the repository root:  Rscript tests/reference/inference/make_refs.R
## Writes tests/reference/inference/<id>.json, one file per model.
##
## * Fits: lme4::lmer on the CSV files bundled in hlmext/datasets/data/, polished by a
##   bobyqa restart with a tiny final trust radius (so the optimum is that of hlmext).
## * profile_ci: confint(fit, method = "profile") with lme4's defaults (a spline through
##   the profile points, read at zeta = +-qnorm(0.975)); profile_ci_fine: the same from a
##   profile 16 times denser (delta.cutoff = 1/128), whose spline error is negligible.
##   lme4 profiles a REML fit by first refitting it by ML (devfun2 calls refitML), so the
##   intervals of a REML fit are those of the ML fit.
## * profile_ci_exact: an independent computation of the same limits without splines:
##   zeta(x) at a fixed value x of one parameter minimizes lme4's own ML deviance
##   (devfun2 for sd / cor / sigma; for a fixed effect the model with X[, -j] and the
##   offset X[, j] * b, built as profile.merMod builds it) over the other parameters with
##   two optimizers (bobyqa with rhoend 1e-11, nlminb) and keeps the lower minimum; the
##   limit is the root of zeta(x) = -+qnorm(0.975) by uniroot (tol 1e-10), bracketed by
##   steps from the estimate; a limit not reached before sd = 0 or cor = -+1 is that bound.
##   lme4's own intervals rely on its default optimizer inside the profile, which can stop
##   early (exam_rs: sigma's profile deviance is too high, its interval off by 1-2%).
## * satterthwaite: the df column of summary(lmerTest::lmer(...)) (lmerTest's default
##   ddf = "Satterthwaite"; variance parameters (theta, sigma), Hessian and Jacobian by
##   numDeriv), and contest1D() for one contrast.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))

datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "inference")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")

exam <- read.csv(file.path(datadir, "exam.csv"))
exam <- exam[exam$nstu > 4, ]
exam$school <- factor(exam$school)
sleep <- read.csv(file.path(datadir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
pastes <- read.csv(file.path(datadir, "pastes.csv"))

## lme4's profile names (signames = FALSE: sd_<term>|<group>, cor_<b>.<a>|<group>, sigma) and
## coefficient names -> hlmext's parameter names
hl_name <- function(nm) {
  fix <- function(s) if (s == "(Intercept)") "Intercept" else s
  if (nm == "sigma") return("sd(Residual)")
  level <- sub("^.*\\|", "", nm)
  if (startsWith(nm, "sd_")) {
    term <- sub("^sd_(.*)\\|.*$", "\\1", nm)
    return(sprintf("sd(%s)[%s]", fix(term), level))
  }
  if (startsWith(nm, "cor_")) {
    pair <- strsplit(sub("^cor_(.*)\\|.*$", "\\1", nm), ".", fixed = TRUE)[[1]]
    ## lme4 writes cor_<second>.<first>; hlmext writes corr(<first>,<second>)
    return(sprintf("corr(%s,%s)[%s]", fix(pair[2]), fix(pair[1]), level))
  }
  fix(nm)
}

polish <- function(fit) {
  ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  update(fit, start = getME(fit, "theta"), control = ctrl)
}

ci_table <- function(ci) {
  nm <- vapply(rownames(ci), hl_name, "")
  setNames(lapply(seq_len(nrow(ci)), function(i) unname(ci[i, ])), nm)
}

exact_profile_ci <- function(fit, level = 0.95) {
  fit <- refitML(fit)                                     # lme4's convention for REML fits
  dd <- lme4:::devfun2(fit, useSc = TRUE, signames = FALSE)
  opt <- attr(dd, "optimum")
  base <- attr(dd, "basedev")
  p <- length(fixef(fit))
  nvp <- length(opt) - p
  vp <- opt[seq_len(nvp)]
  is_cor <- startsWith(names(vp), "cor_")
  lo <- ifelse(is_cor, -1, 0)
  lo[nvp] <- 0.01 * vp[nvp]          # sigma: a zero sigma leaves lme4's pp object in a broken state
  hi <- ifelse(is_cor, 1, Inf)
  sc <- ifelse(is_cor, 1, abs(vp))
  q <- qnorm(1 - (1 - level) / 2)
  best_min <- function(f0, start, lower, upper) {
    f <- function(z) { v <- f0(z); if (is.finite(v)) v else 1e100 }
    if (length(start) == 1) {                         # bobyqa needs two or more parameters
      width <- max(1, abs(start))
      a <- optimize(f, c(max(lower, start / 5), min(upper, start + 5 * width)), tol = 1e-12)$objective
      b <- nlminb(start, f, lower = lower, upper = upper, control = list(rel.tol = 1e-15))$objective
      return(min(c(a, b), na.rm = TRUE))
    }
    a <- tryCatch(minqa::bobyqa(start, f, lower = lower, upper = upper,
                                control = list(rhobeg = 0.02, rhoend = 1e-11, maxfun = 1e5))$fval,
                  error = function(e) Inf)
    b <- tryCatch(nlminb(start, f, lower = lower, upper = upper,
                         control = list(eval.max = 1e4, iter.max = 1e4, rel.tol = 1e-15))$objective,
                  error = function(e) Inf)
    min(c(a, b), na.rm = TRUE)
  }
  zeta_vp <- function(w) function(x) {
    f <- function(z) { par <- numeric(nvp); par[w] <- x; par[-w] <- z * sc[-w]; dd(par) }
    fv <- best_min(f, vp[-w] / sc[-w], lo[-w] / sc[-w], hi[-w] / sc[-w])
    sign(x - vp[w]) * sqrt(max(0, fv - base))
  }
  X <- getME(fit, "X")
  thopt <- getME(fit, "theta")
  thsc <- pmax(abs(thopt), 1e-3)
  est_fe <- fixef(fit)
  se_fe <- sqrt(diag(as.matrix(vcov(fit))))
  zeta_fe <- function(j) function(b) {
    pp1 <- new(class(fit@pp), X = X[, -j, drop = FALSE], Zt = fit@pp$Zt, Lambdat = fit@pp$Lambdat,
               Lind = fit@pp$Lind, theta = thopt, n = nrow(X))
    rr <- new(Class = class(fit@resp), y = fit@resp$y)
    rr$setOffset(X[, j] * b)
    dev <- lme4:::mkdevfun(list2env(list(pp = pp1, resp = rr)), 0L)
    fv <- best_min(function(z) dev(z * thsc), thopt / thsc, fit@lower / thsc, rep(Inf, length(thopt)))
    sign(b - est_fe[j]) * sqrt(max(0, fv - base))
  }
  limit <- function(zfun, est, side, tf, itf, step, bound, near) {
    x0 <- est
    for (k in 1:400) {
      x1 <- itf(tf(est) + side * k * step)
      if (near(x1)) x1 <- bound
      z1 <- zfun(x1)
      if (side * z1 >= q)
        return(uniroot(function(x) zfun(x) - side * q, sort(c(x0, x1)), tol = 1e-10 * max(1e-3, abs(est)))$root)
      if (x1 == bound) return(bound)
      x0 <- x1
    }
    NA_real_
  }
  out <- list()
  for (w in seq_len(nvp)) {
    if (is_cor[w]) {
      tf <- atanh; itf <- tanh; step <- 0.1
      lims <- c(limit(zeta_vp(w), vp[w], -1, tf, itf, step, -1, function(x) x < -0.9999),
                limit(zeta_vp(w), vp[w], +1, tf, itf, step, 1, function(x) x > 0.9999))
    } else {
      tf <- log; itf <- exp; step <- 0.05
      lims <- c(limit(zeta_vp(w), vp[w], -1, tf, itf, step, 0, function(x) x < 0.02 * vp[w]),
                limit(zeta_vp(w), vp[w], +1, tf, itf, step, Inf, function(x) FALSE))
    }
    out[[names(vp)[w]]] <- unname(lims)
  }
  for (j in seq_len(p)) {
    id <- function(x) x
    out[[names(est_fe)[j]]] <- c(limit(zeta_fe(j), est_fe[[j]], -1, id, id, 0.5 * se_fe[[j]], -Inf, function(x) FALSE),
                                limit(zeta_fe(j), est_fe[[j]], +1, id, id, 0.5 * se_fe[[j]], Inf, function(x) FALSE))
  }
  ci <- do.call(rbind, out)
  rownames(ci) <- names(out)
  ci
}

models <- list(
  list(id = "exam_ri_ml", data = "exam", subset = "nstu > 4", formula = "gcse ~ lrt + (1 | school)",
       reml = FALSE, contrast = c(1, 10)),
  list(id = "exam_rs_ml", data = "exam", subset = "nstu > 4", formula = "gcse ~ lrt + (lrt | school)",
       reml = FALSE, contrast = c(1, 10)),
  list(id = "exam_rs_reml", data = "exam", subset = "nstu > 4", formula = "gcse ~ lrt + (lrt | school)",
       reml = TRUE, contrast = c(1, 10)),
  list(id = "sleep_rs_reml", data = "sleepstudy", subset = NULL, formula = "Reaction ~ Days + (Days | Subject)",
       reml = TRUE, contrast = c(1, 5)),
  list(id = "sleep_rs_ml", data = "sleepstudy", subset = NULL, formula = "Reaction ~ Days + (Days | Subject)",
       reml = FALSE, contrast = c(1, 5)),
  ## two nested levels; sd(batch)'s profile does not reach the cutoff: its lower limit is 0
  list(id = "pastes_nested_ml", data = "pastes", subset = NULL, formula = "strength ~ 1 + (1 | sample) + (1 | batch)",
       reml = FALSE, contrast = 1)
)

for (m in models) {
  d <- switch(m$data, exam = exam, sleepstudy = sleep, pastes = pastes)
  fit <- polish(lme4::lmer(as.formula(m$formula), data = d, REML = m$reml))
  t0 <- proc.time()[["elapsed"]]
  pr <- profile(fit, signames = FALSE)
  t_prof <- proc.time()[["elapsed"]] - t0
  ci <- confint(pr, level = 0.95)
  ci_fine <- confint(profile(fit, signames = FALSE, delta.cutoff = 1 / 128, maxpts = 2000), level = 0.95)
  ci_exact <- exact_profile_ci(fit)
  tfit <- polish(lmerTest::lmer(as.formula(m$formula), data = d, REML = m$reml))
  coefs <- summary(tfit)$coefficients
  con <- lmerTest::contest1D(tfit, m$contrast)
  vc <- as.data.frame(VarCorr(fit))
  out <- list(
    id = m$id, dataset = paste0(m$data, ".csv"), subset = m$subset, formula = m$formula,
    method = if (m$reml) "REML" else "ML",
    engine = paste("lme4", packageVersion("lme4"), "/ lmerTest", packageVersion("lmerTest"),
                   "/", R.version.string),
    theta = unname(getME(fit, "theta")), sigma = sigma(fit),
    loglik = as.numeric(logLik(fit)),
    fixed = as.list(setNames(unname(fixef(fit)), vapply(names(fixef(fit)), hl_name, ""))),
    profile_ci = ci_table(ci),
    profile_ci_fine = ci_table(ci_fine),
    profile_ci_exact = ci_table(ci_exact),
    profile_seconds_lme4 = t_prof,
    satterthwaite = list(
      names = I(unname(vapply(rownames(coefs), hl_name, ""))),
      estimate = I(unname(coefs[, "Estimate"])), se = I(unname(coefs[, "Std. Error"])),
      df = I(unname(coefs[, "df"])), t = I(unname(coefs[, "t value"])), pvalue = I(unname(coefs[, "Pr(>|t|)"])),
      contrast = list(L = I(m$contrast), estimate = con$Estimate, se = con[["Std. Error"]],
                      df = con$df, t = con[["t value"]], pvalue = con[["Pr(>|t|)"]])
    )
  )
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
             file.path(outdir, paste0(m$id, ".json")))
  cat("wrote", m$id, "\n")
}
