# Precision weights (residual variance sigma^2 / w): lme4's weights= on sleepstudy, written to
# lme4_precision_weights.json. Run from the repository root:
# Rscript tests/reference/residuals/lme4_precision_weights.R
library(lme4)
library(jsonlite)
ss <- read.csv("hlmext/datasets/data/sleepstudy.csv")
ss$w <- 0.5 + (ss$Days %% 4) / 2
out <- list()
for (reml in c(TRUE, FALSE)) {
  f <- lmer(Reaction ~ Days + (Days | Subject), ss, weights = w, REML = reml,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-11)))
  vc <- as.data.frame(VarCorr(f))
  out[[if (reml) "REML" else "ML"]] <- list(
    llf = as.numeric(logLik(f)), fe = as.list(fixef(f)), se = as.list(sqrt(diag(as.matrix(vcov(f))))),
    sd = vc$sdcor[is.na(vc$var2)], corr = vc$sdcor[!is.na(vc$var2)], sigma = sigma(f))
}
out$lme4 <- as.character(packageVersion("lme4"))
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/residuals/lme4_precision_weights.json")
