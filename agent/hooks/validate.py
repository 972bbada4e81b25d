"""The rules every hook obeys, whichever door it comes in by (the contract's one validator).

The parser (:mod:`agent.hooks.lang`) calls :func:`check_combinations` on what it builds; the
agent's hook service calls :func:`check_spec` on every spec it admits (sent as a ``spec``, parsed
from a ``command``, read from the state file or the config), so a hook refused in one form is
refused in every form, with the same message, naming the same token or field.

:func:`check_spec` returns the spec *normalized* the way the parser writes it (stage
``UNSPECIFIED`` is ``PRE``; ``burst`` absent is ``rate``), so the hook the agent answers with is
the hook it keeps and the hook it restores.
"""

from __future__ import annotations

import re

from agent.errors import HookSyntaxError
from agent.model import MAX_PORT, Capability, check_id
from agent.wire import hooks_pb2

__all__ = [
    "BURST_NEEDS_RATE",
    "check_block",
    "check_combinations",
    "check_spec",
    "required_capabilities",
]

_IN, _OUT = hooks_pb2.DIRECTION_IN, hooks_pb2.DIRECTION_OUT
_PRE, _POST, _ALL = hooks_pb2.STAGE_PRE, hooks_pb2.STAGE_POST, hooks_pb2.STAGE_ALL
_STAGE_NAMES = {_PRE: "pre", _POST: "post", _ALL: "all"}

BURST_NEEDS_RATE = "err, 'burst' needs a non-zero 'rate'"


def check_combinations(spec: hooks_pb2.HookSpec) -> None:
    """Refuse options that exclude each other (the parser's rules, for any spec)."""
    if spec.short_circuit and spec.stage in (_POST, _ALL):
        stage = _STAGE_NAMES[spec.stage]
        message = (
            f"err, 'sc on' cannot be used with 'stage {stage}' (a skipped instruction has no post)"
        )
        raise HookSyntaxError(message, "sc")
    if spec.burst and not spec.rate:
        raise HookSyntaxError(BURST_NEEDS_RATE, "burst")


def check_spec(spec: hooks_pb2.HookSpec) -> hooks_pb2.HookSpec:
    """A normalized copy of ``spec``, or :class:`HookSyntaxError` naming the field at fault."""
    try:
        check_id("hook id", spec.id)
    except ValueError as exc:
        raise HookSyntaxError(str(exc), spec.id) from None
    if spec.direction not in (_IN, _OUT):
        raise HookSyntaxError("direction must be IN or OUT", "direction")
    if spec.HasField("port") and spec.port > MAX_PORT:
        raise HookSyntaxError(f"port '{spec.port:#x}' is out of range 0..0xffff", str(spec.port))
    if spec.stage not in (hooks_pb2.STAGE_UNSPECIFIED, *_STAGE_NAMES):
        message = f"err, the specified execution mode (stage) {spec.stage} is invalid; "
        raise HookSyntaxError(message + "choose 'pre', 'post' or 'all'", "stage")
    if any(not name.strip() for name in spec.output):
        raise HookSyntaxError("err, empty name in output", "output")
    _script_needs(spec)  # compiles the blocks: ScriptError if wrong
    out = hooks_pb2.HookSpec()
    out.CopyFrom(spec)
    out.stage = out.stage or _PRE
    check_combinations(out)
    if not out.burst:
        out.burst = out.rate
    return out


def required_capabilities(spec: hooks_pb2.HookSpec) -> list[tuple[Capability, str]]:
    """What a hook needs from the backend, each with the field that needs it."""
    needs = [(Capability.IN if spec.direction == _IN else Capability.OUT, "direction")]
    checks = [
        (spec.HasField("pid"), Capability.PID, "pid"),
        (spec.HasField("core"), Capability.CORE, "core"),
        (spec.stage in (_POST, _ALL), Capability.STAGE_POST, "stage"),
        (spec.HasField("set_value"), Capability.MODIFY, "set"),
        (spec.short_circuit, Capability.SKIP, "sc"),
        (spec.break_, Capability.BREAK, "break"),
    ]
    needs += [(cap, name) for wanted, cap, name in checks if wanted]
    return needs + _script_needs(spec)  # the token needing each one


def _script_needs(spec: hooks_pb2.HookSpec) -> list[tuple[Capability, str]]:
    if not spec.condition and not spec.script:
        return []
    # imported for a hook with blocks only: the compiler (and numpy) cost the controller 50 ms
    from agent.script.hook import script_needs

    return script_needs(spec.condition, spec.script)


def check_block(keyword: str, text: str) -> None:
    """Compile a condition or script block now, so its errors come at SetHook, not at a hit.
    ``text`` is the block untrimmed, so positions count from its first character after ``{``.
    (``code`` blocks are HyperDbg's assembly, which no backend runs: they stay text.) The
    compiler is imported with the first block: a hook without one does not load it."""
    from agent.script import ScriptError, compile_condition, compile_script

    compilers = {"condition": compile_condition, "script": compile_script}
    if keyword not in compilers or not text:
        return
    try:
        compilers[keyword](text)
    except ScriptError as e:
        message = e.message
        if _ASM_BYTES.fullmatch(text):  # HyperDbg's older form: machine code run as the condition
            message = (
                f"'{text.strip()}' is assembly bytes, which HyperDbg once ran as a {keyword}; "
                f"ioin-fleet runs HyperDbg's script language there (e.g. condition {{ @al == 90 }})"
            )
        raise HookSyntaxError(f"{keyword} {{ }}: {message}", e.token) from None


_ASM_BYTES = re.compile(r"\s*([0-9a-fA-F]{2}\s+)+[0-9a-fA-F]{2}\s*")
