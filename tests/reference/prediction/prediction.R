# Reference values for tests/test_prediction.py and tests/test_diagnostics.py.
# Run from this directory: Rscript prediction.R  (lme4 1.1-31, emmeans; writes prediction.json)
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
emm_options(lmer.df = "asymptotic")     # plain vcov(), z tests: what hlmext reports
data_dir <- "../../../hlmext/datasets/data"
out <- list(lme4 = as.character(packageVersion("lme4")), emmeans = as.character(packageVersion("emmeans")))

ss <- read.csv(file.path(data_dir, "sleepstudy.csv"))
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
fit <- lmer(Reaction ~ Days + (Days | Subject), ss, control = tight)       # REML, to the optimum
out$sleep_hat <- unname(hatvalues(fit))
out$sleep_cooks <- unname(cooks.distance(fit))
infl <- influence(fit, groups = "Subject")
out$sleep_group_fixef <- unname(as.matrix(infl[["fixed.effects[-Subject]"]]))
out$sleep_group_names <- rownames(infl[["fixed.effects[-Subject]"]])
out$sleep_group_cooks <- unname(cooks.distance(infl))

exam <- read.csv(file.path(data_dir, "exam.csv"))
exam$schgend <- factor(exam$schgend)
fe <- lmer(normexam ~ standLRT + schgend + (1 | school), exam, control = tight)
em <- summary(emmeans(fe, "schgend"))
out$exam_emm <- list(mean = em$emmean, se = em$SE)
pw <- summary(pairs(emmeans(fe, "schgend"), adjust = "holm"))
out$exam_pairs <- list(estimate = pw$estimate, se = pw$SE, p = pw$p.value, contrast = as.character(pw$contrast))
pt <- summary(pairs(emmeans(fe, "schgend"), adjust = "tukey"))
out$exam_pairs_tukey <- list(p = pt$p.value)

cbpp$period <- factor(cbpp$period)
# tight PIRLS and optimizer tolerances: the defaults stop 3e-4 short of the maximum on this fit
fc <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial,
            control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
ec <- summary(emmeans(fc, "period", type = "response"))
out$cbpp_emm <- list(prob = ec$prob, se = ec$SE)
pc <- summary(pairs(regrid(emmeans(fc, "period")), adjust = "holm"))
out$cbpp_pairs <- list(estimate = pc$estimate, se = pc$SE, p = pc$p.value, contrast = as.character(pc$contrast))
out$cbpp_fixef <- unname(fixef(fc))

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), "prediction.json")
