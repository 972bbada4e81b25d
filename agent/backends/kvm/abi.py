"""The C fast path's ABI and the hook plan: a leaf module (nothing else of the vCPU imports here).

``fastpath.c`` and Python share two structs (:class:`Fast`, :class:`Insn_`) and a set of
constants: the plan byte of each port (``P_*``), what ``ioin_run`` returns (``R_*``), the register
count and the instruction-cache size. :func:`check` compares all of them with the loaded library
(``ioin_abi`` for the struct sizes, ``ioin_constants`` for every constant by name), so a change on
one side only fails at load, naming what differs.

:class:`Plan` is what one exit on a (direction, port) of one vCPU needs for one table version;
the Python hook path, the C plan bytes and the ring's blocks all read it.
"""

from __future__ import annotations

import ctypes

from agent.backends.kvm import _sys as S
from agent.hooks.table import HookRule
from agent.model import Stage
from agent.script import nodes
from agent.script.bytecode import MAX_STACK, Bytecode, Op, compile_bytecode

__all__ = [
    "CONSTANTS",
    "INSN_SLOTS",
    "NREGS",
    "P_COND",
    "P_HOOKED",
    "P_OBSERVE",
    "P_OPEN",
    "P_SLOW",
    "R_ERRNO",
    "R_FLUSH",
    "R_SLOW",
    "R_TICK",
    "Fast",
    "Insn_",
    "Plan",
    "check",
]

NREGS = len(S.REG_NAMES)
INSN_SLOTS = 64
P_SLOW, P_OPEN, P_OBSERVE, P_HOOKED, P_COND = 0, 1, 2, 3, 4  # a port's plan byte
R_SLOW, R_FLUSH, R_TICK, R_ERRNO = 0, 1, 2, 3  # why ioin_run came back
CONSTANTS: dict[str, int] = {
    "P_SLOW": P_SLOW, "P_OPEN": P_OPEN, "P_OBSERVE": P_OBSERVE, "P_HOOKED": P_HOOKED,
    "P_COND": P_COND, "COND_STACK": MAX_STACK,
    "R_SLOW": R_SLOW, "R_FLUSH": R_FLUSH, "R_TICK": R_TICK, "R_ERRNO": R_ERRNO,
    "NREGS": NREGS, "INSN_SLOTS": INSN_SLOTS,
    "KVM_EXIT_IO": S.EXIT_IO, "KVM_EXIT_IO_IN": S.EXIT_IO_IN,
}  # fmt: skip
CONSTANTS |= {f"C_{op.name}": int(op) for op in Op}  # the condition bytecode's opcodes
"""Every constant fastpath.c exports through ``ioin_constants``, as Python spells it."""


class Insn_(ctypes.Structure):
    """``struct ioin_insn``: one instruction-cache slot."""

    _fields_ = [
        ("rip", ctypes.c_uint64),
        ("cs_base", ctypes.c_uint64),
        ("cr0", ctypes.c_uint64),
        ("cr3", ctypes.c_uint64),
        ("efer", ctypes.c_uint64),
        ("start", ctypes.c_uint64),
        ("host", ctypes.c_void_p),
        ("key", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
        ("code", ctypes.c_uint8 * 16),
    ]


class Fast(ctypes.Structure):
    """``struct ioin_fast``: what the C loop and its vCPU thread share."""

    _fields_ = [
        ("fd", ctypes.c_int32),
        ("cap", ctypes.c_uint32),
        ("run", ctypes.c_void_p),
        ("plan", ctypes.c_void_p),
        ("ob_reads", ctypes.c_void_p),
        ("ob_writes", ctypes.c_void_p),
        ("insns", ctypes.c_void_p),
        ("ts", ctypes.c_void_p),
        ("rip", ctypes.c_void_p),
        ("regs", ctypes.c_void_p),
        ("value", ctypes.c_void_p),
        ("key", ctypes.c_void_p),
        ("flush_ns", ctypes.c_uint64),
        ("tick_mask", ctypes.c_uint64),
        ("quiet_exits", ctypes.c_uint64),
        ("sync_bits", ctypes.c_uint64),
        ("conds", ctypes.c_void_p),
        ("exits", ctypes.c_uint64),
        ("last_hooked", ctypes.c_uint64),
        ("first_ts", ctypes.c_uint64),
        ("n", ctypes.c_uint32),
        ("err", ctypes.c_int32),
    ]


class _Const(ctypes.Structure):
    """``struct ioin_const``: one entry of ``ioin_constants()`` (a NULL name ends the array)."""

    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_int64)]


def library_constants(lib: ctypes.CDLL) -> dict[str, int]:
    """The constants the library was compiled with, by name."""
    lib.ioin_constants.restype = ctypes.POINTER(_Const)
    table = lib.ioin_constants()
    out: dict[str, int] = {}
    i = 0
    while (name := table[i].name) is not None:
        out[name.decode()] = int(table[i].value)
        i += 1
    return out


def check(lib: ctypes.CDLL, name: str) -> None:
    """``OSError`` naming the first struct size or constant where ``lib`` and Python differ."""
    lib.ioin_abi.restype = ctypes.c_uint32
    abi = ctypes.sizeof(Fast) << 16 | ctypes.sizeof(Insn_) << 8 | INSN_SLOTS
    if lib.ioin_abi() != abi:
        raise OSError(f"{name}: struct layout differs from abi.py (rebuild it)")
    theirs = library_constants(lib)
    for key in sorted(CONSTANTS.keys() | theirs.keys()):
        ours, got = CONSTANTS.get(key), theirs.get(key)
        if ours != got:
            raise OSError(f"{name}: constant {key} is {got} in C but {ours} in abi.py (rebuild it)")


class Plan:
    """What an exit on one (direction, port) of one vCPU needs, for one table version."""

    __slots__ = ("cond", "post", "pre", "rules", "simple")

    def __init__(self, rules: list[HookRule]) -> None:
        self.rules = rules  # matching rules, newest first
        self.pre = tuple(r for r in rules if r.stage & Stage.PRE)
        self.post = tuple(r for r in rules if r.stage & Stage.POST)
        # observe-only: no rule skips, sets a value or breaks, so events are all there is to do
        self.simple = not any(
            r.short_circuit or r.break_ or r.set_value is not None or r.script is not None
            for r in rules
        )  # a condition or script runs on the Python hook path
        self.cond = _cond(rules)


def _cond(rules: list[HookRule]) -> Bytecode | None:
    """The C loop's program for a port whose rules all observe at the pre stage under simple
    conditions (their OR: the C loop records a hit any of them wants; Python then applies each
    rule's own condition to the ring); None when the C loop cannot decide for them."""
    trees: list[nodes.Expr] = []
    for r in rules:
        hs = r.script
        if r.stage is not Stage.PRE or r.short_circuit or r.break_ or r.set_value is not None:
            return None
        if hs is None or not hs.columnar or hs.condition is None:
            return None
        tree = hs.condition.tree
        if isinstance(tree, nodes.Block):
            return None
        trees.append(tree)
    if not trees:
        return None
    combined = trees[0]
    for tree in trees[1:]:
        combined = nodes.Binary("||", combined, tree)
    return compile_bytecode(combined)
