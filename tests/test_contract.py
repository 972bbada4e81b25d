"""The controller imports from the agent only its public contract (DESIGN.md, "Parts")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The wire code, the hook language (with the error it raises), value objects, the event form and
# the batch form (how events travel on the bus), the topic scheme, the certificate identity scheme.
CONTRACT = {
    "agent.wire",
    "agent.hooks.lang",
    "agent.hooks",
    "agent.errors",
    "agent.model",
    "agent.events",
    "agent.batch",
    "agent.identity",
    "agent.publish.topics",
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


def test_controller_uses_only_the_agent_contract() -> None:
    crossing = {
        f"{p.relative_to(ROOT)}: {mod}"
        for p in (ROOT / "controller").rglob("*.py")
        for mod in agent_imports(p)
        if not any(mod == c or mod.startswith(c + ".") for c in CONTRACT - {"agent.hooks"})
    }
    assert not crossing
