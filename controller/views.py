"""One :class:`~controller.render.View` per command: what a host's answer looks like."""

from __future__ import annotations

from typing import Any

from agent.wire import agent_pb2, hooks_pb2
from controller import language
from controller.render import Row, View

__all__ = ["HOOK", "HOOKS", "PUSH", "RESUME", "STATUS", "VM", "VMS", "hook_json"]


def hook_json(hook: hooks_pb2.Hook) -> dict[str, Any]:
    """A hook as the agent holds it: id, enabled, hits, created_ns and its spec's JSON."""
    return {
        "id": hook.spec.id,
        "enabled": hook.enabled,
        "hits": hook.hits,
        "created_ns": hook.created_ns,
        "spec": language.spec_json(hook.spec),
    }


def _command(spec: hooks_pb2.HookSpec) -> str:
    return spec.command or language.canonical(spec)


def _hook_row(hook: hooks_pb2.Hook) -> Row:
    return [hook.spec.id, hook.enabled, hook.hits, _command(hook.spec)]


def _push_rows(r: agent_pb2.SetHookResponse) -> list[Row]:
    return [[r.hook.spec.id, "created" if r.created else "replaced", r.hook.enabled]]


PUSH = View(
    columns=["hook", "action", "enabled"],
    rows=_push_rows,
    fields=lambda r: {"created": r.created, "hook": hook_json(r.hook)},
)

HOOKS = View(
    columns=["hook", "enabled", "hits", "command"],
    rows=lambda r: [_hook_row(h) for h in r.hooks],
    fields=lambda r: {"hooks": [hook_json(h) for h in r.hooks]},
)

# rm / enable / disable answer with the hook (RemoveHookResponse wraps it).
HOOK = View(
    columns=["hook", "enabled", "hits", "command"],
    rows=lambda h: [_hook_row(h)],
    fields=lambda h: {"hook": hook_json(h)},
)


def _counters(s: agent_pb2.Status) -> dict[str, int]:
    return {c.name: c.value for c in s.counters}


def _status_rows(s: agent_pb2.Status) -> list[Row]:
    counters = " ".join(f"{k}={v}" for k, v in _counters(s).items())
    caps = ",".join(s.capabilities)
    return [[s.host, s.version, s.backend, caps, len(s.hooks), s.broker_connected, counters]]


def _status_json(s: agent_pb2.Status) -> dict[str, Any]:
    return {
        "host_id": s.host,
        "version": s.version,
        "backend": s.backend,
        "capabilities": list(s.capabilities),
        "hooks": [hook_json(h) for h in s.hooks],
        "counters": _counters(s),
        "epoch": s.epoch,
        "started_ns": s.started_ns,
        "broker_connected": s.broker_connected,
    }


STATUS = View(
    columns=["host id", "version", "backend", "capabilities", "hooks", "broker", "counters"],
    rows=_status_rows,
    fields=_status_json,
)

RESUME = View(
    columns=["break", "resumed"],
    rows=lambda r: [[r.break_id, r.resumed]],
    fields=lambda r: {"break_id": r.break_id, "resumed": r.resumed},
)


def _vm_row(vm: agent_pb2.VmInfo) -> Row:
    return [vm.id, vm.name, vm.state, vm.vcpus, vm.exits, vm.reason]


def _vm_json(vm: agent_pb2.VmInfo) -> dict[str, Any]:
    keys = ("id", "name", "state", "vcpus", "reason", "exits")
    return {k: getattr(vm, k) for k in keys}


_VM_COLUMNS = ["vm", "name", "state", "vcpus", "exits", "reason"]
VMS = View(
    columns=_VM_COLUMNS,
    rows=lambda r: [_vm_row(vm) for vm in r.vms],
    fields=lambda r: {"vms": [_vm_json(vm) for vm in r.vms]},
)
VM = View(
    columns=_VM_COLUMNS, rows=lambda vm: [_vm_row(vm)], fields=lambda vm: {"vm": _vm_json(vm)}
)
