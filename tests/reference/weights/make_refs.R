# Sampling weights (pseudo-likelihood) and robust (sandwich) standard errors of every parameter.
# Run from the repository root:  Rscript tests/reference/weights/make_refs.R
#
# (a) With integer weights the pseudo-likelihood of Rabe-Hesketh & Skrondal (2006) equals the
#     likelihood of data where every cluster is replicated w_j times (as distinct clusters) and every
#     row w_i times: those replicated data are fitted with lme4 (lmer REML = FALSE, glmer).
# (b) The sandwich H^-1 B H^-1 (B with G/(G-1)) at the lme4 estimates, computed independently:
#     per top-level cluster the weighted marginal log-likelihood, densely (mvtnorm::dmvnorm with
#     V_k = Z_k G Z_k' + sigma^2 I on the cluster's replicated rows, times the cluster's weight) for
#     linear models, and by adaptive Gauss-Hermite quadrature (statmod::gauss.quad, nodes centred at
#     the mode and scaled by the curvature, as hlmext) for the mixed logit and Poisson models with one
#     level, and by the
#     joint Laplace approximation of each community (dense Newton over its community and mothers'
#     effects) for the nested mixed logit (there the reference estimates maximize that dense Laplace
#     likelihood with optim, from glmer's; glmer's own figures are stored beside them); scores by
#     numDeriv::jacobian and the Hessian by numDeriv::hessian, in the parametrization
#     (fixed effects, log sd, atanh corr, log sigma). Standard errors are reported on the scale of
#     the estimates (sd, corr) by the delta method.
# The weights are deterministic functions of the row and cluster positions, stored in the JSON.
# glmer runs with tolPwrss = 1e-12: with the default its inner iterations stop short of the modes
# on some replicated data sets.
suppressPackageStartupMessages({library(lme4); library(mvtnorm); library(numDeriv); library(statmod)
  library(jsonlite)})
engine <- paste("R", getRversion(), "lme4", packageVersion("lme4"), "mvtnorm", packageVersion("mvtnorm"),
                "numDeriv", packageVersion("numDeriv"), "statmod", packageVersion("statmod"))
nd_args <- list(r = 2)

index_of <- function(g) match(g, sort(unique(g)))          # 1.. in sorted label order

replicate_rows <- function(d, top, w_top, inner = NULL, w_inner = NULL, w_obs) {
  # every top cluster w_top times, within it every inner cluster w_inner times, every row w_obs times
  out <- list()
  for (k in sort(unique(d[[top]]))) {
    dk <- d[d[[top]] == k, , drop = FALSE]
    for (c in seq_len(dk[[w_top]][1])) {
      if (is.null(inner)) {
        rk <- dk[rep(seq_len(nrow(dk)), dk[[w_obs]]), ]
        rk$rep_top <- paste(k, c)
        out[[length(out) + 1]] <- rk
      } else for (j in sort(unique(dk[[inner]]))) {
        dj <- dk[dk[[inner]] == j, , drop = FALSE]
        for (c2 in seq_len(dj[[w_inner]][1])) {
          rj <- dj[rep(seq_len(nrow(dj)), dj[[w_obs]]), ]
          rj$rep_top <- paste(k, c); rj$rep_inner <- paste(k, c, j, c2)
          out[[length(out) + 1]] <- rj
        }
      }
    }
  }
  do.call(rbind, out)
}

sandwich <- function(contrib, x0, jac_scale) {
  S <- jacobian(contrib, x0, method.args = nd_args)
  H <- -hessian(function(x) sum(contrib(x)), x0, method.args = nd_args)
  G <- nrow(S)
  Hi <- solve(H)
  V <- Hi %*% (crossprod(S) * G / (G - 1)) %*% Hi
  sqrt(diag(V)) * abs(jac_scale)
}

# ------------------------------------------------------------------ linear models
lmm_contrib <- function(data, X_of, y, top, w_top, V_of) {
  # per top cluster: w_k * log N(y_k; X_k beta, V_k) on the cluster's rows replicated within it
  tops <- sort(unique(data[[top]]))
  function(x) sapply(tops, function(k) {
    dk <- data[data[[top]] == k, , drop = FALSE]
    X <- X_of(dk)
    b <- x[seq_len(ncol(X))]
    V <- V_of(dk, x[-seq_len(ncol(X))])
    dk[[w_top]][1] * dmvnorm(dk[[y]], drop(X %*% b), V, log = TRUE)
  })
}

expand_obs <- function(d, w_obs) d[rep(seq_len(nrow(d)), d[[w_obs]]), , drop = FALSE]

out <- list()

# exam (gcse, students in schools with more than 4 students), two levels
exam <- read.csv("hlmext/datasets/data/exam.csv"); exam <- exam[exam$nstu > 4, ]
exam$wsch <- 1L + (index_of(exam$school) %% 3L)
exam$wobs <- 1L + ((seq_len(nrow(exam)) - 1L) %% 2L)
ones <- exam; ones$wsch <- 1L; ones$wobs <- 1L

two_level <- function(d, slope, id, weighted) {
  rep <- replicate_rows(d, "school", "wsch", w_obs = "wobs")
  form <- if (slope) gcse ~ lrt + (lrt | rep_top) else gcse ~ lrt + (1 | rep_top)
  fit <- lmer(form, data = rep, REML = FALSE, control = lmerControl(optimizer = "bobyqa"))
  beta <- unname(fixef(fit)); vc <- VarCorr(fit)$rep_top; sigma <- sigma(fit)
  sds <- attr(vc, "stddev"); cor <- if (slope) attr(vc, "correlation")[1, 2] else NULL
  est <- c(beta, sds, cor, sigma)
  x0 <- c(beta, log(sds), if (slope) atanh(cor), log(sigma))
  V_of <- function(dk, phi) {
    s <- exp(phi[1:(1 + slope)]); sig <- exp(phi[length(phi)])
    Z <- if (slope) cbind(1, dk$lrt) else matrix(1, nrow(dk), 1)
    G <- if (slope) { r <- tanh(phi[3]); matrix(c(s[1]^2, r * s[1] * s[2], r * s[1] * s[2], s[2]^2), 2) }
         else matrix(s[1]^2)
    Z %*% G %*% t(Z) + diag(sig^2, nrow(dk))
  }
  expanded <- do.call(rbind, lapply(split(d, d$school), expand_obs, w_obs = "wobs"))
  contrib <- lmm_contrib(expanded, function(dk) cbind(1, dk$lrt), "gcse", "school", "wsch", V_of)
  jac <- c(1, 1, sds, if (slope) 1 - cor^2, sigma)
  names <- c("Intercept", "lrt", "sd(Intercept)[school]", if (slope) c("sd(lrt)[school]",
             "corr(Intercept,lrt)[school]"), "sd(Residual)")
  list(engine = engine, formula = if (slope) "gcse ~ lrt + (lrt | school)" else "gcse ~ lrt + (1 | school)",
       weighted = weighted, nobs_replicated = nrow(rep), loglik = as.numeric(logLik(fit)), names = names,
       estimates = est, se_robust = sandwich(contrib, x0, jac), n_clusters = length(unique(d$school)),
       wobs = if (weighted) d$wobs else NULL, wsch = if (weighted) d$wsch else NULL)
}
out$exam_ri_pw <- two_level(exam, FALSE, "exam_ri_pw", TRUE)
out$exam_rs_pw <- two_level(exam, TRUE, "exam_rs_pw", TRUE)
out$exam_rs <- two_level(ones, TRUE, "exam_rs", FALSE)

# egsingle (math scores of children in schools), three levels, weights at every level
eg <- read.csv("hlmext/datasets/data/egsingle.csv")
eg$wsch <- 1L + (index_of(eg$schoolid) %% 2L)
eg$wch <- 1L + (index_of(eg$childid) %% 2L)
eg$wobs <- 1L + as.integer((seq_len(nrow(eg)) - 1L) %% 3L == 0L)
three_level <- function(eg, weighted) {
  rep <- replicate_rows(eg, "schoolid", "wsch", "childid", "wch", "wobs")
  fit <- lmer(math ~ year + (1 | rep_top) + (1 | rep_inner), data = rep, REML = FALSE)
  beta <- unname(fixef(fit)); vc <- as.data.frame(VarCorr(fit))
  s_sch <- vc$sdcor[vc$grp == "rep_top"]; s_ch <- vc$sdcor[vc$grp == "rep_inner"]; sigma <- sigma(fit)
  # per school: children replicated wch times (distinct children), rows wobs times
  school_rows <- lapply(split(eg, eg$schoolid), function(dk) {
    parts <- list()
    for (j in sort(unique(dk$childid))) {
      dj <- dk[dk$childid == j, ]
      for (c2 in seq_len(dj$wch[1])) {
        r <- expand_obs(dj, "wobs"); r$copy <- paste(j, c2); parts[[length(parts) + 1]] <- r
      }
    }
    do.call(rbind, parts)
  })
  contrib <- function(x) sapply(school_rows, function(dk) {
    s1 <- exp(x[3]); s2 <- exp(x[4]); sig <- exp(x[5])
    same_child <- outer(dk$copy, dk$copy, "==")
    V <- s1^2 + s2^2 * same_child + diag(sig^2, nrow(dk))
    dk$wsch[1] * dmvnorm(dk$math, x[1] + x[2] * dk$year, V, log = TRUE)
  })
  x0 <- c(beta, log(c(s_sch, s_ch, sigma)))
  list(engine = engine, formula = "math ~ year + (1 | schoolid/childid)", weighted = weighted,
       nobs_replicated = nrow(rep), loglik = as.numeric(logLik(fit)),
       names = c("Intercept", "year", "sd(Intercept)[schoolid]", "sd(Intercept)[schoolid:childid]",
                 "sd(Residual)"),
       estimates = c(beta, s_sch, s_ch, sigma),
       se_robust = sandwich(contrib, x0, c(1, 1, s_sch, s_ch, sigma)), n_clusters = length(school_rows),
       wobs = if (weighted) eg$wobs else NULL, wch = if (weighted) eg$wch else NULL,
       wsch = if (weighted) eg$wsch else NULL)
}
out$egsingle_3lev_pw <- three_level(eg, TRUE)
eg1 <- eg; eg1$wsch <- 1L; eg1$wch <- 1L; eg1$wobs <- 1L
out$egsingle_3lev <- three_level(eg1, FALSE)

# ------------------------------------------------------------------ mixed logit, random intercept
con <- read.csv("hlmext/datasets/data/contraception.csv")
con$wd <- 1L + (index_of(con$district) %% 3L)
con$wobs <- 1L + ((seq_len(nrow(con)) - 1L) %% 2L)
con1 <- con; con1$wd <- 1L; con1$wobs <- 1L

aghq_contrib <- function(d, nagq) {
  gh <- gauss.quad(nagq, "hermite")
  groups <- split(d, d$district)
  function(x) sapply(groups, function(dk) {
    eta0 <- x[1] + x[2] * dk$age + x[3] * dk$urban; s <- exp(x[4]); w <- dk$wobs
    h <- function(u) sum(w * (dk$use * (eta0 + s * u) - log1p(exp(eta0 + s * u)))) - u^2 / 2
    u0 <- optimize(h, c(-20, 20), maximum = TRUE, tol = 1e-12)$maximum
    for (i in 1:50) {                       # Newton polish of the mode
      p <- plogis(eta0 + s * u0)
      g <- sum(w * (dk$use - p)) * s - u0; H <- sum(w * p * (1 - p)) * s^2 + 1
      u0 <- u0 + g / H
    }
    p <- plogis(eta0 + s * u0); H <- sum(w * p * (1 - p)) * s^2 + 1
    sc <- sqrt(2 / H)
    vals <- sapply(gh$nodes, function(z) h(u0 + sc * z)) + gh$nodes^2
    top <- max(vals)
    dk$wd[1] * (top + log(sum(gh$weights * exp(vals - top))) + log(sc) - 0.5 * log(2 * pi))
  })
}

logit_case <- function(d, nagq, weighted) {
  rep <- replicate_rows(d, "district", "wd", w_obs = "wobs")
  fit <- glmer(use ~ age + urban + (1 | rep_top), data = rep, family = binomial, nAGQ = nagq,
               control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12))
  beta <- unname(fixef(fit)); s <- attr(VarCorr(fit)$rep_top, "stddev")[[1]]
  res <- list(engine = engine, formula = "use ~ age + urban + (1 | district)", nagq = nagq, weighted = weighted,
              nobs_replicated = nrow(rep), loglik = as.numeric(logLik(fit)),
              names = c("Intercept", "age", "urban", "sd(Intercept)[district]"), estimates = c(beta, s),
              n_clusters = length(unique(d$district)),
              wobs = if (weighted) d$wobs else NULL, wd = if (weighted) d$wd else NULL)
  res$se_robust <- sandwich(aghq_contrib(d, nagq), c(beta, log(s)), c(1, 1, 1, s))
  res
}
out$contraception_pw_laplace <- logit_case(con, 1, TRUE)
out$contraception_pw_agq7 <- logit_case(con, 7, TRUE)
out$contraception_agq7 <- logit_case(con1, 7, FALSE)
out$contraception_laplace <- logit_case(con1, 1, FALSE)

# ------------------------------------------------------------------ mixed logit, nested levels (Laplace)
gui <- read.csv("hlmext/datasets/data/guimmun.csv")
gui$wc <- 1L + (index_of(gui$comm) %% 2L)
gui$wm <- 1L + (index_of(gui$mom) %% 2L)
gui$wobs <- 1L + as.integer((seq_len(nrow(gui)) - 1L) %% 3L == 0L)
gui1 <- gui; gui1$wc <- 1L; gui1$wm <- 1L; gui1$wobs <- 1L

laplace_nested_contrib <- function(d) {
  # per community: moms copied wm times (distinct), rows wobs times; the joint Laplace approximation
  # h(u) - 1/2 log det H over (community effect, mothers' effects) by dense Newton, times wc
  comms <- lapply(split(d, d$comm), function(dk) {
    parts <- list()
    for (j in sort(unique(dk$mom))) {
      dj <- dk[dk$mom == j, ]
      for (c2 in seq_len(dj$wm[1])) { r <- expand_obs(dj, "wobs"); r$copy <- paste(j, c2); parts[[length(parts) + 1]] <- r }
    }
    dk <- do.call(rbind, parts)
    list(y = dk$immun, X = cbind(1, dk$kid2p, dk$mom25p), M = outer(dk$copy, unique(dk$copy), "=="), w = dk$wc[1])
  })
  function(x) sapply(comms, function(ck) {
    b <- x[1:3]; sc <- exp(x[4]); sm <- exp(x[5])
    Z <- cbind(sc, sm * ck$M)
    eta0 <- drop(ck$X %*% b)
    hfun <- function(u) { eta <- eta0 + drop(Z %*% u); sum(ck$y * eta - log1p(exp(eta))) - sum(u^2) / 2 }
    u <- rep(0, ncol(Z))
    for (it in 1:200) {                       # Newton with step halving
      p <- plogis(eta0 + drop(Z %*% u))
      g <- drop(crossprod(Z, ck$y - p)) - u
      H <- crossprod(Z, p * (1 - p) * Z) + diag(ncol(Z))
      step <- solve(H, g)
      t <- 1
      while (hfun(u + t * step) < hfun(u) - 1e-12 && t > 1e-10) t <- t / 2
      u <- u + t * step
      if (max(abs(t * step)) < 1e-12) break
    }
    eta <- eta0 + drop(Z %*% u); p <- plogis(eta)
    H <- crossprod(Z, p * (1 - p) * Z) + diag(ncol(Z))
    h <- hfun(u)
    ck$w * (h - 0.5 * determinant(H)$modulus[1])
  })
}

nested_logit_case <- function(d, weighted) {
  rep <- replicate_rows(d, "comm", "wc", "mom", "wm", "wobs")
  fit <- glmer(immun ~ kid2p + mom25p + (1 | rep_top) + (1 | rep_inner), data = rep, family = binomial,
               nAGQ = 1, control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12))
  beta <- unname(fixef(fit)); vc <- as.data.frame(VarCorr(fit))
  s_c <- vc$sdcor[vc$grp == "rep_top"]; s_m <- vc$sdcor[vc$grp == "rep_inner"]
  # the reference: the optimum of the dense per-community Laplace likelihood, from glmer's estimates
  contrib <- laplace_nested_contrib(d)
  opt <- optim(c(beta, log(s_c), log(s_m)), function(x) -sum(contrib(x)), method = "BFGS",
               control = list(reltol = 1e-14, maxit = 500))
  x <- opt$par
  list(engine = engine, formula = "immun ~ kid2p + mom25p + (1 | comm/mom)", nagq = 1, weighted = weighted,
       nobs_replicated = nrow(rep), loglik_glmer = as.numeric(logLik(fit)), loglik = -opt$value,
       estimates_glmer = c(beta, s_c, s_m),
       names = c("Intercept", "kid2p", "mom25p", "sd(Intercept)[comm]", "sd(Intercept)[comm:mom]"),
       estimates = c(x[1:3], exp(x[4:5])), n_clusters = length(unique(d$comm)),
       se_robust = sandwich(contrib, x, c(1, 1, 1, exp(x[4:5]))),
       wobs = if (weighted) d$wobs else NULL, wc = if (weighted) d$wc else NULL, wm = if (weighted) d$wm else NULL)
}
out$guimmun_nested_pw_laplace <- nested_logit_case(gui, TRUE)
out$guimmun_nested_laplace <- nested_logit_case(gui1, FALSE)

# ------------------------------------------------------------------ mixed Poisson, random intercept
grouse <- read.csv("hlmext/datasets/data/grouseticks.csv")
grouse$wb <- 1L + (index_of(grouse$BROOD) %% 3L)
grouse$wobs <- 1L + ((seq_len(nrow(grouse)) - 1L) %% 2L)

poisson_aghq_contrib <- function(d, nagq) {
  gh <- gauss.quad(nagq, "hermite")
  groups <- split(d, d$BROOD)
  function(x) sapply(groups, function(dk) {
    eta0 <- x[1] + x[2] * dk$cHEIGHT; s <- exp(x[3]); w <- dk$wobs
    h <- function(u) sum(w * (dk$TICKS * (eta0 + s * u) - exp(eta0 + s * u) - lgamma(dk$TICKS + 1))) - u^2 / 2
    u0 <- 0
    for (i in 1:200) {                      # Newton with step halving
      mu <- exp(eta0 + s * u0)
      step <- (sum(w * (dk$TICKS - mu)) * s - u0) / (sum(w * mu) * s^2 + 1)
      t <- 1
      while (h(u0 + t * step) < h(u0) - 1e-12 && t > 1e-10) t <- t / 2
      u0 <- u0 + t * step
      if (abs(t * step) < 1e-13) break
    }
    H <- sum(w * exp(eta0 + s * u0)) * s^2 + 1
    sc <- sqrt(2 / H)
    vals <- sapply(gh$nodes, function(z) h(u0 + sc * z)) + gh$nodes^2
    top <- max(vals)
    dk$wb[1] * (top + log(sum(gh$weights * exp(vals - top))) + log(sc) - 0.5 * log(2 * pi))
  })
}

poisson_case <- function(d, nagq) {
  rep <- replicate_rows(d, "BROOD", "wb", w_obs = "wobs")
  fit <- glmer(TICKS ~ cHEIGHT + (1 | rep_top), data = rep, family = poisson, nAGQ = nagq,
               control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12))
  beta <- unname(fixef(fit)); s <- attr(VarCorr(fit)$rep_top, "stddev")[[1]]
  list(engine = engine, formula = "TICKS ~ cHEIGHT + (1 | BROOD)", family = "poisson", nagq = nagq,
       weighted = TRUE, nobs_replicated = nrow(rep), loglik = as.numeric(logLik(fit)),
       names = c("Intercept", "cHEIGHT", "sd(Intercept)[BROOD]"), estimates = c(beta, s),
       n_clusters = length(unique(d$BROOD)),
       se_robust = sandwich(poisson_aghq_contrib(d, nagq), c(beta, log(s)), c(1, 1, s)),
       wobs = d$wobs, wb = d$wb)
}
# Laplace: with nAGQ > 1 glmer's Poisson log-likelihood leaves out the saturated model's
out$grouseticks_pw_laplace <- poisson_case(grouse, 1)

write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/weights/weights.json")
