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


@pytest.fixture(scope="module")
def client():
    """A local Dask cluster of two worker processes, passed to the fits (not the default client)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()
