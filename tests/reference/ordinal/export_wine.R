# Writes hlmext/datasets/data/wine.csv from the R package ordinal (run from the repository root:
# Rscript tests/reference/ordinal/export_wine.R).
library(ordinal)
d <- wine[, c("response", "rating", "temp", "contact", "bottle", "judge")]
d$rating <- as.integer(d$rating)
write.csv(d, "hlmext/datasets/data/wine.csv", row.names = FALSE, quote = FALSE)
cat("ordinal", as.character(packageVersion("ordinal")), "\n")
