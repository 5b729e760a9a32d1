# Reference fits of residual covariance structures (nlme::lme), written to nlme_fits.json.
# Run from the repository root: Rscript tests/reference/residuals/nlme_fits.R
# Parameters are converted to hlmext's (Stata's) scale: rho of AR(1) and exchangeable;
# rho = exp(-1/range) for corExp; phi/theta coefficients of corARMA; sd(e) per group and
# occasion (sigma times nlme's varIdent ratios); correlations of corSymm.
library(nlme)
library(jsonlite)
dir <- "tests/reference/residuals"
ov <- read.csv("hlmext/datasets/data/ovary.csv")
bw <- read.csv("hlmext/datasets/data/bodyweight.csv")
od <- read.csv("hlmext/datasets/data/orthodont.csv")

# simulation: 40 schools x 15 students x 4 occasions (one missing at random in 10% of students)
set.seed(19)
sim <- expand.grid(occ = 1:4, student = 1:15, school = 1:40)
sim$student <- sim$school * 100 + sim$student
sim$x <- rnorm(nrow(sim))
S <- matrix(c(1, .6, .4, .3, .6, 1.4, .5, .4, .4, .5, 1.8, .6, .3, .4, .6, 2.2), 4)
L <- t(chol(S))
e <- as.vector(L %*% matrix(rnorm(nrow(sim)), 4))
sim$y <- 1 + 0.5 * sim$x + 0.3 * sim$occ + rnorm(40, sd = 0.7)[sim$school] + e
drop <- which(runif(nrow(sim)) < 0.03)
sim <- sim[-drop, ]
write.csv(sim, file.path(dir, "sim_unstructured.csv"), row.names = FALSE)

out <- list()
summ <- function(fit, extra) {
  c(list(llf = as.numeric(logLik(fit)), fe = as.list(fixef(fit)),
         se = as.list(sqrt(diag(vcov(fit)))), sigma = fit$sigma,
         re_sd = as.list(sqrt(diag(as.matrix(fit$modelStruct$reStruct[[1]]) * fit$sigma^2)))), extra)
}
ctl <- lmeControl(maxIter = 200, msMaxIter = 200, tolerance = 1e-10, msTol = 1e-10, niterEM = 100)
for (method in c("REML", "ML")) {
  f <- lme(follicles ~ sin2pi + cos2pi, ov, random = ~ 1 | Mare,
           correlation = corAR1(form = ~ occasion | Mare), method = method, control = ctl)
  out[[paste0("ovary_ar1_", method)]] <- summ(f, list(rho = coef(f$modelStruct$corStruct, unconstrained = FALSE)[[1]]))
}
f <- lme(follicles ~ sin2pi + cos2pi, ov, random = ~ 1 | Mare,
         correlation = corExp(form = ~ Time | Mare), method = "REML", control = ctl)
rng <- coef(f$modelStruct$corStruct, unconstrained = FALSE)[[1]]
out$ovary_exp_REML <- summ(f, list(rho = exp(-1 / rng), range = rng))
f <- lme(follicles ~ sin2pi + cos2pi, ov, random = ~ 1 | Mare,
         correlation = corARMA(form = ~ occasion | Mare, p = 2), method = "REML", control = ctl)
out$ovary_ar2_REML <- summ(f, list(phi = as.numeric(coef(f$modelStruct$corStruct, unconstrained = FALSE))))
f <- lme(follicles ~ sin2pi + cos2pi, ov, random = ~ 1 | Mare,
         correlation = corARMA(form = ~ occasion | Mare, q = 1), method = "REML", control = ctl)
out$ovary_ma1_REML <- summ(f, list(theta = as.numeric(coef(f$modelStruct$corStruct, unconstrained = FALSE))))
f <- lme(distance ~ age + Sex, od, random = ~ 0 + age | Subject,
         correlation = corCompSymm(form = ~ 1 | Subject), method = "REML", control = ctl)
out$orthodont_exch_REML <- summ(f, list(rho = coef(f$modelStruct$corStruct, unconstrained = FALSE)[[1]]))
for (method in c("REML", "ML")) {
  f <- lme(weight ~ Time * factor(Diet), bw, random = ~ Time | Rat,
           weights = varIdent(form = ~ 1 | Diet), method = method, control = ctl)
  ratio <- coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
  out[[paste0("bodyweight_by_", method)]] <- summ(f, list(sd_e = as.list(f$sigma * ratio)))
}
f <- lme(y ~ x + occ, sim, random = ~ 1 | school,
         correlation = corSymm(form = ~ occ | school / student), weights = varIdent(form = ~ 1 | occ),
         method = "REML", control = ctl)
ratio <- coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
ratio <- ratio[order(as.numeric(names(ratio)))]
C <- corMatrix(f$modelStruct$corStruct)[[which.max(sapply(corMatrix(f$modelStruct$corStruct), nrow))]]
out$sim_unstructured_REML <- summ(f, list(sd_e = as.list(f$sigma * ratio), corr = C[lower.tri(C)]))
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(dir, "nlme_fits.json"))
