"""Fixtures for the ``kvm`` backend tests: real /dev/kvm guests, no mocks.

Tests marked ``kvm`` skip with the reason when /dev/kvm cannot be opened or binutils are missing.
Every VM made through ``make_vm`` is stopped at teardown, and a failing test's report gets a
"guest console" section with what its guests printed (firecracker's microvm fixture does this).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.backends.kvm import fast
from agent.backends.kvm._kvm import Kvm
from agent.backends.kvm.commands import Breaks, install_kick_handler
from agent.backends.kvm.fast import FastLib
from agent.backends.kvm.guests.build import Guest, ToolchainMissing, assemble, build_all
from agent.backends.kvm.machine import Machine
from agent.columns import Block
from agent.config import VmConfig
from agent.errors import KvmError
from agent.events import Event
from agent.hooks.table import HookTable
from agent.notices import Notice
from agent.wire import hooks_pb2

MACHINES = pytest.StashKey[list[Machine]]()


def spec(**fields: Any) -> hooks_pb2.HookSpec:
    """A HookSpec from keyword fields (model enums accepted for direction and stage)."""
    return hooks_pb2.HookSpec(**fields)


def _kvm_problem() -> str:
    try:
        Kvm().close()
    except KvmError as e:
        return f"/dev/kvm unusable: {e}"
    return ""


KVM_PROBLEM = _kvm_problem()


@pytest.fixture(autouse=True)
def _need_kvm(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kvm") and KVM_PROBLEM:
        pytest.skip(KVM_PROBLEM)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    machines = item.stash.get(MACHINES, [])
    if report.failed and machines:
        text = "\n".join(f"[vm {m.id} {m.name}] {line}" for m in machines for line in m.console)
        report.sections.append(("guest console", text or "(no output)"))
    return report


class Collector:
    """A thread-safe EventSink that keeps everything, with waits (vCPU threads call it)."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.notices: list[Notice] = []
        self.block_calls = 0
        self._cond = threading.Condition()

    def all_events(self) -> list[Event]:
        with self._cond:
            return [e for b in self.batches for e in b]

    def events(self, batch: list[Event]) -> None:
        """One call per batch."""
        with self._cond:
            self.batches.append(batch)
            self._cond.notify_all()

    def blocks(self, blocks: list[Block]) -> None:
        """The C loop's columns: kept as one batch of events."""
        self.events([e for b in blocks for e in b.events()])
        with self._cond:
            self.block_calls += 1

    def notice(self, notice: Notice) -> None:
        with self._cond:
            self.notices.append(notice)
            self._cond.notify_all()

    def kinds(self, kind: str) -> list[Mapping[str, object]]:
        with self._cond:
            return [f for k, f in self.notices if k == kind]

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True


@pytest.fixture(scope="session")
def kvm() -> Iterator[Kvm]:
    if KVM_PROBLEM:
        pytest.skip(KVM_PROBLEM)
    install_kick_handler()
    with Kvm() as k:
        yield k


@pytest.fixture(scope="session")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Guest]:
    try:
        return build_all(tmp_path_factory.mktemp("guests"))
    except ToolchainMissing as e:
        pytest.skip(str(e))


@pytest.fixture
def asm(tmp_path: Path) -> Callable[[str, str], Guest]:
    """Assemble an inline guest: ``asm(source, name)``."""

    def build(source: str, name: str = "inline") -> Guest:
        try:
            return assemble(source, name, tmp_path)
        except ToolchainMissing as e:
            pytest.skip(str(e))

    return build


@pytest.fixture
def collector() -> Collector:
    return Collector()


MakeVm = Callable[..., Machine]


def _fast_lib() -> FastLib:
    lib, why = fast.load()
    if lib is None:
        pytest.fail(f"the kvm fast path does not build here: {why}")
    return lib


@pytest.fixture
def make_vm(request: pytest.FixtureRequest, kvm: Kvm, collector: Collector) -> Iterator[MakeVm]:
    """``make_vm(guest, table=None, vm_id=1, start=True, **VmConfig/Machine kwargs)``.

    VMs run the Python vCPU loop, or the C fast path where a test parametrizes this fixture
    with "c-loop" (``pytest.mark.parametrize("make_vm", [...], indirect=True)``).
    """
    lib = _fast_lib() if getattr(request, "param", "python-loop") == "c-loop" else None
    made: list[Machine] = []
    request.node.stash[MACHINES] = made
    breaks = Breaks()

    def make(
        guest: Guest | None = None, *, table: HookTable | None = None, vm_id: int = 1,
        start: bool = True, on_fault: str = "keep", entries: tuple[int, ...] = (),
        break_timeout: float = 30.0, flood_limit: float | None = None, **cfg: Any,
    ) -> Machine:  # fmt: skip
        if guest is not None:
            cfg = {"image": str(guest.path), "mode": guest.mode, "entry": guest.entry, **cfg}
        config = VmConfig(name=cfg.pop("name", f"vm{vm_id}"), **cfg)
        m = Machine(kvm, vm_id, config, table=table, outlet=collector,
                    breaks=breaks, break_timeout=break_timeout, on_fault=on_fault,
                    entries=entries, flood_limit=flood_limit, fast=lib)  # fmt: skip
        made.append(m)
        if start:
            m.start()
        return m

    yield make
    for m in made:
        m.stop()


def wait_state(m: Machine, state: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while m.state != state:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
