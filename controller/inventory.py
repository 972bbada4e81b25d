"""Which agents a command talks to: ``--hosts host:port,...`` or ``--inventory FILE`` (TOML).

An inventory file::

    [defaults]                 # all optional; command-line flags win
    timeout = 5.0              # seconds per call
    insecure = false           # plain gRPC (never the default)
    ca = "pki/ca.pem"          # paths are relative to the inventory file
    cert = "pki/ctl.pem"
    key = "pki/ctl.key"
    broker = "127.0.0.1:1883"  # for `ioinctl watch`
    aggregator = "127.0.0.1:50070"  # for `ioinctl top`, `query`, `hosts --aggregator`

    [[agent]]
    name = "a"                 # optional; the address when absent
    address = "127.0.0.1:50051"
    server_name = "a.fleet"    # optional TLS name when it differs from the address's host
    labels = { role = "web" }  # optional; added to what the agent advertises (`-l` selects)

Every problem names the file and the key (``fleet.toml: agent[1].address: ...``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.errors import InventoryError
from controller.selectors import LABEL_KEY, LABEL_VALUE

__all__ = [
    "Defaults",
    "Host",
    "Inventory",
    "load_inventory",
    "parse_hosts",
    "split_address",
]

_DEFAULT_KEYS: dict[str, type | tuple[type, ...]] = {
    "timeout": (int, float),
    "insecure": bool,
    "broker": str,
    "aggregator": str,
    "ca": str,
    "cert": str,
    "key": str,
}
_AGENT_KEYS = {"name", "address", "server_name", "labels"}


@dataclass(frozen=True, slots=True)
class Host:
    """One agent: ``name`` (shown in every table), its gRPC ``address`` (``host:port``), labels."""

    name: str
    address: str
    server_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Defaults:
    """Settings an inventory file may give; ``None`` where it does not."""

    timeout: float | None = None
    insecure: bool | None = None
    broker: str | None = None
    aggregator: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """The hosts of one command, where they came from, and the file's defaults."""

    hosts: tuple[Host, ...]
    source: str
    defaults: Defaults = field(default_factory=Defaults)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → ``(host, port)``; ``ValueError`` saying what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not host.isprintable() or " " in host:
        raise ValueError(f"'{address}' is not HOST:PORT")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"'{address}': port '{port}' is not in 1..65535")
    return host.removeprefix("[").removesuffix("]"), int(port)


def parse_hosts(text: str) -> Inventory:
    """Hosts from ``--hosts a:1,b:2`` (each host's name is its address)."""
    addresses = [a.strip() for a in text.split(",") if a.strip()]
    if not addresses:
        raise InventoryError("--hosts", "", "no host given")
    hosts = []
    for i, address in enumerate(addresses):
        _check_address("--hosts", f"[{i}]", address)
        hosts.append(Host(name=address, address=address))
    return Inventory(tuple(_unique("--hosts", hosts)), "--hosts")


def load_inventory(path: Path) -> Inventory:
    """Hosts and defaults from a TOML inventory file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InventoryError(str(path), "", f"cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise InventoryError(str(path), "", f"not valid TOML: {e}") from e
    unknown = sorted(set(data) - {"agent", "defaults"})
    if unknown:
        raise InventoryError(str(path), unknown[0], "unknown key (expected [defaults], [[agent]])")
    agents = data.get("agent", [])
    if not isinstance(agents, list) or not agents:
        raise InventoryError(str(path), "agent", "expected one or more [[agent]] tables")
    hosts = [
        _host(str(path), i, dict(entry) if isinstance(entry, dict) else entry)
        for i, entry in enumerate(agents)
    ]
    defaults = _defaults(path, data.get("defaults", {}))
    return Inventory(tuple(_unique(str(path), hosts)), str(path), defaults)


def _host(path: str, i: int, entry: Any) -> Host:
    where = f"agent[{i}]"
    if not isinstance(entry, dict):
        raise InventoryError(path, where, "expected a table")
    unknown = sorted(set(entry) - _AGENT_KEYS)
    if unknown:
        raise InventoryError(path, f"{where}.{unknown[0]}", "unknown key")
    labels = _labels(path, f"{where}.labels", entry.get("labels", {}))
    entry = {k: v for k, v in entry.items() if k != "labels"}
    for key in sorted(entry):
        if not isinstance(entry[key], str):
            got = type(entry[key]).__name__
            raise InventoryError(path, f"{where}.{key}", f"expected a string, got {got}")
    if "address" not in entry:
        raise InventoryError(path, f"{where}.address", "missing")
    _check_address(path, f"{where}.address", entry["address"])
    name = entry.get("name") or entry["address"]
    server_name = entry.get("server_name", "")
    return Host(name=name, address=entry["address"], server_name=server_name, labels=labels)


def _labels(path: str, where: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise InventoryError(path, where, "expected a table of strings")
    for key, value in table.items():
        if not isinstance(value, str):
            raise InventoryError(
                path, f"{where}.{key}", f"expected a string, got {type(value).__name__}"
            )
        if not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(value):
            raise InventoryError(path, f"{where}.{key}", f"not a valid label: {key}={value}")
    return dict(table)


def _defaults(path: Path, table: Any) -> Defaults:
    if not isinstance(table, dict):
        raise InventoryError(str(path), "defaults", "expected a table")
    for key, value in table.items():
        kind = _DEFAULT_KEYS.get(key)
        if kind is None:
            raise InventoryError(str(path), f"defaults.{key}", "unknown key")
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            got = type(value).__name__
            raise InventoryError(str(path), f"defaults.{key}", f"wrong type {got}")
    if "timeout" in table and table["timeout"] <= 0:
        raise InventoryError(str(path), "defaults.timeout", "must be positive")
    for name in ("broker", "aggregator"):
        if name in table:
            _check_address(str(path), f"defaults.{name}", table[name])

    def file(key: str) -> str | None:
        return str(path.parent / table[key]) if key in table else None

    timeout = float(table["timeout"]) if "timeout" in table else None
    return Defaults(
        timeout=timeout,
        insecure=table.get("insecure"),
        broker=table.get("broker"),
        aggregator=table.get("aggregator"),
        ca=file("ca"),
        cert=file("cert"),
        key=file("key"),
    )


def _check_address(path: str, key: str, address: str) -> None:
    try:
        split_address(address)
    except ValueError as e:
        raise InventoryError(path, key, str(e)) from None


def _unique(path: str, hosts: list[Host]) -> list[Host]:
    seen: set[str] = set()
    for host in hosts:
        if host.name in seen:
            raise InventoryError(path, host.name, "host named twice")
        seen.add(host.name)
    return hosts
