"""The documentation is executed: the examples of every page in docs/ and of the public docstrings.

- Every ```pycon block of a Markdown page in ``docs/`` runs as a doctest, the blocks of a
  page one after the other in one fresh namespace (in a temporary working directory). An
  expected output runs to the next ``>>>`` line or the end of the block, blank lines
  included. A block right after the line ``% doctest: needs <module>`` runs only when
  that module is importable (the plots need matplotlib, which CI does not install).
- Outputs are compared exactly first; failing that, with whitespace normalised and every
  number within a relative 1e-4 (absolute 1e-5), or one unit in the last printed decimal,
  so that the last digit of a standard error may move with the optimizer without the page
  going stale, while a changed estimate, count or label still fails.
- The docstring examples of the public modules run the same way.
- ``test_sphinx_build`` builds the HTML with warnings as errors, when Sphinx and MyST are
  installed (the ``docs`` extra); it is skipped otherwise.
"""
import doctest
import importlib
import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOT_OURS = {"benchmarks.md"}            # written with the benchmarks; it shows commands, not doctests
PAGES = sorted(p.name for p in DOCS.glob("*.md") if p.name not in NOT_OURS)
MODULES = ["hlmext.api", "hlmext.linear", "hlmext.formula", "hlmext.frames", "hlmext.datasets", "hlmext.emit",
           "hlmext.plotting", "hlmext.kenward_roger", "hlmext.sampling_weights", "hlmext.sandwich", "hlmext.glmm",
           "hlmext.threads"]

_FENCE = re.compile(r"^(?:% doctest: needs (?P<needs>[\w.]+)\n)?(?P<fence>```+)pycon[ \t]*\n(?P<body>.*?)"
                    r"^(?P=fence)[ \t]*$", re.S | re.M)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
RTOL, ATOL = 1e-4, 1e-5


class NumericChecker(doctest.OutputChecker):
    """Exact comparison, else the same text with numbers compared to a tolerance."""

    def check_output(self, want, got, optionflags):
        if super().check_output(want, got, optionflags):
            return True
        return numbers_close(want.replace(doctest.BLANKLINE_MARKER, ""), got)


def numbers_close(want, got, rtol=RTOL, atol=ATOL):
    """True if ``want`` and ``got`` differ only in whitespace and in numbers within tolerance."""
    want, got = " ".join(want.split()), " ".join(got.split())
    if _NUMBER.split(want) != _NUMBER.split(got):
        return False
    tokens_a, tokens_b = _NUMBER.findall(want), _NUMBER.findall(got)
    if len(tokens_a) != len(tokens_b):
        return False
    for ta, tb in zip(tokens_a, tokens_b):
        a, b = float(ta), float(tb)
        tol = atol + rtol * max(abs(a), abs(b))
        if "." in ta and "e" not in ta.lower():         # a rounded decimal may flip its last digit
            tol = max(tol, 1.001 * 10.0 ** -len(ta.split(".")[1].rstrip("eE")))
        if abs(a - b) > tol:
            return False
    return True


def with_blank_lines(body):
    """Mark blank lines inside an expected output with <BLANKLINE> (the fence ends a block)."""
    lines = body.rstrip("\n").split("\n")
    out, seen_prompt = [], False
    for i, line in enumerate(lines):
        seen_prompt = seen_prompt or line.startswith(">>>")
        if not line.strip() and seen_prompt:
            following = next((m for m in lines[i + 1:] if m.strip()), None)
            if following is not None and not following.startswith(">>>"):
                out.append(doctest.BLANKLINE_MARKER)
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def page_blocks(path):
    """[(line number, body, module needed or None)] of the pycon blocks of a page."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start("body")), m.group("body"), m.group("needs"))
            for m in _FENCE.finditer(text)]


def run_doctests(tests):
    """Run doctest.DocTest objects with the numeric checker; return (failures, tried, report)."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(checker=NumericChecker(), optionflags=doctest.ELLIPSIS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for test in tests:
            runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    return result.failed, result.attempted, out.getvalue()


def importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _use_agg():
    if importable("matplotlib"):
        import matplotlib
        matplotlib.use("Agg")


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page, tmp_path, monkeypatch):
    path = DOCS / page
    blocks = page_blocks(path)
    if not blocks:
        pytest.skip("no examples on %s" % page)
    _use_agg()
    monkeypatch.chdir(tmp_path)                 # examples that save figures write here
    parser = doctest.DocTestParser()
    examples, skipped = [], 0
    for lineno, body, needs in blocks:
        if needs and not importable(needs):
            skipped += 1
            continue
        for example in parser.get_examples(with_blank_lines(body), name=page):
            example.lineno += lineno
            examples.append(example)
    test = doctest.DocTest(examples, {"__name__": "__docs__"}, page, str(path), 0, None)
    failed, tried, report = run_doctests([test])
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    assert failed == 0, "%d of %d examples of docs/%s failed:\n%s" % (failed, tried, page, report)
    assert tried > 0 or skipped


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module, name)
    legacy = {"legacy": "1.25"} if int(np.__version__.split(".")[0]) >= 2 else {}
    with np.printoptions(**legacy):            # np.float64(1.5) prints as 1.5, as under NumPy 1.x
        failed, tried, report = run_doctests(tests)
    assert failed == 0, "%d of %d docstring examples of %s failed:\n%s" % (failed, tried, name, report)


def test_the_checker_tolerates_last_digits_only():
    assert numbers_close("sd(_cons) |   3.042028   .3068676", "sd(_cons) |   3.042028    .306867")
    assert not numbers_close("sd(_cons) |   3.042028", "sd(_cons) |   3.052028")
    assert not numbers_close("sd(_cons) 3.0", "sd(lrt) 3.0")
    assert not numbers_close("1 2", "1 2 3")
    assert numbers_close("-0.0010  0.0041", "-0.0011  0.0041")      # a rounding flip of the last digit
    assert not numbers_close("-0.0010", "-0.0012")
    assert not numbers_close("4057 64", "4058 64")                  # counts are exact


def test_pages_in_the_toctree_exist():
    index = (DOCS / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}\n(.*?)```", index, re.S).group(1)
    names = [ln.strip() for ln in toctree.splitlines() if ln.strip() and not ln.startswith(":")]
    optional = {"benchmarks", "glmm"}          # left out by conf.py when absent
    for name in names:
        assert name in optional or (DOCS / (name + ".md")).exists() or (DOCS / (name + ".rst")).exists(), name
    assert (DOCS / "_static" / "caterpillar.png").exists() and (DOCS / "_static" / "shrinkage.png").exists()


def test_sphinx_build(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", str(DOCS),
           str(tmp_path / "html")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, "sphinx-build failed:\n%s\n%s" % (proc.stdout[-5000:], proc.stderr[-5000:])
    for page in ["index", "getting_started", "gcse", "syntax", "output", "math", "api"]:
        assert (tmp_path / "html" / (page + ".html")).exists(), page
