"""Agent configuration: a TOML file, then command-line flags on top.

Every problem in a file is collected and reported at once (``ioind check-config FILE``), each
naming its key, e.g. ``mqtt.port: expected an integer, got 'abc'``. See deploy/agent.toml for a
commented example of every key.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from agent.config_rules import range_problems
from agent.errors import ConfigError
from agent.hooks.lang import MAX_COMMAND, MAX_NESTING
from agent.hooks.table import MAX_HOOKS
from agent.model import ID_PATTERN, check_label

__all__ = [
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
    "vm_problems",
]

T = TypeVar("T")


def advertised_address(grpc: GrpcConfig, port: int) -> str:
    """The gRPC address the agent gives in its birth: ``grpc.advertise``, else where it listens
    (with the bound ``port``; a wildcard host becomes this machine's name)."""
    if grpc.advertise:
        return grpc.advertise
    host = grpc.listen.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_host_id() -> str:
    """The machine's hostname made into a valid host id."""
    raw = socket.gethostname().lower().split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in raw).lstrip("._-")
    return (cleaned or "host")[:64]


@dataclass(frozen=True)
class GrpcConfig:
    listen: str = "127.0.0.1:50051"
    advertise: str = ""  # HOST:PORT in the birth (discovery); default: listen's (bound) address
    insecure: bool = False  # plain gRPC only when asked for explicitly
    cert: str = ""
    key: str = ""
    ca: str = ""


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    format: str = "protobuf"  # protobuf | json
    # Chosen by bench/bench_pipeline.py sweeps on this 2-core machine: a flood peaks at 2000
    # events per batch (250: 0.52x, 1000: 0.73x, 4000: 0.97x of 2000's rate), and at 50k events/s
    # p99 latency is 39 ms with 20 ms batches against 77 ms with 50 ms.
    batch_max: int = 2000  # events per EventBatch
    batch_ms: int = 20  # longest an event waits for its batch to fill
    spool_mb: int = 256  # event batches on disk waiting for PUBACK; oldest dropped beyond
    max_inflight: int = 32  # QoS 1 publishes awaiting PUBACK at once
    catchup_rate: float = 200.0  # batches/s while replaying a backlog after an outage
    session_expiry: int = 3600  # s the broker keeps our session after a disconnect
    keepalive: int = 30
    ack_timeout: float = 10.0
    # TLS to the broker (deploy/mosquitto.conf): the CA of the broker's certificate, and the
    # agent's own certificate and key, whose CN the broker takes as username and client id.
    tls: bool = False
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = ""  # HOST:PORT of the Prometheus endpoint; empty = none


@dataclass(frozen=True)
class SimConfig:
    rate: float = 1000.0  # accesses per second, all VMs together
    vms: int = 2
    cores: int = 2
    seed: int = 1
    # port -> weight; IN and OUT both generated, OUT for the ports in `out_ports`
    ports: Mapping[int, float] = field(
        default_factory=lambda: {0x3F8: 4.0, 0x3FD: 4.0, 0x70: 2.0, 0x71: 2.0, 0x60: 1.0, 0x64: 1.0}
    )
    out_fraction: float = 0.25


VM_MODES = ("real", "protected", "long")
VM_MAX_VCPUS = 64
VM_MAX_MEM_MIB = 3072  # RAM stays below the 32-bit PCI hole and the firmware (boot.py)
MIB = 1 << 20


@dataclass(frozen=True)
class VmConfig:
    """One ``[[kvm.vm]]`` table: the one place VM defaults are written (the StartVm RPC and
    ``ioind local`` take theirs from here)."""

    name: str
    image: str = ""
    bios: str = ""
    mode: str = "real"  # real | protected | long
    load_addr: int = 0x1000  # 0 allowed
    entry: int = 0x1000
    vcpus: int = 1
    mem_mib: int = 16


def vm_problems(vm: VmConfig, where: str) -> list[str]:
    """Every problem with ``vm``, each naming its key (``where`` is the prefix, e.g.
    ``kvm.vm[0].``)."""
    problems = []
    if not ID_PATTERN.match(vm.name):
        problems.append(f"{where}name: '{vm.name}' must match [a-z0-9][a-z0-9._-]{{0,63}}")
    if bool(vm.image) == bool(vm.bios):
        what = "both given" if vm.image else "neither given"
        problems.append(f"{where}image: give exactly one of image and bios ({what})")
    if vm.mode not in VM_MODES:
        problems.append(f"{where}mode: one of {', '.join(VM_MODES)}, got '{vm.mode}'")
    if not 1 <= vm.vcpus <= VM_MAX_VCPUS:
        problems.append(f"{where}vcpus: {vm.vcpus} out of range 1..{VM_MAX_VCPUS}")
    if not 1 <= vm.mem_mib <= VM_MAX_MEM_MIB:
        problems.append(f"{where}mem_mib: {vm.mem_mib} out of range 1..{VM_MAX_MEM_MIB}")
    ram = vm.mem_mib * MIB
    if vm.image and not 0 <= vm.load_addr < ram:
        problems.append(
            f"{where}load_addr: {vm.load_addr:#x} outside the guest's RAM (0..{ram:#x})"
        )
    top = min(ram, 1 << 20) if vm.mode == "real" else ram  # real mode reaches the first MiB
    if vm.image and not 0 <= vm.entry < top:
        problems.append(f"{where}entry: {vm.entry:#x} outside 0..{top:#x} ({vm.mode} mode)")
    return problems


@dataclass(frozen=True)
class KvmConfig:
    break_timeout: float = 30.0  # a paused vCPU resumes by itself after this many seconds
    on_fault: str = "stop"  # stop | keep: what to do with a VM whose guest faults
    flood_limit: float = (
        150_000.0  # exits/s (sustained over 2^16 exits) that count as a flood; 0 = off
    )
    vms: tuple[VmConfig, ...] = ()
    fast_path: bool = True  # run vCPUs in the C loop where it can be built (else Python's)


@dataclass(frozen=True)
class TraceConfig:
    tracefs: str = "/sys/kernel/tracing"
    buffer_kib: int = 4096  # per-CPU ring buffer size of our instance


@dataclass(frozen=True)
class LimitsConfig:
    """What one agent accepts at most; beyond each, a refusal naming the limit."""

    max_hooks: int = MAX_HOOKS  # hooks held; one more is RESOURCE_EXHAUSTED
    max_command: int = MAX_COMMAND  # characters of one hook command (scripts included)
    max_nesting: int = MAX_NESTING  # nested braces in a command's blocks
    max_rpcs: int = 256  # unary gRPC calls served at once; more: RESOURCE_EXHAUSTED
    max_streams: int = 64  # server streams (health Watch) at once; more: refused


@dataclass(frozen=True)
class AgentConfig:
    host: str = field(default_factory=default_host_id)
    backend: str = "sim"
    state_dir: str = "/var/lib/ioind"
    hooks: tuple[str, ...] = ()  # commands set at start (before restored state)
    labels: Mapping[str, str] = field(default_factory=dict)  # advertised; `ioinctl -l` selects
    log_level: str = "info"
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    kvm: KvmConfig = field(default_factory=KvmConfig)
    kvm_trace: TraceConfig = field(default_factory=TraceConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    def with_overrides(self, **flags: Any) -> AgentConfig:
        """Apply command-line flags (``None`` means not given); dotted names reach sections."""
        cfg = self
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
