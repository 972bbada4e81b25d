"""Options every agent-facing command shares, and turning them into :class:`Targets`.

Which agents: ``--hosts``, ``--inventory`` or ``--discover`` (the online agents the broker knows;
an inventory given too adds its defaults and its entries' labels), narrowed by ``-l``. How:
transport security, ``--timeout`` per host, ``--deadline`` overall, ``--concurrency``, and for
commands that change agents ``--batch`` / ``--max-fail``. How shown: ``-o``, ``--wide``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.brokerlogin import (
    BrokerLogin,
    MqttCaOpt,
    MqttCertOpt,
    MqttKeyOpt,
    PasswordOpt,
    UsernameOpt,
)
from controller.discovery import discover
from controller.errors import UsageError
from controller.fanout import DEFAULT_CONCURRENCY, Rollout, Share, Targets
from controller.inventory import Defaults, Host, Inventory, load_inventory, parse_hosts
from controller.render import Output
from controller.security import choose_security
from controller.selectors import Selector, parse_selector

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_TIMEOUT",
    "CaOpt",
    "CertOpt",
    "FleetOptions",
    "InsecureOpt",
    "InventoryOpt",
    "KeyOpt",
    "OutputOpt",
    "SelectorOpt",
    "TimeoutOpt",
    "fleet_command",
    "number",
    "targets_for",
]

DEFAULT_TIMEOUT = 5.0  # seconds per host (the default deadline)
DEFAULT_BROKER = "127.0.0.1:1883"
_CONN = "Agents and transport"
_RUN = "Rollout and deadlines"


def _opt(*names: str, help: str, panel: str = _CONN, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


HostsOpt = Annotated[str | None, _opt("--hosts", help="Agents as HOST:PORT,HOST:PORT,...")]
InventoryOpt = Annotated[Path | None, _opt("--inventory", "-i", help="TOML inventory of agents.")]
SelectorOpt = Annotated[
    str | None, _opt("--selector", "-l", help="Label selector: 'role=web,dc!=ams,tier in (a,b)'.")
]
DiscoverOpt = Annotated[
    bool, _opt("--discover", help="Target the online agents the broker knows (retained births).")
]
BrokerOpt = Annotated[
    str | None,
    _opt("--broker", envvar="IOIN_BROKER", help=f"MQTT broker for --discover [{DEFAULT_BROKER}]."),
]
TimeoutOpt = Annotated[
    float | None, _opt("--timeout", help="Deadline per host in seconds, retries included [5].")
]
DeadlineOpt = Annotated[
    float | None, _opt("--deadline", help="Deadline for the whole command (s).", panel=_RUN)
]
ConcurrencyOpt = Annotated[
    int,
    _opt("--concurrency", help="Hosts called at once.", panel=_RUN, min=1),
]
BatchOpt = Annotated[
    str | None, _opt("--batch", help="Roll out N (or N%) hosts at a time.", panel=_RUN)
]
MaxFailOpt = Annotated[
    str | None, _opt("--max-fail", help="Stop once more than N (or N%) hosts failed.", panel=_RUN)
]
CaOpt = Annotated[str | None, _opt("--ca", envvar="IOIN_CA", help="CA certificate (PEM).")]
CertOpt = Annotated[str | None, _opt("--cert", envvar="IOIN_CERT", help="Client certificate.")]
KeyOpt = Annotated[str | None, _opt("--key", envvar="IOIN_KEY", help="Client private key.")]
InsecureOpt = Annotated[
    bool, _opt("--insecure", envvar="IOIN_INSECURE", help="Plain gRPC (no TLS).")
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or jsonl.")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Every host's rows, not groups.")]


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """The shared options as given; :meth:`targets` resolves them (after the command's own)."""

    hosts: str | None = None
    inventory: Path | None = None
    selector: str | None = None
    discover: bool = False
    broker: str | None = None
    timeout: float | None = None
    deadline: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    batch: str | None = None
    max_fail: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    output: Output = Output.TABLE
    wide: bool = False
    username: str | None = None  # the broker's, for --discover
    password: str | None = None
    mqtt_ca: str | None = None
    mqtt_cert: str | None = None
    mqtt_key: str | None = None

    def broker_login(self) -> BrokerLogin:
        return BrokerLogin(
            self.username, self.password, self.mqtt_ca, self.mqtt_cert, self.mqtt_key
        )

    def parsed_selector(self) -> Selector:
        return parse_selector(self.selector or "")

    def targets(self, *, include_offline: bool = False) -> Targets:
        """Resolve hosts, selector, security, deadlines and rollout (flags over the file).

        ``include_offline``: with ``--discover``, also the agents whose will says offline (so
        ``apply`` reports them as not converged instead of forgetting them).
        """
        selector = self.parsed_selector()
        inv = self._inventory(include_offline)
        hosts = [h for h in inv.hosts if selector.matches(h.labels)]
        if not hosts:
            where = f" match selector '{selector}'" if selector.requirements else " were found"
            raise UsageError(f"no agents{where} ({inv.source})")
        t = targets_for(
            Inventory(tuple(hosts), inv.source, inv.defaults),
            self.timeout,
            ca=self.ca,
            cert=self.cert,
            key=self.key,
            insecure=self.insecure,
        )
        if self.deadline is not None and not 0 < self.deadline < math.inf:
            raise UsageError(
                f"--deadline must be a positive number of seconds, got {self.deadline:g}"
            )
        rollout = Rollout(
            batch=Share.parse("--batch", self.batch) if self.batch else None,
            max_fail=Share.parse("--max-fail", self.max_fail) if self.max_fail else None,
        )
        if rollout.batch is not None and rollout.batch.amount == 0:
            raise UsageError("--batch must be at least 1 (or 1%)")
        return Targets(t.hosts, t.security, t.timeout, self.deadline, self.concurrency, rollout)

    def _inventory(self, include_offline: bool) -> Inventory:
        if self.hosts is not None and (self.inventory is not None or self.discover):
            raise UsageError("give --hosts alone, not with --inventory or --discover")
        if self.inventory is None and self.hosts is None and not self.discover:
            raise UsageError(
                "no agents given: use --hosts HOST:PORT,..., --inventory FILE or --discover"
            )
        if self.hosts is not None:
            return parse_hosts(self.hosts)
        inv = load_inventory(self.inventory) if self.inventory is not None else None
        if not self.discover:
            assert inv is not None
            return inv
        return self._discovered(inv, include_offline)

    def _discovered(self, inv: Inventory | None, include_offline: bool) -> Inventory:
        defaults = inv.defaults if inv is not None else Defaults()
        broker = self.broker or defaults.broker or DEFAULT_BROKER
        found = asyncio.run(discover(broker, self.broker_login()))
        extra = {h.name: dict(h.labels) for h in (inv.hosts if inv is not None else ())}
        hosts: list[Host] = []
        for agent in found.agents.values():
            if (agent.online or include_offline) and agent.address:
                hosts.append(agent.host(extra.get(agent.name)))
        hosts.sort(key=lambda h: h.name)
        return Inventory(tuple(hosts), f"discovered on {broker}", defaults)


def targets_for(
    inv: Inventory,
    timeout: float | None,
    *,
    ca: str | None,
    cert: str | None,
    key: str | None,
    insecure: bool,
) -> Targets:
    """Targets for an already resolved inventory (default deadlines, no rollout)."""
    deadline = timeout if timeout is not None else inv.defaults.timeout or DEFAULT_TIMEOUT
    if not 0 < deadline < math.inf:  # NaN fails too
        raise UsageError(f"--timeout must be a positive number of seconds, got {deadline:g}")
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
    ("selector", SelectorOpt, None),
    ("discover", DiscoverOpt, False),
    ("broker", BrokerOpt, None),
    ("timeout", TimeoutOpt, None),
    ("deadline", DeadlineOpt, None),
    ("concurrency", ConcurrencyOpt, DEFAULT_CONCURRENCY),
    ("ca", CaOpt, None),
    ("cert", CertOpt, None),
    ("key", KeyOpt, None),
    ("insecure", InsecureOpt, False),
    ("output", OutputOpt, Output.TABLE),
    ("wide", WideOpt, False),
    ("username", UsernameOpt, None),
    ("password", PasswordOpt, None),
    ("mqtt_ca", MqttCaOpt, None),
    ("mqtt_cert", MqttCertOpt, None),
    ("mqtt_key", MqttKeyOpt, None),
]
_ROLLOUT: list[tuple[str, Any, Any]] = [("batch", BatchOpt, None), ("max_fail", MaxFailOpt, None)]


def fleet_command(*, rollout: bool = False) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Give a command the options every agent-facing command shares (and, with ``rollout``,
    ``--batch`` / ``--max-fail``).

    The command declares its own arguments plus ``fleet: FleetOptions``; typer sees its own
    arguments and the shared options instead, gathered into ``fleet`` here (one place for their
    semantics). The command resolves ``fleet.targets()`` after checking its own arguments, so a
    bad hook or policy is the one error reported, whatever else is wrong.
    """
    extra = _SHARED + (_ROLLOUT if rollout else [])

    def decorate(fn: Callable[..., int]) -> Callable[..., int]:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "fleet"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=a)
            for name, a, default in extra
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> int:
            opts = {name: kwargs.pop(name, default) for name, _, default in extra}
            return fn(*args, fleet=FleetOptions(**opts), **kwargs)

        params = own + shared
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": int}
        return command

    return decorate
