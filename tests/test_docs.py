"""The documentation is executed: the examples of every page in docs/ and of the public docstrings.

- Every ```pycon block of a Markdown page in ``docs/`` runs as a doctest, the blocks of a
  page one after the other in one fresh namespace (in a temporary working directory). An
  expected output runs to the next ``>>>`` line or the end of the block, blank lines
  included. A block right after the line ``% doctest: needs <module>`` runs only when
  that module is importable (the plots need matplotlib, which CI does not install).
- Outputs are compared exactly: a page shows what the code prints, every digit. When the
  code's output changes, regenerate the page's output from the code.
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
PACKAGE = DOCS.parent / "hlmext"


def modules_with_examples():
    """Every module of the package whose source has a docstring example (a ``>>>`` line)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()

_FENCE = re.compile(r"^(?:% doctest: needs (?P<needs>[\w.]+)\n)?(?P<fence>```+)pycon[ \t]*\n(?P<body>.*?)"
                    r"^(?P=fence)[ \t]*$", re.S | re.M)


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



class LineEndChecker(doctest.OutputChecker):
    """Exact comparison of the printed text, except for spaces at the ends of lines (pandas pads
    an index name's row with them; Markdown pages do not keep them)."""

    def check_output(self, want, got, optionflags):
        strip = lambda text: "\n".join(line.rstrip() for line in text.split("\n"))
        return super().check_output(strip(want), strip(got), optionflags)

def run_doctests(tests):
    """Run doctest.DocTest objects, outputs compared exactly; return (failures, tried, report)."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(checker=LineEndChecker(), optionflags=doctest.ELLIPSIS)
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


def page_test(path):
    """(doctest.DocTest of the page's runnable examples, number of blocks skipped)."""
    parser = doctest.DocTestParser()
    examples, skipped = [], 0
    for lineno, body, needs in page_blocks(path):
        if needs and not importable(needs):
            skipped += 1
            continue
        for example in parser.get_examples(with_blank_lines(body), name=path.name):
            example.lineno += lineno
            examples.append(example)
    return doctest.DocTest(examples, {"__name__": "__docs__"}, path.name, str(path), 0, None), skipped


def regenerate(path):
    """Rewrite the expected outputs of a page with what the code prints; return how many changed.

    ``python tests/test_docs.py docs/gcse.md ...`` after a change to the printed output.
    """
    class Recorder(doctest.DocTestRunner):
        def report_failure(self, out, test, example, got):
            changed.append((example, got))

    changed = []
    _use_agg()
    test, _ = page_test(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Recorder(checker=LineEndChecker(), optionflags=doctest.ELLIPSIS).run(test, out=lambda s: None)
    lines = path.read_text().split("\n")
    for example, got in sorted(changed, key=lambda c: -c[0].lineno):      # bottom up: line numbers stay valid
        first = example.lineno + example.source.count("\n")
        want = [ln for ln in example.want.split("\n")[:-1]]
        lines[first:first + len(want)] = [(" " * example.indent + ln).rstrip() for ln in got.split("\n")[:-1]]
    path.write_text("\n".join(lines))
    return len(changed)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page, tmp_path, monkeypatch):
    path = DOCS / page
    blocks = page_blocks(path)
    if not blocks:
        pytest.skip("no examples on %s" % page)
    _use_agg()
    monkeypatch.chdir(tmp_path)                 # examples that save figures write here
    test, skipped = page_test(path)
    failed, tried, report = run_doctests([test])
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    assert failed == 0, "%d of %d examples of docs/%s failed:\n%s" % (failed, tried, page, report)
    assert tried > 0 or skipped


#: modules whose examples need an optional dependency (skipped without it, as the pages' blocks)
MODULE_NEEDS = {"hlmext.models.glmm_distributed": "pyarrow",        # generalized models on chunks shuffle through Parquet
                "hlmext.models.ordinal_partitions": "pyarrow"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in MODULE_NEEDS and not importable(MODULE_NEEDS[name]):
        pytest.skip("the examples of %s need %s" % (name, MODULE_NEEDS[name]))
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module, name)
    legacy = {"legacy": "1.25"} if int(np.__version__.split(".")[0]) >= 2 else {}
    with np.printoptions(**legacy):            # np.float64(1.5) prints as 1.5, as under NumPy 1.x
        failed, tried, report = run_doctests(tests)
    assert failed == 0, "%d of %d docstring examples of %s failed:\n%s" % (failed, tried, name, report)


def test_outputs_are_compared_exactly():
    """The last digit of a standard error counts: a page printing .306867 where the code prints
    .3068644 fails."""
    def doc(want, got):
        example = doctest.Example("print(%r)" % got, want)
        return doctest.DocTest([example], {}, "page", None, 0, None)
    assert run_doctests([doc("sd(_cons) |   3.042028   .3068644\n", "sd(_cons) |   3.042028   .3068644")])[0] == 0
    assert run_doctests([doc("sd(_cons) |   3.042028   .306867\n", "sd(_cons) |   3.042028   .3068644")])[0] == 1
    assert run_doctests([doc("-0.0010\n", "-0.0011")])[0] == 1


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
    for page in ["index", "getting_started", "gcse", "syntax", "output", "math", "api", "prediction"]:
        assert (tmp_path / "html" / (page + ".html")).exists(), page


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print("%s: %d outputs regenerated" % (name, regenerate(Path(name).resolve())))
