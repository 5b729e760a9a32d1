"""Sphinx configuration of the hlmext documentation.

Build (needs the ``docs`` extra: ``pip install -e ".[docs]"``)::

    sphinx-build -W -b html docs docs/_build

Pages are Markdown (MyST) with ``$...$`` / ``$$...$$`` mathematics; the API page is
autodoc with numpydoc. The ``pycon`` examples of every page are executed by
``tests/test_docs.py``; the figures in ``_static`` are made by ``make_figures.py``.
"""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))          # the package itself when it is not installed

import hlmext  # noqa: E402

project = "hlmext"
author = "the hlmext developers"
copyright = "the hlmext developers, BSD-3-Clause"
release = version = hlmext.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc" if importlib.util.find_spec("numpydoc") else "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/__pycache__"]

# MyST: dollar maths, labelled equations, ::: fences, anchors for headings
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# autodoc + numpydoc
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
napoleon_numpy_docstring = True

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = "hlmext %s" % release
html_theme_options = {"description": "Multilevel mixed-effects models for Python", "page_width": "1180px",
                      "body_max_width": "none", "fixed_sidebar": True, "code_font_size": "0.78em"}
pygments_style = "sphinx"
suppress_warnings = ["myst.header"]


# Pages that depend on other parts of the project: docs/benchmarks.md is written with the
# benchmarks, and the page on mixed logit and Poisson models documents hlmext.melogit. A page
# whose subject is absent is left out, with its toctree entries and links.
OPTIONAL_PAGES = {
    "benchmarks": ("Benchmarks", (HERE / "benchmarks.md").exists()),
    "glmm": ("Mixed logit and Poisson models", hasattr(hlmext, "melogit")),
}
exclude_patterns += [name + ".md" for name, (_, present) in OPTIONAL_PAGES.items() if not present]


def _without_missing_pages(app, docname, source):
    text = source[0]
    for name, (title, present) in OPTIONAL_PAGES.items():
        if present:
            continue
        lines = [line for line in text.split("\n") if line.strip() != name and "(%s.md)" % name not in line]
        text = "\n".join(lines).replace("{doc}`%s`" % name, "*%s*" % title)
    source[0] = text


# the API page: one autodoc entry per name of hlmext.__all__, grouped by kind
_API_EXTRA = [("Results", ["hlmext.public.MixedResults", "hlmext.public.GLMMResults",
                           "hlmext.results.idioms.Lme4Idioms"]),
              ("Plots", ["hlmext.output.plotting.plot_random_effects", "hlmext.output.plotting.plot_per_group_fits",
                         "hlmext.output.plotting.plot_shrinkage"]),
              ("The same model in lme4 or Stata", ["hlmext.output.emit.to_lme4", "hlmext.output.emit.to_stata",
                                                  "hlmext.output.emit_glmm.glmm_to_stata"]),
              ("Data beyond memory", ["hlmext.design.chunked.residuals", "hlmext.design.chunked.fittedvalues"])]


def _api_sections():
    import inspect
    functions, classes, errors, modules = [], [], [], []
    for name in hlmext.__all__:
        obj = getattr(hlmext, name)
        if inspect.ismodule(obj):
            modules.append(name)
        elif inspect.isclass(obj) and issubclass(obj, (Exception, Warning)):
            errors.append(name)
        elif inspect.isclass(obj):
            classes.append(name)
        elif callable(obj):
            functions.append(name)
    out = []

    def section(title, lines):
        out.extend(["", title, "-" * len(title), ""] + lines)

    section("Models from formulas", [".. autofunction:: hlmext.%s\n" % n for n in functions])
    section("Model classes", [".. autoclass:: hlmext.%s\n   :members:\n" % n for n in classes])
    for title, names in _API_EXTRA:
        found = [n for n in names if _importable(n)]
        directive = "autoclass" if title == "Results" else "autofunction"
        opts = "\n   :members:\n" if directive == "autoclass" else "\n"
        section(title, [".. %s:: %s%s" % (directive, n, opts) for n in found])
    for name in modules:
        section("hlmext.%s" % name, [".. automodule:: hlmext.%s\n   :members:\n" % name])
    section("Errors and warnings", [".. autoexception:: hlmext.%s\n" % n for n in errors])
    return "\n".join(out) + "\n"


def _importable(dotted):
    import importlib
    module, _, attr = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


def _api_page(app, docname, source):
    if docname == "api":
        source[0] = source[0].replace(".. hlmext-api", _api_sections())


def setup(app):
    app.connect("source-read", _without_missing_pages)
    app.connect("source-read", _api_page)
    os.environ.setdefault("MPLBACKEND", "Agg")
