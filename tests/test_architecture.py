"""The package's import structure: no import cycle between ``abm`` modules, and the instrument and
market layers (``abm.finance``, ``abm.markets``) never import the schedule (``abm.phases``) or the
model. Imports are read from the source (``ast``), including imports inside functions: a local
import hides a cycle from the interpreter, not from a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import abm

PACKAGE_DIR = Path(abm.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = ("abm", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``abm`` modules it imports (``from abm.x import y`` counts ``abm.x.y`` when
    that is a module, else ``abm.x``; package ``__init__`` edges to their own children are kept)."""
    paths = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from abm.x import y``: the module abm.x.y when y is one, else the module abm.x
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                if target in modules and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None. A package's ``__init__`` importing its own
    submodules is not a cycle unless a submodule imports the package back."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # abm.model imports its phases at module level; the graph must contain that edge
    assert "abm.phases" in graph["abm.model"] or any(
        m.startswith("abm.phases") for m in graph["abm.model"]
    )


def test_no_import_cycle_in_the_model_layers():
    """No cycle among the model's modules (everything but the presentation layer, ``abm.viz``,
    ``abm.app`` and ``abm.io``, whose structure is checked by the next test)."""
    presentation = ("abm.viz", "abm.app", "abm.io", "abm.cli")
    graph = {
        name: {t for t in edges if not t.startswith(presentation)}
        for name, edges in import_graph().items()
        if not name.startswith(presentation)
    }
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_no_import_cycle_anywhere_in_abm():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_instruments_and_markets_do_not_import_the_schedule_or_the_model():
    graph = import_graph()
    lower = [m for m in graph if m.startswith(("abm.finance", "abm.markets"))]
    assert lower, "no finance/markets modules found"
    bad = {
        m: sorted(t for t in graph[m] if t.startswith("abm.phases") or t == "abm.model")
        for m in lower
    }
    bad = {m: t for m, t in bad.items() if t}
    assert not bad, f"finance/markets import phases or the model: {bad}"


def test_stepping_the_model_creates_no_attribute():
    """Every attribute of the model is created by its constructor (or its components): a crash
    scenario run for a year and a half, through defaults, fire sales and lender failures, adds none."""
    from abm.model import AIComputeCreditModel

    model = AIComputeCreditModel(abm.load_scenario("correlated_crash"), rng=1, months=18)
    before = set(vars(model))
    compute_before = set(vars(model.compute))
    model.run()
    assert (
        model.defaults["miner"] + model.defaults["neocloud"] > 0
    )  # the phases did run their rules
    assert set(vars(model)) - before == set()
    assert set(vars(model.compute)) - compute_before == set()


def test_every_function_named_in_the_architecture_map_exists():
    """docs/ARCHITECTURE.md names ``abm/x.py::name`` or ``abm/x.py::Class.method``; each must exist,
    and so must the module of every ``abm/...py`` it names."""
    import importlib
    import re

    text = (PACKAGE_DIR.parent / "docs" / "ARCHITECTURE.md").read_text()
    refs = re.findall(r"`(abm/[\w/]+\.py)::([\w.]+)`", text)
    assert len(refs) >= 20  # the map's tables name at least this many functions
    missing = []
    for path, name in refs:
        obj = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(f"{path}::{name}")
                break
    for path in set(re.findall(r"`(abm/[\w/]+\.py)", text)):
        if not (PACKAGE_DIR.parent / path).exists():
            missing.append(path)
    assert not missing, f"named in docs/ARCHITECTURE.md but not in the code: {missing}"


def test_every_code_reference_in_the_odd_exists():
    """docs/ODD.md writes code references as ``module::name``; those into ``abm`` must exist (a
    bare file name such as ``debt.py`` must name exactly one module of ``abm``)."""
    import importlib
    import re

    root = PACKAGE_DIR.parent
    text = (root / "docs" / "ODD.md").read_text()
    refs = set(re.findall(r"`((?:abm/)?[\w/]+\.py)::([\w.]+)`", text))
    modules = {p.name: [] for p in PACKAGE_DIR.rglob("*.py")}
    for p in PACKAGE_DIR.rglob("*.py"):
        modules[p.name].append(p)
    checked, missing = 0, []
    for path, name in sorted(refs):
        if path.startswith("tests/"):
            continue
        if path.startswith("abm/"):
            file = root / path
        elif (PACKAGE_DIR / path).is_file():  # a path inside abm, e.g. phases/lenders.py
            file = PACKAGE_DIR / path
        elif len(modules.get(path, [])) == 1:
            file = modules[path][0]
        else:
            missing.append(f"{path} (no single abm module of that name)")
            continue
        dotted = ".".join(file.relative_to(root).with_suffix("").parts)
        obj = importlib.import_module(dotted)
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(f"{path}::{name}")
                break
        checked += 1
    assert checked >= 40
    assert not missing, f"named in docs/ODD.md but not in the code: {missing}"


def _reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_io_does_not_import_the_plotting_package():
    """The writers take the figure function as an argument (``write_run(figure=...)``)."""
    graph = import_graph()
    assert "abm.viz.run_figures" in graph
    reached = _reached(graph, "abm.io")
    assert not [m for m in reached if m.startswith("abm.viz")], sorted(reached)
