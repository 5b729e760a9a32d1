## Reference fits of the GLMM families beyond logit/Poisson (lme4 glmer / glmer.nb, glmmTMB).
## Run from the repository root:  Rscript tests/reference/families/make_refs.R
## Writes tests/reference/families/<id>.json and the simulated data sets gamma_sim.csv and
## gausslog_sim.csv.
##
## loglik includes every constant of the conditional density. lme4's nAGQ > 1
## log-likelihood leaves out the saturated log-density sum_i log f(y_i | mu_i = y_i / n_i);
## it is added back here (and printed next to glmmTMB's Laplace value for a check).
## glmer's Laplace approximation uses the expected (Fisher) weights of its penalized IRLS in the
## log-determinant; with a non-canonical link that is not the Laplace approximation of
## glmmTMB (exact Hessian), which is the reference for nagq = 1 here.
## glmmTMB dispersion: nbinom2 Var = mu (1 + mu / theta), sigma() = theta; nbinom1
## Var = mu (1 + phi), sigma() = phi; Gamma sigma() = 1 / sqrt(shape); gaussian sigma() = sd.
## "disp" holds the internal log-dispersion parameter (betad) and its standard error.
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})
datadir <- file.path("hlmext", "datasets", "data")
outdir <- file.path("tests", "reference", "families")
if (!dir.exists(datadir) || !dir.exists(outdir)) stop("run from the repository root")

## ---- simulated data: Gamma (log link) and Gaussian (log link), 40 clusters of 8 rows
set.seed(20261203)
G <- 40; m <- 8
g <- rep(seq_len(G), each = m)
x <- round(rnorm(G * m), 4)
b <- rnorm(G, sd = 0.5)
mu <- exp(1 + 0.5 * x + b[g])
shape <- 3
yg <- round(rgamma(G * m, shape = shape, rate = shape / mu), 5)
write.csv(data.frame(y = yg, x = x, g = g), file.path(outdir, "gamma_sim.csv"), row.names = FALSE)
b2 <- rnorm(G, sd = 0.3)
yn <- round(exp(2 + 0.3 * x + b2[g]) + rnorm(G * m, sd = 1), 5)
write.csv(data.frame(y = yn, x = x, g = g), file.path(outdir, "gausslog_sim.csv"), row.names = FALSE)

cbpp <- read.csv(file.path(datadir, "cbpp.csv"))
cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
gt <- read.csv(file.path(datadir, "grouseticks.csv"))
gt$YEAR <- factor(gt$YEAR); gt$BROOD <- factor(gt$BROOD); gt$LOCATION <- factor(gt$LOCATION)
gam <- read.csv(file.path(outdir, "gamma_sim.csv")); gam$g <- factor(gam$g)
gsl <- read.csv(file.path(outdir, "gausslog_sim.csv")); gsl$g <- factor(gsl$g)

fixed_of <- function(est, se) lapply(seq_along(est), function(i)
  list(name = names(est)[i], estimate = unname(est[i]), se = unname(se[i])))

from_lme4 <- function(fit, extra_ll = 0) {
  v <- as.data.frame(VarCorr(fit))
  list(loglik = as.numeric(logLik(fit)) + extra_ll,
       fixed = fixed_of(fixef(fit), sqrt(diag(as.matrix(vcov(fit))))),
       sd = v$sdcor[1], engine = paste("lme4", packageVersion("lme4")))
}
from_tmb <- function(fit) {
  V <- vcov(fit, full = TRUE)
  se <- sqrt(diag(V))
  est <- fixef(fit)$cond
  out <- list(loglik = as.numeric(logLik(fit)),
              fixed = fixed_of(est, se[seq_along(est)]),
              sd = attr(VarCorr(fit)$cond[[1]], "stddev")[[1]],
              sigma = sigma(fit), engine = paste("glmmTMB", packageVersion("glmmTMB")))
  nm <- colnames(V)
  k <- grep("^theta_", nm)
  out$log_sd <- list(estimate = log(out$sd), se = unname(se[k[1]]))
  d <- grep("^d~", nm)
  if (length(d)) out$disp <- list(estimate = unname(fixef(fit)$disp[1]), se = unname(se[d[1]]))
  out
}
save <- function(id, info, res) {
  res <- c(list(id = id), info, res)
  write(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(outdir, paste0(id, ".json")))
  cat(sprintf("%-28s loglik %.6f\n", id, res$loglik))
}
ctrl <- glmerControl(tolPwrss = 1e-13, optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
sat_binom <- with(cbpp, sum(dbinom(incidence, size, incidence / size, log = TRUE)))

## ---- cbpp, binomial with probit and cloglog links
for (lk in c("probit", "cloglog")) {
  info <- list(dataset = "cbpp", formula = "incidence ~ C(period) + (1 | herd)", trials = "size",
               family = "binomial", link = lk)
  fam <- binomial(link = lk)
  f7 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, fam, nAGQ = 7, control = ctrl)
  save(paste0("cbpp_", lk, "_agq7"), c(info, nagq = 7), from_lme4(f7, sat_binom))
  f1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, fam, nAGQ = 1, control = ctrl)
  save(paste0("cbpp_", lk, "_laplace_glmer"), c(info, nagq = 1), from_lme4(f1))
  t1 <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = fam)
  save(paste0("cbpp_", lk, "_laplace"), c(info, nagq = 1), from_tmb(t1))
}

## ---- grouseticks, negative binomial NB2 (glmmTMB nbinom2, glmer.nb) and NB1 (nbinom1)
info <- list(dataset = "grouseticks", formula = "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD)")
t2 <- glmmTMB(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), gt, family = nbinom2)
save("grouse_nb2_laplace", c(info, family = "nbinom2", nagq = 1), from_tmb(t2))
n2 <- glmer.nb(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), gt,
               control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
r <- from_lme4(n2); r$theta <- getME(n2, "glmer.nb.theta")
save("grouse_nb2_laplace_glmernb", c(info, family = "nbinom2", nagq = 1), r)
t1 <- glmmTMB(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), gt, family = nbinom1)
save("grouse_nb1_laplace", c(info, family = "nbinom1", nagq = 1), from_tmb(t1))

## ---- Gamma (log link) and Gaussian (log link), simulated above
tg <- glmmTMB(y ~ x + (1 | g), gam, family = Gamma(link = "log"))
save("gamma_log_laplace", list(dataset = "gamma_sim.csv", formula = "y ~ x + (1 | g)", family = "Gamma",
                               link = "log", nagq = 1), from_tmb(tg))
tn <- glmmTMB(y ~ x + (1 | g), gsl, family = gaussian(link = "log"))
save("gausslog_laplace", list(dataset = "gausslog_sim.csv", formula = "y ~ x + (1 | g)", family = "gaussian",
                              link = "log", nagq = 1), from_tmb(tn))

## ---- nested levels: grouse ticks with broods within locations, NB2 and NB1 (Laplace)
info <- list(dataset = "grouseticks", formula = "TICKS ~ C(YEAR) + cHEIGHT + (1 | LOCATION/BROOD)")
for (fam in c("nbinom2", "nbinom1")) {
  tn <- glmmTMB(TICKS ~ YEAR + cHEIGHT + (1 | LOCATION/BROOD), gt, family = get(fam))
  r <- from_tmb(tn)
  vc <- VarCorr(tn)$cond
  r$sds <- lapply(names(vc), function(nm) list(level = nm, sd = attr(vc[[nm]], "stddev")[[1]]))
  save(paste0("grouse_", sub("nbinom", "nb", fam), "_nested_laplace"), c(info, family = fam, nagq = 1), r)
}
