"""Tests of hlmext.formula.grammar (formula grammar, lme4 and Stata) and hlmext.formula.frames (model frames)."""
import doctest
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hlmext.formula.grammar as formula_module
import hlmext.formula.frames as frames_module
from hlmext.exceptions import DataError, FormulaError
from hlmext.formula.grammar import ParsedFormula, RandomTerm, normalize_cov, parse
from hlmext.formula.frames import ModelFrame, exog_for, model_frame

EXAM_CSV = Path(__file__).resolve().parents[1] / "hlmext" / "datasets" / "data" / "exam.csv"


@pytest.fixture(scope="module")
def exam():
    return pd.read_csv(EXAM_CSV)


@pytest.fixture
def small():
    return pd.DataFrame({
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "x": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        "z": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        "f": ["a", "b", "c", "a", "b", "c"],
        "g": ["s1", "s1", "s2", "s2", "s3", "s3"],
        "h": [1, 1, 2, 2, 3, 3],
    }, index=[10, 11, 12, 13, 14, 15])


def caret_column(message):
    """Position of the caret relative to the echoed formula (both indented by 2)."""
    lines = message.splitlines()
    assert lines[-1].strip() == "^"
    return lines[-1].index("^") - 2


def term(group, formula, cov):
    return RandomTerm(tuple(group), formula, cov)


# ----------------------------------------------------------------------------- lme4

@pytest.mark.parametrize("text, fixed, terms", [
    ("y ~ x + (x | g)", "x", [term(["g"], "1 + x", "unstructured")]),
    ("y ~ x + (1 | g)", "x", [term(["g"], "1", "identity")]),
    ("y ~ x + (0 + x | g)", "x", [term(["g"], "0 + x", "identity")]),
    ("y ~ x + (-1 + x | g)", "x", [term(["g"], "0 + x", "identity")]),
    ("y ~ x + (x - 1 | g)", "x", [term(["g"], "0 + x", "identity")]),
    ("y ~ x + (1 + x + z | g)", "x", [term(["g"], "1 + x + z", "unstructured")]),
    ("y ~ x + (x || g)", "x", [term(["g"], "1 + x", "independent")]),
    ("y ~ x + (1 || g)", "x", [term(["g"], "1", "identity")]),
    ("y ~ (1 | g)", "1", [term(["g"], "1", "identity")]),
    ("y ~ 0 + x + (1 | g)", "0 + x", [term(["g"], "1", "identity")]),
    ("y ~ -1 + x + (1 | g)", "-1 + x", [term(["g"], "1", "identity")]),
    ("y ~ (1 | g) + x - 1", "x - 1", [term(["g"], "1", "identity")]),
    ("y ~ (1 | a/b)", "1", [term(["a"], "1", "identity"), term(["a", "b"], "1", "identity")]),
    ("y ~ (1 | a/b/c)", "1", [term(["a"], "1", "identity"), term(["a", "b"], "1", "identity"),
                              term(["a", "b", "c"], "1", "identity")]),
    ("y ~ (1 | a:b)", "1", [term(["a", "b"], "1", "identity")]),
    ("y ~ x + (1 | g) + (0 + x | h)", "x", [term(["g"], "1", "identity"), term(["h"], "0 + x", "identity")]),
    ("y~x+(x|g)", "x", [term(["g"], "1 + x", "unstructured")]),
])
def test_lme4_forms(text, fixed, terms):
    parsed = parse(text)
    assert parsed == ParsedFormula("y", fixed, tuple(terms), "lme4")


@pytest.mark.parametrize("text, fixed", [
    ("y ~ C(f) + (1 | g)", "C(f)"),
    ("y ~ x*z + (1 | g)", "x*z"),
    ("y ~ I((x + 1)**2) + (1 | g)", "I((x + 1)**2)"),
    ("y ~ np.log(x) + (x | g)", "np.log(x)"),
    ("y ~ C(schgend)*lrt + (1 | school)", "C(schgend)*lrt"),
    ("y ~ I(x | z) + (1 | g)", "I(x | z)"),  # a call, not a random term
    ("y ~ C(f, Treatment('a|b')) + (1 | g)", "C(f, Treatment('a|b'))"),  # '|' in a string
])
def test_fixed_part_with_parentheses(text, fixed):
    parsed = parse(text)
    assert parsed.fixed == fixed
    assert len(parsed.random) == 1


def test_response_expression_and_whitespace():
    parsed = parse("np.log(y)  ~\n x +\t(1 | g)")
    assert parsed.response == "np.log(y)"
    assert parsed.fixed == "x"


def test_level_property():
    assert parse("y ~ (1 | a/b)").random[1].level == "a:b"
    assert parse("y ~ (1 | g)").random[0].level == "g"


# ----------------------------------------------------------------------------- Stata

@pytest.mark.parametrize("text, fixed, terms", [
    ("y ~ x || g: x", "x", [term(["g"], "1 + x", "independent")]),
    ("y ~ x || g:", "x", [term(["g"], "1", "identity")]),
    ("y ~ x || g: x, noconstant", "x", [term(["g"], "0 + x", "identity")]),
    ("y ~ x || g: x z, nocons", "x", [term(["g"], "0 + x + z", "independent")]),
    ("y ~ x || g: x z", "x", [term(["g"], "1 + x + z", "independent")]),
    ("y ~ x || g: x, cov(unstructured)", "x", [term(["g"], "1 + x", "unstructured")]),
    ("y ~ x || district: || school: x", "x",
     [term(["district"], "1", "identity"), term(["district", "school"], "1 + x", "independent")]),
    ("y ~ x || a: || b: || c:", "x",
     [term(["a"], "1", "identity"), term(["a", "b"], "1", "identity"), term(["a", "b", "c"], "1", "identity")]),
    ("y ~ || g:", "1", [term(["g"], "1", "identity")]),
])
def test_stata_forms(text, fixed, terms):
    assert parse(text) == ParsedFormula("y", fixed, tuple(terms), "stata")


@pytest.mark.parametrize("option, expected", [
    ("cov(un)", "unstructured"), ("cov(unstr)", "unstructured"), ("covariance(exchangeable)", "exchangeable"),
    ("cov(ex)", "exchangeable"), ("cov(ind)", "independent"), ("cov(id)", "identity"),
    ("cov( unstructured )", "unstructured"), ("noconstant cov(un)", "unstructured"),
])
def test_stata_cov_options(option, expected):
    assert parse(f"y ~ x || g: x z, {option}").random[0].cov == expected


def test_stata_level_names_nest():
    parsed = parse("gcse ~ lrt || district: || school: lrt")
    assert [t.group for t in parsed.random] == [("district",), ("district", "school")]
    assert [t.level for t in parsed.random] == ["district", "district:school"]


# ----------------------------------------------------------------------------- cov argument

def test_cov_argument_string_overrides_lme4_default():
    assert parse("y ~ (x | g)", cov="independent").random[0].cov == "independent"
    assert parse("y ~ (x || g)", cov="un").random[0].cov == "unstructured"
    assert parse("y ~ x || g: x", cov="exchangeable").random[0].cov == "exchangeable"


def test_cov_argument_single_column_is_identity():
    assert parse("y ~ (1 | g)", cov="unstructured").random[0].cov == "identity"


def test_inline_stata_cov_beats_argument():
    assert parse("y ~ x || g: x, cov(ex)", cov="unstructured").random[0].cov == "exchangeable"


def test_cov_dict_by_level_and_innermost_name():
    parsed = parse("y ~ x || district: x || school: x", cov={"district": "un", "school": "ex"})
    assert [t.cov for t in parsed.random] == ["unstructured", "exchangeable"]
    parsed = parse("y ~ x || district: x || school: x", cov={"district:school": "unstr"})
    assert [t.cov for t in parsed.random] == ["independent", "unstructured"]
    parsed = parse("y ~ (x | a/b)", cov={"b": "independent"})
    assert [t.cov for t in parsed.random] == ["unstructured", "independent"]


@pytest.mark.parametrize("name, full", [
    ("un", "unstructured"), ("UNSTR", "unstructured"), ("ind", "independent"), ("id", "identity"),
    ("identity", "identity"), ("ex", "exchangeable"), ("exch", "exchangeable"),
])
def test_normalize_cov(name, full):
    assert normalize_cov(name) == full


@pytest.mark.parametrize("bad", ["u", "i", "diagonal", "unstructuredx", ""])
def test_unknown_cov_structure(bad):
    with pytest.raises(FormulaError, match="unstructured.*independent.*identity.*exchangeable"):
        parse("y ~ (x | g)", cov=bad)


def test_cov_argument_of_wrong_type():
    with pytest.raises(FormulaError, match="cov must be None, a structure name or a dict"):
        parse("y ~ (x | g)", cov=["un"])


def test_cov_dict_key_matching_no_level():
    with pytest.raises(FormulaError, match="cov key 'schol' matches no random-effects level"):
        parse("y ~ (x | school)", cov={"schol": "un"})


# ----------------------------------------------------------------------------- syntax errors

def test_unbalanced_parenthesis_caret():
    with pytest.raises(FormulaError) as info:
        parse("y ~ x + (x | school")
    assert str(info.value) == "unbalanced parenthesis in formula:\n  y ~ x + (x | school\n          ^"


def test_unbalanced_closing_parenthesis_caret():
    with pytest.raises(FormulaError, match="unbalanced parenthesis") as info:
        parse("y ~ x) + (1 | g)")
    assert caret_column(str(info.value)) == 5


@pytest.mark.parametrize("text, fragment, column", [
    ("y ~ x + (x | )", "nothing after '|'", 11),
    ("y ~ x + ( | g)", "nothing before '|'", 10),
    ("y ~ x + (x || )", "nothing after '||'", 11),
    ("y ~ x || : x", "Stata level without a name", 9),
    ("y ~ x || g x", "needs 'name:'", 6),
    ("y ~ x + (1 | g) || s:", "mixed", 16),
    ("y ~ x || s: + (1 | g)", "mixed", 14),
    (" ~ x + (1 | g)", "empty response", 0),
    ("y ~ x ~ z + (1 | g)", "more than one '~'", 6),
    ("y ~ x | g", "'|' outside parentheses", 6),
    ("y ~ x + (x | g | h)", "more than one '|'", 15),
    ("y ~ x + (1 | a + b)", "grouping must be column names", 13),
    ("y ~ x * (1 | g)", "must be added with '+'", 8),
    ("y ~ x - (1 | g)", "must be added with '+'", 8),
    ("y ~ (0 | g)", "without any column", 4),
    ("y ~ x || g: x, foo", "unknown Stata option 'foo'", 15),
    ("y ~ x || g: x, cov(diag)", "unknown covariance structure 'diag'", 19),
    ("y ~ x || g:, noconstant", "without any random effect", 6),
    ("y ~ x + + (1 | g)", "missing term after '+'", 8),
    ("y ~ C(f, 'a) + (1 | g)", "unterminated string", 9),
])
def test_syntax_errors_point_at_token(text, fragment, column):
    with pytest.raises(FormulaError, match=re.escape(fragment)) as info:
        parse(text)
    message = str(info.value)
    assert f"in formula:\n  {text.strip()}\n" in message
    assert caret_column(message) == column


def test_no_tilde():
    with pytest.raises(FormulaError, match="has no '~'"):
        parse("y + x + (1 | g)")


def test_no_random_part():
    with pytest.raises(FormulaError, match="^no random-effects term; use statsmodels OLS/GLM"):
        parse("y ~ x + (x + z)")


def test_stata_crossed_effects_are_the_crossed_model():
    p = parse("y ~ x || _all: R.a || b:")
    assert p.random == parse("y ~ x + (1 | a) + (1 | b)").random
    with pytest.raises(FormulaError, match="written '|| _all: R.x'"):
        parse("y ~ x || _all: R.a z || b:")


def test_stata_residuals_option():
    p = parse("y ~ x || id:, residuals(ar 1, t(time))")
    assert p.residuals == {"residuals": "ar1", "time": "time"} and p.random == parse("y ~ x || id:").random
    p = parse("y ~ x || school: || student:, noconstant res(unstructured, t(occ))")
    assert p.residuals == {"residuals": "unstructured", "time": "occ", "residual_group": "student"}
    assert [t.level for t in p.random] == ["school"]
    assert parse("y ~ x || id: x, cov(un) residuals(independent, by(sex)) ").residuals == {
        "residuals": "independent", "by": "sex"}
    with pytest.raises(FormulaError, match="unknown residuals\\(\\) option"):
        parse("y ~ x || id:, residuals(ar 1, t(time) foo)")


def test_formula_must_be_string():
    with pytest.raises(FormulaError, match="must be a string"):
        parse(None)


def test_errors_are_value_errors():
    assert issubclass(FormulaError, ValueError) and issubclass(DataError, ValueError)


# ----------------------------------------------------------------------------- model_frame

def test_model_frame_exam(exam):
    mf = model_frame(parse("gcse ~ C(schgend)*lrt + (lrt | school)"), exam)
    assert isinstance(mf, ModelFrame)
    n = len(exam)
    assert mf.endog.shape == (n,) and mf.endog.dtype == np.float64
    assert mf.exog.shape == (n, 6) and mf.exog.flags["C_CONTIGUOUS"] and mf.exog.dtype == np.float64
    assert mf.exog_names == ["Intercept", "C(schgend)[T.2]", "C(schgend)[T.3]", "lrt",
                             "C(schgend)[T.2]:lrt", "C(schgend)[T.3]:lrt"]
    assert mf.endog_name == "gcse" and mf.n_dropped == 0
    block = mf.random[0]
    assert block.names == ["Intercept", "lrt"]
    assert block.exog_re.shape == (n, 2) and block.exog_re.flags["C_CONTIGUOUS"]
    assert block.groups.shape == (n, 1) and block.groups.dtype.kind in "iO"   # native dtype for one column
    np.testing.assert_array_equal(block.groups[:, 0], exam["school"].to_numpy())
    np.testing.assert_allclose(block.exog_re[:, 1], exam["lrt"])
    np.testing.assert_allclose(mf.endog, exam["gcse"])
    assert block.term.cov == "unstructured"
    pd.testing.assert_index_equal(mf.row_labels, exam.index)


def test_model_frame_accepts_formula_string_and_dict(small):
    mf = model_frame("y ~ x + (1 | g)", small.to_dict("list"))
    assert mf.exog.shape == (6, 2)


def test_model_frame_nested_groups(small):
    mf = model_frame(parse("y ~ x || h: || g:"), small)
    assert mf.random[0].groups.shape == (6, 1)
    assert mf.random[1].groups.shape == (6, 2)
    assert mf.random[1].groups[0].tolist() == [1, "s1"]


def test_string_group_ids_and_row_labels(small):
    mf = model_frame(parse("y ~ x + (1 | g)"), small)
    assert mf.random[0].groups[:, 0].tolist() == ["s1", "s1", "s2", "s2", "s3", "s3"]
    assert mf.row_labels.tolist() == [10, 11, 12, 13, 14, 15]


def test_categorical_and_float_group_ids(small):
    data = small.assign(g=pd.Categorical(small["g"]), h=small["h"].astype(float))
    mf = model_frame(parse("y ~ x + (1 | g) + (1 | h)"), data)
    assert mf.random[0].groups[:, 0].tolist() == ["s1", "s1", "s2", "s2", "s3", "s3"]
    assert mf.random[1].groups[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_fixed_part_with_functions(small):
    mf = model_frame(parse("y ~ C(f) + I((x + 1)**2) + np.log(x) + x:z + (1 | g)"), small)
    assert mf.exog_names == ["Intercept", "C(f)[T.b]", "C(f)[T.c]", "I((x + 1) ** 2)", "np.log(x)", "x:z"]
    np.testing.assert_allclose(mf.exog[:, 3], (small["x"] + 1) ** 2)
    np.testing.assert_allclose(mf.exog[:, 4], np.log(small["x"]))


def test_no_intercept_fixed_and_random(small):
    mf = model_frame(parse("y ~ 0 + x + (0 + x | g)"), small)
    assert mf.exog_names == ["x"]
    assert mf.random[0].names == ["x"]
    assert mf.random[0].term.cov == "identity"


def test_user_function_from_caller_namespace(small):
    def double(v):
        return 2 * v

    mf = model_frame(parse("y ~ double(x) + (1 | g)"), small)
    np.testing.assert_allclose(mf.exog[:, 1], 2 * small["x"])


def test_eval_env_depth(small):
    def triple(v):
        return 3 * v

    def fit_like(text, data):  # a wrapper passes eval_env=1 to look one frame further up
        return model_frame(parse(text), data, eval_env=1)

    np.testing.assert_allclose(fit_like("y ~ triple(x) + (1 | g)", small).exog[:, 1], 3 * small["x"])


def test_categorical_random_slope_uses_multicolumn_cov(small):
    parsed = parse("y ~ x + (0 + C(f) | g)")
    mf = model_frame(parsed, small)
    assert mf.random[0].names == ["C(f)[a]", "C(f)[b]", "C(f)[c]"]
    assert mf.random[0].term.cov == "unstructured"


def test_bool_response(small):
    mf = model_frame(parse("passed ~ x + (1 | g)"), small.assign(passed=small["y"] > 3))
    np.testing.assert_array_equal(mf.endog, [0, 0, 0, 1, 1, 1])
    assert mf.endog.dtype == np.float64


def test_bool_expression_response(small):
    mf = model_frame(parse("I(f == 'a') ~ x + (1 | g)"), small)
    np.testing.assert_array_equal(mf.endog, [1, 0, 0, 1, 0, 0])


def test_non_numeric_response(exam):
    with pytest.raises(DataError, match=r"response 'sex' is not numeric \(dtype .*\); recode it, "
                                        r"e.g. \(df.sex == 'F'\).astype\(int\)"):
        model_frame(parse("sex ~ lrt + (1 | school)"), exam)


def test_categorical_response(small):
    with pytest.raises(DataError, match="response 'f' is not numeric"):
        model_frame(parse("f ~ x + (1 | g)"), small.assign(f=pd.Categorical(small["f"])))


def test_multicolumn_response(small):
    with pytest.raises(DataError, match="evaluates to 3 columns"):
        model_frame(parse("C(f) ~ x + (1 | g)"), small)


def test_missing_column_did_you_mean(exam):
    with pytest.raises(FormulaError, match="column 'lrtt' used in the formula is not in the data; "
                                           "did you mean 'lrt'\\?"):
        model_frame(parse("gcse ~ lrtt + (1 | school)"), exam)


@pytest.mark.parametrize("text, name", [
    ("gcsee ~ lrt + (1 | school)", "gcsee"),
    ("gcse ~ lrt + (lrtt | school)", "lrtt"),
    ("gcse ~ lrt + (1 | schol)", "schol"),
    ("gcse ~ lrt || schol:", "schol"),
])
def test_missing_column_everywhere(exam, text, name):
    with pytest.raises(FormulaError, match=f"column '{name}' used in the formula is not in the data; did you mean"):
        model_frame(parse(text), exam)


def test_missing_column_without_close_match(small):
    with pytest.raises(FormulaError, match="column 'qqqq' .* columns are: y, x, z"):
        model_frame(parse("y ~ qqqq + (1 | g)"), small)


def test_other_patsy_error_becomes_formula_error(small):
    with pytest.raises(FormulaError, match="cannot evaluate the fixed part"):
        model_frame(parse("y ~ x ** + z + (1 | g)"), small)


@pytest.fixture
def with_missing(small):
    data = small.copy()
    data.loc[11, "x"] = np.nan
    data.loc[12, "x"] = np.inf
    data.loc[13, "y"] = np.nan
    return data


def test_missing_values_dropped(with_missing):
    mf = model_frame(parse("y ~ x + (1 | g)"), with_missing)
    assert mf.n_dropped == 3
    assert mf.row_labels.tolist() == [10, 14, 15]
    np.testing.assert_allclose(mf.endog, [1.0, 5.0, 6.0])
    np.testing.assert_allclose(mf.exog[:, 1], [0.5, 2.5, 3.0])
    assert mf.random[0].groups[:, 0].tolist() == ["s1", "s3", "s3"]
    assert np.isfinite(mf.exog).all()


def test_missing_values_raise_with_counts(with_missing):
    with pytest.raises(DataError) as info:
        model_frame(parse("y ~ x + (1 | g)"), with_missing, missing="raise")
    assert str(info.value) == ("3 rows have missing or non-finite values in 'x' (2), 'y' (1); "
                               "use missing='drop' to drop them")


def test_missing_in_random_part_and_group(small):
    data = small.copy()
    data.loc[10, "z"] = np.nan
    data.loc[15, "g"] = None
    mf = model_frame(parse("y ~ x + (z | g)"), data)
    assert mf.n_dropped == 2 and mf.row_labels.tolist() == [11, 12, 13, 14]
    assert all(block.exog_re.shape[0] == 4 for block in mf.random)
    with pytest.raises(DataError, match=r"2 rows have .* in 'z' \(1\), 'g' \(1\)"):
        model_frame(parse("y ~ x + (z | g)"), data, missing="raise")


def test_infinite_value_in_numeric_group(small):
    data = small.assign(h=small["h"].astype(float))
    data.loc[10, "h"] = np.inf
    assert model_frame(parse("y ~ x + (1 | h)"), data).n_dropped == 1


def test_non_finite_values_computed_by_the_formula(small):
    data = small.copy()
    data.loc[10, "x"] = 0.0  # log(0) = -inf
    with np.errstate(divide="ignore"):
        mf = model_frame(parse("y ~ np.log(x) + (1 | g)"), data)
        assert mf.n_dropped == 1 and np.isfinite(mf.exog).all()
        with pytest.raises(DataError, match=r"1 row has missing or non-finite values in 'np.log\(x\)' \(1\)"):
            model_frame(parse("y ~ np.log(x) + (1 | g)"), data, missing="raise")


def test_levels_only_in_dropped_rows_disappear(small):
    data = small.copy()
    data.loc[[12, 15], "y"] = np.nan  # the only rows with f == 'c'
    mf = model_frame(parse("y ~ C(f) + (1 | g)"), data)
    assert mf.exog_names == ["Intercept", "C(f)[T.b]"]


def test_nullable_dtypes(small):
    data = small.assign(x=pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
                        h=pd.array([1, 1, 2, 2, None, 3], dtype="Int64"))
    mf = model_frame(parse("y ~ x + (1 | h)"), data)
    assert mf.row_labels.tolist() == [10, 12, 13, 15]
    np.testing.assert_allclose(mf.exog[:, 1], [1, 3, 4, 6])


def test_duplicate_index_labels(small):
    data = small.set_axis([1, 1, 2, 2, 3, 3])
    data.iloc[1, data.columns.get_loc("x")] = np.nan
    mf = model_frame(parse("y ~ x + (1 | g)"), data)
    assert mf.row_labels.tolist() == [1, 2, 2, 3, 3]
    np.testing.assert_allclose(mf.endog, [1, 3, 4, 5, 6])


def test_all_rows_missing(small):
    with pytest.raises(DataError, match="no rows left"):
        model_frame(parse("y ~ x + (1 | g)"), small.assign(x=np.nan))


def test_empty_data():
    with pytest.raises(DataError, match="no rows"):
        model_frame(parse("y ~ x + (1 | g)"), pd.DataFrame({"y": [], "x": [], "g": []}))


def test_data_not_convertible():
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        model_frame(parse("y ~ x + (1 | g)"), 3.0)


def test_bad_missing_argument(small):
    with pytest.raises(ValueError, match="missing must be 'drop' or 'raise'"):
        model_frame(parse("y ~ x + (1 | g)"), small, missing="ignore")


# ----------------------------------------------------------------------------- exog_for

def test_exog_for_rebuilds_fixed_and_random(small):
    mf = model_frame(parse("y ~ C(f) + x + (x | g)"), small)
    new = pd.DataFrame({"f": ["c", "a"], "x": [10.0, 20.0]})
    np.testing.assert_allclose(exog_for(mf.fixed_design_info, new), [[1, 0, 1, 10], [1, 0, 0, 20]])
    np.testing.assert_allclose(exog_for(mf.random[0].design_info, new), [[1, 10], [1, 20]])
    np.testing.assert_allclose(exog_for(mf.fixed_design_info, small), mf.exog)


def test_exog_for_errors(small):
    mf = model_frame(parse("y ~ C(f) + x + (1 | g)"), small)
    with pytest.raises(FormulaError, match="column 'x' used in the formula is not in the data"):
        exog_for(mf.fixed_design_info, pd.DataFrame({"f": ["a"], "xx": [1.0]}))
    with pytest.raises(DataError, match="missing values"):
        exog_for(mf.fixed_design_info, pd.DataFrame({"f": ["a"], "x": [np.nan]}))
    with pytest.raises(DataError, match="expected levels"):
        exog_for(mf.fixed_design_info, pd.DataFrame({"f": ["zz"], "x": [1.0]}))


# ----------------------------------------------------------------------------- docstrings

@pytest.mark.parametrize("module", [formula_module, frames_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_stateful_transforms_learn_from_the_rows_used():
    """center()/standardize() with missing values elsewhere in the column: the mean and sd are
    those of the rows kept, as if the incomplete rows had been dropped first."""
    df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [1.0, np.nan, 3, 4, 8, 9], "g": list("aabbcc")})
    mf = model_frame(parse("y ~ center(x) + standardize(x) + (1 | g)"), df)
    kept = df.dropna()
    expected = model_frame(parse("y ~ center(x) + standardize(x) + (1 | g)"), kept)
    assert mf.n_dropped == 1
    np.testing.assert_allclose(mf.exog, expected.exog)
    np.testing.assert_allclose(mf.exog[:, 1], kept["x"] - kept["x"].mean())
    new = pd.DataFrame({"x": [2.0]})
    np.testing.assert_allclose(exog_for(mf.fixed_design_info, new), exog_for(expected.fixed_design_info, new))


def _string_factor_data(n=300, seed=4):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"y": rng.normal(size=n), "f": rng.choice(["b", "a", "c10", "c9"], n),
                       "h": rng.choice(["x", "y"], n), "g": rng.choice(["s1", "s2", "s3"], n)})
    df.loc[7, "f"] = None
    return df


def test_string_factors_reach_patsy_as_categoricals_with_the_same_design(monkeypatch):
    df = _string_factor_data()
    seen = []
    convert = frames_module._strings_as_categories
    monkeypatch.setattr(frames_module, "_strings_as_categories",
                        lambda *a: seen.append(convert(*a)) or seen[-1])
    fast = model_frame("y ~ C(f) * h + (1 | g)", df)
    assert str(seen[0]["f"].dtype) == "category" and str(seen[0]["g"].dtype) != "category"   # not the grouping column
    monkeypatch.setattr(frames_module, "_strings_as_categories", lambda data, used, keep: data)
    plain = model_frame("y ~ C(f) * h + (1 | g)", df)
    assert fast.exog_names == plain.exog_names and fast.n_dropped == plain.n_dropped == 1
    np.testing.assert_array_equal(np.asarray(fast.exog), np.asarray(plain.exog))
    assert fast.random[0].groups.dtype == plain.random[0].groups.dtype


def test_explicit_levels_keep_their_order():
    mf = model_frame("y ~ C(f, levels=['c9', 'c10', 'b', 'a']) + (1 | g)", _string_factor_data())
    assert mf.exog_names[1] == "C(f, levels=['c9', 'c10', 'b', 'a'])[T.c10]"
