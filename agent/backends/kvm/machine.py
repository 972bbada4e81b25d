"""A VM of the ``kvm`` backend: its KVM fds, memory, port bus, PC devices and vCPU threads.

A :class:`Machine` is built from a :class:`~agent.config.VmConfig` (flat image or firmware), then
``start()``-ed and ``stop()``-ed once. Guest faults go through :meth:`Machine.fault`, which
announces them (a ``vm-fault`` / ``vm-halted`` notice, once per vCPU and kind) and applies the
configured policy: ``stop`` ends the whole VM (a halted vCPU ends alone), ``keep`` leaves the rest
running (unmapped reads then return all ones). Triple faults always end their vCPU.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from agent.backends.kvm import boot
from agent.backends.kvm._kvm import Kvm, Vcpu, Vm
from agent.backends.kvm.bus import PortBus
from agent.backends.kvm.commands import Breaks, Interrupt, Stop, VcpuState
from agent.backends.kvm.context import VcpuContext
from agent.backends.kvm.devices import PcDevices, attach_pc_devices
from agent.backends.kvm.devices.pic import Ticker
from agent.backends.kvm.fast import FastLib, FastPath
from agent.backends.kvm.insns import InsnCache
from agent.backends.kvm.memory import GuestMemory
from agent.backends.kvm.runner import VcpuRunner
from agent.config import MIB, VmConfig, vm_problems
from agent.errors import ConfigError
from agent.hooks.table import HookTable
from agent.notices import Notice, NoticeKind
from agent.sink import EventSink
from agent.wire import agent_pb2

__all__ = ["Machine"]

STOP_TIMEOUT = 1.0  # seconds the vCPU threads get to end
CONSOLE_KEEP = 1000  # console lines kept per VM (tests and failure reports read them)


class Machine:
    """One VM; ``vm_id`` is what a hook's ``pid`` selects, vCPU indexes what ``core`` selects."""

    def __init__(
        self,
        kvm: Kvm,
        vm_id: int,
        config: VmConfig,
        *,
        table: HookTable | None,
        outlet: EventSink,
        breaks: Breaks | None = None,
        break_timeout: float = 30.0,
        on_fault: str = "stop",
        entries: tuple[int, ...] = (),
        flood_limit: float | None = None,
        fast: FastLib | None = None,
    ) -> None:
        problems = vm_problems(config, f"vm '{config.name}': ")
        if problems:
            raise ConfigError(problems)
        self.id, self.name, self.config = vm_id, config.name, config
        self.outlet = outlet
        self.policy = on_fault
        self.console: deque[str] = deque(maxlen=CONSOLE_KEEP)
        self.reason = ""
        self.stopped = False
        self._reported: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self.vm: Vm = kvm.create_vm()
        self.memory = GuestMemory(self.vm)
        self.bus = PortBus()
        try:
            self.vcpus = self._build(kvm, config, entries)
        except BaseException:
            self._close()
            raise
        n = len(self.vcpus)
        self.devices: PcDevices = attach_pc_devices(
            self.bus, self._console, config.mem_mib * MIB, n
        )
        self.breaks = Breaks() if breaks is None else breaks
        self.insns = InsnCache(self.memory)
        self.runners = []
        for v in self.vcpus:
            ctx = VcpuContext(
                v, bus=self.bus, memory=self.memory, insns=self.insns, table=table, sink=outlet,
                breaks=self.breaks, vm_id=vm_id, vm_name=self.name, break_timeout=break_timeout,
                on_fault=self.fault, flood_limit=flood_limit,
            )  # fmt: skip
            if fast is not None:
                ctx.fast = FastPath(fast, v.fd, v.run_map, self.bus, v.sync_bits)
            self.runners.append(VcpuRunner(ctx, name=f"vcpu-{vm_id}.{v.index}"))
        self.ticker: Ticker | None = None
        if config.bios:  # firmware waits for timer ticks (IRQ 0) to time out its prompts
            deliver = lambda: self.runners[0].send(Interrupt())  # noqa: E731
            self.ticker = Ticker(self.devices.pic, self.devices.pit, deliver, f"pit-{vm_id}")

    def _build(self, kvm: Kvm, cfg: VmConfig, entries: tuple[int, ...]) -> list[Vcpu]:
        mem = cfg.mem_mib * MIB
        if cfg.bios:
            boot.load_firmware(self.memory, cfg.bios, mem)
            layout = None
            count = 1  # no local APIC to start application processors with
        else:
            try:
                image = Path(cfg.image).read_bytes()
            except OSError as e:
                raise ConfigError(
                    f"vm '{cfg.name}': cannot read {cfg.image}: {e.strerror}"
                ) from None
            layout = boot.load_flat(self.memory, image, cfg.load_addr, mem)
            count = cfg.vcpus
        vcpus = []
        for i in range(count):
            vcpu = self.vm.create_vcpu(i)
            vcpus.append(vcpu)
            vcpu.set_cpuid(boot.cpuid_for(kvm, i))
            if layout is not None:
                entry = entries[i] if i < len(entries) else cfg.entry
                boot.setup_vcpu(vcpu, cfg.mode, entry, layout, cfg.load_addr)
        return vcpus

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.ticker is not None:
            self.runners[0].ctx.pic = self.devices.pic
            self.ticker.start()
        for runner in self.runners:
            runner.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop every vCPU thread and close the VM; False if a thread did not end in time."""
        self.stopped = True
        if self.ticker is not None:
            self.ticker.stop()
        for runner in self.runners:
            runner.send(Stop())
        ended = all(runner.join(timeout) for runner in self.runners)
        self.devices.flush()
        if ended:
            self._close()
        return ended

    def _close(self) -> None:
        for vcpu in getattr(self, "vcpus", []):
            vcpu.close()
        self.vm.close()
        self.memory.close()

    # -- guest output and faults (called from vCPU threads) ----------------------------------

    def _console(self, device: str, line: str) -> None:
        self.console.append(line)
        fields: dict[str, object] = {"vm": self.id, "vm_name": self.name, "text": line}
        self.outlet.notice(Notice(NoticeKind.CONSOLE, {**fields, "device": device}))

    def fault(self, vcpu: VcpuContext, kind: str, detail: str) -> bool:
        """Announce a guest fault once per vCPU and kind; True to keep the vCPU running."""
        keep = self.policy == "keep"
        if kind == "triple-fault" or kind == "vm-exit" or kind == "backend-error":
            keep = False
        with self._lock:
            first = (vcpu.index, kind) not in self._reported
            self._reported.add((vcpu.index, kind))
            if not keep and kind != "halted":
                self.reason = self.reason or detail
        if first:
            notice = NoticeKind.VM_HALTED if kind == "halted" else NoticeKind.VM_FAULT
            self.outlet.notice(Notice(notice, {
                "vm": self.id, "vm_name": self.name, "vcpu": vcpu.index, "fault": kind,
                "detail": detail, "action": "kept" if keep else "stopped",
            }))  # fmt: skip
        if not keep and kind != "halted" and self.policy == "stop":
            for other in self.runners:
                if other.ctx is not vcpu:
                    other.send(Stop())
        return keep

    # -- views -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        states = {r.state for r in self.runners}
        if VcpuState.FAILED in states or (self.reason and self.policy == "stop"):
            return "failed"
        if self.stopped:
            return "stopped"
        if VcpuState.HALTED in states and states <= {VcpuState.HALTED, VcpuState.STOPPED}:
            return "halted"
        if VcpuState.PAUSED in states:
            return "paused"
        return "running"

    @property
    def exits(self) -> int:
        return sum(r.exits for r in self.runners)

    def info(self) -> agent_pb2.VmInfo:
        return agent_pb2.VmInfo(
            id=self.id, name=self.name, state=self.state, vcpus=len(self.runners),
            reason=self.reason, exits=self.exits,
        )  # fmt: skip
