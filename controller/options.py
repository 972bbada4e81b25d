"""Options every agent-facing command shares, and turning them into :class:`Targets`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.client import Targets
from controller.errors import UsageError
from controller.inventory import Inventory, resolve
from controller.render import Output
from controller.security import choose_security

__all__ = [
    "DEFAULT_TIMEOUT",
    "CaOpt",
    "CertOpt",
    "HostsOpt",
    "InsecureOpt",
    "InventoryOpt",
    "KeyOpt",
    "OutputOpt",
    "TimeoutOpt",
    "fleet_command",
    "number",
    "targets",
    "targets_for",
]

DEFAULT_TIMEOUT = 5.0  # seconds per call (the default deadline)
_CONN = "Agents and transport"

HostsOpt = Annotated[
    str | None,
    typer.Option("--hosts", help="Agents as HOST:PORT,HOST:PORT,...", rich_help_panel=_CONN),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option("--inventory", "-i", help="TOML inventory of agents.", rich_help_panel=_CONN),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", help="Deadline per call in seconds (default 5).", rich_help_panel=_CONN
    ),
]
CaOpt = Annotated[
    str | None,
    typer.Option("--ca", envvar="IOIN_CA", help="CA certificate (PEM).", rich_help_panel=_CONN),
]
CertOpt = Annotated[
    str | None,
    typer.Option("--cert", envvar="IOIN_CERT", help="Client certificate.", rich_help_panel=_CONN),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", envvar="IOIN_KEY", help="Client private key.", rich_help_panel=_CONN),
]
InsecureOpt = Annotated[
    bool,
    typer.Option(
        "--insecure", envvar="IOIN_INSECURE", help="Plain gRPC (no TLS).", rich_help_panel=_CONN
    ),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]


def targets(
    hosts: str | None,
    inventory: Path | None,
    timeout: float | None,
    *,
    ca: str | None,
    cert: str | None,
    key: str | None,
    insecure: bool,
) -> Targets:
    """Resolve the inventory, the transport security and the deadline (flags over file)."""
    inv = resolve(hosts, inventory)
    return targets_for(inv, timeout, ca=ca, cert=cert, key=key, insecure=insecure)


def targets_for(
    inv: Inventory,
    timeout: float | None,
    *,
    ca: str | None,
    cert: str | None,
    key: str | None,
    insecure: bool,
) -> Targets:
    """Targets for an already resolved inventory."""
    deadline = timeout if timeout is not None else inv.defaults.timeout or DEFAULT_TIMEOUT
    if deadline <= 0:
        raise UsageError(f"--timeout must be positive, got {deadline:g}")
    security = choose_security(insecure=insecure, ca=ca, cert=cert, key=key, defaults=inv.defaults)
    return Targets(inv.hosts, security, deadline)


def number(flag: str, text: str, limit: int = 2**64 - 1) -> int:
    """A number as C writes it (``0x3f8``, ``1016``), checked against ``0..limit``."""
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(f"{flag}: '{text}' is not a number") from None
    if not 0 <= value <= limit:
        raise UsageError(f"{flag}: {text} is out of range 0..{limit:#x}")
    return value


# The shared options, as the parameters :func:`fleet_command` adds to a command.
_SHARED: list[tuple[str, Any, Any]] = [
    ("hosts", HostsOpt, None),
    ("inventory", InventoryOpt, None),
    ("timeout", TimeoutOpt, None),
    ("ca", CaOpt, None),
    ("cert", CertOpt, None),
    ("key", KeyOpt, None),
    ("insecure", InsecureOpt, False),
    ("output", OutputOpt, Output.TABLE),
]


def fleet_command(fn: Callable[..., int]) -> Callable[..., int]:
    """Give a command the options every agent-facing command shares.

    ``fn`` declares its own arguments plus ``t: Targets`` and ``output: Output``; the command
    typer sees has its own arguments and ``--hosts --inventory --timeout --ca --cert --key
    --insecure -o`` instead, resolved into ``t`` here (one place for the shared semantics).
    """
    sig = inspect.signature(fn, eval_str=True)
    own = [p for name, p in sig.parameters.items() if name not in ("t", "output")]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, ann, default in _SHARED
    ]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> int:
        opts = {name: kwargs.pop(name, default) for name, _, default in _SHARED}
        output = opts.pop("output")
        t = targets(opts.pop("hosts"), opts.pop("inventory"), opts.pop("timeout"), **opts)
        return fn(*args, t=t, output=output, **kwargs)

    params = own + shared
    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": int}
    return command
