## Writes the CSV files used by make_refs.R into hlmext/datasets/data/.
## Run from the repository root:  Rscript tests/reference/extra/make_data.R
## Source data come from the R packages mlmRev, lme4, nlme and MASS.
## The files in the repository were written with R 4.2.2, mlmRev 1.0.8,
## lme4 1.1.31, nlme 3.1.162 and MASS 7.3.58.2 (the versions are also printed
## below when the script runs).
## No rows are dropped or subset: every file holds the complete data set
## (only the columns used by the reference fits, plus identifiers).
## Coding conventions (so that R and patsy agree):
##   * binary covariates and binary responses are numeric 0/1;
##   * a factor used as C(x) is stored as strings (or small integer codes)
##     whose plain byte-order sort gives the intended level order, the
##     first sorted level being the reference level;
##   * grouping factors are stored as integers or strings; nested ids are
##     unique across the enclosing groups.

suppressPackageStartupMessages({
  library(lme4)
  library(mlmRev)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))

cat(R.version.string, "\n")
for (p in c("mlmRev", "lme4", "nlme", "MASS"))
  cat(sprintf("%s %s\n", p, as.character(packageVersion(p))))

outdir <- file.path("hlmext", "datasets", "data")
if (!dir.exists(outdir)) stop("run from the repository root")

num_id <- function(f) as.integer(as.character(f))
yes01 <- function(f, yes) as.integer(as.character(f) == yes)
put <- function(d, name) {
  rownames(d) <- NULL
  write.csv(d, file.path(outdir, name), row.names = FALSE)
  cat(sprintf("%-16s %6d rows %2d columns\n", name, nrow(d), ncol(d)))
}

## --- mlmRev::Hsb82 (High School and Beyond, 160 schools) ------------------
d <- mlmRev::Hsb82
put(data.frame(school = num_id(d$school),
               mAch = d$mAch,
               meanses = d$meanses,
               cses = d$cses,
               catholic = yes01(d$sector, "Catholic")),
    "hsb82.csv")

## --- nlme::Orthodont (27 children, 4 ages) ---------------------------------
d <- as.data.frame(nlme::Orthodont)
put(data.frame(Subject = as.character(d$Subject),
               Sex = as.character(d$Sex),
               age = d$age,
               distance = d$distance),
    "orthodont.csv")

## --- mlmRev::egsingle (Chicago math, 3 levels: year in child in school) ----
d <- mlmRev::egsingle
put(data.frame(schoolid = num_id(d$schoolid),
               childid = num_id(d$childid),
               year = d$year,
               math = d$math,
               black = yes01(d$black, "1"),
               hispanic = yes01(d$hispanic, "1")),
    "egsingle.csv")

## --- nlme::Oats (split plot: plot = Block x Variety within Block;
##     blknit = Block x nitrogen level, crossed with plot within Block) -----
d <- as.data.frame(nlme::Oats)
blk <- as.character(d$Block)
var <- as.character(d$Variety)
plot_key <- paste(blk, var)
bn_key <- paste(blk, d$nitro)
put(data.frame(Block = blk,
               Variety = var,
               plot = match(plot_key, sort(unique(plot_key))),
               blknit = match(bn_key, sort(unique(bn_key))),
               nitro = d$nitro,
               yld = d$yield),  # "yield" is a Python keyword
    "oats.csv")

## --- mlmRev::ScotsSec (pupils, crossed primary x secondary school) --------
d <- mlmRev::ScotsSec
put(data.frame(primary = num_id(d$primary),
               second = num_id(d$second),
               attain = d$attain,
               verbal = d$verbal,
               sex = as.character(d$sex)),
    "scotssec.csv")

## --- mlmRev::guImmun (Guatemala immunisation: kid in mom in community) -----
d <- mlmRev::guImmun
put(data.frame(kid = num_id(d$kid),
               mom = num_id(d$mom),
               comm = num_id(d$comm),
               immun = yes01(d$immun, "Y"),
               kid2p = yes01(d$kid2p, "Y"),
               mom25p = yes01(d$mom25p, "Y"),
               ord = as.character(d$ord),
               ethn = as.character(d$ethn),
               momEd = as.character(d$momEd),
               husEd = as.character(d$husEd),
               momWork = yes01(d$momWork, "Y"),
               rural = yes01(d$rural, "Y"),
               pcInd81 = d$pcInd81),
    "guimmun.csv")

## --- MASS::bacteria (H. influenzae presence, 50 children, weeks 0-11) -----
d <- MASS::bacteria
put(data.frame(ID = as.character(d$ID),
               y = yes01(d$y, "y"),
               trt = match(as.character(d$trt), c("placebo", "drug", "drug+")) - 1L,
               week = d$week),
    "bacteria.csv")

## --- mlmRev::Mmmec (melanoma deaths: county in region in nation) ----------
d <- mlmRev::Mmmec
put(data.frame(nation = as.character(d$nation),
               region = num_id(d$region),
               county = num_id(d$county),
               deaths = d$deaths,
               expected = d$expected,
               uvb = d$uvb),
    "mmmec.csv")

## --- lme4::VerbAgg (verbal aggression items, crossed person x item) -------
d <- lme4::VerbAgg
put(data.frame(id = num_id(d$id),
               item = as.character(d$item),
               r2 = yes01(d$r2, "Y"),
               Anger = d$Anger,
               Gender = as.character(d$Gender),
               btype = as.character(d$btype),
               situ = as.character(d$situ),
               mode = as.character(d$mode)),
    "verbagg.csv")
