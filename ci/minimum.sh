#!/usr/bin/env bash
# Packaging and dependency floors, in one pass:
# 1. `python -m build`: the sdist, then the wheel built from the sdist (each in an isolated
#    build environment, so pyproject's build requirements are proved), without setuptools warnings;
# 2. a fresh environment with exactly the declared minimum versions (ci/min_requirements.py) on
#    the oldest Python that pyproject's requires-python admits (3.10), the wheel (compiled
#    against NumPy 2) installed into it, `pip check`;
# 3. the sdist's own tests against the installed wheel, run from the folder above the
#    unpacked sdist, so that neither pytest nor the tests' subprocesses (`python -c`, which
#    puts its working directory on sys.path) import the uncompiled sources.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
start=$SECONDS
rm -rf .venv-min dist-ci
# the floor of requires-python: python3.10 on PATH, else pyenv's 3.10, else say so and use python3
PYMIN=""
for cand in "$(command -v python3.10 || true)" "$(pyenv root 2>/dev/null)"/versions/3.10*/bin/python3.10; do
    if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "import sys; assert sys.version_info[:2] == (3, 10)" 2>/dev/null; then
        PYMIN=$cand; break
    fi
done
if [ -z "$PYMIN" ]; then
    PYMIN=python3
    echo "[ci] no Python 3.10 on this machine: the minimum-versions run uses $(python3 --version)"
fi
"$PYMIN" -m venv .venv-min
PY=$ROOT/.venv-min/bin/python
$PY -m pip install --quiet --upgrade pip
$PY -m pip install --quiet build
$PY -m build --outdir dist-ci . > dist-ci.log 2>&1 || { tail -50 dist-ci.log; exit 1; }
if grep -E "Setuptools[A-Za-z]*Warning|_Warning:" dist-ci.log; then
    echo "[ci] building the sdist and wheel gave setuptools warnings (above)"; exit 1
fi
echo "[ci] sdist and wheel built after $((SECONDS - start)) s: $(cd dist-ci && echo *)"
$PY -m pip install --quiet $(python3 ci/min_requirements.py) "pytest>=7" "hypothesis>=6" "tomli>=1.1; python_version < '3.11'"
$PY -m pip install --quiet --no-deps dist-ci/*.whl
$PY -m pip check
# from / : the checkout's uncompiled (or other-Python) sources must not shadow the wheel
(cd / && $PY -c "import sys, numpy, scipy, pandas, patsy, statsmodels, threadpoolctl as t, hlmext
print('[ci] minimum versions: python', sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'pandas', pandas.__version__,
      'patsy', patsy.__version__, 'statsmodels', statsmodels.__version__, 'threadpoolctl', t.__version__)")
echo "[ci] minimum environment ready after $((SECONDS - start)) s"
unpacked=$(mktemp -d)
tar xzf dist-ci/*.tar.gz -C "$unpacked"
sdist=$(echo "$unpacked"/hlmext-*)
cd "$unpacked"        # not the sdist's root: subprocesses of the tests must import the wheel too
"$ROOT"/.venv-min/bin/pytest -p no:cacheprovider "$sdist/tests"
echo "[ci] suite on the minimum versions, from the sdist, done after $((SECONDS - start)) s"
