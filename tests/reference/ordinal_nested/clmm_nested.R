# Reference values of nested random intercepts in ordinal models: ordinal::clmm (Laplace, nAGQ = 1)
# on a simulated three-level design (students in classes in schools), written beside this script:
#   nested.csv            the data (seed below)
#   clmm_nested.json      logLik, coefficients and standard errors, sd's of the random intercepts
#                         (logit, probit) and of the random slope model (slope: logit, Laplace)
# Run from this directory: Rscript clmm_nested.R
suppressMessages(library(ordinal))
set.seed(20261203)
n_school <- 30; n_class <- 4; n_pupil <- 8
school <- rep(seq_len(n_school), each = n_class * n_pupil)
class <- rep(seq_len(n_class), times = n_school, each = n_pupil)     # class labels repeat across schools
x <- round(rnorm(length(school)), 3)
z <- rep(rbinom(n_school * n_class, 1, 0.5), each = n_pupil)         # a class-level covariate
b_school <- rnorm(n_school, sd = 0.8)[school]
b_class <- rnorm(n_school * n_class, sd = 0.6)[(school - 1) * n_class + class]
latent <- 0.7 * x - 0.5 * z + b_school + b_class + rlogis(length(school))
y <- cut(latent, c(-Inf, -1, 0.5, 2, Inf), labels = FALSE)
# a second response with a random slope of x across schools (drawn after the first, which stays as it was)
slope <- rnorm(n_school, sd = 0.5)[school]
latent2 <- (0.7 + slope) * x - 0.5 * z + b_school + b_class + rlogis(length(school))
y2 <- cut(latent2, c(-Inf, -1, 0.5, 2, Inf), labels = FALSE)
df <- data.frame(y = y, y2 = y2, x = x, z = z, school = school, class = class)
write.csv(df, "nested.csv", row.names = FALSE)

df$yf <- factor(df$y, ordered = TRUE)
df$school <- factor(df$school)
df$class <- factor(df$class)
out <- list()
for (link in c("logit", "probit")) {
  m <- clmm(yf ~ x + z + (1 | school) + (1 | school:class), data = df, link = link, nAGQ = 1)
  cf <- coef(m)
  se <- sqrt(diag(vcov(m)))[names(cf)]
  out[[link]] <- list(llf = as.numeric(logLik(m)), names = names(cf), coef = unname(cf), se = unname(se),
                      sd_school = unname(attr(VarCorr(m)$school, "stddev")),
                      sd_class = unname(attr(VarCorr(m)$`school:class`, "stddev")))
}
df$y2f <- factor(df$y2, ordered = TRUE)
m <- clmm(y2f ~ x + z + (1 + x | school) + (1 | school:class), data = df, link = "logit", nAGQ = 1)
cf <- coef(m)
vc <- VarCorr(m)
out[["slope"]] <- list(llf = as.numeric(logLik(m)), names = names(cf), coef = unname(cf),
                       se = unname(sqrt(diag(vcov(m)))[names(cf)]),
                       sd_school = unname(attr(vc$school, "stddev")),
                       corr_school = attr(vc$school, "correlation")[1, 2],
                       sd_class = unname(attr(vc$`school:class`, "stddev")))
json <- function(v) if (is.character(v)) paste0("[", paste0('"', v, '"', collapse = ", "), "]") else
  if (length(v) > 1) paste0("[", paste(sprintf("%.12g", v), collapse = ", "), "]") else sprintf("%.12g", v)
lines <- sapply(names(out), function(link) {
  o <- out[[link]]
  paste0('  "', link, '": {', paste(sprintf('"%s": %s', names(o), sapply(o, json)), collapse = ", "), "}")
})
writeLines(c("{", paste(lines, collapse = ",\n"), "}"), "clmm_nested.json")
