"""Guest-physical memory: anonymous host mappings registered with KVM as memory slots.

A :class:`GuestMemory` owns the mmaps; each :class:`Region` is one KVM slot, a window
``[offset, offset + size)`` of a mapping placed at guest-physical ``gpa``. Two regions may window
the same mapping (the firmware's alias below 1 MiB). Reads and writes by guest-physical address
go through :meth:`GuestMemory.read` / :meth:`GuestMemory.write`; an address no region backs raises
``KvmError("guest memory", EFAULT)``.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from dataclasses import dataclass

from agent.backends.kvm._kvm import Vm
from agent.errors import KvmError

__all__ = ["GuestMemory", "Region"]

PAGE = 0x1000


@dataclass(frozen=True, slots=True)
class Region:
    """One KVM memory slot: ``size`` bytes of ``mapping`` from ``offset``, at ``gpa``."""

    slot: int
    gpa: int
    size: int
    mapping: mmap.mmap
    offset: int
    readonly: bool
    host: int = 0  # host address of mapping[offset] (stable while the mapping is open)

    @property
    def end(self) -> int:
        return self.gpa + self.size


class GuestMemory:
    """The memory of one VM; closes its mappings on :meth:`close`."""

    def __init__(self, vm: Vm) -> None:
        self._vm = vm
        self._maps: list[mmap.mmap] = []
        self.regions: list[Region] = []

    def allocate(self, size: int) -> mmap.mmap:
        """A zeroed anonymous shared mapping of ``size`` bytes (page-rounded), owned here."""
        try:
            mapping = mmap.mmap(-1, (size + PAGE - 1) & ~(PAGE - 1))
        except OSError as e:
            raise KvmError("mmap guest memory", e.errno or 0) from None
        self._maps.append(mapping)
        return mapping

    def map(
        self, gpa: int, mapping: mmap.mmap, offset: int = 0, size: int | None = None,
        *, readonly: bool = False,
    ) -> Region:  # fmt: skip
        """Register ``mapping[offset:offset+size]`` as a new slot at ``gpa``."""
        size = len(mapping) - offset if size is None else size
        for r in self.regions:
            if gpa < r.end and r.gpa < gpa + size:
                raise KvmError("KVM_SET_USER_MEMORY_REGION", errno.EEXIST, f"overlaps {r.gpa:#x}")
        base = ctypes.addressof(ctypes.c_char.from_buffer(mapping))  # temporary export only
        region = Region(len(self.regions), gpa, size, mapping, offset, readonly, base + offset)
        self._vm.set_memory(region.slot, gpa, size, base + offset, readonly=readonly)
        self.regions.append(region)
        return region

    def find(self, gpa: int) -> tuple[Region, int] | None:
        """The region backing ``gpa`` and the offset of ``gpa`` in its mapping."""
        for r in self.regions:
            if r.gpa <= gpa < r.end:
                return r, r.offset + gpa - r.gpa
        return None

    def read(self, gpa: int, length: int) -> bytes:
        """``length`` bytes from guest-physical ``gpa`` (may span regions)."""
        out = bytearray()
        while length > 0:
            region, off = self._need(gpa)
            n = min(length, region.end - gpa)
            out += region.mapping[off : off + n]
            gpa, length = gpa + n, length - n
        return bytes(out)

    def write(self, gpa: int, data: bytes) -> None:
        """Store ``data`` at guest-physical ``gpa`` (read-only regions too: the VMM may)."""
        view = memoryview(data)
        while view:
            region, off = self._need(gpa)
            n = min(len(view), region.end - gpa)
            region.mapping[off : off + n] = view[:n]
            gpa, view = gpa + n, view[n:]

    def _need(self, gpa: int) -> tuple[Region, int]:
        found = self.find(gpa)
        if found is None:
            raise KvmError("guest memory", errno.EFAULT, f"no memory at {gpa:#x}")
        return found

    def close(self) -> None:
        """Unmap everything (call after the VM fd is closed)."""
        for mapping in self._maps:
            mapping.close()
        self._maps.clear()
        self.regions.clear()
