"""The hook language written back: a ``HookSpec`` as its canonical command text (what
:func:`agent.hooks.lang.parse` reads back to the same spec, and what a hook's stable id is
derived from), and as plain JSON values for ``ioinctl explain``.
"""

from __future__ import annotations

from agent.wire import hooks_pb2

__all__ = ["canonical", "spec_to_json"]

_IN, _OUT = hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT
_POST, _ALL = hooks_pb2.STAGE_POST, hooks_pb2.STAGE_ALL
_STAGE_NAMES = {hooks_pb2.STAGE_PRE: "pre", _POST: "post", _ALL: "all"}
_TEXT_BLOCKS = ("condition", "script", "code")  # then `output`, a list


def canonical(spec: hooks_pb2.HookSpec) -> str:
    """The normalized command text: every value in lower-case hex, options in a fixed order,
    defaults left out (``!ioin 3f8 core 1 stage post``). Parsing it gives ``spec`` back."""
    verbs = {_IN: "!ioin", _OUT: "!ioout"}
    if spec.direction not in verbs:
        raise ValueError(f"hook {spec.id!r}: direction must be IN or OUT")
    burst = f" burst {spec.burst:x}" if spec.burst != spec.rate else ""
    blocks = [(name, getattr(spec, name)) for name in _TEXT_BLOCKS]
    blocks.append(("output", ", ".join(spec.output)))
    words = [
        (True, verbs[spec.direction]),
        (spec.HasField("port"), f"{spec.port:x}"),
        (spec.HasField("pid"), f"pid {spec.pid:x}"),
        (spec.HasField("core"), f"core {spec.core:x}"),
        (spec.stage in (_POST, _ALL), f"stage {_STAGE_NAMES.get(spec.stage)}"),
        (spec.short_circuit, "sc on"),
        (not spec.immediate, "imm no"),
        (spec.HasField("buffer"), f"buffer {spec.buffer:x}"),
        (spec.break_, "break"),
        (spec.HasField("set_value"), f"set {spec.set_value:x}"),
        (spec.rate or spec.burst, f"rate {spec.rate:x}{burst}"),
        *((bool(text), f"{name} {{ {_escape(text)} }}") for name, text in blocks),
    ]
    return " ".join(text for present, text in words if present)


def _escape(text: str) -> str:
    """Write block text so it reads back the same: braces stay bare where they pair up (and no
    backslash precedes them), every other brace is escaped."""
    bare: set[int] = set()
    opened: list[int] = []
    for i, char in enumerate(text):
        if char not in "{}" or text[i - 1 : i] == "\\":
            continue
        if char == "{":
            opened.append(i)
        elif opened:
            bare.update((opened.pop(), i))
    return "".join("\\" + c if c in "{}" and i not in bare else c for i, c in enumerate(text))


def spec_to_json(spec: hooks_pb2.HookSpec) -> dict[str, object]:
    """The spec as plain JSON values, for ``ioinctl explain`` (absent numbers are ``None``)."""

    def optional(name: str) -> int | None:
        return getattr(spec, name) if spec.HasField(name) else None  # type: ignore[arg-type]

    return {
        "id": spec.id,
        "direction": {_IN: "in", _OUT: "out"}.get(spec.direction, "unspecified"),
        "port": optional("port"),
        "pid": optional("pid"),
        "core": optional("core"),
        "stage": _STAGE_NAMES.get(spec.stage, "pre"),
        "short_circuit": spec.short_circuit,
        "immediate": spec.immediate,
        "buffer": optional("buffer"),
        "condition": spec.condition,
        "script": spec.script,
        "code": spec.code,
        "output": list(spec.output),
        "break": spec.break_,
        "set_value": optional("set_value"),
        "rate": spec.rate,
        "burst": spec.burst,
        "command": spec.command,
        "canonical": canonical(spec),
    }
