"""Agent configuration: a TOML file, then command-line flags on top.

Every problem in a file is collected and reported at once (``ioind check-config FILE``), each
naming its key, e.g. ``mqtt.port: expected an integer, got 'abc'``. See deploy/agent.toml for a
commented example of every key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from agent.config_rules import range_problems
from agent.config_schema import (
    MIB,
    AgentConfig,
    GrpcConfig,
    KvmConfig,
    LimitsConfig,
    MetricsConfig,
    MqttConfig,
    SimConfig,
    TraceConfig,
    VmConfig,
    advertised_address,
    default_host_id,
    vm_problems,
)
from agent.errors import ConfigError
from agent.model import ID_PATTERN, check_label

__all__ = [
    "MIB",
    "AgentConfig",
    "GrpcConfig",
    "KvmConfig",
    "LimitsConfig",
    "MetricsConfig",
    "MqttConfig",
    "SimConfig",
    "TraceConfig",
    "VmConfig",
    "advertised_address",
    "default_host_id",
    "load_config",
    "parse_config",
    "vm_problems",
    "with_overrides",
]

T = TypeVar("T")


# -- loading -------------------------------------------------------------------------------


class _Reader:
    """Typed reads from a TOML table that record problems instead of raising."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def section(self, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problems.append(f"{name}: expected a table, got {type(value).__name__}")
            return {}
        return value

    def build(self, cls: type[T], data: Mapping[str, Any], prefix: str, **special: Any) -> T:
        kwargs: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        for key, value in data.items():
            where = f"{prefix}{key}"
            if key in special:
                continue
            if key not in known:
                self.problems.append(f"{where}: unknown key")
                continue
            default = _default(known[key])
            checked = self._typed(where, value, default)
            if checked is not _BAD:
                kwargs[key] = checked
        kwargs.update({k: v for k, v in special.items() if v is not None})
        return cls(**kwargs)

    def _typed(self, where: str, value: Any, default: Any) -> Any:
        expect: tuple[type, ...]
        if isinstance(default, bool):
            expect, label = (bool,), "a boolean"
        elif isinstance(default, int):
            expect, label = (int,), "an integer"
        elif isinstance(default, float):
            expect, label = (int, float), "a number"
        elif isinstance(default, str):
            expect, label = (str,), "a string"
        else:
            return value
        # bool is an int in Python, but `port = true` is not a port
        if (isinstance(value, bool) and bool not in expect) or not isinstance(value, expect):
            self.problems.append(f"{where}: expected {label}, got {value!r}")
            return _BAD
        return float(value) if float in expect else value


_BAD = object()


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return ""  # required fields (VmConfig.name) are strings


def _labels(r: _Reader, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        r.problems.append('labels: expected a table of key = "value"')
        return {}
    labels: dict[str, str] = {}
    for key, value in raw.items():
        try:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {type(value).__name__}")
            check_label(key, value)
        except ValueError as exc:
            r.problems.append(f"labels.{key}: {exc}")
            continue
        labels[key] = value
    return labels


def _sim_ports(r: _Reader, raw: Any) -> dict[int, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        r.problems.append("sim.ports: expected a table of port = weight")
        return None
    ports: dict[int, float] = {}
    for key, weight in raw.items():
        try:
            port = int(key, 0)
        except ValueError:
            r.problems.append(f"sim.ports.{key}: not a port number")
            continue
        if not 0 <= port <= 0xFFFF:
            r.problems.append(f"sim.ports.{key}: port out of range 0..0xffff")
        elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            r.problems.append(f"sim.ports.{key}: weight must be a positive number, got {weight!r}")
        else:
            ports[port] = float(weight)
    return ports


def _vms(r: _Reader, raw: Any) -> tuple[VmConfig, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        r.problems.append("kvm.vm: expected an array of tables ([[kvm.vm]])")
        return None
    vms = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        where = f"kvm.vm[{i}]."
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            r.problems.append(f"{where}name: required string")
            continue
        vm = r.build(VmConfig, item, where, name=item["name"])
        r.problems.extend(vm_problems(vm, where))
        if vm.name in names:
            r.problems.append(f"{where}name: '{vm.name}' is already the name of another vm")
        names.add(vm.name)
        vms.append(vm)
    return tuple(vms)


def parse_config(data: Mapping[str, Any]) -> AgentConfig:
    """Build a config from parsed TOML, raising ``ConfigError`` with every problem found."""
    problems: list[str] = []
    r = _Reader(problems)
    sections = {
        "grpc": r.build(GrpcConfig, r.section(data, "grpc"), "grpc."),
        "mqtt": r.build(MqttConfig, r.section(data, "mqtt"), "mqtt."),
        "metrics": r.build(MetricsConfig, r.section(data, "metrics"), "metrics."),
        "kvm_trace": r.build(TraceConfig, r.section(data, "kvm_trace"), "kvm_trace."),
        "limits": r.build(LimitsConfig, r.section(data, "limits"), "limits."),
    }
    sim = r.section(data, "sim")
    sections["sim"] = r.build(SimConfig, sim, "sim.", ports=_sim_ports(r, sim.get("ports")))
    kvm = r.section(data, "kvm")
    sections["kvm"] = r.build(KvmConfig, kvm, "kvm.", vm=None, vms=_vms(r, kvm.get("vm")))
    top = {k: v for k, v in data.items() if k not in (*sections, "hooks", "labels")}
    sections["labels"] = _labels(r, data.get("labels", {}))
    hooks = data.get("hooks", [])
    if not isinstance(hooks, list) or not all(isinstance(h, str) for h in hooks):
        problems.append("hooks: expected an array of command strings")
        hooks = []
    cfg = r.build(AgentConfig, top, "", hooks=tuple(hooks), **sections)
    problems.extend(_check(cfg))
    if problems:
        raise ConfigError(problems)
    return cfg


_CHECKS: list[tuple[str, Callable[[AgentConfig], bool], str]] = [
    ("host", lambda c: bool(ID_PATTERN.match(c.host)), "must match [a-z0-9][a-z0-9._-]{0,63}"),
    ("backend", lambda c: c.backend in ("sim", "kvm", "kvm-trace"), "one of sim, kvm, kvm-trace"),
    ("log_level", lambda c: c.log_level in ("debug", "info", "warning", "error"), "bad level"),
    ("mqtt.port", lambda c: 0 < c.mqtt.port < 65536, "out of range 1..65535"),
    ("mqtt.format", lambda c: c.mqtt.format in ("protobuf", "json"), "one of protobuf, json"),
    ("mqtt.batch_max", lambda c: 1 <= c.mqtt.batch_max <= 100_000, "out of range 1..100000"),
    ("mqtt.batch_ms", lambda c: 1 <= c.mqtt.batch_ms <= 60_000, "out of range 1..60000"),
    ("mqtt.spool_mb", lambda c: 1 <= c.mqtt.spool_mb <= 1_000_000, "out of range 1..1000000"),
    ("mqtt.max_inflight", lambda c: 1 <= c.mqtt.max_inflight <= 65535, "out of range 1..65535"),
    ("mqtt.cafile", lambda c: not c.mqtt.tls or bool(c.mqtt.cafile), "required with tls = true"),
    (
        "mqtt.tls",
        lambda c: c.mqtt.tls or not (c.mqtt.cafile or c.mqtt.certfile or c.mqtt.keyfile),
        "cafile, certfile and keyfile are used only with tls = true",
    ),
    (
        "mqtt.keyfile",
        lambda c: bool(c.mqtt.certfile) == bool(c.mqtt.keyfile),
        "certfile and keyfile go together",
    ),
    (
        "grpc.advertise",
        lambda c: c.grpc.advertise == "" or c.grpc.advertise.rpartition(":")[2].isdigit(),
        "expected HOST:PORT, or empty to advertise the listening address",
    ),
    (
        "grpc",
        lambda c: c.grpc.insecure or bool(c.grpc.cert and c.grpc.key and c.grpc.ca),
        "set cert, key and ca for mutual TLS, or insecure = true for plain gRPC",
    ),
    ("sim.vms", lambda c: 1 <= c.sim.vms <= 4096, "out of range 1..4096"),
    ("sim.cores", lambda c: 1 <= c.sim.cores <= 1024, "out of range 1..1024"),
    ("sim.ports", lambda c: bool(c.sim.ports), "needs at least one port"),
    ("sim.out_fraction", lambda c: 0.0 <= c.sim.out_fraction <= 1.0, "out of range 0..1"),
    ("kvm.on_fault", lambda c: c.kvm.on_fault in ("stop", "keep"), "one of stop, keep"),
    (
        "kvm_trace.buffer_kib",
        lambda c: 4 <= c.kvm_trace.buffer_kib <= 1 << 20,
        "out of range 4..1048576",
    ),
]


def _check(cfg: AgentConfig) -> list[str]:
    return [f"{key}: {msg}" for key, ok, msg in _CHECKS if not ok(cfg)] + range_problems(cfg)


def load_config(path: str | Path | None) -> AgentConfig:
    """Read a TOML file (or return the defaults for ``None``)."""
    if path is None:
        return AgentConfig()
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        bad = f"byte {exc.start} is {exc.object[exc.start]:#04x}"
        raise ConfigError(f"{p}: not UTF-8 ({bad})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"{p}: not valid TOML: arrays or tables nested too deeply") from None
    return parse_config(data)


def with_overrides(cfg: AgentConfig, **flags: Any) -> AgentConfig:
    """``cfg`` with command-line flags applied (``None`` means not given; ``section__key`` names
    reach into sections), checked as a file is: :class:`ConfigError` lists every problem."""
    for name, value in flags.items():
        if value is None:
            continue
        section, _, key = name.partition("__")
        if key:
            cfg = replace(cfg, **{section: replace(getattr(cfg, section), **{key: value})})
        else:
            cfg = replace(cfg, **{section: value})
    problems = _check(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
