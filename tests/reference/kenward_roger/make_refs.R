## Reference values for Kenward-Roger inference on fixed effects (REML fits).
## Run from the repository root:  Rscript tests/reference/kenward_roger/make_refs.R
## Writes tests/reference/kenward_roger/kenward_roger.json.
##
## * Fits: lmerTest::lmer (lme4, REML) on CSV files bundled in hlmext/datasets/data/,
##   polished by a bobyqa restart with a tiny final trust radius.
## * vcov: lme4's vcov(fit); vcov_adj: pbkrtest::vcovAdj(fit), the Kenward-Roger adjusted
##   covariance of the fixed effects (Kenward & Roger 1997, as pbkrtest computes it).
## * coef: lmerTest's summary(fit, ddf = "Kenward-Roger") table: estimate, adjusted SE,
##   df (pbkrtest::Lb_ddf), t and p for every coefficient.
## * joint: pbkrtest::KRmodcomp(fit, L) for the contrast matrix L: the scaled F, its
##   numerator and denominator df, the scaling factor and the p-value.
## * anova: lmerTest's anova(fit, type = 3, ddf = "Kenward-Roger"), one row per model term.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))

datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "kenward_roger")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")

exam <- read.csv(file.path(datadir, "exam.csv"))
exam$school <- factor(exam$school)
exam$vr <- factor(exam$vr)
exam$schgend <- factor(exam$schgend)
sleep <- read.csv(file.path(datadir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
oats <- read.csv(file.path(datadir, "oats.csv"))
oats$Block <- factor(oats$Block)
oats$Variety <- factor(oats$Variety)
ortho <- read.csv(file.path(datadir, "orthodont.csv"))
ortho$Subject <- factor(ortho$Subject)
ortho$Sex <- factor(ortho$Sex)
penicillin <- read.csv(file.path(datadir, "penicillin.csv"))

fit_polished <- function(formula, data) {
  fit <- lmerTest::lmer(formula, data = data, REML = TRUE)
  refit <- lmerTest::lmer(formula, data = data, REML = TRUE, start = getME(fit, "theta"),
                          control = lmerControl(optimizer = "bobyqa",
                                                optCtrl = list(rhobeg = 1e-3, rhoend = 1e-12)))
  if (-2 * logLik(refit) <= -2 * logLik(fit)) refit else fit
}

one <- function(id, formula, data, L, dataset) {
  fit <- fit_polished(formula, data)
  adj <- pbkrtest::vcovAdj(fit)
  tab <- coef(summary(fit, ddf = "Kenward-Roger"))
  kr <- pbkrtest::KRmodcomp(fit, L)$stats
  av <- anova(fit, type = 3, ddf = "Kenward-Roger")
  list(id = id, dataset = dataset, formula = deparse(formula), method = "REML",
       engine = sprintf("lme4 %s / lmerTest %s / pbkrtest %s / %s", packageVersion("lme4"),
                        packageVersion("lmerTest"), packageVersion("pbkrtest"), R.version.string),
       loglik = as.numeric(logLik(fit)), fixed_names = names(fixef(fit)), fixed = unname(fixef(fit)),
       vcov = unname(as.matrix(vcov(fit))), vcov_adj = unname(as.matrix(adj)[, ]),
       coef = list(estimate = unname(tab[, "Estimate"]), se = unname(tab[, "Std. Error"]),
                   df = unname(tab[, "df"]), t = unname(tab[, "t value"]), p = unname(tab[, "Pr(>|t|)"])),
       L = unname(L),
       joint = list(F = kr$Fstat, ndf = kr$ndf, ddf = kr$ddf, F_scaling = kr$F.scaling, p = kr$p.value),
       anova = list(terms = rownames(av), F = av[["F value"]], ndf = av[["NumDF"]], ddf = av[["DenDF"]],
                    p = av[["Pr(>F)"]]))
}

out <- list()
# columns: (Intercept) lrt vr2 vr3 schgend2 schgend3
out[[length(out) + 1]] <- one("exam_factors", gcse ~ lrt + vr + schgend + (lrt | school), exam,
                              rbind(c(0, 0, 1, 0, 0, 0), c(0, 0, 0, 1, 0, 0), c(0, 0, 0, 0, 1, -1)), "exam.csv")
out[[length(out) + 1]] <- one("sleep_rs", Reaction ~ Days + (Days | Subject), sleep,
                              rbind(c(1, 0), c(0, 1)), "sleepstudy.csv")
out[[length(out) + 1]] <- one("sleep_independent", Reaction ~ Days + (Days || Subject), sleep,
                              rbind(c(1, 0), c(0, 1)), "sleepstudy.csv")
# split plot: columns (Intercept) nitro VarietyMarvellous VarietyVictory
out[[length(out) + 1]] <- one("oats_nested", yld ~ nitro + Variety + (1 | Block/Variety), oats,
                              rbind(c(0, 0, 1, 0), c(0, 0, 0, 1)), "oats.csv")
# columns (Intercept) age SexMale age:SexMale
out[[length(out) + 1]] <- one("orthodont_rs", distance ~ age * Sex + (age | Subject), ortho,
                              rbind(c(0, 0, 1, 0), c(0, 0, 0, 1)), "orthodont.csv")
out[[length(out) + 1]] <- one("penicillin_crossed", diameter ~ 1 + (1 | plate) + (1 | sample), penicillin,
                              rbind(c(1)), "penicillin.csv")
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(outdir, "kenward_roger.json"))
