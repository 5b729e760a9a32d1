#!/usr/bin/env bash
# The README's test command, in a fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-ci
. .venv-ci/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test]"
python -m pytest
