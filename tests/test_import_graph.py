"""The import graph of the package: no circles through the plotting and writing layers.

Imports are read from the source (``ast``), including imports inside functions, because a lazy
import hides a circle from the interpreter but not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "abm"
#: Modules that must sit on no import circle (the lower layers are checked by their owners' tests).
LAYERS = ("abm.viz", "abm.io", "abm.app", "abm.vocabulary")


def import_graph() -> nx.DiGraph:
    """module -> module it imports, for the modules of the ``abm`` package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def _in_layers(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in LAYERS)


def test_no_import_circle_through_viz_io_or_the_app():
    graph = import_graph()
    assert "abm.viz.run_figures" in graph and graph.number_of_edges() > 50
    circles = [
        sorted(c)
        for c in nx.strongly_connected_components(graph)
        if len(c) > 1 and any(_in_layers(m) for m in c)
    ]
    assert not circles, circles


def test_io_does_not_import_the_plotting_package():
    graph = import_graph()
    reached = nx.descendants(graph, "abm.io")
    assert not [m for m in reached if m.startswith("abm.viz")], sorted(reached)
