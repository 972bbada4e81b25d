"""``ioinctl push``, ``explain`` and ``hooks list|rm|enable|disable``.

Each command is parse → ``asyncio.run`` → render, and returns its exit code (0 all hosts ok, 2 some
failed, 1 none ok); errors raised here are turned into exit codes by :func:`controller.cli.main`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from agent.wire import agent_pb2, hooks_pb2
from controller import language, views
from controller.client import Targets, fan_out
from controller.options import (
    CaOpt,
    CertOpt,
    HostsOpt,
    InsecureOpt,
    InventoryOpt,
    KeyOpt,
    OutputOpt,
    TimeoutOpt,
    fleet_command,
    targets,
)
from controller.paging import all_hooks
from controller.render import Output, print_json, report

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = ["disable", "enable", "explain", "hooks_app", "list_hooks", "push", "remove"]

hooks_app = typer.Typer(help="List, remove, enable and disable hooks on agents.")
CommandArg = Annotated[str, typer.Argument(help="Hook command, e.g. '!ioin 0x3f8 core 1'.")]
IdArg = Annotated[str, typer.Argument(help="Hook id.", metavar="ID")]


def push(
    command: CommandArg,
    hook_id: Annotated[str | None, typer.Option("--id", help="Hook id (default: derived).")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Set the hook disabled.")] = False,
    hosts: HostsOpt = None,
    inventory: InventoryOpt = None,
    timeout: TimeoutOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = Output.TABLE,
) -> int:
    """Set (create or replace) a hook on every agent; the command is checked here first."""
    # Not @fleet_command: the hook is parsed before the options are resolved, so a bad command
    # is the one error reported, whatever else is wrong.
    spec = language.parse_command(command, hook_id)
    t = targets(hosts, inventory, timeout, ca=ca, cert=cert, key=key, insecure=insecure)
    request = agent_pb2.SetHookRequest(spec=spec, command=command, disabled=disabled)
    results = asyncio.run(fan_out(t, lambda s, d: s.SetHook(request, timeout=d), ("hook", spec.id)))
    return report(results, views.PUSH, output)


def explain(command: CommandArg) -> int:
    """Print the parsed hook as JSON (exit 0), or why it is refused (stderr, exit 2)."""
    print_json(language.explain(command))
    return 0


@hooks_app.command("list")
@fleet_command
def list_hooks(
    *,
    t: Targets,
    output: Output,
) -> int:
    """List every agent's hooks."""
    results = asyncio.run(fan_out(t, all_hooks))
    return report(results, views.HOOKS, output)


@hooks_app.command("rm")
@fleet_command
def remove(
    hook_id: IdArg,
    *,
    t: Targets,
    output: Output,
) -> int:
    """Remove a hook from every agent."""
    return _on_hook(t, hook_id, output, _remove)


@hooks_app.command("enable")
@fleet_command
def enable(
    hook_id: IdArg,
    *,
    t: Targets,
    output: Output,
) -> int:
    """Enable a hook on every agent."""
    return _on_hook(t, hook_id, output, lambda s, ref, d: s.EnableHook(ref, timeout=d))


@hooks_app.command("disable")
@fleet_command
def disable(
    hook_id: IdArg,
    *,
    t: Targets,
    output: Output,
) -> int:
    """Disable a hook on every agent (it stays set; its events stop)."""
    return _on_hook(t, hook_id, output, lambda s, ref, d: s.DisableHook(ref, timeout=d))


HookRpc = Callable[["AgentAsyncStub", agent_pb2.HookRef, float], Awaitable[hooks_pb2.Hook]]


async def _remove(stub: AgentAsyncStub, ref: agent_pb2.HookRef, deadline: float) -> hooks_pb2.Hook:
    return (await stub.RemoveHook(ref, timeout=deadline)).hook


def _on_hook(t: Targets, hook_id: str, output: Output, rpc: HookRpc) -> int:
    ref = agent_pb2.HookRef(id=hook_id)
    results = asyncio.run(fan_out(t, lambda s, d: rpc(s, ref, d), ("hook", hook_id)))
    return report(results, views.HOOK, output)
