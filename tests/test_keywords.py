"""Unknown keywords raise a TypeError that names them and the keyword meant (hlmext.keywords)."""
import re

import numpy as np
import pytest

import hlmext
from hlmext.keywords import check_keywords


@pytest.fixture(scope="module")
def gcse():
    return hlmext.datasets.load("gcse").query("nstu > 4")


@pytest.fixture(scope="module")
def linear(gcse):
    return hlmext.mixedlm("gcse ~ lrt + (1 | school)", gcse)


@pytest.fixture(scope="module")
def fitted(linear):
    return linear.fit(reml=False)


@pytest.fixture(scope="module")
def logit(gcse):
    return hlmext.melogit("y ~ lrt + (1 | school)", gcse.assign(y=(gcse.gcse > 0).astype(int)))


def raises(call, *pieces):
    with pytest.raises(TypeError) as info:
        call()
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))
    return str(info.value)


def test_fit_rejects_statsmodels_capital_reml(linear):
    # it used to fit REML silently
    raises(lambda: linear.fit(REML=False), "'REML'", "did you mean 'reml'?")


@pytest.mark.parametrize("key", ["method", "optimizer"])
def test_fit_says_what_replaces_an_optimizer_choice(linear, logit, key):
    for model in (linear, logit):
        raises(lambda: model.fit(**{key: "lbfgs"}), repr(key), "chooses its optimizer itself", "maxiter=")


def test_close_misspellings_are_suggested(linear, logit):
    raises(lambda: linear.fit(maxiters=5), "'maxiters'", "'maxiter'")
    raises(lambda: linear.fit(cov_typ="cluster"), "'cov_type'")
    raises(lambda: logit.fit(nAGQ=7), "did you mean 'nagq'?")
    raises(lambda: logit.fit(REML=True), "maximum likelihood")


def test_refit_checks_its_keywords(linear, gcse):
    y = np.asarray(linear.endog)
    raises(lambda: linear.refit(y, REML=False), "refit()", "'reml'")


def test_constructors_and_formula_entry_points(gcse):
    formula = "gcse ~ lrt + (1 | school)"
    raises(lambda: hlmext.mixedlm(formula, gcse, REML=False), "mixedlm()", ".fit(reml=...)")
    raises(lambda: hlmext.LinearMixed.from_formula(formula, gcse, reml=False), "from_formula()", "fit(")
    binary = gcse.assign(y=(gcse.gcse > 0).astype(int))
    raises(lambda: hlmext.melogit("y ~ lrt + (1 | school)", binary, nAGQ=7), "melogit()", ".fit(nagq=...)")
    raises(lambda: hlmext.mepoisson("y ~ lrt + (1 | school)", binary, family="poisson"), "mepoisson()",
           "hlmext.melogit")
    raises(lambda: hlmext.MixedLogit.from_formula("y ~ lrt + (1 | school)", binary, trial="n"), "'trials'")
    X = np.column_stack([np.ones(len(gcse)), gcse.lrt])
    raises(lambda: hlmext.LinearMixed(gcse.gcse.to_numpy(), X, gcse.school.to_numpy(), missing="drop"),
           "LinearMixed()", "'missing'")
    raises(lambda: hlmext.MixedLogit(binary.y.to_numpy(), X, gcse.school.to_numpy(), missing="drop"), "'missing'")


def test_chunked_options(gcse):
    chunks = [gcse.iloc[:2000], gcse.iloc[2000:]]
    raises(lambda: hlmext.mixedlm("gcse ~ lrt + (1 | school)", chunks, batchsize=10), "'batch_size'")


def test_conf_int_keywords_belong_to_a_method(fitted):
    raises(lambda: fitted.conf_int(n=10), "n= applies to method='bootstrap'")
    raises(lambda: fitted.conf_int(method="profile", seed=1), "method='bootstrap'")
    raises(lambda: fitted.conf_int(level=0.9), "alpha=")
    raises(lambda: fitted.conf_int(method="bootstrap", nsim=10), "did you mean 'n'?")


def test_result_methods_suggest(fitted):
    raises(lambda: fitted.t_test("lrt = 0", ddf="satterthwaite"), "'ddf'", "did you mean 'df'?")
    raises(lambda: fitted.anova(df="satterthwaite"), "did you mean 'ddf'?")
    raises(lambda: fitted.bootstrap(random_state=1), "did you mean 'seed'?")
    raises(lambda: fitted.summary(level=0.9), "alpha=")


def test_the_message_lists_the_keywords_when_nothing_is_close():
    def f(alpha=0.05, **kwargs):
        check_keywords(f, kwargs, extra=("seed",))
    message = raises(lambda: f(zzz=1), "'zzz'")
    assert re.search(r"it takes alpha, seed$", message)
    f(seed=1)                                       # allowed through **kwargs
