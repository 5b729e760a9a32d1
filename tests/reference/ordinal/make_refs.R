# Reference fits of ordinal::clmm for tests/test_ordinal_reference.py (run from the repository
# root: Rscript tests/reference/ordinal/make_refs.R). Writes one JSON per fit beside this script.
# clmm's thresholds enter as P(y <= k) = F(theta_k - x'beta), the same sign as Stata's cut points.
library(ordinal)
library(jsonlite)
out <- "tests/reference/ordinal"
wine <- read.csv("hlmext/datasets/data/wine.csv")
wine$rating <- factor(wine$rating, ordered = TRUE)
wine$judge <- factor(wine$judge)

# a random-slope simulation (written beside this script, read by the test)
set.seed(20261203)
G <- 60; m <- 10
sim <- data.frame(g = rep(seq_len(G), each = m), x = rnorm(G * m))
b0 <- rnorm(G, sd = 1.0); b1 <- rnorm(G, sd = 0.8)
lat <- 0.8 * sim$x + b0[sim$g] + b1[sim$g] * sim$x + rlogis(G * m)
sim$y <- as.integer(cut(lat, c(-Inf, -1.5, 0, 1.2, Inf)))
write.csv(sim, file.path(out, "sim_slope.csv"), row.names = FALSE)
sim$y <- factor(sim$y, ordered = TRUE)
sim$g <- factor(sim$g)

ctl <- clmm.control(gradTol = 1e-7, maxIter = 500)
record <- function(fit, name, formula, link, nagq, data_name) {
  v <- vcov(fit)
  se <- sqrt(diag(v))
  theta <- fit$alpha; beta <- fit$beta
  res <- list(
    formula = formula, link = link, nagq = nagq, data = data_name,
    llf = as.numeric(logLik(fit)), max_grad = max(abs(fit$gradient)),
    beta = as.list(beta), se_beta = as.list(se[names(beta)]),
    cuts = unname(theta), se_cuts = unname(se[names(theta)]),
    sd = unname(attr(VarCorr(fit)[[1]], "stddev")),
    corr = if (ncol(VarCorr(fit)[[1]]) > 1) attr(VarCorr(fit)[[1]], "correlation")[2, 1] else NULL,
    se_log_sd = if (nrow(fit$ST[[1]]) == 1) unname(se[length(se)]) else NULL,
    R = paste(R.version$major, R.version$minor, sep = "."),
    ordinal = as.character(packageVersion("ordinal")))
  write_json(res, file.path(out, paste0(name, ".json")), auto_unbox = TRUE, digits = NA, pretty = TRUE)
  cat(name, res$llf, res$max_grad, "\n")
}
for (link in c("logit", "probit")) {
  f <- rating ~ temp + contact + (1 | judge)
  record(clmm(f, data = wine, link = link, nAGQ = 1, control = ctl),
         paste0("wine_", link, "_laplace"), "rating ~ temp + contact + (1 | judge)", link, 1, "wine")
  record(clmm(f, data = wine, link = link, nAGQ = 7, control = ctl),
         paste0("wine_", link, "_agq7"), "rating ~ temp + contact + (1 | judge)", link, 7, "wine")
}
record(clmm(y ~ x + (1 + x | g), data = sim, link = "logit", nAGQ = 1, control = ctl),
       "sim_slope_logit_laplace", "y ~ x + (1 + x | g)", "logit", 1, "sim_slope.csv")
