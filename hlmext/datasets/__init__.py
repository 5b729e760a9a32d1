"""Datasets bundled with hlmext, as pandas DataFrames.

>>> import hlmext
>>> df = hlmext.datasets.load("gcse")
>>> df.shape
(4059, 13)
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

_FILES = {
    "gcse": ("exam.csv", "Inner London school examination scores (mlmRev::Exam); Stata's gcse/lrt example"),
    "exam": ("exam.csv", "same as 'gcse'"),
    "sleepstudy": ("sleepstudy.csv", "reaction times under sleep deprivation (lme4::sleepstudy)"),
    "cbpp": ("cbpp.csv", "contagious bovine pleuropneumonia, binomial (lme4::cbpp)"),
    "contraception": ("contraception.csv", "Bangladesh contraception use, binary (mlmRev::Contraception)"),
    "pastes": ("pastes.csv", "paste strength, casks nested in batches (lme4::Pastes)"),
    "penicillin": ("penicillin.csv", "penicillin assay, crossed plates and samples (lme4::Penicillin)"),
    "grouseticks": ("grouseticks.csv", "ticks on grouse chicks in broods in locations, counts (lme4::grouseticks)"),
}


def list() -> pd.DataFrame:  # noqa: A001 - the natural name for a catalogue
    """Names, files and descriptions of the bundled datasets."""
    return pd.DataFrame([(k, f, d) for k, (f, d) in _FILES.items()], columns=["name", "file", "description"])


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name.

    Parameters
    ----------
    name : str
        One of ``hlmext.datasets.list().name``; ``"gcse"`` is the seed example.

    Returns
    -------
    pandas.DataFrame
    """
    if name not in _FILES:
        raise KeyError("unknown dataset %r; available: %s" % (name, ", ".join(_FILES)))
    with resources.files(__package__).joinpath("data", _FILES[name][0]).open("rb") as fh:
        return pd.read_csv(fh)
