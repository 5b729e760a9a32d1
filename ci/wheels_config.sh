#!/usr/bin/env bash
# The prebuilt-wheel configuration ([tool.cibuildwheel] in pyproject.toml) parses and selects
# CPython 3.10-3.13 on Linux, macOS and Windows. Building those wheels needs each platform's
# build images or runners; this check runs where CI runs and proves the selection.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .venv-cibw
python3 -m venv .venv-cibw
.venv-cibw/bin/python -m pip install --quiet cibuildwheel
for platform in linux macos windows; do
    got=$(.venv-cibw/bin/cibuildwheel --print-build-identifiers --platform "$platform" . | sed 's/-.*//' | sort -u | tr '\n' ' ')
    if [ "$got" != "cp310 cp311 cp312 cp313 " ]; then
        echo "[ci] cibuildwheel selects '$got' on $platform, not CPython 3.10-3.13"; exit 1
    fi
done
echo "[ci] wheel configuration: CPython 3.10-3.13 on linux, macos and windows"
