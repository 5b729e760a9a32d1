## Profile-likelihood intervals of a mixed logit (Laplace) for hlmext's tests.
## Run from the repository root:  Rscript tests/reference/glmm_profile/make_refs.R
## Writes tests/reference/glmm_profile/cbpp_laplace.json.
##
## * fit: lme4::glmer(incidence / size ~ period + (1 | herd), binomial, weights = size,
##   nAGQ = 1) on hlmext/datasets/data/cbpp.csv.
## * profile_ci: confint(fit, method = "profile") (lme4's spline through profile points).
## * profile_ci_exact: the same limits without splines: the deviance function of lme4 itself
##   (glmer(..., devFunOnly = TRUE), a function of c(theta, beta)) is minimized over the
##   other parameters with one held fixed (bobyqa with rhoend 1e-10 and nlminb from the
##   nearest optimum, the lower kept), zeta(x) = sign(x - est) sqrt(d(x) - d_min), and each
##   limit is the root of zeta = -+qnorm(0.975) by uniroot (tol 1e-10). For this model
##   sd(Intercept)[herd] = theta.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "glmm_profile")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")

cbpp <- read.csv(file.path(datadir, "cbpp.csv"))
cbpp$period <- factor(cbpp$period)
cbpp$herd <- factor(cbpp$herd)
form <- incidence / size ~ period + (1 | herd)
fit <- glmer(form, data = cbpp, family = binomial, weights = size, nAGQ = 1)
dd <- glmer(form, data = cbpp, family = binomial, weights = size, nAGQ = 1, devFunOnly = TRUE)
est <- c(getME(fit, "theta"), fixef(fit))
lower <- c(0, rep(-Inf, length(fixef(fit))))

best <- optim(est, dd, method = "L-BFGS-B", lower = lower, control = list(factr = 1, pgtol = 0))$par
opt_min <- nlminb(best, dd, lower = lower)
est <- opt_min$par
dmin <- opt_min$objective

prof_dev <- function(i, x) {
  free <- setdiff(seq_along(est), i)
  f <- function(z) { p <- est; p[free] <- z; p[i] <- x; dd(p) }
  start <- est[free]
  o1 <- minqa::bobyqa(start, f, lower = lower[free], upper = rep(Inf, length(free)),
                      control = list(rhobeg = 0.02, rhoend = 1e-10, maxfun = 1e5))
  o2 <- nlminb(start, f, lower = lower[free])
  min(o1$fval, o2$objective)
}
zeta <- function(i, x) sign(x - est[i]) * sqrt(max(prof_dev(i, x) - dmin, 0))
z <- qnorm(0.975)
limit <- function(i, side) {
  step <- 0.1 * max(abs(est[i]), 0.5)
  x0 <- est[i]
  for (k in 1:200) {
    x1 <- x0 + side * step
    if (i == 1 && x1 <= 0) { if (side * zeta(i, 0) < z) return(0); x1 <- 0 }
    if (side * zeta(i, x1) >= z) break
    x0 <- x1
  }
  uniroot(function(x) zeta(i, x) - side * z, sort(c(x0, x1)), tol = 1e-10)$root
}
exact <- lapply(seq_along(est), function(i) c(limit(i, -1), limit(i, 1)))
nm <- c("sd(Intercept)[herd]", "Intercept", "C(period)[T.2]", "C(period)[T.3]", "C(period)[T.4]")
names(exact) <- nm
ci <- confint(fit, method = "profile")
lme4_ci <- lapply(seq_len(nrow(ci)), function(r) unname(ci[r, ]))
names(lme4_ci) <- nm
out <- list(id = "cbpp_laplace", dataset = "cbpp.csv",
            formula = "incidence ~ C(period) + (1 | herd), trials = size", method = "Laplace",
            engine = sprintf("lme4 %s / %s", packageVersion("lme4"), R.version.string),
            loglik = -dmin / 2, estimate = setNames(as.list(c(est[1], est[-1])), nm),
            profile_ci = lme4_ci, profile_ci_exact = exact)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(outdir, "cbpp_laplace.json"))
