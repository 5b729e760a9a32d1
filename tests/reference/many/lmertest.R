# Reference values for tests/test_many.py: lme4 + lmerTest, one REML fit per response column
# (rows with a missing response dropped), Satterthwaite df. Run from this directory:
#   Rscript lmertest.R
suppressPackageStartupMessages({library(lmerTest); library(jsonlite)})
d <- read.csv("data.csv")
genes <- grep("^gene", names(d), value = TRUE)
out <- list()
for (g in genes) {
  d$y <- d[[g]]
  m <- lmer(y ~ condition + age + (1 | donor), data = d, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
  co <- summary(m)$coefficients
  vc <- as.data.frame(VarCorr(m))
  out[[g]] <- list(term = rownames(co), estimate = unname(co[, "Estimate"]), se = unname(co[, "Std. Error"]),
                   df = unname(co[, "df"]), pvalue = unname(co[, "Pr(>|t|)"]),
                   sd_donor = vc$sdcor[vc$grp == "donor"], sd_residual = vc$sdcor[vc$grp == "Residual"],
                   loglik = as.numeric(logLik(m)), nobs = nobs(m))
}
write_json(out, "lmertest.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat(packageDescription("lme4")$Version, packageDescription("lmerTest")$Version, R.version.string, "\n")
