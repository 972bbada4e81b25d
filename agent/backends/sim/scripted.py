"""Hooks that act (``set``, ``sc on``, ``break``, or a ``condition { }`` / ``script { }``) on the
sim backend: one hit, its events. Hooks that only log take the backend's fast path instead.

The sim has no registers, so each hit gets simulated ones: ``rax`` holds the value (what an OUT
writes, what an IN read at the post stage; 0 before an IN is read, at its pre stage), ``rdx`` the
port; :func:`agent.script.hit.block_columns` gives a pure condition the same registers. The
meaning is that of :mod:`agent.script.hit` (HyperDbg's ``!ioin`` rules): the condition gates
each stage's event and actions (it sees the access before ``set``, the script after); a
post-stage IN script changes the value read; a pre-stage ``event_sc(1)`` skips the access (no
post stage; an IN then reads what the script left in ``@al``); ``pause()`` pauses the vCPU like
``break``; printf output travels in the event. A pure condition alone never comes here: the
backend filters that hook's blocks (``filter_block``).
"""

from __future__ import annotations

from agent.backends.sim.generator import Access
from agent.events import Event
from agent.hooks.table import HookRule
from agent.model import Direction, Stage
from agent.script.hit import Hit, gate_hit, script_hit
from agent.script.hook import HookScript

__all__ = ["acting_hit", "is_plain", "scripted_hit"]


def is_plain(rule: HookRule) -> bool:
    """A hook that only logs, before emulation: no value, skip, break or post stage, and no
    script (a pure condition alone filters the hook's blocks with numpy)."""
    return (
        rule.stage is Stage.PRE
        and rule.set_value is None
        and not rule.short_circuit
        and not rule.break_
        and (rule.script is None or rule.script.columnar)
    )


def scripted_hit(rule: HookRule, hs: HookScript, a: Access, now: int) -> tuple[list[Event], bool]:
    """The events of one hit of ``rule`` and whether the vCPU pauses after the last one."""
    stages = (Stage.PRE, Stage.POST) if rule.stage is Stage.ALL else (rule.stage,)
    if rule.short_circuit:
        stages = (Stage.PRE,)  # no post event for a skipped instruction (HyperDbg)
    inbound = a.dir is Direction.IN
    value = a.value
    regs = {"rax": 0 if inbound else value, "rdx": a.port}
    events: list[Event] = []
    pause = False
    for stage in stages:
        post = stage is Stage.POST
        ev = Event(rule.id, now, a.dir, a.port, value=value, vm=a.vm, vm_name=f"sim-{a.vm}",
                   vcpu=a.core, cpu=a.core, stage=stage)  # fmt: skip
        if not gate_hit(hs, Hit(a.port, 1, inbound, post, value, a.vm, a.core, now, regs)):
            continue  # the condition is false: no event and no action at this stage
        if rule.set_value is not None and post == inbound:
            ev.value_set = ev.value = value = rule.set_value & 0xFF
        verdict = script_hit(hs, Hit(a.port, 1, inbound, post, value, a.vm, a.core, now, regs))
        if verdict.value is not None:
            ev.value_set = ev.value = value = verdict.value
        ev.output = verdict.output
        ev.skipped = rule.short_circuit or verdict.skip
        pause = pause or rule.break_ or verdict.pause
        events.append(ev)
        if ev.skipped:
            break  # a skipped access has no post stage
    return events, pause


def acting_hit(rule: HookRule, a: Access, now: int) -> tuple[list[Event], bool]:
    """The events of one hit of ``rule`` (no blocks) and whether the vCPU pauses after them."""
    stages = (Stage.PRE, Stage.POST) if rule.stage is Stage.ALL else (rule.stage,)
    if rule.short_circuit:
        stages = (Stage.PRE,)  # no post event for a skipped instruction (HyperDbg)
    events = []
    for stage in stages:
        ev = Event(rule.id, now, a.dir, a.port, value=a.value, vm=a.vm, vm_name=f"sim-{a.vm}",
                   vcpu=a.core, cpu=a.core, stage=stage)  # fmt: skip
        if rule.set_value is not None and (stage is Stage.POST) == (a.dir is Direction.IN):
            ev.value_set = ev.value = rule.set_value & 0xFF
        ev.skipped = rule.short_circuit
        events.append(ev)
    return events, rule.break_
