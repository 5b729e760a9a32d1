# Writes ovary.csv and bodyweight.csv (nlme data) into hlmext/datasets/data/.
# Run from the repository root: Rscript tests/reference/residuals/make_data.R
library(nlme)
cat("nlme", as.character(packageVersion("nlme")), "\n")
ov <- as.data.frame(Ovary)
ov$Mare <- as.integer(as.character(ov$Mare))
ov$occasion <- ave(ov$Time, ov$Mare, FUN = seq_along)
ov$sin2pi <- sin(2 * pi * ov$Time)
ov$cos2pi <- cos(2 * pi * ov$Time)
write.csv(ov[, c("Mare", "Time", "occasion", "follicles", "sin2pi", "cos2pi")],
          "hlmext/datasets/data/ovary.csv", row.names = FALSE)
bw <- as.data.frame(BodyWeight)
bw$Rat <- as.integer(as.character(bw$Rat))
bw$Diet <- as.integer(as.character(bw$Diet))
write.csv(bw[, c("Rat", "Diet", "Time", "weight")], "hlmext/datasets/data/bodyweight.csv", row.names = FALSE)
