"""The memory a fit needs, estimated before anything is allocated, against the machine's."""
from __future__ import annotations

import os

from ..exceptions import ModelError

__all__ = ["check_memory", "dense_block_fits", "memory_needed", "physical_memory"]


def memory_needed(stat_size, qd, k_fe) -> int:
    """Bytes a fit holds at once, estimated before anything is allocated: the per-cluster
    blocks twice (the statistics and the factor's work copy; the generalized model's
    factor and its selected inverse) and the dense block of the crossed factors with the
    fixed effects and response, ``(qd + p + 1)^2``, twice (its statistics and its factor)."""
    return 8 * (2 * int(stat_size) + 2 * (int(qd) + int(k_fe) + 1) ** 2)


def physical_memory():
    """The machine's memory in bytes (None where the system does not tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def dense_block_fits(qd, k_fe) -> bool:
    """True unless a dense block of ``qd`` crossed columns alone needs more than the machine's memory."""
    return memory_needed(0, qd, k_fe) <= (physical_memory() or float("inf"))


def check_memory(levels, n_chain, stat_size, k_fe):
    """Refuse a design whose fit needs more memory than the machine has (``memory_needed``)."""
    crossed = levels[n_chain:]
    qd = sum(lv.n_groups * lv.q for lv in crossed)
    need, have = memory_needed(stat_size, qd, k_fe), physical_memory()
    if have is None or need <= have:
        return
    raise ModelError("this model needs about %.1f GB of memory to fit (the per-cluster blocks of the nested levels "
                     "%s and a %d x %d dense block for the %d crossed random effects of %s); this machine has %.1f "
                     "GB: fit fewer crossed factors or fewer groups (e.g. a coarser grouping), or make a crossed "
                     "factor nested in another if the data allow"
                     % (need / 1e9, ", ".join(lv.name for lv in levels[:n_chain]) or "(none)", qd, qd, qd,
                        ", ".join(lv.name for lv in crossed) or "(none)", have / 1e9))
