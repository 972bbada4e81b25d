"""Names the language knows: keywords, types, registers (with their parts), pseudo-registers and
built-in functions with their arity and the backend capability each one needs.

Register parts follow HyperDbg (``script-eval/code/Regs.c``): reading a part masks and shifts,
writing one merges into the full register (writing ``@eax`` keeps the upper 32 bits).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.model import Capability

__all__ = [
    "FLAGS",
    "FUNCTIONS",
    "KEYWORDS",
    "PSEUDO",
    "REGISTERS",
    "TYPES",
    "Function",
    "Part",
]

KEYWORDS = frozenset({"if", "elsif", "else", "while", "do", "for", "break", "continue", "return"})
TYPES = frozenset(
    {
        "int",
        "void",
        "char",
        "bool",
        "short",
        "long",
        "unsigned",
        "signed",
        "uint64",
        "int64",
        "uint32",
        "int32",
        "uint16",
        "uint8",
        "wchar",
        "ulong",
        "ulonglong",
        "longlong",
    }
)


@dataclass(frozen=True, slots=True)
class Part:
    """``name`` is bits ``shift .. shift+width`` of the full register ``base``."""

    base: str
    shift: int
    width: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


def _registers() -> dict[str, Part]:
    regs: dict[str, Part] = {}
    for x in "abcd":
        full = f"r{x}x"
        regs |= {full: Part(full, 0, 64), f"e{x}x": Part(full, 0, 32), f"{x}x": Part(full, 0, 16)}
        regs |= {f"{x}h": Part(full, 8, 8), f"{x}l": Part(full, 0, 8)}
    for x in ("si", "di", "bp", "sp"):
        full = f"r{x}"
        regs |= {full: Part(full, 0, 64), f"e{x}": Part(full, 0, 32), x: Part(full, 0, 16)}
        regs[f"{x}l"] = Part(full, 0, 8)
    for n in range(8, 16):
        full = f"r{n}"
        regs |= {full: Part(full, 0, 64), f"{full}d": Part(full, 0, 32)}
        regs |= {f"{full}w": Part(full, 0, 16), f"{full}h": Part(full, 8, 8)}
        regs[f"{full}l"] = Part(full, 0, 8)
    regs |= {"rip": Part("rip", 0, 64), "eip": Part("rip", 0, 32), "ip": Part("rip", 0, 16)}
    regs |= {"rflags": Part("rflags", 0, 64), "eflags": Part("rflags", 0, 32)}
    regs["flags"] = Part("rflags", 0, 16)  # HyperDbg lists @rflags @eflags @flags
    for name in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldtr"):
        regs[name] = Part(name, 0, 16)
    for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "gdtr", "idtr", "xcr0"):
        regs[name] = Part(name, 0, 64)
    for n in (0, 1, 2, 3, 6, 7):
        regs[f"dr{n}"] = Part(f"dr{n}", 0, 64)
    return regs


# RFLAGS bits (SDM vol. 1, 3.4.3); iopl is two bits wide.
FLAGS = {
    "cf": 0, "pf": 2, "af": 4, "zf": 6, "sf": 7, "tf": 8, "if": 9, "df": 10, "of": 11,
    "nt": 14, "rf": 16, "vm": 17, "ac": 18, "vif": 19, "vip": 20, "id": 21,
}  # fmt: skip
REGISTERS = _registers() | {f: Part("rflags", bit, 1) for f, bit in FLAGS.items()}
REGISTERS["iopl"] = Part("rflags", 12, 2)

# $context is the port (HyperDbg's !ioin context); the Windows-only ones read 0 unless set.
PSEUDO = frozenset(
    {
        "context",
        "core",
        "pid",
        "ip",
        "event_id",
        "event_stage",
        "event_tag",
        "time",
        "date",
        "proc",
        "thread",
        "peb",
        "teb",
        "tid",
        "pname",
        "buffer",
    }
)


@dataclass(frozen=True, slots=True)
class Function:
    """A built-in: ``arity`` arguments (None = printf's any), ``needs`` the capability."""

    arity: int | None
    needs: Capability | None = None
    strings: bool = False  # its arguments may be string literals (then it needs nothing)


def _functions() -> dict[str, Function]:
    memory, write = Capability.MEMORY, Capability.MEMORY
    table = {
        "printf": Function(None),
        "print": Function(1),
        "event_sc": Function(1, Capability.SKIP),
        "pause": Function(0, Capability.BREAK),
        "event_enable": Function(1),
        "event_disable": Function(1),
        "event_clear": Function(1),
        "strlen": Function(1, memory, strings=True),
        "wcslen": Function(1, memory, strings=True),
        "strcmp": Function(2, memory, strings=True),
        "wcscmp": Function(2, memory, strings=True),
        "strncmp": Function(3, memory, strings=True),
        "wcsncmp": Function(3, memory, strings=True),
        "memcmp": Function(3, memory, strings=True),
        "memcpy": Function(3, write),
    }
    for name in ("poi", "db", "dw", "dd", "dq", "hi", "low", "check_address"):
        table[name] = Function(1, memory)
    for name in ("eb", "ed", "eq", "interlocked_exchange", "interlocked_exchange_add"):
        table[name] = Function(2, write)
    for name in ("interlocked_increment", "interlocked_decrement"):
        table[name] = Function(1, write)
    table["interlocked_compare_exchange"] = Function(3, write)
    return table


FUNCTIONS = _functions()
