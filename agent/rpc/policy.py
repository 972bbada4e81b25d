"""The agent's role table: which role each call of ``ioin.v1.Agent`` (and health) needs.

=========== ==========================================================================
any cert    health Check / Watch (a probe: an agent's own pair may ask, for ``ioind health``)
viewer      ListHooks, GetStatus, ListVms
operator    SetHook, RemoveHook, EnableHook, DisableHook of hooks that only observe
admin       the same for hooks that change the guest (:data:`GUEST_EFFECTS`, and scripts
            needing :data:`SCRIPT_EFFECTS`) or other hooks (a script calling
            ``event_enable`` / ``event_disable`` / ``event_clear``), Resume,
            StartVm, StopVm; and any method this table does not name
=========== ==========================================================================

Remove, enable and disable are judged by the hook they name as the agent holds it (an operator
may not disable someone's ``break`` hook either). SetHook is judged by the hook as pushed and by
the hook it would replace (an operator may not overwrite a ``break`` hook with an observing one
of the same id). The command is parsed here; one that does not parse needs only operator, and
the servicer refuses it with INVALID_ARGUMENT naming the token.

A script's ``event_*`` calls act on hooks chosen when it runs (a number can be computed), any
of which may be an admin's: so the hook carrying the script needs admin, as removing or
disabling such a hook does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.errors import HookError
from agent.hooks.lang import canonical
from agent.hooks.service import resolve
from agent.hooks.validate import check_spec
from agent.identity import Role
from agent.model import Capability
from agent.rpc.roles import Need, Policy, table_policy
from agent.script.hook import hook_calls, script_needs
from agent.wire import agent_pb2, hooks_pb2

__all__ = ["GUEST_EFFECTS", "agent_policy", "guest_effects"]

AGENT = "/ioin.v1.Agent/"
HEALTH = "/grpc.health.v1.Health/"

# What makes a hook change the guest, each with the name a refusal gives it; a new option that
# changes the guest is one more line here.
GUEST_EFFECTS: tuple[tuple[str, Callable[[hooks_pb2.HookSpec], bool]], ...] = (
    ("break", lambda s: s.break_),
    ("set", lambda s: s.HasField("set_value")),
    ("sc on", lambda s: s.short_circuit),
    ("code", lambda s: bool(s.code.strip())),  # HyperDbg's raw code block: anything goes
)
# What a condition or script needs (the script compiler's analysis) that changes or reaches
# into the guest: writing registers, event_sc(), pause(), reading or writing guest memory.
SCRIPT_EFFECTS = frozenset(
    {Capability.MODIFY, Capability.SKIP, Capability.BREAK, Capability.MEMORY}
)

_READS = {f"{AGENT}{m}": Role.VIEWER for m in ("ListHooks", "GetStatus", "ListVms")}
_PROBES = {f"{HEALTH}Check", f"{HEALTH}Watch"}
_WRITES = {f"{AGENT}{m}": Role.ADMIN for m in ("Resume", "StartVm", "StopVm")}
_ON_HOOK = {f"{AGENT}{m}" for m in ("RemoveHook", "EnableHook", "DisableHook")}


def guest_effects(spec: hooks_pb2.HookSpec) -> list[str]:
    """The names of what ``spec`` does to the guest beyond observing (empty: it only observes)."""
    return [name for name, does in GUEST_EFFECTS if does(spec)] + _script_effects(spec)


def _script_effects(spec: hooks_pb2.HookSpec) -> list[str]:
    """The script blocks' guest effects, named by the token needing each (``script: pause()``).
    Blocks that do not compile name none: the hook service refuses them with the reason."""
    try:
        needs = script_needs(spec.condition, spec.script)
        changes = hook_calls(spec.condition, spec.script) if needs else []
    except HookError:
        return []
    return [where for cap, where in needs if cap in SCRIPT_EFFECTS] + changes


def agent_policy(held: Callable[[str], hooks_pb2.HookSpec | None]) -> Policy:
    """The agent's policy; ``held(hook_id)`` is the spec the agent holds under that id."""

    by_table = table_policy(_READS, _WRITES)

    def need(method: str, request: Any) -> Need:
        name = method.rsplit("/", 1)[-1]
        if method == f"{AGENT}SetHook":
            spec = _pushed(request) if isinstance(request, agent_pb2.SetHookRequest) else None
            return _for_hook(name, spec, held(spec.id) if spec and spec.id else None)
        if method in _ON_HOOK:
            if not isinstance(request, agent_pb2.HookRef):  # undecodable: refused inside anyway
                return _for_hook(name, None)
            return _for_hook(name, held(request.id), hook_id=request.id)
        if method in _PROBES:
            return Need(Role.VIEWER, name, probe=True)
        return by_table(method, request)

    return need


def _for_hook(
    name: str,
    spec: hooks_pb2.HookSpec | None,
    replaced: hooks_pb2.HookSpec | None = None,
    *,
    hook_id: str = "",
) -> Need:
    """Admin if ``spec`` changes the guest, or if it replaces a hook that does."""
    if spec is None:  # nothing to judge: the call fails anyway (syntax, unknown hook id)
        return Need(Role.OPERATOR, name, mutating=True, hook_id=hook_id)
    effects = guest_effects(spec)
    lost = [e for e in guest_effects(replaced) if e not in effects] if replaced else []
    what = name + (f" with {', '.join(effects)}" if effects else "")
    what += f" over a hook with {', '.join(lost)}" if lost else ""
    role = Role.ADMIN if effects or lost else Role.OPERATOR
    return Need(role, what, mutating=True, hook_id=spec.id or hook_id, command=canonical(spec))


def _pushed(request: agent_pb2.SetHookRequest) -> hooks_pb2.HookSpec | None:
    """The hook a SetHookRequest sets, resolved as the hook service will (``None``: it will
    refuse the request)."""
    try:
        return check_spec(
            resolve(request.command, request.spec if request.HasField("spec") else None)
        )
    except (HookError, ValueError):  # the hook service refuses it, naming the field
        return None
