"""hlmext: multilevel (hierarchical) mixed-effects models with a compiled core."""
from . import datasets
from .api import lrtest, melogit, mepoisson, mixedlm, per_group_ols
from .bootstrap import bootstrap_lrtest
from .exceptions import BoundaryWarning, ConvergenceWarning, DataError, FormulaError, ModelError
from .glmm import MixedGLM, MixedLogit, MixedPoisson
from .linear import LinearMixed

__version__ = "0.1.0"

__all__ = ["mixedlm", "melogit", "mepoisson", "lrtest", "bootstrap_lrtest", "per_group_ols", "LinearMixed", "MixedGLM",
           "MixedLogit", "MixedPoisson", "datasets", "DataError", "FormulaError",
           "ModelError", "ConvergenceWarning", "BoundaryWarning", "__version__"]
