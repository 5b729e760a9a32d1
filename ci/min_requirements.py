"""Print the declared dependency floors of pyproject.toml as exact pins (``numpy>=1.25`` -> ``numpy==1.25``).

CI installs these in a second environment and runs the tests there, so every floor the
package declares is one that its tests have passed on.
"""
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = []
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9.]*)\s*", dep)
        if m is None:
            sys.exit("dependency %r has no plain '>=' floor to pin" % dep)
        out.append("%s==%s" % m.groups())
    return out


if __name__ == "__main__":
    print("\n".join(pins()))
