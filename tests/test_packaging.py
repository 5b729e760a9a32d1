"""Packaging metadata and the declared dependency floors.

CI (ci/minimum.sh) builds the sdist and wheel, installs the wheel next to exactly the
declared minimum versions and runs the sdist's tests; these checks keep the metadata that
run relies on from drifting.
"""
import ast
import importlib.util
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib

import numpy as np

import hlmext

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def floors():
    return dict(re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)", dep.replace(" ", "")).groups()
                for dep in PROJECT["dependencies"])


def test_license_is_an_spdx_expression():
    # a table ({text = ...}) makes setuptools warn on every install
    assert PROJECT["license"] == "BSD-3-Clause"
    assert PROJECT["license-files"] == ["LICENSE"] and (ROOT / "LICENSE").exists()


def test_every_package_directory_is_declared():
    # an undeclared directory of package data (hlmext/datasets/data) makes setuptools warn
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.relative_to(ROOT).parts) for p in (ROOT / "hlmext").rglob("*")
             if p.is_dir() and p.name != "__pycache__" and any(p.iterdir())}
    assert found | {"hlmext"} <= packages


def test_the_test_extra_leaves_the_docs_toolchain_to_the_docs_extra():
    extras = PROJECT["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", dep)[0] for dep in extras["test"]}
    assert not names & {"sphinx", "numpydoc", "myst-parser", "matplotlib"}
    assert {"sphinx", "myst-parser"} <= {re.split(r"[<>=\[ ]", dep)[0] for dep in extras["docs"]}


def test_the_sdist_ships_what_its_tests_need():
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    assert "graft tests" in manifest and "graft docs" in manifest
    assert (ROOT / "tests" / "conftest.py").exists()


def test_wheels_for_three_platforms_and_four_pythons_are_tested():
    cfg = PYPROJECT["tool"]["cibuildwheel"]
    assert cfg["build"].split() == ["cp310-*", "cp311-*", "cp312-*", "cp313-*"]
    assert "win32" in cfg["skip"] and "macos" not in cfg["skip"] and "manylinux_x" not in cfg["skip"]
    assert "pytest" in cfg["test-command"] and "{project}/tests" in cfg["test-command"]
    assert PROJECT["requires-python"] == ">=3.10"


def test_ci_installs_exactly_the_declared_floors():
    spec = importlib.util.spec_from_file_location("min_requirements", ROOT / "ci" / "min_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.pins() == ["%s==%s" % item for item in floors().items()]
    script = (ROOT / "ci" / "minimum.sh").read_text()
    assert "ci/min_requirements.py" in script and "pip check" in script
    assert "minimum.sh" in (ROOT / "ci" / "test.sh").read_text()


def test_the_readme_states_the_floors():
    readme = " ".join((ROOT / "README.md").read_text().split())
    for name, version in floors().items():
        assert "%s >= %s" % (name, version) in readme, name
    assert "C compiler" in readme and "pip install -v" in readme


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_only_public_modules_of_dependencies_are_imported():
    # statsmodels.formula._manager (private) is absent from statsmodels 0.14.0, the floor
    private = sorted({(path.name, mod) for path in (ROOT / "hlmext").rglob("*.py") for mod in _imports(path)
                      if mod.split(".")[0] in ("statsmodels", "scipy", "pandas", "numpy", "patsy")
                      and any(part.startswith("_") for part in mod.split(".")[1:])})
    assert private == []


def test_satterthwaite_needs_no_statsmodels_formula_manager(monkeypatch):
    df = hlmext.datasets.load("gcse").query("nstu > 4")
    res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit()
    monkeypatch.setitem(sys.modules, "statsmodels.formula._manager", None)     # as with statsmodels 0.14.0
    test = res.t_test("lrt = 0", df="satterthwaite")
    assert test.df_denom > 100
    np.testing.assert_allclose(test.effect, [res.params["lrt"]])
    assert res.anova().shape[0] == 1

