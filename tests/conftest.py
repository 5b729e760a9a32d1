import json
from pathlib import Path

import pytest

import hlmext

REFERENCE = Path(__file__).parent / "reference"


def load_reference(name, folder="lme4"):
    with open(REFERENCE / folder / (name + ".json")) as fh:
        return json.load(fh)


def reference_names(folder="lme4", family=None):
    names = []
    for path in sorted((REFERENCE / folder).glob("*.json")):
        ref = json.loads(path.read_text())
        if family is None or ref["family"] == family:
            names.append(path.stem)
    return names


@pytest.fixture(scope="session")
def gcse():
    return hlmext.datasets.load("gcse").query("nstu > 4")
