"""Errors and warnings raised by hlmext.

Every error names what is wrong (column, row count, level, token) and what to do.
"""


class FormulaError(ValueError):
    """A model formula that cannot be parsed or refers to something absent."""


class DataError(ValueError):
    """Data that cannot be fitted: missing values, wrong types, empty or degenerate input."""


class ModelError(ValueError):
    """A model that is not identified (collinear fixed effects, too few groups, ...)."""


class ConvergenceWarning(UserWarning):
    """The optimizer stopped without meeting the convergence criteria."""


class BoundaryWarning(UserWarning):
    """A variance component was estimated at zero or a correlation at +-1."""
