"""Tests for hlmext.output.summary: Stata-like text, HTML and LaTeX summaries.

The results objects are fakes (``types.SimpleNamespace`` + pandas) carrying
only the attributes MixedSummary reads; the seed model's numbers are Stata's
``mixed gcse lrt || school: lrt, covariance(unstructured)`` output.
"""
import math
import textwrap
import types

import numpy as np
import pandas as pd
import pytest

from hlmext.output.summary import MixedSummary, stata_abbrev, stata_number

SEED_TEXT = textwrap.dedent("""\
    Mixed-effects ML regression                     Number of obs     =      4,057
    Group variable: school                          Number of groups  =         64

                                                    Obs per group:
                                                                  min =          8
                                                                  avg =       63.4
                                                                  max =        198

                                                    Wald chi2(1)      =     779.93
    Log likelihood = -13998.423                     Prob > chi2       =     0.0000

    ------------------------------------------------------------------------------
            gcse |      Coef.   Std. Err.      z    P>|z|     [95% Conf. Interval]
    -------------+----------------------------------------------------------------
             lrt |   .5567955   .0199374    27.93   0.000     .5177189    .5958721
           _cons |  -.1078456   .3993155    -0.27   0.787    -.8904895    .6747984
    ------------------------------------------------------------------------------

    ------------------------------------------------------------------------------
      Random-effects Parameters  |   Estimate   Std. Err.     [95% Conf. Interval]
    -----------------------------+------------------------------------------------
    school: Unstructured         |
                        sd(lrt)  |   .1205424   .0189867      .0885252    .1641394
                      sd(_cons)  |   3.013474    .305867      2.469851    3.676752
                corr(lrt,_cons)  |   .4972959   .1490473      .1563124    .7323728
    -----------------------------+------------------------------------------------
                   sd(Residual)  |   7.442053   .0839829      7.279257    7.608491
    ------------------------------------------------------------------------------
    LR test vs. linear model: chi2(3) = 443.62                Prob > chi2 = 0.0000

    Note: LR test is conservative and provided only for reference.""")


def _fe(rows):
    """Fixed-effects table from ``name: (coef, se, z, p, lower, upper)``."""
    return pd.DataFrame(list(rows.values()), index=list(rows),
                        columns=["coef", "se", "z", "pvalue", "lower", "upper"])


def _re(rows):
    """Random-effects table from ``(level, param): (est, se, lower, upper)``."""
    return pd.DataFrame(list(rows.values()), index=pd.MultiIndex.from_tuples(list(rows)),
                        columns=["estimate", "se", "lower", "upper"])


def seed_results(**overrides):
    """Fake results of the two-level random-slope model of the Stata layout."""
    attrs = dict(
        model_label="Mixed-effects ML regression", endog_name="gcse", nobs=4057,
        level_info=[{"name": "school", "n_groups": 64, "min": 8, "avg": 63.4,
                     "max": 198}],
        integration=None, wald_chi2=(779.93, 1, 0.0), llf=-13998.4229, reml=False,
        fe_table=_fe({  # patsy order: intercept first, displayed last as _cons
            "Intercept": (-.1078456, .3993155, -.2700737, .78711, -.8904895, .6747984),
            "lrt": (.5567955, .0199374, 27.92678, 0.0, .5177189, .5958721)}),
        re_table=_re({
            ("school", "sd(lrt)"): (.1205424, .0189867, .0885252, .1641394),
            ("school", "sd(_cons)"): (3.013474, .305867, 2.469851, 3.676752),
            ("school", "corr(lrt,_cons)"): (.4972959, .1490473, .1563124, .7323728),
            ("Residual", "sd(Residual)"): (7.442053, .0839829, 7.279257, 7.608491)}),
        re_structure={"school": "Unstructured"},
        lr_test={"statistic": 443.62, "df": 3, "pvalue": 0.0, "kind": "chi2(k)",
                 "conservative": True, "versus": "linear regression"},
        notes=[], converged=True)
    attrs.update(overrides)
    return types.SimpleNamespace(**attrs)


def three_level_results(**overrides):
    """Fake results with two grouping levels (district > school) plus residual."""
    attrs = dict(
        level_info=[{"name": "district", "n_groups": 20, "min": 4, "avg": 102.34,
                     "max": 210},
                    {"name": "school", "n_groups": 164, "min": 1, "avg": 12.47,
                     "max": 68}],
        re_table=_re({
            ("district", "sd(_cons)"): (1.125, .25, .7280, 1.7385),
            ("school", "sd(_cons)"): (2.5, .2, 2.137, 2.924),
            ("Residual", "sd(Residual)"): (7.5, .09, 7.326, 7.678)}),
        re_structure={"district": "Identity", "school": "Identity"},
        lr_test={"statistic": 403.321, "df": 2, "pvalue": 0.0, "kind": "chi2(k)",
                 "conservative": True, "versus": "linear regression"})
    attrs.update(overrides)
    return seed_results(**attrs)


def logit_results(**overrides):
    """Fake random-intercept logistic fit (integration by adaptive quadrature)."""
    attrs = dict(
        model_label="Mixed-effects logistic regression", endog_name="c_use",
        nobs=1934, integration="mvaghermite, 7 points", wald_chi2=(109.6, 2, 0.0),
        llf=-1229.5461, eform_label="Odds Ratio",
        level_info=[{"name": "district", "n_groups": 60, "min": 2, "avg": 32.2,
                     "max": 118}],
        fe_table=_fe({
            "Intercept": (-1.689, .1479, -11.42, 0.0, -1.979, -1.399),
            "urban": (.7322, .1199, 6.11, 0.0, .4972, .9672),
            "age": (-.0265, .0079, -3.35, .0008, -.0420, -.0110)}),
        re_table=_re({("district", "var(_cons)"): (.2152, .0734, .1103, .4199)}),
        re_structure={"district": "Identity"},
        lr_test={"statistic": 44.5, "df": 1, "pvalue": 1.26e-11, "kind": "chibar2(01)",
                 "conservative": False, "versus": "logistic regression"})
    attrs.update(overrides)
    return seed_results(**attrs)


# ---------------------------------------------------------------- seed model
def test_seed_text_is_the_stata_layout():
    assert MixedSummary(seed_results()).as_text() == SEED_TEXT


@pytest.mark.parametrize("line", [ln for ln in SEED_TEXT.splitlines() if ln.strip("- ")])
def test_seed_text_contains_key_line(line):
    assert line in MixedSummary(seed_results()).as_text().splitlines()


def test_lines_are_78_columns_at_most_and_str_is_text():
    s = MixedSummary(seed_results())
    assert str(s) == repr(s) == s.as_text()
    assert max(map(len, s.as_text().splitlines())) == 78


def test_intercept_is_last_and_named_cons_whatever_its_position_or_name():
    fe = _fe({"lrt": (.5, .02, 25.0, 0.0, .46, .54), "const": (-.1, .4, -.25, .8, -.9, .7),
              "girl": (.17, .03, 5.0, 0.0, .1, .2)})
    text = MixedSummary(seed_results(fe_table=fe)).as_text()
    lines = text.splitlines()
    start = lines.index("        gcse |      Coef.   Std. Err.      z    P>|z|     "
                        "[95% Conf. Interval]") + 2
    rows = [ln.split("|")[0].strip() for ln in lines[start:start + 4]]
    assert rows == ["lrt", "girl", "_cons", "-" * 78]
    assert "const" not in text


def test_reml_and_no_wald_header():
    text = MixedSummary(seed_results(reml=True, wald_chi2=None)).as_text()
    assert "Log restricted-likelihood = -13998.423\n" in text
    assert "Wald chi2" not in text and "Prob > chi2       =" not in text


# ---------------------------------------------------------------- three levels
def test_three_level_group_table_replaces_group_variable_lines():
    text = MixedSummary(three_level_results()).as_text()
    table = textwrap.dedent("""\
        -------------------------------------------------------------
                        |     No. of       Observations per Group
         Group Variable |     Groups    Minimum    Average    Maximum
        ----------------+--------------------------------------------
               district |         20          4      102.3        210
                 school |        164          1       12.5         68
        -------------------------------------------------------------""")
    assert ("Number of obs     =      4,057\n\n" + table + "\n\n"
            + " " * 48 + "Wald chi2(1)") in text
    assert "Group variable:" not in text and "Obs per group:" not in text


def test_three_level_random_effects_blocks_outermost_first():
    text = MixedSummary(three_level_results()).as_text()
    rule = "-" * 29 + "+" + "-" * 48
    block = "\n".join([
        "district: Identity           |",
        "                  sd(_cons)  |      1.125        .25          .728      1.7385",
        rule,
        "school: Identity             |",
        "                  sd(_cons)  |        2.5         .2         2.137       2.924",
        rule,
        "               sd(Residual)  |        7.5        .09         7.326       7.678",
        "-" * 78])
    assert block in text


# ---------------------------------------------------------------- LR test
def test_chibar2_line_and_no_conservative_note():
    lr = {"statistic": 403.32, "df": 1, "pvalue": 0.0, "kind": "chibar2(01)",
          "conservative": False, "versus": "linear regression"}
    text = MixedSummary(seed_results(lr_test=lr)).as_text()
    line = "LR test vs. linear model: chibar2(01) = 403.32        Prob >= chibar2 = 0.0000"
    assert len(line) == 78           # Stata puts "Prob >= chibar2" at column 55
    assert text.splitlines()[-1] == line
    assert "conservative" not in text


def test_lr_test_as_object_and_absent():
    lr = types.SimpleNamespace(statistic=12.345, df=2, pvalue=.00208, kind="chi2(k)",
                               conservative=True, versus="Poisson regression")
    text = MixedSummary(seed_results(lr_test=lr)).as_text()
    assert "LR test vs. Poisson model: chi2(2) = 12.35" in text
    assert text.splitlines()[-3].endswith("Prob > chi2 = 0.0021")
    text = MixedSummary(seed_results(lr_test=None)).as_text()
    assert "LR test" not in text
    assert text.endswith("7.608491\n" + "-" * 78)


def test_notes_are_printed_under_the_tables_and_wrapped():
    note = ("Note: the variance of the random slope is estimated on the boundary "
            "of the parameter space; its standard error is not reported.")
    text = MixedSummary(seed_results(notes=[note])).as_text()
    tail = text.split("0.0000\n\n")[-1].splitlines()
    assert tail[0] == "Note: LR test is conservative and provided only for reference."
    assert " ".join(s.strip() for s in tail[1:]) == note
    assert all(len(s) <= 78 for s in tail) and tail[2].startswith(" " * 6)


# ---------------------------------------------------------------- eform, NaN, alpha
def test_eform_prints_odds_ratios_and_keeps_cons():
    s = MixedSummary(logit_results(), eform=True)
    lines = s.as_text().splitlines()
    assert "       c_use | Odds Ratio   Std. Err.      z    P>|z|     [95% Conf. Interval]" \
        in lines
    b, se = .7322, .1199
    urban = [ln for ln in lines if ln.startswith("       urban |")][0]
    assert urban == ("       urban |" + stata_number(math.exp(b)).rjust(11)
                     + stata_number(math.exp(b) * se).rjust(11) + "     6.11   0.000"
                     + stata_number(math.exp(.4972)).rjust(13)
                     + stata_number(math.exp(.9672)).rjust(12))
    cons = [ln for ln in lines if ln.startswith("       _cons |")]
    assert cons and cons[0].split()[2] == stata_number(math.exp(-1.689))
    assert lines.index(cons[0]) > lines.index(urban)
    assert "LR test vs. logistic model: chibar2(01) = 44.50" in s.as_text()


def test_eform_label_falls_back_to_exp_b():
    text = MixedSummary(seed_results(), eform=True).as_text()
    assert "        gcse |     exp(b)   Std. Err." in text
    assert "         lrt |   1.745071" in text


def test_nan_standard_error_and_interval_are_blank():
    re_ = _re({("school", "sd(_cons)"): (2.3e-08, np.nan, np.nan, np.nan),
               ("Residual", "sd(Residual)"): (7.442053, .0839829, 7.279257, 7.608491)})
    text = MixedSummary(seed_results(re_table=re_, re_structure={"school": "Identity"}))
    lines = text.as_text().splitlines()
    assert "                  sd(_cons)  |   2.30e-08" in lines
    assert "nan" not in text.as_text().lower()
    assert "school: Identity             |" in lines


def test_alpha_changes_label_and_recomputes_intervals():
    text = MixedSummary(seed_results(), alpha=0.10).as_text()
    assert text.count("[90% Conf. Interval]") == 2
    q = 1.6448536269514722
    lo, hi = .5567955 - q * .0199374, .5567955 + q * .0199374
    assert "   27.93   0.000" + stata_number(lo).rjust(13) + stata_number(hi).rjust(12) in text
    est, se = 3.013474, .305867         # sd: interval on the log scale
    lo, hi = est * math.exp(-q * se / est), est * math.exp(q * se / est)
    assert stata_number(lo).rjust(14) + stata_number(hi).rjust(12) in text
    with pytest.raises(ValueError):
        MixedSummary(seed_results(), alpha=1.5)


def test_integration_convergence_and_title():
    s = MixedSummary(logit_results(converged=False), title="Random-intercept logit")
    lines = s.as_text().splitlines()
    assert lines[0].startswith("Random-intercept logit          ")
    assert ("Integration method: mvaghermite                 "
            "Integration pts.  =          7") in lines
    assert "Log likelihood = -1229.5461                     Prob > chi2       =     0.0000" \
        in lines
    assert "Warning: convergence not achieved" in lines
    laplace = MixedSummary(logit_results(integration="Laplace")).as_text()
    assert "Integration method: Laplace" in laplace.splitlines()


# ---------------------------------------------------------------- names
def test_long_names_are_abbreviated_in_text_only():
    fe = _fe({"Intercept": (1.0, .1, 10.0, 0.0, .8, 1.2),
              "C(schgend)[T.2]": (.2, .1, 2.0, .046, .004, .396),
              "C(schgend)[T.2]:lrt": (.05, .01, 5.0, 0.0, .03, .07)})
    s = MixedSummary(seed_results(fe_table=fe, endog_name="normexam_score"))
    text = s.as_text()
    assert "   2.schgend |" in text and "2.sc~d#c.lrt |" in text   # Stata's factor notation
    assert "normexam_s~e |" in text and "C(schgend)[T.2]" not in text
    for markup in (s.as_html(), s.as_latex().replace("\\_", "_").replace("\\#", "#")):
        assert "2.schgend#c.lrt" in markup and "normexam_score" in markup


@pytest.mark.parametrize("name,width,expected", [
    ("displacement", 8, "displa~t"),
    ("C(schgend)[T.2]:lrt", 14, "C(schgen~]:lrt"),
    ("C(schgend)[T.2]:lrt", 12, "C(schg~]:lrt"),
    ("corr(C(schgend)[T.2]:lrt,_cons)", 27, "corr(C(schgend~]:lrt,_cons)"),
    ("lrt", 12, "lrt")])
def test_stata_abbrev(name, width, expected):
    assert stata_abbrev(name, width) == expected
    assert len(stata_abbrev(name, width)) <= width


# ---------------------------------------------------------------- HTML, LaTeX
def test_html_has_tables_and_every_parameter_name():
    s = MixedSummary(three_level_results())
    out = s.as_html()
    assert s._repr_html_() == out
    assert out.count("<table") == 5 and "<thead>" in out
    assert '<style>' in out and ".hlmext-summary " in out
    assert "<script" not in out and "<link" not in out
    for name in ["lrt", "_cons", "sd(_cons)", "sd(Residual)", "district: Identity",
                 "school: Identity", "Number of obs", "4,057", "P&gt;|z|",
                 "[95% Conf. Interval]", "LR test vs. linear model"]:
        assert name in out, name


def test_html_seed_names_and_escaping():
    out = MixedSummary(seed_results(endog_name="a<b")).as_html()
    for name in ["sd(lrt)", "corr(lrt,_cons)", "school: Unstructured", "a&lt;b"]:
        assert name in out
    assert "a<b" not in out


def test_latex_tabulars():
    out = MixedSummary(logit_results(), eform=True).as_latex()
    assert out.count(r"\begin{tabular}") == out.count(r"\end{tabular}") == 4
    for piece in [r"\toprule", r"\midrule", r"\bottomrule", r"\_cons", "urban",
                  r"var(\_cons)", r"\multicolumn{2}{c}{[95\% Conf. Interval]}",
                  "Odds Ratio", r"P$>$\textbar{}z\textbar{}"]:
        assert piece in out, piece


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("x,expected", [
    (0.000012345, "1.23e-05"),      # %9.0g: e-notation below 1e-4
    (-0.000012345, "-1.23e-05"),
    (0.00012346, ".0001235"),
    (.5567955, ".5567955"),
    (.305867, ".305867"),           # trailing zero dropped
    (3.013474, "3.013474"),
    (13998.42, "13998.42"),
    (-13998.4229, "-13998.42"),
    (1234567.8, "1234568"),
    (12345678.9, "12345679"),
    (123456789.0, "1.23e+08"),
    (-0.1078456, "-.1078456"),
    (0, "0"),
    (64, "64"),
    (float("nan"), ".")])
def test_stata_number_matches_9_0g(x, expected):
    assert stata_number(x) == expected


def test_stata_number_wider_format_for_log_likelihood():
    assert stata_number(-13998.4229, width=11) == "-13998.423"    # %10.0g
    assert stata_number(248.0334, width=11) == "248.0334"
    assert stata_number(0.99999999) == "1"


def test_factor_names_with_contrasts_in_stata_notation():
    from hlmext.output.summary import stata_factor_name
    assert stata_factor_name("C(vr, Treatment(reference=2))[T.3]:lrt") == "3.vr#c.lrt"
    assert stata_factor_name("C(schgend)[T.2]") == "2.schgend"
