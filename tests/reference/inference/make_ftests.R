## Reference values for F tests of several fixed-effect contrasts with Satterthwaite df.
## Run from the repository root:  Rscript tests/reference/inference/make_ftests.R
## Writes tests/reference/inference/ftests.json.
##
## * Fits: lmerTest::lmer (lme4) on CSV files bundled in hlmext/datasets/data/, ML and REML,
##   polished by a bobyqa restart with a tiny final trust radius.
## * contest: lmerTest::contest(fit, L, joint = TRUE, ddf = "Satterthwaite") for the
##   contrast matrix L given (rows over the fixed effects in lme4's order), i.e. the
##   method of Fai and Cornelius (1996) as lmerTest implements it (contestMD).
## * anova: lmerTest's anova(fit, type = 3, ddf = "Satterthwaite") for the model terms.

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
exam$school <- factor(exam$school)
exam$vr <- factor(exam$vr)
exam$schgend <- factor(exam$schgend)
sleep <- read.csv(file.path(datadir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)

fit_polished <- function(formula, data, reml) {
  fit <- lmerTest::lmer(formula, data = data, REML = reml)
  refit <- lmerTest::lmer(formula, data = data, REML = reml, start = getME(fit, "theta"),
                          control = lmerControl(optimizer = "bobyqa",
                                                optCtrl = list(rhobeg = 1e-3, rhoend = 1e-12)))
  if (-2 * logLik(refit) <= -2 * logLik(fit)) refit else fit
}

one <- function(id, formula, data, reml, L, dataset) {
  fit <- fit_polished(formula, data, reml)
  ct <- lmerTest::contest(fit, L, joint = TRUE, ddf = "Satterthwaite")
  av <- anova(fit, type = 3, ddf = "Satterthwaite")
  list(id = id, dataset = dataset, formula = deparse(formula), method = if (reml) "REML" else "ML",
       engine = sprintf("lme4 %s / lmerTest %s / %s", packageVersion("lme4"), packageVersion("lmerTest"),
                        R.version.string),
       loglik = as.numeric(logLik(fit)), fixed_names = names(fixef(fit)), fixed = unname(fixef(fit)),
       L = unname(L),
       contest = list(F = ct[["F value"]], ndf = ct[["NumDF"]], ddf = ct[["DenDF"]], p = ct[["Pr(>F)"]]),
       anova = list(terms = rownames(av), F = av[["F value"]], ndf = av[["NumDF"]], ddf = av[["DenDF"]],
                    p = av[["Pr(>F)"]]))
}

out <- list()
f1 <- gcse ~ lrt + vr + schgend + (lrt | school)
# columns: (Intercept) lrt vr2 vr3 schgend2 schgend3
L1 <- rbind(c(0, 0, 1, 0, 0, 0), c(0, 0, 0, 1, 0, 0), c(0, 0, 0, 0, 1, -1))
f2 <- Reaction ~ Days + (Days | Subject)
L2 <- rbind(c(1, 0), c(0, 1))
for (reml in c(FALSE, TRUE)) {
  tag <- if (reml) "reml" else "ml"
  out[[length(out) + 1]] <- one(paste0("exam_factors_", tag), f1, exam, reml, L1, "exam.csv")
  out[[length(out) + 1]] <- one(paste0("sleep_rs_", tag), f2, sleep, reml, L2, "sleepstudy.csv")
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(outdir, "ftests.json"))
