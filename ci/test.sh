#!/usr/bin/env bash
# CI: the README's test command in a fresh virtual environment (with the docs extra, so that
# the Sphinx build and the plots are tested too), then ci/minimum.sh: the sdist and wheel
# built and installed in a second environment holding the declared minimum dependency versions
# (ci/wheels_config.sh first checks the prebuilt-wheel configuration).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
python3 -m venv .venv-ci
. .venv-ci/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test,docs]"
echo "[ci] main environment ready after $((SECONDS - start)) s"
python -m pytest
lint-imports          # the floors: no import points up (pyproject.toml)
echo "[ci] main suite done after $((SECONDS - start)) s"
deactivate
bash ci/wheels_config.sh
bash ci/minimum.sh
echo "[ci] all done after $((SECONDS - start)) s"
