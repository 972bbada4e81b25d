"""The agent's configuration as values: one frozen dataclass per section, with every default
written once, here. :mod:`agent.config` reads them from TOML and flags and checks them.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.hooks.lang import MAX_COMMAND, MAX_NESTING
from agent.hooks.table import MAX_HOOKS
from agent.model import ID_PATTERN

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
    "vm_problems",
]


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
