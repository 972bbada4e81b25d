"""The hook language, seen from the controller: parse locally, before any host is contacted.

The parser is the agent's (:mod:`agent.hooks.lang`, part of the public contract); it is imported
at call time so ``ioinctl --help`` and the commands that never parse do not pay for it. Its
``HookSyntaxError`` becomes :class:`~controller.errors.InvalidHook` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.errors import HookSyntaxError
from controller.errors import InvalidHook

if TYPE_CHECKING:
    from agent.wire.hooks_pb2 import HookSpec

__all__ = ["canonical", "explain", "parse_command", "spec_json"]


def parse_command(command: str, hook_id: str | None = None, *, exit_code: int = 1) -> HookSpec:
    """Parse ``command``; a refusal raises ``InvalidHook`` naming the token (with ``exit_code``)."""
    from agent.hooks import lang

    try:
        spec = lang.parse(command, hook_id=hook_id)
    except HookSyntaxError as e:
        message = e.message or str(e)
        if e.token and e.token not in message:
            message = f"{message} (at '{e.token}')"
        raise InvalidHook(message, e.token, exit_code=exit_code) from e
    return spec


def spec_json(spec: HookSpec) -> dict[str, Any]:
    """The hook's JSON form, exactly as ``ioinctl explain`` prints it."""
    from agent.hooks import lang

    return lang.spec_to_json(spec)


def canonical(spec: HookSpec) -> str:
    """The hook's canonical command text (what a table shows when the agent kept no text)."""
    from agent.hooks import lang

    return lang.canonical(spec)


def explain(command: str) -> dict[str, Any]:
    """``ioinctl explain``: the parsed hook as JSON, with the canonical form of its condition and
    script blocks under ``parsed``; a refusal exits 2."""
    from agent.script import canonical as script_canonical
    from agent.script import compile_condition, compile_script

    spec = parse_command(command, exit_code=2)
    doc = spec_json(spec)
    parsed: dict[str, str] = {}
    if spec.condition:
        parsed["condition"] = script_canonical(compile_condition(spec.condition).tree)
    if spec.script:
        parsed["script"] = script_canonical(compile_script(spec.script).tree)
    doc["parsed"] = parsed
    return doc
