"""The package is built in floors: every import points down, and no import circle exists.

The import graph is read from the source (``ast``), imports inside functions included, so
that a late import cannot hide a circle. ``docs/architecture.md`` describes the floors;
``lint-imports`` (the contract in ``pyproject.toml``) checks the same layering in CI.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hlmext"

# top to bottom; a module may import its own floor's modules and any floor below
FLOORS = [
    ["hlmext.__main__"],
    ["hlmext.api"],
    ["hlmext.public"],
    ["hlmext.update"],
    ["hlmext.output"],
    ["hlmext.inference"],
    ["hlmext.results"],
    ["hlmext.models"],
    ["hlmext.design"],
    ["hlmext.formula"],
    ["hlmext._kernels", "hlmext.datasets"],
    ["hlmext.keywords", "hlmext.threads"],
    ["hlmext.exceptions", "hlmext.stacklevel"],
]


def modules():
    """Module name -> source path of every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    for path in PACKAGE.rglob("*.pyx"):
        out[".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)] = path
    return out


def import_graph():
    """Module -> the package's modules it imports (anywhere in its source)."""
    mods = modules()
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        if path.suffix != ".py":
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def floor_of(module):
    if module == "hlmext":
        return -1                           # the package's public face sits above every floor
    for k, floor in enumerate(FLOORS):
        if any(module == top or module.startswith(top + ".") for top in floor):
            return k
    raise AssertionError("module %s is on no floor: add it to FLOORS and to the contract in pyproject.toml"
                         % module)


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_points_up_a_floor():
    graph = import_graph()
    up = sorted("%s -> %s" % (a, b) for a, targets in graph.items() for b in targets
                if b != "hlmext" and not (a == "hlmext" or floor_of(b) >= floor_of(a)))
    assert up == []


def test_no_import_circle():
    graph = import_graph()
    # a package's __init__ that re-exports its own modules is no circle: drop edges into package faces
    faces = {m for m, p in modules().items() if p.name == "__init__.py"}
    inner = {m: {t for t in ts if t not in faces} for m, ts in graph.items() if m not in faces}
    assert cycles(inner) == []


def test_the_check_sees_a_late_import_circle():
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert cycles(graph) == [["a", "b"]]
    assert floor_of("hlmext.models.linear") > floor_of("hlmext.results.linear")


def test_every_module_is_on_a_floor():
    for name in modules():
        if name != "hlmext":
            floor_of(name)


def test_helper_modules_keep_their_short_names():
    import hlmext
    from hlmext import chunked, emit, plotting
    from hlmext.design import chunked as design_chunked
    from hlmext.formula import parse
    from hlmext.formula.grammar import parse as grammar_parse
    from hlmext.output import emit as output_emit, plotting as output_plotting
    assert (chunked, emit, plotting) == (design_chunked, output_emit, output_plotting)
    assert parse is grammar_parse and hlmext.chunked.residuals is design_chunked.residuals
    try:
        hlmext.no_such_module
    except AttributeError as exc:
        assert "no_such_module" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")
