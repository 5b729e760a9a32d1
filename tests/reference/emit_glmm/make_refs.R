## The R calls that to_lme4() writes for generalized mixed models, run as written (each call is
## the emitted text, data frame names aside), and their log-likelihoods.
## Run from the repository root:  Rscript tests/reference/emit_glmm/make_refs.R
## Writes tests/reference/emit_glmm/emitted_fits.json: per case the call and logLik(fit).
## Laplace fits only: glmer's nAGQ > 1 log-likelihood leaves out a constant, and glmer's Laplace
## approximation with a non-canonical link is not the exact one (tests/reference/families).
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})
datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "emit_glmm")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")
cbpp <- read.csv(file.path(datadir, "cbpp.csv"))
grouseticks <- read.csv(file.path(datadir, "grouseticks.csv"))
mmmec <- read.csv(file.path(datadir, "mmmec.csv"))
gamma_sim <- read.csv(file.path("tests", "reference", "families", "gamma_sim.csv"))
gausslog_sim <- read.csv(file.path("tests", "reference", "families", "gausslog_sim.csv"))

calls <- list(
  logit_cbpp = 'glmer(cbind(incidence, size - incidence) ~ factor(period) + (1 | herd), data = cbpp, family = binomial)',
  poisson_mmmec = 'glmer(deaths ~ uvb + (1 | region) + offset(log(expected)), data = mmmec, family = poisson)',
  nb1_grouse = 'glmmTMB(TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD), data = grouseticks, family = nbinom1)',
  gamma_log = 'glmmTMB(y ~ x + (1 | g), data = gamma_sim, family = Gamma(link = "log"))',
  gaussian_log = 'glmmTMB(y ~ x + (1 | g), data = gausslog_sim, family = gaussian(link = "log"))'
)
out <- lapply(calls, function(call) {
  fit <- eval(parse(text = call))
  list(call = call, loglik = as.numeric(logLik(fit)))
})
out$engine <- paste("lme4", packageVersion("lme4"), "glmmTMB", packageVersion("glmmTMB"))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(outdir, "emitted_fits.json"))
