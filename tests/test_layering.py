"""The package's shape: the import graph of python/mcuforge (every import, at module level
or inside a function) has no circles, no module imports another module's private
(_underscore) names, and the compiler stages never import the tool face."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "python" / "mcuforge"


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module, name)}: `from X import n` counts as an import of the
    submodule X.n when that is a module, else of X."""
    mods = modules()
    edges: dict[str, set[tuple[str, str]]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom):
                if n.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - (n.level - 1)]
                    target = ".".join(base + ([n.module] if n.module else []))
                elif n.module and n.module.split(".")[0] == "mcuforge":
                    target = n.module
                else:
                    continue
                for a in n.names:
                    sub = f"{target}.{a.name}"
                    edges[m].add((sub, "") if sub in mods else (target, a.name))
            elif isinstance(n, ast.Import):
                for a in n.names:
                    if a.name.split(".")[0] == "mcuforge":
                        edges[m].add((a.name, ""))
    return edges


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read_from_the_package():
    edges = imports()
    assert len(edges) > 40
    assert ("mcuforge.plan", "plan_schedule") in edges["mcuforge.pipeline"]
    # the test's own circle finder finds a circle when there is one
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    edges = imports()
    graph = {m: {t for t, _ in e if t in edges and t != m} for m, e in edges.items()}
    assert circles(graph) == []


def test_no_private_names_imported_across_modules():
    bad = sorted((m, t, n) for m, e in imports().items() for t, n in e
                 if n.startswith("_") and not n.startswith("__") and t != m)
    assert bad == []


def test_compiler_stages_do_not_import_the_tool_face():
    """Everything below the orchestrator (pipeline) and the search leaves the runners,
    the command line and the reports to mcuforge.tools."""
    above = ("mcuforge.tools", "mcuforge.nas", "mcuforge.api", "mcuforge.datasets")
    bad = sorted((m, t) for m, e in imports().items() for t, _ in e
                 if not m.startswith(above) and m not in ("mcuforge", "mcuforge.__main__")
                 and t.startswith("mcuforge.tools"))
    assert bad == []
