"""The package's layering (docs/ARCHITECTURE.md), enforced: no import cycle between modules, and no
import that reaches up a layer. Imports inside functions and under TYPE_CHECKING count too: a
cycle dodged by a late import is still a cycle a reader has to hold in their head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "weightsafe"

#: Lowest first. A module may import from its own layer (without a cycle) or any layer below.
LAYERS: list[tuple[str, set[str]]] = [
    ("values", {"_version", "errors", "settings", "manifest", "layout"}),
    ("I/O primitives", {"fsutil", "pipeline", "hashing", "concurrency", "progress", "s3client"}),
    ("records and cache", {"records", "cache", "pins"}),
    ("sources and targets", {"sources", "targets"}),
    ("use cases", {"catalog", "puller", "verify", "exporter", "housekeeping", "authoring", "cards", "lint",
                   "signing", "locate", "loadcheck", "inventory"}),
    ("api", {"api"}),
    ("cli", {"cli", "__main__", ""}),  # "" is the package root, which re-exports the api
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the package that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "weightsafe":
                target = node.module.partition(".")[2]
            else:
                continue
            subs = [f"{target}.{a.name}".lstrip(".") for a in node.names]
            hit = [s for s in subs if s in known]
            found.update(hit)
            if len(hit) < len(subs):  # names defined in the module itself
                found.add(target)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "weightsafe":
                    found.add(a.name.partition(".")[2])
    found.discard(name)
    return {f for f in found if f in known}


def layer_of(name: str) -> int:
    top = name.split(".")[0]
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"weightsafe.{name} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md")


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"weightsafe.{a} ({LAYERS[layer_of(a)][0]}) imports weightsafe.{b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in graph().items() for b in targets if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def test_sources_and_targets_do_not_import_each_other():
    crossing = [f"{a} imports {b}" for a, targets in graph().items() for b in targets
                if {a.split(".")[0], b.split(".")[0]} == {"sources", "targets"}]
    assert not crossing, "\n".join(crossing)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("edges, expected", [({"a": {"b"}, "b": {"a"}}, [["a", "b"]]), ({"a": {"b"}, "b": set()}, [])])
def test_the_cycle_finder_finds_a_cycle(edges, expected):
    assert cycles(edges) == expected
