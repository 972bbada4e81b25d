"""One :class:`~controller.render.View` per command: what a host's answer looks like."""

from __future__ import annotations

from typing import Any

from agent.wire import agent_pb2, hooks_pb2
from controller import language
from controller.render import Row, View

__all__ = [
    "HOOKS",
    "PUSH",
    "RESUME",
    "STATUS",
    "VM",
    "VMS",
    "hook_json",
    "hook_view",
    "owner_json",
    "status_detail",
]


def owner_json(spec: hooks_pb2.HookSpec) -> dict[str, Any] | None:
    """Who owns a hook (``ioinctl apply``): policy, applied_by, applied_ns; ``None`` if by hand."""
    if not spec.HasField("owner") or not spec.owner.policy:
        return None
    o = spec.owner
    return {"policy": o.policy, "applied_by": o.applied_by, "applied_ns": o.applied_ns}


def hook_json(hook: hooks_pb2.Hook) -> dict[str, Any]:
    """A hook as the agent holds it: id, enabled, hits, created_ns, owner and its spec's JSON."""
    return {
        "id": hook.spec.id,
        "enabled": hook.enabled,
        "hits": hook.hits,
        "created_ns": hook.created_ns,
        "owner": owner_json(hook.spec),
        "spec": language.spec_json(hook.spec),
    }


def _owner(spec: hooks_pb2.HookSpec) -> str:
    return f"policy {spec.owner.policy}" if owner_json(spec) else "by hand"


def _command(spec: hooks_pb2.HookSpec) -> str:
    return spec.command or language.canonical(spec)


_HOOK_COLUMNS = ["hook", "enabled", "hits", "owner", "command"]


def _hook_row(hook: hooks_pb2.Hook) -> Row:
    return [hook.spec.id, hook.enabled, hook.hits, _owner(hook.spec), _command(hook.spec)]


def _action(r: agent_pb2.SetHookResponse) -> str:
    return "created" if r.created else "unchanged" if r.unchanged else "replaced"


PUSH = View(
    columns=["hook", "action", "enabled"],
    rows=lambda r: [[r.hook.spec.id, _action(r), r.hook.enabled]],
    fields=lambda r: {"created": r.created, "action": _action(r), "hook": hook_json(r.hook)},
    outcome=_action,
)


def _hook_set(r: agent_pb2.ListHooksResponse) -> str:
    ids = [h.spec.id + ("" if h.enabled else " (disabled)") for h in r.hooks]
    return f"{len(ids)} hooks: {', '.join(ids)}" if ids else "no hooks"


HOOKS = View(
    columns=_HOOK_COLUMNS,
    rows=lambda r: [_hook_row(h) for h in r.hooks],
    fields=lambda r: {"hooks": [hook_json(h) for h in r.hooks]},
    outcome=_hook_set,
    counted=False,
)


def hook_view(done: str) -> View:
    """rm / enable / disable: each answers with the hook (RemoveHookResponse wraps it)."""
    return View(
        columns=_HOOK_COLUMNS,
        rows=lambda h: [_hook_row(h)],
        fields=lambda h: {"hook": hook_json(h)},
        outcome=lambda h: f"hook {h.spec.id} {done}",
    )


def _counters(s: agent_pb2.Status) -> dict[str, int]:
    return {c.name: c.value for c in s.counters}


def _labels(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _status_rows(s: agent_pb2.Status) -> list[Row]:
    return [[s.host, s.version, s.backend, len(s.hooks), s.broker_connected, _labels(s.labels)]]


def status_detail(s: agent_pb2.Status) -> list[tuple[str, str]]:
    """Every field of one agent's status, as (name, value) lines for ``status HOST``."""
    lines = [
        ("host id", s.host),
        ("address", s.address),
        ("labels", _labels(s.labels)),
        ("version", s.version),
        ("backend", s.backend),
        ("capabilities", ", ".join(s.capabilities)),
        ("epoch", s.epoch),
        ("started_ns", str(s.started_ns)),
        ("broker", "connected" if s.broker_connected else "not connected"),
    ]
    lines += [(f"hook {h.spec.id}", f"{_command(h.spec)} [{_owner(h.spec)}]") for h in s.hooks]
    return lines + [(f"counter {k}", str(v)) for k, v in _counters(s).items()]


def _status_json(s: agent_pb2.Status) -> dict[str, Any]:
    return {
        "host_id": s.host,
        "address": s.address,
        "labels": dict(s.labels),
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
    columns=["host id", "version", "backend", "hooks", "broker", "labels"],
    rows=_status_rows,
    fields=_status_json,
    outcome=lambda s: "broker connected" if s.broker_connected else "broker not connected",
    counted=False,
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
    columns=_VM_COLUMNS,
    rows=lambda vm: [_vm_row(vm)],
    fields=lambda vm: {"vm": _vm_json(vm)},
    outcome=lambda vm: f"vm {vm.id} {vm.state}",
)
