"""``python -m hlmext``: the GCSE walk-through on the bundled data.

Students (level 1) in schools (level 2); the Stata commands of each step are shown
beside the hlmext call.
"""
import warnings

import numpy as np

import hlmext


def rule(title):
    print("\n" + "=" * 78 + "\n" + title + "\n" + "=" * 78)


def main():
    warnings.simplefilter("ignore", hlmext.BoundaryWarning)
    df = hlmext.datasets.load("gcse").query("nstu > 4")
    print("GCSE scores of %d students in %d schools (schools with more than 4 students)"
          % (len(df), df.school.nunique()))

    rule("Step 1: separate OLS regressions per school   [Stata: statsby ... : regress gcse lrt]")
    ols = hlmext.per_group_ols("gcse ~ lrt", df, "school").rename(columns={"Intercept": "alpha", "lrt": "beta"})
    print(ols[["alpha", "beta"]].describe().loc[["count", "mean", "std", "min", "max"]].T.to_string())
    print("\ncovariance of the school intercepts and slopes:")
    print(ols[["alpha", "beta"]].cov().to_string())

    rule("Step 2: random intercept, ML   [Stata: mixed gcse lrt || school:, mle]")
    ri = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit(reml=False)
    print(ri.summary())
    print("\nIntraclass correlation   [Stata: estat icc]")
    print(ri.icc().to_string())

    rule("Step 3: random intercept and slope, unstructured   "
         "[Stata: mixed gcse lrt || school: lrt, cov(unstr) mle]")
    rs = hlmext.mixedlm("gcse ~ lrt || school: lrt", df, cov="unstructured").fit(reml=False)
    print(rs.summary())
    print("\nRandom-effects covariance matrix for level school   [Stata: estat recovariance]")
    print(rs.cov_re["school"].to_string())
    print("\nLR test of the random slope   [Stata: lrtest ri rs]")
    print(hlmext.lrtest(ri, rs))

    rule("Step 4: school type interacted with lrt   "
         "[Stata: mixed gcse c.lrt##i.schgend || school: lrt, cov(unstr) mle]")
    inter = hlmext.mixedlm("gcse ~ C(schgend) * lrt + (lrt | school)", df).fit(reml=False)
    print(inter.summary())
    print("\nWald test that school type matters at all:")
    names = [n for n in inter.model.exog_names if "schgend" in n]
    print(inter.wald_test(", ".join("%s = 0" % n for n in names), scalar=True))
    print("\nFirst five schools' BLUPs (intercept and slope deviations):")
    print(inter.random_effects["school"].head().round(4).to_string())
    np.set_printoptions(precision=4)


if __name__ == "__main__":
    main()
