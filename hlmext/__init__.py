"""hlmext: multilevel (hierarchical) mixed-effects models with a compiled core."""
import os

# the GLMM kernel's OpenMP threads sleep rather than spin while they wait: on a busy
# machine spinning threads steal the cores the others need (set it yourself to override)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import datasets  # noqa: E402
from .inference.anova import anova  # noqa: E402
from .api import lrtest, melogit, mepoisson, mixedlm, per_group_ols  # noqa: E402
from .inference.bootstrap import bootstrap_lrtest  # noqa: E402
from .results.conventions import load  # noqa: E402
from .exceptions import BoundaryWarning, ConvergenceWarning, DataError, FormulaError, ModelError  # noqa: E402
from .models.glmm import MixedGLM, MixedLogit, MixedPoisson  # noqa: E402
from .models.linear import LinearMixed  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

__version__ = "0.1.0"

__all__ = ["mixedlm", "melogit", "mepoisson", "lrtest", "anova", "bootstrap_lrtest", "per_group_ols", "load",
           "LinearMixed", "MixedGLM",
           "MixedLogit", "MixedPoisson", "datasets", "DataError", "FormulaError",
           "ModelError", "ConvergenceWarning", "BoundaryWarning", "set_num_threads", "get_num_threads", "__version__"]
