# Writes lme4's InstEval data (73,421 ratings of 1,128 instructors by 2,972 students) to
# insteval.csv beside this script, for the `insteval` benchmark scenario. The CSV is not
# part of the repository: run `Rscript benchmarks/data/export_insteval.R` once.
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "."
data(InstEval, package = "lme4")
out <- data.frame(s = as.character(InstEval$s), d = as.character(InstEval$d),
                  dept = as.character(InstEval$dept), service = as.integer(as.character(InstEval$service)),
                  studage = as.character(InstEval$studage), lectage = as.character(InstEval$lectage),
                  y = as.integer(InstEval$y))
write.csv(out, file.path(here, "insteval.csv"), row.names = FALSE)
cat(sprintf("wrote %d rows to %s\n", nrow(out), file.path(here, "insteval.csv")))
