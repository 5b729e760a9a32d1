# Cluster-robust (sandwich) covariance of the fixed effects of linear mixed models, from
# clubSandwich::vcovCR on lme4 fits, clustered at the top level. Run from the repository root:
#   Rscript tests/reference/robust/make_refs.R
suppressPackageStartupMessages({library(lme4); library(clubSandwich); library(jsonlite)})
exam <- read.csv("hlmext/datasets/data/exam.csv"); exam <- exam[exam$nstu > 4, ]
sleep <- read.csv("hlmext/datasets/data/sleepstudy.csv")
fits <- list(
  exam_rs_ml = list(lmer(gcse ~ lrt + (lrt | school), data = exam, REML = FALSE), exam$school),
  sleep_rs_reml = list(lmer(Reaction ~ Days + (Days | Subject), data = sleep, REML = TRUE), sleep$Subject)
)
out <- list()
for (id in names(fits)) {
  fit <- fits[[id]][[1]]
  cr0 <- as.matrix(vcovCR(fit, cluster = fits[[id]][[2]], type = "CR0"))
  cr1 <- as.matrix(vcovCR(fit, cluster = fits[[id]][[2]], type = "CR1"))
  out[[id]] <- list(engine = paste("lme4", packageVersion("lme4"), "clubSandwich", packageVersion("clubSandwich")),
                    names = colnames(cr0), fixef = unname(fixef(fit)),
                    se_cr0 = sqrt(diag(cr0)), se_cr1 = sqrt(diag(cr1)), n_clusters = length(unique(fits[[id]][[2]])))
}
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/robust/cluster_robust.json")
