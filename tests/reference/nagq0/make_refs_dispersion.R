## glmer.nb(nAGQ = 0) and glmer(family = Gamma(link = "log"), nAGQ = 0) reference fits: nagq=0 of the
## families with a dispersion parameter.
## Run from the repository root:  Rscript tests/reference/nagq0/make_refs_dispersion.R
## Writes tests/reference/nagq0/grouse_nb2_nagq0.json and gamma_log_nagq0.json.
##
## glmer.nb maximizes logLik() of the nAGQ = 0 fit at a given NB theta (= 1 / alpha) over log
## theta with optimize() and tol = 5e-5 (its tol argument is passed on to glmer and refused, so it
## cannot be tightened): its optimum is polished here by the same optimize() over the direct fits
## glmer(family = negative.binomial(theta), nAGQ = 0), tol = 1e-10 (what glmer.nb does, to full
## precision). glmer.nb's own figures are kept as glmer_nb; the profile in log theta at the
## optimum and 0.01 on either side is recorded as profile_check.
## loglik: logLik() (every constant of the NB density included).
##
## Gamma: glmer's penalized IRLS and Laplace deviance work with the deviance residuals without
## the shape, and sigma() is a moment estimate: not the ML dispersion. Its figures are recorded
## for comparison only (the tests check the Gamma nagq=0 fit against a direct computation).
suppressPackageStartupMessages({
  library(lme4)
  library(MASS)
  library(jsonlite)
})
datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "nagq0")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")
ctrl <- glmerControl(tolPwrss = 1e-13)

fixed_of <- function(m) {
  fe <- fixef(m); se <- sqrt(diag(as.matrix(vcov(m))))
  lapply(seq_along(fe), function(i) list(name = gsub("factor\\((\\w+)\\)", "C(\\1)", names(fe)[i]),
                                         estimate = unname(fe[i]), se = unname(se[i])))
}
save <- function(id, out) {
  writeLines(toJSON(c(list(id = id), out), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
             file.path(outdir, paste0(id, ".json")))
}

## ---- grouseticks, NB2 (Var = mu + mu^2 / theta, alpha = 1 / theta)
gt <- read.csv(file.path(datadir, "grouseticks.csv"))
form <- TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD)
t0 <- proc.time()[["elapsed"]]
g0 <- glmer.nb(form, gt, nAGQ = 0L, control = ctrl)
secs <- proc.time()[["elapsed"]] - t0
th0 <- getME(g0, "glmer.nb.theta")
nbfit <- function(t) glmer(form, gt, family = negative.binomial(theta = exp(t)), nAGQ = 0L, control = ctrl)
opt <- optimize(function(t) -as.numeric(logLik(nbfit(t))), log(th0) + c(-0.05, 0.05), tol = 1e-10)
th <- exp(opt$minimum)
nb <- nbfit(log(th))
prof <- sapply(log(th) + c(-0.01, 0, 0.01), function(t) as.numeric(logLik(nbfit(t))))
cat("NB2 nAGQ=0: glmer.nb theta", th0, "loglik", as.numeric(logLik(g0)), "polished theta", th,
    "loglik", as.numeric(logLik(nb)), "\n  profile at log theta -0.01, 0, +0.01:", prof, "\n")
save("grouse_nb2_nagq0", list(
  dataset = "grouseticks.csv", formula = "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)", family = "nbinom2",
  method = "glmer.nb(nAGQ=0)", nagq = 0, engine = paste("lme4", as.character(packageVersion("lme4"))),
  nobs = nobs(nb), fixed = fixed_of(nb), random = list(list(level = "BROOD", sd = as.data.frame(VarCorr(nb))$sdcor[1])),
  nb_theta = th, alpha = 1 / th, loglik = as.numeric(logLik(nb)),
  glmer_nb = list(nb_theta = th0, loglik = as.numeric(logLik(g0)), fixed = fixed_of(g0)),
  profile_check = prof, fit_seconds = secs))

## ---- Gamma (log link), simulated data of tests/reference/families (not ML in the dispersion)
gam <- read.csv(file.path("tests", "reference", "families", "gamma_sim.csv"))
gam$g <- factor(gam$g)
t0 <- proc.time()[["elapsed"]]
gm <- glmer(y ~ x + (1 | g), gam, family = Gamma(link = "log"), nAGQ = 0L, control = ctrl)
secs <- proc.time()[["elapsed"]] - t0
cat("Gamma nAGQ=0: loglik", as.numeric(logLik(gm)), "sigma", sigma(gm), "\n")
save("gamma_log_nagq0", list(
  dataset = "gamma_sim.csv", formula = "y ~ x + (1 | g)", family = "Gamma", link = "log",
  method = "glmer(nAGQ=0)", nagq = 0, engine = paste("lme4", as.character(packageVersion("lme4"))),
  nobs = nobs(gm), fixed = fixed_of(gm), random = list(list(level = "g", sd = as.data.frame(VarCorr(gm))$sdcor[1])),
  sigma = sigma(gm), shape_moment = 1 / sigma(gm)^2, loglik = as.numeric(logLik(gm)), fit_seconds = secs))
