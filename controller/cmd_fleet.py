"""``ioinctl status``, ``resume HOST BREAK-ID`` and ``vm list|start|stop``.

Like :mod:`controller.cmd_hooks`: parse → ``asyncio.run`` → render, returning the exit code.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from agent.wire import agent_pb2
from controller import views
from controller.client import exit_code
from controller.errors import InventoryError, UsageError
from controller.inventory import Host, Inventory, load_inventory, split_address
from controller.options import (
    CaOpt,
    CertOpt,
    FleetOptions,
    InsecureOpt,
    InventoryOpt,
    KeyOpt,
    OutputOpt,
    TimeoutOpt,
    fleet_command,
    number,
    targets_for,
)
from controller.render import Output, Report
from controller.run import execute, gather

__all__ = ["resume", "status", "vm_app"]

vm_app = typer.Typer(help="VMs of agents whose backend runs its own (kvm).")


@fleet_command()
def status(
    host: Annotated[
        str | None, typer.Argument(help="One agent (name or HOST:PORT): show all of it.")
    ] = None,
    *,
    fleet: FleetOptions,
) -> int:
    """One line per agent (version, backend, hooks, broker, labels); ``status HOST``: detail."""
    request = agent_pb2.GetStatusRequest()
    fn = lambda s, d: s.GetStatus(request, timeout=d)  # noqa: E731
    if host is None:  # at scale the per-host line is the point: every host, failures first
        wide = replace(fleet, wide=fleet.output is Output.TABLE or fleet.wide)
        return execute("status", wide, fn, views.STATUS, idempotent=True)
    t = fleet.targets()
    chosen = [h for h in t.hosts if host in (h.name, h.address)]
    if not chosen:
        raise UsageError(f"status {host}: no such agent among {len(t.hosts)} targets")
    report = Report("status", views.STATUS, fleet.output, detail=views.status_detail)
    return exit_code(gather(replace(t, hosts=chosen[:1]), lambda _: fn, report, idempotent=True))


def resume(
    host: Annotated[str, typer.Argument(help="Agent: its inventory name, or HOST:PORT.")],
    break_id: Annotated[str, typer.Argument(help="Break id (from the breaks topic).")],
    value: Annotated[
        str | None, typer.Option("--value", help="Value the IN reads / the OUT writes (0x.. ok).")
    ] = None,
    inventory: InventoryOpt = None,
    timeout: TimeoutOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = Output.TABLE,
) -> int:
    """Continue a vCPU paused by a ``break`` hook."""
    inv = _one_host(host, inventory)
    t = targets_for(inv, timeout, ca=ca, cert=cert, key=key, insecure=insecure)
    request = agent_pb2.ResumeRequest(break_id=break_id)
    if value is not None:
        request.value = number("--value", value, 0xFFFF_FFFF)
    report = Report("resume", views.RESUME, output)
    fn = lambda s, d: s.Resume(request, timeout=d)  # noqa: E731
    return exit_code(gather(t, lambda _: fn, report, about=("break", break_id)))


@vm_app.command("list")
@fleet_command()
def vm_list(*, fleet: FleetOptions) -> int:
    """List every agent's VMs."""
    request = agent_pb2.ListVmsRequest()
    fn = lambda s, d: s.ListVms(request, timeout=d)  # noqa: E731
    return execute("vm list", fleet, fn, views.VMS, idempotent=True)


@vm_app.command("start")
@fleet_command(rollout=True)
def vm_start(
    name: Annotated[str, typer.Option("--name", help="VM name.")],
    image: Annotated[str, typer.Option("--image", help="Flat binary on the agent's host.")] = "",
    bios: Annotated[str, typer.Option("--bios", help="Firmware image instead of --image.")] = "",
    mode: Annotated[str, typer.Option("--mode", help="real | protected | long.")] = "",
    load_addr: Annotated[str | None, typer.Option("--load-addr", help="Load address.")] = None,
    entry: Annotated[str | None, typer.Option("--entry", help="Entry point.")] = None,
    vcpus: Annotated[int | None, typer.Option("--vcpus", min=1)] = None,
    mem_mib: Annotated[int | None, typer.Option("--mem-mib", min=1)] = None,
    *,
    fleet: FleetOptions,
) -> int:
    """Start a VM on every agent (kvm backend)."""
    if bool(image) == bool(bios):
        raise UsageError("give exactly one of --image and --bios")
    # what is not given is left unset: the agent's VmConfig holds the defaults
    spec = agent_pb2.VmSpec(name=name, image=image, bios=bios, mode=mode)
    spec.vcpus, spec.mem_mib = vcpus or 0, mem_mib or 0
    if load_addr is not None:
        spec.load_addr = number("--load-addr", load_addr)
    if entry is not None:
        spec.entry = number("--entry", entry)
    return execute("vm start", fleet, lambda s, d: s.StartVm(spec, timeout=d), views.VM)


@vm_app.command("stop")
@fleet_command(rollout=True)
def vm_stop(
    vm_id: Annotated[int, typer.Argument(help="VM id.", metavar="ID", min=0)],
    *,
    fleet: FleetOptions,
) -> int:
    """Stop a VM on every agent."""
    ref = agent_pb2.VmRef(id=vm_id)
    fn = lambda s, d: s.StopVm(ref, timeout=d)  # noqa: E731
    return execute("vm stop", fleet, fn, views.VM, about=("vm", str(vm_id)))


def _one_host(host: str, inventory: Path | None) -> Inventory:
    """The inventory entry named ``host`` (by name or address), or ``host`` as an address."""
    if inventory is None:
        try:
            split_address(host)
        except ValueError as e:
            raise UsageError(f"HOST: {e} (or give --inventory to use names)") from None
        return Inventory((Host(host, host),), "HOST")
    inv = load_inventory(inventory)
    found = [h for h in inv.hosts if host in (h.name, h.address)]
    if not found:
        raise InventoryError(str(inventory), host, "no agent with that name or address")
    return Inventory((found[0],), inv.source, inv.defaults)
