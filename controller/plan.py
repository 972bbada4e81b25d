"""What ``apply`` changes on one agent: pure planning, then carrying the plan out.

For an agent with labels ``L`` and hooks ``H``, the desired hooks are those of every policy
whose selector matches ``L``, each owned by its policy. Then, hook by hook:

- desired and absent → **create**; desired and present but different (command, options,
  owning policy, or disabled) → **replace**; desired and equal → unchanged;
- present, owned by a policy, and no longer desired → **remove**;
- present without an owner (pushed by hand) → never touched. A desired hook whose id is taken
  by a hand-pushed hook, or one id wanted by two policies, is a :class:`PlanConflict`: the
  agent is left as it is and reported failed.

Equality ignores who applied a hook and when, so a second ``apply`` changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import grpc.aio

from agent.wire import agent_pb2, hooks_pb2
from controller.errors import PlanConflict
from controller.inventory import Host
from controller.paging import all_hooks
from controller.policy import PolicyFile

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = ["Action", "Change", "HostPlan", "Owner", "apply_host", "plan_host"]


class Action(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who runs this ``apply`` and when: stamped on every hook it sets."""

    applied_by: str
    applied_ns: int


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan; ``spec`` is what to set (``None`` for a removal)."""

    action: Action
    hook_id: str
    policy: str
    command: str
    spec: hooks_pb2.HookSpec | None = None

    def json(self) -> dict[str, str]:
        return {
            "hook": self.hook_id,
            "action": str(self.action),
            "policy": self.policy,
            "command": self.command,
        }


@dataclass(frozen=True, slots=True)
class HostPlan:
    """An agent's plan: the changes, how many desired hooks already match, and if it was run."""

    changes: tuple[Change, ...]
    unchanged: int
    applied: bool = False

    @property
    def converged(self) -> bool:
        return self.applied or not self.changes


def plan_host(
    policies: PolicyFile,
    labels: Mapping[str, str],
    hooks: Sequence[hooks_pb2.Hook],
    owner: Owner,
) -> HostPlan:
    """The plan for one agent (see the module docstring); ``PlanConflict`` if there is none."""
    desired = _desired(policies, labels, owner)
    present = {h.spec.id: h for h in hooks}
    changes: list[Change] = []
    unchanged = 0
    for hook_id, spec in desired.items():
        have = present.get(hook_id)
        if have is not None and not _owned(have.spec):
            raise PlanConflict(hook_id, spec.owner.policy, "a hook pushed by hand has this id")
        if have is None:
            changes.append(Change(Action.CREATE, hook_id, spec.owner.policy, spec.command, spec))
        elif have.enabled and _same(have.spec, spec):
            unchanged += 1
        else:
            changes.append(Change(Action.REPLACE, hook_id, spec.owner.policy, spec.command, spec))
    for hook_id, have in present.items():
        if _owned(have.spec) and hook_id not in desired:
            policy = have.spec.owner.policy
            changes.append(Change(Action.REMOVE, hook_id, policy, have.spec.command))
    return HostPlan(tuple(changes), unchanged)


async def apply_host(
    stub: AgentAsyncStub,
    deadline: float,
    host: Host,
    policies: PolicyFile,
    owner: Owner,
    *,
    dry_run: bool,
) -> HostPlan:
    """Read the agent's labels and hooks (one GetStatus), plan, and unless ``dry_run`` apply."""
    status = await stub.GetStatus(agent_pb2.GetStatusRequest(), timeout=deadline)
    labels = dict(status.labels) | dict(host.labels)  # the inventory's labels add to the agent's
    hooks: Sequence[hooks_pb2.Hook] = status.hooks
    if status.hooks_omitted:  # the status is bounded: a large hook set comes page by page
        hooks = (await all_hooks(stub, deadline)).hooks
    plan = plan_host(policies, labels, hooks, owner)
    if dry_run:
        return plan
    # The changes touch distinct hook ids: sent together over the one channel (HTTP/2 streams).
    try:
        async with asyncio.TaskGroup() as tg:
            for change in plan.changes:
                tg.create_task(_carry_out(stub, change, deadline))
    except* grpc.aio.AioRpcError as failed:  # the first refusal speaks for the host
        raise failed.exceptions[0] from None
    return replace(plan, applied=True)


async def _carry_out(stub: AgentAsyncStub, change: Change, deadline: float) -> None:
    if change.spec is None:
        await stub.RemoveHook(agent_pb2.HookRef(id=change.hook_id), timeout=deadline)
    else:
        await stub.SetHook(agent_pb2.SetHookRequest(spec=change.spec), timeout=deadline)


def _desired(
    policies: PolicyFile, labels: Mapping[str, str], owner: Owner
) -> dict[str, hooks_pb2.HookSpec]:
    desired: dict[str, hooks_pb2.HookSpec] = {}
    for policy in policies.for_labels(dict(labels)):
        for parsed in policy.hooks:
            if parsed.id in desired:
                other = desired[parsed.id].owner.policy
                raise PlanConflict(parsed.id, policy.name, f"policy '{other}' sets it too")
            spec = hooks_pb2.HookSpec()
            spec.CopyFrom(parsed)
            spec.owner.policy = policy.name
            spec.owner.applied_by = owner.applied_by
            spec.owner.applied_ns = owner.applied_ns
            desired[parsed.id] = spec
    return desired


def _owned(spec: hooks_pb2.HookSpec) -> bool:
    return spec.HasField("owner") and bool(spec.owner.policy)


def _same(have: hooks_pb2.HookSpec, want: hooks_pb2.HookSpec) -> bool:
    """Equal but for who applied the hook and when, and how its command was spelt (``!ioin
    0x3f8`` and ``!ioin   3f8`` are one hook: a reformatted policy file changes nothing)."""
    return _sans_stamp(have) == _sans_stamp(want)


def _sans_stamp(spec: hooks_pb2.HookSpec) -> hooks_pb2.HookSpec:
    copy = hooks_pb2.HookSpec()
    copy.CopyFrom(spec)
    copy.owner.applied_by = ""
    copy.owner.applied_ns = 0
    copy.command = ""
    return copy
