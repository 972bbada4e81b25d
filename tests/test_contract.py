"""The controller and the aggregator import from the agent only its public contract (DESIGN.md,
"Parts")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The wire code, the hook language (with the error it raises), value objects, the event form and
# its human line, the batch form (how events travel on the bus), the topic scheme, the limits
# every consumer of the bus applies, the certificate identity scheme and the role interceptor
# (which the aggregator installs too).
CONTRACT = {
    "agent.wire",
    "agent.hooks.lang",
    "agent.script",  # the script language: ioinctl eval / explain compile exactly as agents do
    "agent.hooks",
    "agent.errors",
    "agent.model",
    "agent.events",
    "agent.batch",
    "agent.decode_guard",
    "agent.eventline",
    "agent.topics",
    "agent.identity",
    "agent.rpc.roles",
    "agent.rpc.handlers",  # how the interceptors (roles, the aggregator's) wrap a handler
    "agent.sdnotify",  # systemd's notify protocol, which ioinagg's unit speaks too
}


def agent_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent"):
            names = {f"{node.module}.{a.name}" for a in node.names}
            found |= {node.module} if node.module != "agent.hooks" else names
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("agent")}
    return found


@pytest.mark.parametrize("package", ["controller", "aggregator"])
def test_consumers_use_only_the_agent_contract(package: str) -> None:
    crossing = {
        f"{p.relative_to(ROOT)}: {mod}"
        for p in (ROOT / package).rglob("*.py")
        for mod in agent_imports(p)
        if not any(mod == c or mod.startswith(c + ".") for c in CONTRACT - {"agent.hooks"})
    }
    assert not crossing


def test_the_aggregator_and_the_controller_do_not_import_each_other() -> None:
    for package, other in (("aggregator", "controller"), ("controller", "aggregator")):
        for p in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    assert not node.module.startswith(other), f"{p}: {node.module}"


# -- the import graph: no cycles inside a package tree, TYPE_CHECKING and lazy imports counted --


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> set[str]:
    """The modules ``node`` (in ``module``) imports: ``from p import m`` counts as ``p.m`` when
    that is a module, else as ``p``; relative imports resolved."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    subs = {f"{base}.{a.name}" for a in node.names}
    return {s for s in subs if s in known} | ({base} if subs - known else set())


def import_graph(root: str) -> dict[str, set[str]]:
    files = {module_name(p): p for p in (ROOT / root).rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):  # every import, at any depth
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= imported(node, module, path.name == "__init__.py", known)
        graph[module] = {e for e in edges if e in known and e != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse("from . import sibling\nfrom ..model import X\n")
    nodes = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    known = {"agent.pkg.sibling", "agent.model"}
    assert imported(nodes[0], "agent.pkg.mod", False, known) == {"agent.pkg.sibling"}
    assert imported(nodes[1], "agent.pkg.mod", False, known) == {"agent.model"}


def test_no_import_cycle_inside_agent_controller_or_aggregator() -> None:
    found = {root: cycles(import_graph(root)) for root in ("agent", "controller", "aggregator")}
    assert found == {"agent": [], "controller": [], "aggregator": []}


def test_nothing_in_agent_or_aggregator_introspects_bound_methods() -> None:
    """An interface is a Protocol, never found through ``__self__`` (or ``__func__``)."""
    hits = [
        f"{p.relative_to(ROOT)}:{node.lineno}"
        for root in ("agent", "aggregator")
        for p in (ROOT / root).rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if (isinstance(node, ast.Attribute) and node.attr in ("__self__", "__func__"))
        or (isinstance(node, ast.Constant) and node.value in ("__self__", "__func__"))
    ]
    assert not hits
