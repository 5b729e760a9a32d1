"""hlmext: multilevel (hierarchical) mixed-effects models with a compiled core."""
import os

# the GLMM kernel's OpenMP threads sleep rather than spin while they wait: on a busy
# machine spinning threads steal the cores the others need (set it yourself to override)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import datasets  # noqa: E402
from .inference.anova import anova  # noqa: E402
from .api import (lrtest, mecloglog, meglm, melogit, menbreg, meologit, meoprobit, mepoisson, meprobit,  # noqa: E402
                  mixedlm, per_group_ols)
from .inference.bootstrap import bootstrap_lrtest  # noqa: E402
from .results.conventions import load  # noqa: E402
from .exceptions import BoundaryWarning, ConvergenceWarning, DataError, FormulaError, ModelError  # noqa: E402
from .models.glmm import MixedGLM  # noqa: E402
from .public import LinearMixed, MixedFamily, MixedLogit, MixedOrdinal, MixedPoisson  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

__version__ = "0.1.0"

__all__ = ["mixedlm", "melogit", "mepoisson", "meglm", "meprobit", "mecloglog", "menbreg", "meologit", "meoprobit",
           "lrtest", "anova", "bootstrap_lrtest", "per_group_ols", "load", "LinearMixed", "MixedGLM",
           "MixedLogit", "MixedPoisson", "MixedFamily", "MixedOrdinal", "datasets", "DataError", "FormulaError",
           "ModelError", "ConvergenceWarning", "BoundaryWarning", "set_num_threads", "get_num_threads", "__version__"]

# the helper modules of the API reference under their short names: hlmext.chunked.residuals,
# hlmext.emit.to_lme4, hlmext.plotting.plot_random_effects (``from hlmext import chunked``)


def __getattr__(name):
    if name == "chunked":
        from .design import chunked
        return chunked
    if name == "emit":
        from .output import emit
        return emit
    if name == "plotting":
        from .output import plotting
        return plotting
    raise AttributeError("module 'hlmext' has no attribute %r" % name)
