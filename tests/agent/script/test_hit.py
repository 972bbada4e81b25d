"""The meaning of a condition and a script on one access (HyperDbg's !ioin rules)."""

from __future__ import annotations

from agent.script.hit import Hit, block_columns, run_hit
from agent.script.hook import HookScript


def hit(**kw: object) -> Hit:
    fields: dict[str, object] = {"port": 0x3F8, "size": 1, "inbound": True, "post": True}
    fields |= {"value": 0x41, "vm": 1, "vcpu": 0}
    return Hit(**(fields | kw))  # type: ignore[arg-type]


def test_condition_false_means_no_event_and_no_script() -> None:
    hs = HookScript("h", condition="@al == 42", script=".n = .n + 1;")
    assert not run_hit(hs, hit()).fire
    assert hs.globals == {}
    assert run_hit(hs, hit(value=0x42)).fire
    assert hs.globals == {"n": 1}


def test_post_in_register_write_changes_what_the_guest_reads() -> None:
    hs = HookScript("h", script="if (@al == 41) { @al = 5a; }")
    assert run_hit(hs, hit()).value == 0x5A
    assert run_hit(hs, hit(value=0x42)).value is None  # untouched
    wide = run_hit(HookScript("h", script="@eax = 12345678;"), hit(size=2, value=0xAAAA))
    assert wide.value == 0x5678  # a 16-bit IN reads the low 16 bits


def test_pre_in_write_without_event_sc_is_lost() -> None:
    v = run_hit(HookScript("h", script="@al = 7;"), hit(post=False, value=0))
    assert v.value is None
    assert not v.skip
    assert v.regs == {"rax": 7}


def test_pre_in_event_sc_fakes_the_in() -> None:
    v = run_hit(HookScript("h", script="@al = 7; event_sc(1);"), hit(post=False, value=0))
    assert v.skip
    assert v.value == 7


def test_event_sc_in_the_post_stage_does_nothing() -> None:
    v = run_hit(HookScript("h", script="event_sc(1);"), hit())
    assert not v.skip
    assert v.value is None


def test_pre_out_write_changes_what_is_written() -> None:
    v = run_hit(HookScript("h", script="@al = @al + 1;"), hit(inbound=False, post=False))
    assert v.value == 0x42


def test_output_pause_and_pseudo_registers() -> None:
    hs = HookScript(
        "h", script='printf("%x %x %x %x\\n", $context, $pid, $core, $event_stage); pause();'
    )
    v = run_hit(hs, hit(vcpu=2, vm=3))
    assert v.output == "3f8 3 2 1\n"
    assert v.pause


def test_block_columns_feed_the_mask() -> None:
    from agent.batch import F_OUT, Block

    hs = HookScript("h", condition="$context == 3f8 && @al != 0 && $core == 1 && @dx == 3f8")
    block = Block("h", [1, 2, 3], [0x3F8, 0x3F8, 0x70], [1, 0, 1], [1, 1, 1], ["a"] * 3,
                  [1, 1, 1], [1, 1, 1], [1, 1, 1], [2 | F_OUT] * 3)  # fmt: skip
    assert hs.mask(block_columns(hs.reads, block), 3).tolist() == [True, False, False]


def test_filter_block_keeps_the_accepted_events_in_every_column() -> None:
    from agent.batch import F_POST, Block
    from agent.script.hit import filter_block

    hs = HookScript("h", condition="$context == 3f8 && @al != 0 && $event_stage == 0")
    block = Block("h", [1, 2, 3, 4], [0x3F8, 0x70, 0x3F8, 0x3F8], [5, 5, 0, 7], [1, 1, 2, 2],
                  ["a", "a", "b", "b"], [0, 1, 0, 1], [0, 1, 0, 1], [1, 1, 1, 1],
                  [2, 2, 2, 2 | F_POST], rip=[10, 20, 30, 40], regs=[5, 1, 5, 2, 0, 3, 7, 4],
                  reg_names=("rax", "rbx"))  # fmt: skip
    out = filter_block(hs, block)
    assert out is not None
    assert (out.ts, out.port, out.value, out.vm_name, out.rip) == ([1], [0x3F8], [5], ["a"], [10])
    assert out.regs == [5, 1]  # rax comes from the registers where a block has them
    everything = HookScript("h", condition="$context != 0")
    assert filter_block(everything, block) is block
    nothing = HookScript("h", condition="$context == 0")
    assert filter_block(nothing, block) is None
