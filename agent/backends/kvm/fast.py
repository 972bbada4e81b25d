"""The C fast path of the vCPU loop (``fastpath.c``): build, load, and the Python half.

``fastpath.c`` runs ``KVM_RUN`` without the GIL and answers, by itself, the exits that need no
Python — open-bus ports, and single IN/OUT on open-bus ports whose hooks only observe, recorded
in a ring of columns (see its header). This module builds it with the system C compiler into
``_fastpath.so`` next to the source (or a cache directory if that is not writable), loads it with
ctypes, and gives a vCPU thread a :class:`FastPath`: the shared state, the port plan, the
instruction cache, and :meth:`FastPath.blocks`, which turns the ring into per-hook
:class:`~agent.columns.Block` columns without creating an object per event.

Where no compiler is present, :func:`load` returns None with the reason and the backend runs the
pure Python loop (same semantics; slower).
"""

from __future__ import annotations

import array
import ctypes
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from agent.backends.kvm import _sys as S
from agent.backends.kvm import abi
from agent.backends.kvm.abi import (
    INSN_SLOTS,
    NREGS,
    P_COND,
    P_HOOKED,
    P_OBSERVE,
    P_OPEN,
    P_SLOW,
    Fast,
    Insn_,
    Plan,
)  # fmt: skip
from agent.backends.kvm.bus import PortBus
from agent.backends.kvm.decode import Insn
from agent.columns import F_OUT, F_POST, F_REGS, F_RIP, Block
from agent.script.hit import filter_block

__all__ = ["FastLib", "FastPath", "build", "load"]

SOURCE = Path(__file__).resolve().parent / "fastpath.c"
LIBRARY = SOURCE.with_name("_fastpath.so")
RING = 2048  # accesses per ring (the vCPU thread's FLUSH_EVENTS)
QUIET_EXITS = 4096  # exits without a hooked one before registers stop being synced
TICK_MASK = 0xFFF  # Python sees the loop every 4096 exits at least
FLUSH_NS = 5_000_000  # the longest an access waits in the ring while exits keep coming


class FastLib:
    """The loaded library."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))  # CDLL: calls release the GIL
        abi.check(lib, path.name)
        self.run: Callable[[ctypes.c_void_p | int], int] = lib.ioin_run
        lib.ioin_run.argtypes = [ctypes.c_void_p]
        lib.ioin_run.restype = ctypes.c_int
        # the instruction cache's slot of (rip, port): C's own hash, not a Python copy of it
        self.insn_slot: Callable[[int, int], int] = lib.ioin_insn_slot
        lib.ioin_insn_slot.argtypes = [ctypes.c_uint64, ctypes.c_uint32]
        lib.ioin_insn_slot.restype = ctypes.c_uint32
        self.path = path


def build(out: Path = LIBRARY) -> Path:
    """Compile ``fastpath.c`` into ``out`` (``RuntimeError`` with the compiler's words)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) to build the kvm fast path (apt install gcc)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    argv = [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(tmp)]
    try:
        done = subprocess.run([*argv, str(SOURCE)], capture_output=True, text=True, check=False)
    except OSError as e:
        raise RuntimeError(f"cannot run the C compiler {cc}: {e.strerror}") from None
    if done.returncode:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"building the kvm fast path failed:\n{done.stderr.strip()}")
    tmp.replace(out)  # atomic: a concurrent loader sees the old or the new library
    return out


_loaded: FastLib | None = None
_reason = ""
_lock = threading.Lock()


def _candidates() -> list[Path]:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ioin-fleet"
    return [LIBRARY, cache / LIBRARY.name]


def load() -> tuple[FastLib | None, str]:
    """The fast path library, built first if missing or older than its source; or
    (None, why not). Loaded once per process."""
    global _loaded, _reason
    with _lock:
        if _loaded is not None or _reason:
            return _loaded, _reason
        errors = []
        for path in _candidates():
            try:
                if not path.exists() or path.stat().st_mtime < SOURCE.stat().st_mtime:
                    build(path)
                _loaded = FastLib(path)
                return _loaded, ""
            except (OSError, RuntimeError) as e:
                errors.append(f"{path}: {e}")
        _reason = "; ".join(errors)
        return None, _reason


class FastPath:
    """One vCPU's side of the C loop: state, port plan, instruction cache, ring."""

    def __init__(self, lib: FastLib, fd: int, run_map: object, bus: PortBus, sync: int) -> None:
        self.lib = lib
        self.bus = bus
        self.state = st = Fast()
        self._keep: list[object] = []  # buffers the C side points into
        st.fd, st.cap = fd, RING
        st.run = ctypes.addressof(ctypes.c_char.from_buffer(run_map))  # type: ignore[arg-type]
        self.plan = (ctypes.c_uint8 * (2 << 16))()
        self.conds = (ctypes.c_void_p * (2 << 16))()  # P_COND ports' condition programs
        self._programs: dict[tuple[int, ...], ctypes.Array[ctypes.c_uint64]] = {}
        self.base = bytes(2 << 16)  # the plan with no hooks (see rebase)
        self.insns = (Insn_ * INSN_SLOTS)()
        self.ts = (ctypes.c_uint64 * RING)()
        self.rip = (ctypes.c_uint64 * RING)()
        self.regs = (ctypes.c_uint64 * (RING * NREGS))()
        self.value = (ctypes.c_uint32 * RING)()
        self.key = (ctypes.c_uint32 * RING)()
        st.plan = ctypes.addressof(self.plan)
        st.conds = ctypes.addressof(self.conds)
        st.ob_reads = _address(bus.open_bus_reads)
        st.ob_writes = _address(bus.open_bus_writes)
        st.insns = ctypes.addressof(self.insns)
        st.ts, st.rip = ctypes.addressof(self.ts), ctypes.addressof(self.rip)
        st.regs = ctypes.addressof(self.regs)
        st.value, st.key = ctypes.addressof(self.value), ctypes.addressof(self.key)
        st.flush_ns = FLUSH_NS
        st.tick_mask = TICK_MASK
        st.quiet_exits = QUIET_EXITS
        st.sync_bits = sync
        self.pointer = ctypes.addressof(st)

    def rebase(self) -> None:
        """Take the bus's devices as they are now (when the vCPU starts): their ports go to
        Python, every other port is open bus."""
        half = bytes(P_SLOW if slot is not None else P_OPEN for slot in self.bus.slots)
        self.base = half + half
        self.replan({}, set())

    def run(self) -> int:
        """Enter the guest until an exit needs Python: R_SLOW, R_FLUSH, R_TICK or R_ERRNO."""
        return self.lib.run(self.pointer)

    # -- the plan ----------------------------------------------------------------------------

    def replan(self, plans: dict[int, Plan], lazy: set[int]) -> None:
        """Install the plan for a new hook table: ``plans`` (``port | is_in << 16`` → Plan) for
        the hooked ports computed now, ``lazy`` the directions (1: IN, 0: OUT) where every port
        is hooked (``!ioin all``) and each port's plan is worked out on its first exit."""
        plan = bytearray(self.base)
        self._programs.clear()  # this thread runs the C loop: no program is in use meanwhile
        for is_in in lazy:
            half = is_in << 16
            plan[half : half + (1 << 16)] = bytes([P_HOOKED]) * (1 << 16)
        for key, p in plans.items():
            plan[key] = self.classify(key, p)
        ctypes.memmove(self.plan, bytes(plan), len(plan))

    def classify(self, key: int, plan: Plan) -> int:
        """The P_* of one (direction, port) given its rules (a P_COND port's program is
        installed here, before its plan byte says so)."""
        port = key & 0xFFFF
        if not plan.rules:
            return self.base[port]
        if self.bus.slots[port] is not None:
            return P_HOOKED
        if plan.simple:
            return P_OBSERVE
        if plan.cond is not None:
            self.conds[key] = ctypes.addressof(self._program(plan.cond.code))
            return P_COND
        return P_HOOKED

    def _program(self, code: tuple[int, ...]) -> ctypes.Array[ctypes.c_uint64]:
        """A condition program in C memory, kept for the life of this vCPU (one per text)."""
        program = self._programs.get(code)
        if program is None:
            program = self._programs[code] = (ctypes.c_uint64 * len(code))(*code)
        return program

    def resolve(self, key: int, plan: Plan) -> None:
        """A lazily planned port's exit was handled: decide its plan byte for next time."""
        self.plan[key] = self.classify(key, plan)

    def planned(self, key: int) -> int:
        return int(self.plan[key])

    # -- instructions ------------------------------------------------------------------------

    def install(self, rip: int, mode: tuple[int, ...], bits: int, insn: Insn, host: int,
                code: bytes) -> None:  # fmt: skip
        """Cache a decoded plain IN/OUT for the C loop (``bits``: the hooks' key bits)."""
        if insn.string or insn.rep or not host or not code or len(code) > 16:
            return
        cs_base, cs_l, cr0, cr3, efer = mode
        port = bits & 0xFFFF
        slot = self.insns[self.lib.insn_slot(rip, port)]
        slot.key = 0  # invalid while it changes
        slot.rip, slot.cs_base, slot.cr0, slot.cr3, slot.efer = rip, cs_base, cr0, cr3, efer
        slot.start, slot.host, slot.len = insn.start, host, len(code)
        ctypes.memmove(slot.code, code, len(code))
        slot.key = bits | (1 << 18 if cs_l else 0) | 1 << 31

    # -- the ring ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return int(self.state.n)

    def blocks(self, plans: dict[int, Plan], vm: int, vm_name: str, vcpu: int) -> list[Block]:
        """Empty the ring into blocks: per accessed (direction, port), one block per rule and
        stage, as the hook path's observe-only case makes events (IN pre-stage events have
        value 0)."""
        st = self.state
        n = st.n
        if not n:
            return []
        keys = self.key[:n]
        ts, rip, value = self.ts[:n], self.rip[:n], self.value[:n]
        regs = self.regs[: n * NREGS]
        st.n = 0
        if keys.count(keys[0]) == n:
            groups = [(keys[0], ts, rip, value, regs)]
        else:
            groups = _split(keys, ts, rip, value, regs)
        out: list[Block] = []
        for key, g_ts, g_rip, g_value, g_regs in groups:
            port, is_in, size = key & 0xFFFF, key >> 16 & 1, key >> 17
            plan = plans.get(port | is_in << 16)
            if plan is None:
                continue  # cannot happen: the ring is drained before plans change
            m = len(g_ts)
            flags = size << 1 | (0 if is_in else F_OUT) | F_RIP | F_REGS
            ts_, rips, regs_, names = g_ts, g_rip, g_regs, [vm_name] * m
            ports, vms, vcpus, cpus, counts = [port] * m, [vm] * m, [vcpu] * m, [-1] * m, [1] * m
            zeros = [0] * m if is_in else g_value  # an IN's value is unknown before it is read
            used = False
            for stage_flags, rules in ((flags, plan.pre), (flags | F_POST, plan.post)):
                for rule in rules:
                    values = g_value if stage_flags & F_POST else zeros
                    if used:  # each block owns its lists
                        ts_, rips, regs_, values = list(ts_), list(rips), list(regs_), list(values)
                        ports, vms, vcpus = list(ports), list(vms), list(vcpus)
                        cpus, counts, names = list(cpus), list(counts), list(names)
                    used = True
                    block = Block(
                        rule.id, ts_, ports, values, vms, names, vcpus, cpus, counts,
                        [stage_flags] * m, [], rips, regs_, S.REG_NAMES,
                    )  # fmt: skip
                    kept = block if rule.script is None else filter_block(rule.script, block)
                    if kept is not None:  # P_COND: the C loop kept what any rule wanted
                        out.append(kept)
        return out


def _split(
    keys: list[int], ts: list[int], rip: list[int], value: list[int], regs: list[int]
) -> list[tuple[int, list[int], list[int], list[int], list[int]]]:
    """Group the ring's accesses by key, in ring order within each group."""
    groups: dict[int, tuple[int, list[int], list[int], list[int], list[int]]] = {}
    for i, key in enumerate(keys):
        g = groups.get(key)
        if g is None:
            g = groups[key] = (key, [], [], [], [])
        g[1].append(ts[i])
        g[2].append(rip[i])
        g[3].append(value[i])
        g[4].extend(regs[i * NREGS : (i + 1) * NREGS])
    return list(groups.values())


def _address(counters: array.array[int]) -> int:
    address, _ = counters.buffer_info()
    return address


def main() -> None:
    """``make guests``: build the library now (a machine without a compiler gets a warning)."""
    try:
        print(f"built {build()}")
    except RuntimeError as e:
        print(f"warning: {e}; the kvm backend will use its Python loop", file=sys.stderr)
