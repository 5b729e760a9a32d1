"""Datasets bundled with hlmext, as pandas DataFrames.

The catalogue is :func:`list`; the notes on where every file comes from, its columns and
its coding are in ``hlmext/datasets/data/README.md``.

>>> import hlmext
>>> df = hlmext.datasets.load("gcse")
>>> df.shape
(4059, 13)
>>> "hsb82" in set(hlmext.datasets.list().name)
True
"""
from __future__ import annotations

import builtins
import difflib
from importlib import resources

import pandas as pd

__all__ = ["list", "load", "UnknownDatasetError"]

# name: (file, description, source)
_FILES = {
    "gcse": ("exam.csv", "Inner London school examination scores of students in schools; Stata's "
             "gcse/lrt example (gcse = 10 x normexam, lrt = 10 x standLRT)", "R package mlmRev, Exam"),
    "exam": ("exam.csv", "same file as 'gcse'", "R package mlmRev, Exam"),
    "sleepstudy": ("sleepstudy.csv", "reaction times of 18 subjects over 10 days of sleep deprivation",
                   "R package lme4, sleepstudy"),
    "cbpp": ("cbpp.csv", "contagious bovine pleuropneumonia: new cases out of herd size (binomial), "
             "15 herds over up to 4 periods", "R package lme4, cbpp"),
    "contraception": ("contraception.csv", "contraceptive use (binary) of women in 60 districts of "
                      "Bangladesh", "R package mlmRev, Contraception"),
    "pastes": ("pastes.csv", "strength of a chemical paste: samples of casks nested in 10 batches",
               "R package lme4, Pastes"),
    "penicillin": ("penicillin.csv", "penicillin assay: 24 plates crossed with 6 samples",
                   "R package lme4, Penicillin"),
    "grouseticks": ("grouseticks.csv", "tick counts on grouse chicks in broods in locations (Poisson)",
                    "R package lme4, grouseticks"),
    "hsb82": ("hsb82.csv", "High School and Beyond 1982: mathematics achievement of students in 160 "
              "schools, with school-mean and centred SES", "R package mlmRev, Hsb82"),
    "orthodont": ("orthodont.csv", "orthodontic distance of 27 children measured at ages 8 to 14",
                  "R package nlme, Orthodont"),
    "egsingle": ("egsingle.csv", "mathematics scores over years of 1721 children in 60 schools "
                 "(three levels)", "R package mlmRev, egsingle"),
    "oats": ("oats.csv", "split-plot oats yields: nitrogen sub-plots in variety plots in 6 blocks "
             "(three levels)", "R package nlme, Oats"),
    "scotssec": ("scotssec.csv", "attainment of Scottish pupils: 148 primary schools crossed with 19 "
                 "secondary schools", "R package mlmRev, ScotsSec"),
    "guimmun": ("guimmun.csv", "complete immunisation (binary) of Guatemalan children in mothers in "
                "communities (three levels)", "R package mlmRev, guImmun"),
    "bacteria": ("bacteria.csv", "H. influenzae present (binary) in tests of 50 children over weeks, "
                 "by treatment", "R package MASS, bacteria"),
    "mmmec": ("mmmec.csv", "melanoma deaths (Poisson, offset log expected) of counties in regions in "
              "9 nations (three levels)", "R package mlmRev, Mmmec"),
    "wine": ("wine.csv", "bitterness ratings (ordinal, 1-5) of wines by 9 judges, by temperature and "
             "contact", "R package ordinal, wine"),
    "verbagg": ("verbagg.csv", "verbal aggression questionnaire (binary): 316 persons crossed with "
                "24 items", "R package lme4, VerbAgg"),
    "ovary": ("ovary.csv", "counts of ovarian follicles of 11 mares over their estrus cycles (serially "
              "correlated)", "R package nlme, Ovary"),
    "bodyweight": ("bodyweight.csv", "body weights of 16 rats on 3 diets, measured over 64 days",
                   "R package nlme, BodyWeight"),
}


class UnknownDatasetError(KeyError):
    """A dataset name that is not in the catalogue (a ``KeyError`` with a readable message)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _open(filename):
    return resources.files(__package__).joinpath("data", filename).open("rb")


def _rows(filename) -> int:
    """Data rows of a bundled CSV file (lines after the header)."""
    with _open(filename) as fh:
        return sum(1 for line in fh if line.strip()) - 1


def list() -> pd.DataFrame:  # noqa: A001 - the natural name for a catalogue
    """The catalogue of bundled datasets.

    Returns
    -------
    pandas.DataFrame
        One row per name, with columns ``name``, ``description``, ``rows`` (number of
        observations in the file), ``source`` (the R package and data set the file
        was written from) and ``file``.

    Examples
    --------
    >>> import hlmext
    >>> cat = hlmext.datasets.list().set_index("name")
    >>> int(cat.loc["gcse", "rows"]), cat.loc["gcse", "source"]
    (4059, 'R package mlmRev, Exam')
    """
    rows = {f: _rows(f) for f in {f for f, _, _ in _FILES.values()}}
    return pd.DataFrame([(name, desc, rows[f], src, f) for name, (f, desc, src) in _FILES.items()],
                        columns=["name", "description", "rows", "source", "file"])


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name.

    Parameters
    ----------
    name : str
        One of ``hlmext.datasets.list().name``; ``"gcse"`` is the seed example
        (filter it with ``.query("nstu > 4")`` to get Stata's 4,057 students in 64
        schools).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    UnknownDatasetError
        A ``KeyError`` whose message lists the names that exist.

    Examples
    --------
    >>> import hlmext
    >>> hlmext.datasets.load("penicillin").shape
    (144, 3)
    """
    if name not in _FILES:
        close = difflib.get_close_matches(str(name), builtins.list(_FILES), n=1)
        hint = " (did you mean %r?)" % close[0] if close else ""
        raise UnknownDatasetError("unknown dataset %r%s; available: %s"
                                  % (name, hint, ", ".join(sorted(_FILES))))
    with _open(_FILES[name][0]) as fh:
        return pd.read_csv(fh)
