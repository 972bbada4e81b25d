"""What a hook's condition and script mean on one port access (HyperDbg's ``!ioin`` rules).

A backend describes the access as a :class:`Hit` and gets a :class:`Verdict` back:

- the condition (if any) decides whether the event and the hook's actions happen at all;
- the script runs on every hit that passed. On IN in the post stage, writing ``@al`` / ``@ax``
  / ``@eax`` / ``@rax`` changes what the guest reads; on OUT in the pre stage it changes what is
  written; in the pre stage ``event_sc(1)`` skips the instruction and, for IN, the guest gets the
  register as the script left it (HyperDbg's "fake the IN"). ``event_sc`` in the post stage does
  nothing, as in HyperDbg. ``pause()`` pauses the vCPU like ``break``. Other register writes are
  in ``Verdict.regs`` for a backend that has real registers (kvm).
- printf / print output goes in the event (``Verdict.output``).

:func:`block_columns` gives a block of plain events as the columns a pure condition reads, with
the meaning each has on one hit: a condition filters a block exactly as it gates each of its
events one by one (``filter_block``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import compress
from typing import Any

import numpy as np

from agent.batch import F_OUT, F_POST, Block
from agent.script.hook import HookScript
from agent.script.runtime import CLOCK_HANDLES
from agent.script.vector import Columns

__all__ = [
    "Hit",
    "Verdict",
    "block_columns",
    "filter_block",
    "gate_hit",
    "run_hit",
    "script_hit",
]

_SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF}


@dataclass(slots=True)
class Hit:
    """One access as the script sees it; ``regs`` are the vCPU's (or simulated) registers."""

    port: int
    size: int
    inbound: bool
    post: bool
    value: int  # IN: the value read (post) / about to be read (pre); OUT: the value written
    vm: int = 0
    vcpu: int = 0
    ts: int = 0
    regs: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Verdict:
    fire: bool = True  # the condition passed: the event and the hook's actions happen
    value: int | None = None  # the new value read or written, when the script changed it
    skip: bool = False  # event_sc(1) in the pre stage
    pause: bool = False
    output: str = ""
    regs: dict[str, int] = field(default_factory=dict)  # every register the script changed
    events: list[tuple[str, int | str]] = field(default_factory=list)


def pseudo_of(hit: Hit) -> dict[str, int]:
    """The pseudo-registers of ``hit`` (``$event_id`` is the hook's: :class:`HookScript` sets it;
    ``$time`` / ``$date`` are the handles printf's ``%s`` prints the clock for)."""
    return {
        "context": hit.port,
        "core": hit.vcpu,
        "pid": hit.vm,
        "event_stage": int(hit.post),
        "ip": hit.regs.get("rip", 0),
    } | CLOCK_HANDLES


def run_hit(hs: HookScript, hit: Hit, memory: Any = None) -> Verdict:
    """Gate and run ``hs`` on ``hit``; ``hit.regs`` is updated with the script's writes."""
    if not gate_hit(hs, hit, memory):
        return Verdict(fire=False)
    return script_hit(hs, hit, memory)


def _load(hit: Hit) -> int:
    """Put the access's value in the registers where the guest has it; the size's mask."""
    mask = _SIZE_MASK.get(hit.size, 0xFF)
    if hit.post or not hit.inbound:  # an IN's value is in rax only once it is read
        hit.regs["rax"] = (hit.regs.get("rax", 0) & ~mask & (1 << 64) - 1) | (hit.value & mask)
    return mask


def gate_hit(hs: HookScript, hit: Hit, memory: Any = None) -> bool:
    """The condition on ``hit`` (True without one), before any action of the hook."""
    _load(hit)
    return hs.gate(hit.regs, pseudo_of(hit), memory)


def script_hit(hs: HookScript, hit: Hit, memory: Any = None) -> Verdict:
    """Run the script (if any) on a hit that passed its condition."""
    mask = _load(hit)
    regs = hit.regs
    pseudo = pseudo_of(hit)
    before = dict(regs)
    result = hs.run(regs, pseudo, memory)
    if result is None:
        return Verdict()
    verdict = Verdict(output=result.output, pause=result.pause, events=result.events)
    verdict.regs = {k: v for k, v in regs.items() if before.get(k) != v}
    skip = result.short_circuit and not hit.post
    rax_changed = "rax" in verdict.regs
    if skip or (rax_changed and (hit.inbound == hit.post)):
        new = regs.get("rax", 0) & mask
        verdict.value = new if (skip and hit.inbound) or new != hit.value & mask else None
    verdict.skip = skip
    return verdict


def block_columns(names: frozenset[str], block: Block) -> Columns:
    """The columns ``names`` (what a pure condition reads) of ``block``, meaning on each row
    what they mean on one hit (:func:`pseudo_of`, :func:`gate_hit`).

    A block with registers (the kvm C loop's) has them per event, ``rip`` among them. One
    without (the sim's) has the simulated ones: ``rax`` holds an OUT's value and an IN's once
    read (post), and 0 before the IN (the simulated vCPU's RAX before it); ``rdx`` the port."""
    u64 = np.uint64
    flags = np.asarray(block.flags, dtype=u64)
    sources: dict[str, Any] = {
        "$context": lambda: block.port,
        "$pid": lambda: block.vm,
        "$core": lambda: block.vcpu,
        "$event_stage": lambda: (flags & u64(F_POST)) != 0,
        "$ip": lambda: block.rip or np.zeros(len(flags), dtype=u64),
        "rip": lambda: block.rip or np.zeros(len(flags), dtype=u64),
    }
    width = len(block.reg_names)
    if block.regs and width:
        regs = np.array(block.regs, dtype=u64).reshape(-1, width)
        for i, name in enumerate(block.reg_names):
            if name in names:
                sources[name] = lambda i=i: regs[:, i]
    else:
        loaded = (flags & u64(F_OUT | F_POST)) != 0  # the value is in rax: OUT, or IN once read
        sources["rax"] = lambda: np.where(loaded, np.asarray(block.value, dtype=u64), u64(0))
        sources["rdx"] = lambda: block.port
    return {k: np.asarray(sources[k](), dtype=u64) for k in names if k in sources}


def filter_block(hs: HookScript, block: Block) -> Block | None:
    """``block`` with only the events ``hs``'s pure condition accepts (None if none does).

    One numpy evaluation for the whole block; the columns are compressed in C (``compress``).
    ``rip`` and ``regs`` must be per event or absent (what the sim and the kvm C loop produce).
    """
    n = len(block.port)
    mask = hs.mask(block_columns(hs.reads, block), n)
    if mask.all():
        return block
    keep = mask.tolist()
    if not any(keep):
        return None
    width = len(block.reg_names)
    regs = block.regs
    if regs:  # one register row per event: keep whole rows
        rows = [regs[i * width : (i + 1) * width] for i in range(n)]
        regs = [v for row in compress(rows, keep) for v in row]
    return replace(
        block,
        ts=list(compress(block.ts, keep)),
        port=list(compress(block.port, keep)),
        value=list(compress(block.value, keep)),
        vm=list(compress(block.vm, keep)),
        vm_name=list(compress(block.vm_name, keep)),
        vcpu=list(compress(block.vcpu, keep)),
        cpu=list(compress(block.cpu, keep)),
        count=list(compress(block.count, keep)),
        flags=list(compress(block.flags, keep)),
        seq=list(compress(block.seq, keep)) if block.seq else [],
        rip=list(compress(block.rip, keep)) if block.rip else [],
        regs=regs,
    )
