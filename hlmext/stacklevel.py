"""The ``stacklevel`` that makes a warning point at the user's line (pandas' ``find_stack_level``)."""
from __future__ import annotations

import inspect
import os

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def user_stacklevel(skip=()) -> int:
    """``stacklevel`` for ``warnings.warn`` called right after this: the first frame outside
    hlmext (so ``fit()``'s warnings name the line that called ``fit``), at any depth.
    ``skip``: names of other packages whose frames are passed over too (statsmodels, when
    its ``bse`` asks the results for a value they compute on first use)."""
    frame, level = inspect.currentframe().f_back, 1     # the frame that warns is level 1
    try:
        while frame is not None and (os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep)
                                     or frame.f_globals.get("__name__", "").split(".")[0] in skip):
            frame, level = frame.f_back, level + 1
        return level
    finally:
        del frame
