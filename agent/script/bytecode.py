"""Simple conditions as a small stack bytecode, for the kvm backend's C loop (fastpath.c), so a
hit whose condition is false never reaches Python.

*Simple* means pure (:func:`agent.script.purity.is_pure`) over ``$context`` (the port) and the 18
registers of ``struct kvm_regs`` and their parts, with numbers, the arithmetic, comparison and
logical operators, where every ``/`` and ``%`` divides by a nonzero number: a division by zero
aborts the condition, and an abort must be counted and announced (``script-abort``), which the C
loop cannot do; a condition that may divide by zero runs in Python, which counts it.

A program is a list of 64-bit words: an opcode, and for ``CONST`` / ``REG`` / jumps one operand
word. Semantics are the evaluator's (:mod:`agent.script.exprs`): 64-bit
wrapping, unsigned ``/ %``, shifts by 64 or more give 0, signed comparisons, short-circuit
``&& ||``. (The C loop still treats a zero divisor as false, a guard it never reaches.)
:func:`run` is the reference interpreter the C one is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from agent.script import nodes as n
from agent.script.names import REGISTERS
from agent.script.purity import is_pure
from agent.script.runtime import MASK, signed

__all__ = ["KVM_REGS", "MAX_CODE", "MAX_STACK", "Op", "compile_bytecode", "run"]

# struct kvm_regs (linux/kvm.h, x86): the order of the C loop's register array
KVM_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "rip", "rflags")  # fmt: skip
MAX_CODE = 256  # words
MAX_STACK = 16


class Op(IntEnum):
    END = 0
    CONST = 1  # operand: the value
    PORT = 2
    REG = 3  # operand: index in KVM_REGS
    ADD, SUB, MUL, DIV, MOD, SHL, SHR, AND, OR, XOR = range(4, 14)
    EQ, NE, LT, GT, LE, GE = range(14, 20)
    NEG, INV, NOT = range(20, 23)
    JZ = 23  # operand: target; pop v; if v == 0: push 0 and jump (&&)
    JNZ = 24  # operand: target; pop v; if v != 0: push 1 and jump (||)
    BOOL = 25  # v != 0


_BINARY = {"+": Op.ADD, "-": Op.SUB, "*": Op.MUL, "/": Op.DIV, "%": Op.MOD, "<<": Op.SHL,
           ">>": Op.SHR, "&": Op.AND, "|": Op.OR, "^": Op.XOR, "==": Op.EQ, "!=": Op.NE,
           "<": Op.LT, ">": Op.GT, "<=": Op.LE, ">=": Op.GE}  # fmt: skip
_UNARY = {"-": Op.NEG, "~": Op.INV, "!": Op.NOT}


@dataclass(frozen=True, slots=True)
class Bytecode:
    code: tuple[int, ...]
    stack: int  # deepest stack the program reaches


def compile_bytecode(tree: n.Block | n.Expr) -> Bytecode | None:
    """The program for ``tree``, or None when it is not simple (Python evaluates it)."""
    if isinstance(tree, n.Block) or not is_pure(tree) or not _simple(tree):
        return None
    code: list[int] = []
    depth = _emit(tree, code, 0)
    code.append(Op.END)
    if len(code) > MAX_CODE or depth > MAX_STACK:
        return None
    return Bytecode(tuple(code), depth)


def _simple(e: n.Expr) -> bool:
    match e:
        case n.Var(scope=n.Scope.PSEUDO, name=name):
            return name == "context"
        case n.Var(scope=n.Scope.REG, name=name):
            return REGISTERS[name].base in KVM_REGS
        case n.Unary(operand=inner):
            return _simple(inner)
        case n.Binary(op="/" | "%", right=right) if not (isinstance(right, n.Num) and right.value):
            return False  # may divide by zero: an abort the C loop could not count
        case n.Binary(left=left, right=right):
            return _simple(left) and _simple(right)
    return isinstance(e, n.Num)


def _emit(e: n.Expr, code: list[int], depth: int) -> int:
    """Append ``e``'s code; returns the deepest stack reached (``depth`` items below it)."""
    match e:
        case n.Num(value=v):
            code += (Op.CONST, v)
            return depth + 1
        case n.Var(scope=n.Scope.PSEUDO):
            code.append(Op.PORT)
            return depth + 1
        case n.Var(scope=n.Scope.REG, name=name):
            part = REGISTERS[name]
            code += (Op.REG, KVM_REGS.index(part.base))
            if part.shift:
                code += (Op.CONST, part.shift, Op.SHR)
            if part.width < 64:
                code += (Op.CONST, part.mask, Op.AND)
            return depth + 2
        case n.Unary(op="+", operand=inner):
            return _emit(inner, code, depth)
        case n.Unary(op=op, operand=inner):
            top = _emit(inner, code, depth)
            code.append(_UNARY[op])
            return top
        case n.Binary(op=op, left=left, right=right) if op in ("&&", "||"):
            top = _emit(left, code, depth)
            code += (Op.JZ if op == "&&" else Op.JNZ, 0)
            patch = len(code) - 1
            top = max(top, _emit(right, code, depth))
            code.append(Op.BOOL)
            code[patch] = len(code)
            return top
        case n.Binary(op=op, left=left, right=right):
            top = _emit(left, code, depth)
            top = max(top, _emit(right, code, depth + 1))
            code.append(_BINARY[op])
            return top
    raise AssertionError(e)


def run(code: Sequence[int], port: int, regs: Sequence[int]) -> bool:
    """Reference interpreter: the condition's truth for one access."""
    stack: list[int] = []
    pc = 0
    while True:
        op = code[pc]
        pc += 1
        if op == Op.END:
            return stack[-1] != 0
        if op == Op.CONST:
            stack.append(code[pc])
            pc += 1
        elif op == Op.PORT:
            stack.append(port)
        elif op == Op.REG:
            stack.append(regs[code[pc]])
            pc += 1
        elif op in (Op.JZ, Op.JNZ):
            v = stack.pop()
            if (v == 0) == (op == Op.JZ):
                stack.append(int(op == Op.JNZ))
                pc = code[pc]
            else:
                pc += 1
        elif op in (Op.NEG, Op.INV, Op.NOT, Op.BOOL):
            v = stack.pop()
            unary = {Op.NEG: -v & MASK, Op.INV: v ^ MASK, Op.NOT: int(v == 0), Op.BOOL: int(v != 0)}
            stack.append(unary[Op(op)])
        else:
            b, a = stack.pop(), stack.pop()
            if op in (Op.DIV, Op.MOD) and b == 0:
                return False  # an aborted condition is false
            stack.append(_binary(Op(op), a, b))


def _binary(op: Op, a: int, b: int) -> int:
    match op:
        case Op.ADD:
            return (a + b) & MASK
        case Op.SUB:
            return (a - b) & MASK
        case Op.MUL:
            return (a * b) & MASK
        case Op.DIV:
            return a // b
        case Op.MOD:
            return a % b
        case Op.SHL:
            return (a << b) & MASK if b < 64 else 0
        case Op.SHR:
            return a >> b if b < 64 else 0
        case Op.AND:
            return a & b
        case Op.OR:
            return a | b
        case Op.XOR:
            return a ^ b
        case Op.EQ:
            return int(a == b)
        case Op.NE:
            return int(a != b)
        case Op.LT:
            return int(signed(a) < signed(b))
        case Op.GT:
            return int(signed(a) > signed(b))
        case Op.LE:
            return int(signed(a) <= signed(b))
    return int(signed(a) >= signed(b))
