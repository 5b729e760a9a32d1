"""hlmext: multilevel (hierarchical) mixed-effects models with a compiled core."""
from . import datasets
from .api import lrtest, mixedlm, per_group_ols
from .exceptions import BoundaryWarning, ConvergenceWarning, DataError, FormulaError, ModelError
from .linear import LinearMixed

__version__ = "0.1.0"

__all__ = ["mixedlm", "lrtest", "per_group_ols", "LinearMixed", "datasets", "DataError", "FormulaError",
           "ModelError", "ConvergenceWarning", "BoundaryWarning", "__version__"]
