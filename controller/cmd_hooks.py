"""``ioinctl push``, ``explain`` and ``hooks list|rm|enable|disable``.

Each command is parse → ``asyncio.run`` → render, and returns its exit code (0 all hosts ok, 2 some
failed, 1 none ok); errors raised here are turned into exit codes by :func:`controller.cli.main`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from agent.wire import agent_pb2, hooks_pb2
from controller import language, views
from controller.options import FleetOptions, fleet_command
from controller.paging import all_hooks
from controller.render import View, print_json
from controller.run import execute

if TYPE_CHECKING:
    from agent.wire.agent_pb2_grpc import AgentAsyncStub

__all__ = ["disable", "enable", "explain", "hooks_app", "list_hooks", "push", "remove"]

hooks_app = typer.Typer(help="List, remove, enable and disable hooks on agents.")
CommandArg = Annotated[str, typer.Argument(help="Hook command, e.g. '!ioin 0x3f8 core 1'.")]
IdArg = Annotated[str, typer.Argument(help="Hook id.", metavar="ID")]


@fleet_command(rollout=True)
def push(
    command: CommandArg,
    hook_id: Annotated[str | None, typer.Option("--id", help="Hook id (default: derived).")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Set the hook disabled.")] = False,
    *,
    fleet: FleetOptions,
) -> int:
    """Set (create or replace) a hook on every agent; the command is checked here first."""
    spec = language.parse_command(command, hook_id)  # before any option: the one error shown
    request = agent_pb2.SetHookRequest(spec=spec, command=command, disabled=disabled)
    return execute(
        "push",
        fleet,
        lambda s, d: s.SetHook(request, timeout=d),
        views.PUSH,
        idempotent=True,  # hooks are keyed by id: setting one twice is setting it once
        about=("hook", spec.id),
    )


def explain(command: CommandArg) -> int:
    """Print the parsed hook as JSON (exit 0), or why it is refused (stderr, exit 2)."""
    print_json(language.explain(command))
    return 0


@hooks_app.command("list")
@fleet_command()
def list_hooks(*, fleet: FleetOptions) -> int:
    """List every agent's hooks (every page), with who owns each (a policy, or by hand)."""
    return execute("hooks list", fleet, all_hooks, views.HOOKS, idempotent=True)


@hooks_app.command("rm")
@fleet_command(rollout=True)
def remove(hook_id: IdArg, *, fleet: FleetOptions) -> int:
    """Remove a hook from every agent."""
    return _on_hook("hooks rm", fleet, hook_id, _remove, views.hook_view("removed"), False)


@hooks_app.command("enable")
@fleet_command(rollout=True)
def enable(hook_id: IdArg, *, fleet: FleetOptions) -> int:
    """Enable a hook on every agent."""
    rpc: HookRpc = lambda s, ref, d: s.EnableHook(ref, timeout=d)  # noqa: E731
    return _on_hook("hooks enable", fleet, hook_id, rpc, views.hook_view("enabled"), True)


@hooks_app.command("disable")
@fleet_command(rollout=True)
def disable(hook_id: IdArg, *, fleet: FleetOptions) -> int:
    """Disable a hook on every agent (it stays set; its events stop)."""
    rpc: HookRpc = lambda s, ref, d: s.DisableHook(ref, timeout=d)  # noqa: E731
    return _on_hook("hooks disable", fleet, hook_id, rpc, views.hook_view("disabled"), True)


HookRpc = Callable[["AgentAsyncStub", agent_pb2.HookRef, float], Awaitable[hooks_pb2.Hook]]


async def _remove(stub: AgentAsyncStub, ref: agent_pb2.HookRef, deadline: float) -> hooks_pb2.Hook:
    return (await stub.RemoveHook(ref, timeout=deadline)).hook


def _on_hook(
    command: str, fleet: FleetOptions, hook_id: str, rpc: HookRpc, view: View, idempotent: bool
) -> int:
    """One hook RPC on every agent; removing is not retried (a retry would find it gone)."""
    ref = agent_pb2.HookRef(id=hook_id)
    fn = lambda s, d: rpc(s, ref, d)  # noqa: E731
    return execute(command, fleet, fn, view, idempotent=idempotent, about=("hook", hook_id))
