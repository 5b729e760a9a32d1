"""Make the figures of the documentation (``docs/_static/*.png``) from the GCSE example.

    python docs/make_figures.py [output folder]

The same calls are shown, and executed by the tests, on the GCSE walk-through page
(``docs/gcse.md``). Needs matplotlib (the ``plot`` or ``docs`` extra).
"""
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import hlmext  # noqa: E402

DPI = 80


def main(out=None):
    out = Path(out) if out is not None else Path(__file__).resolve().parent / "_static"
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", hlmext.BoundaryWarning)
    df = hlmext.datasets.load("gcse").query("nstu > 4")
    rs = hlmext.mixedlm("gcse ~ lrt + (lrt | school)", df).fit(reml=False)
    written = []
    ax = rs.plot_random_effects(term="Intercept")
    ax.figure.savefig(out / "caterpillar.png", dpi=DPI, bbox_inches="tight")
    written.append(out / "caterpillar.png")
    ax = rs.plot_per_group_fits(df, max_groups=16)
    ax.figure.savefig(out / "shrinkage.png", dpi=DPI, bbox_inches="tight")
    written.append(out / "shrinkage.png")
    plt.close("all")
    return written


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else None):
        print("wrote", path)
