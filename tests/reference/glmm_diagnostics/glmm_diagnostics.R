# Reference values for tests/test_glmm_diagnostics.py: lme4's hatvalues(), cooks.distance(),
# residuals(type = "pearson" / "deviance") of glmer fits (Laplace).
# Run from this directory: Rscript glmm_diagnostics.R  (lme4 1.1-31; writes glmm_diagnostics.json)
suppressMessages({library(lme4); library(jsonlite)})
data_dir <- "../../../hlmext/datasets/data"
out <- list(lme4 = as.character(packageVersion("lme4")))
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

diag_of <- function(fit) {
  list(fixef = unname(fixef(fit)), theta = unname(getME(fit, "theta")),
       hat = unname(suppressWarnings(hatvalues(fit))),
       cooks = unname(suppressWarnings(cooks.distance(fit))),
       pearson = unname(residuals(fit, type = "pearson")),
       deviance = unname(residuals(fit, type = "deviance")))
}

cbpp <- read.csv(file.path(data_dir, "cbpp.csv"))
cbpp$period <- factor(cbpp$period)
fc <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial, control = tight)
out$cbpp <- diag_of(fc)

gt <- read.csv(file.path(data_dir, "grouseticks.csv"))
gt$YEAR <- factor(gt$YEAR)
fp <- glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), gt, family = poisson, control = tight)
out$ticks <- diag_of(fp)
fn <- glmer(TICKS ~ YEAR + cHEIGHT + (1 | LOCATION / BROOD), gt, family = poisson, control = tight)
out$ticks_nested <- diag_of(fn)

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), "glmm_diagnostics.json")
