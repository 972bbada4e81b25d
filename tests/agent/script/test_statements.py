"""Every statement form, register parts, globals across runs, limits, functions, printf."""

from __future__ import annotations

import pytest

from agent.model import Capability
from agent.script import ScriptAbort, ScriptError, compile_script

from .conftest import run


def test_assignments_and_compound_operators() -> None:
    src = "x = 0n10; x += 5; x -= 1; x *= 2; x /= 7; x %= 3; x <<= 4; x >>= 1; x |= 1; "
    src += "x ^= 3; x &= 0n14; y = x; y++; y++; y--; print(x); print(y);"
    x = (10 + 5 - 1) * 2 // 7 % 3  # 1
    x = (((x << 4) >> 1) | 1) ^ 3  # 0xa
    x &= 14
    assert run(src).lines == [f"{x:x}", f"{x + 1:x}"]


def test_if_elsif_else() -> None:
    src = "if (x == 1) { print(a); } elsif (x == 2) { print(b); } else { print(c); }"
    assert [run(f"x = {i}; {src}").lines for i in (1, 2, 3)] == [["a"], ["b"], ["c"]]


def test_loops_break_continue() -> None:
    src = """
    s = 0;
    for (i = 0; i < 0n10; i++) { if (i == 3) { continue; } if (i == 7) { break; } s += i; }
    j = 0; while (j < 5) { j++; }
    k = 0; do { k++; } while (k < 3);
    w = 0; do { w++; } while (0);
    printf("%d %d %d %d\\n", s, j, k, w);
    """
    assert run(src).lines == [f"{0 + 1 + 2 + 4 + 5 + 6} 5 3 1"]


def test_functions_recursion_and_return() -> None:
    src = """
    int fib(int n) { if (n < 2) { return n; } return fib(n - 1) + fib(n - 2); }
    void bump(int by) { .total = .total + by; return; .total = 0; }
    .total = 0; bump(2); bump(3);
    printf("%d %d\\n", fib(0n15), .total);
    """
    assert run(src).lines == ["610 5"]


def test_locals_are_per_function_and_zeroed_each_run() -> None:
    program = compile_script("int g() { x = 7; return x; } x = x + 1; y = g(); print(x); print(y);")
    for _ in range(2):
        r = program.run({}, {}, {})
        assert r.output.splitlines() == ["1", "7"]


def test_globals_persist_across_runs() -> None:
    program = compile_script(".hits = .hits + 1; .sum = .sum + $context;")
    store: dict[str, int] = {}
    for port in (0x70, 0x71, 0x72):
        program.run({}, {"context": port}, store)
    assert store == {"hits": 3, "sum": 0x70 + 0x71 + 0x72}
    assert program.globals == {"hits", "sum"}


def test_register_parts_read_masked_and_write_merged() -> None:
    regs = {"rax": 0x1122334455667788, "r8": 0xAABBCCDDEEFF0011}
    src = 'printf("%llx %x %x %x %x %x\\n", @rax, @eax, @ax, @ah, @al, r8w);'
    src += "@eax = 0xdeadbeef; @ah = 0x12; @r8l = 0x99; @cf = 1; @rip = 0x1000;"
    r = run(src, regs)
    assert r.lines == ["1122334455667788 55667788 7788 77 88 11"]
    # writing @eax keeps the upper half (HyperDbg merges, unlike the CPU)
    assert r.regs["rax"] == 0x11223344DEAD12EF
    assert r.regs["r8"] == 0xAABBCCDDEEFF0099
    assert r.regs["rflags"] == 1
    assert r.regs["rip"] == 0x1000


def test_pseudo_registers_read_zero_unless_given() -> None:
    src = 'printf("%x %x %x %x %x\\n", $context, $core, $pid, $peb, $ip);'
    pseudo = {"context": 0x3F8, "core": 1, "pid": 4}
    assert run(src, {"rip": 0x7C00}, pseudo).lines == ["3f8 1 4 0 7c00"]


@pytest.mark.parametrize(
    ("fmt", "args", "expected"),
    [
        ("%d", "-1", "-1"),  # 32 bits without a modifier, as on Windows
        ("%lld", "-1", "-1"),
        ("%u", "-1", "4294967295"),
        ("%llu", "-1", "18446744073709551615"),
        ("%x %X", "0xab, 0xab", "ab AB"),
        ("%hx", "0x12345", "2345"),
        ("%hhx", "0x1ff", "ff"),
        ("%o", "8", "10"),
        ("%c", "0x41", "A"),
        ("%p", "0x1000", "0000000000001000"),
        ("%s!", '"hi"', "hi!"),
        ("%08x|%-4d|", "0xbeef, 7", "0000beef|7   |"),
        ("100%%", "", "100%"),
    ],
)
def test_printf_conversions(fmt: str, args: str, expected: str) -> None:
    call = f'printf("{fmt}"{", " + args if args else ""});'
    assert run(call).result.output == expected


def test_print_and_string_functions() -> None:
    src = 'print(strlen("abc")); print(strcmp("a", "b")); print(strncmp("ab1", "ab2", 2));'
    src += 'print(wcscmp(L"x", L"x")); print(memcmp("b", "a", 1));'
    assert run(src).lines == ["3", "ffffffffffffffff", "0", "0", "1"]


def test_effects_are_recorded() -> None:
    r = run('event_sc(1); pause(); event_disable("in-3f8-1"); event_enable(5);')
    assert r.result.short_circuit
    assert r.result.pause
    assert r.result.events == [("event_disable", "in-3f8-1"), ("event_enable", 5)]


def test_memcpy_between_variables() -> None:
    assert run("va = 0x1122; vb = 0xffff; memcpy(&vb, &va, 1); print(vb);").lines == ["ff22"]


def test_step_budget_aborts_an_endless_loop() -> None:
    with pytest.raises(ScriptAbort, match="step budget of 1000 exhausted") as info:
        run("while (1) { x++; }", budget=1000)
    assert info.value.steps == 1001


def test_call_depth_is_bounded() -> None:
    with pytest.raises(ScriptAbort, match="nested deeper than 64"):
        run("int g(int n) { return g(n + 1); } x = g(0);")


def test_output_is_bounded() -> None:
    r = run('for (i = 0; i < 0n2000; i++) { printf("0123456789"); }')
    assert len(r.result.output) < 4200
    assert r.result.output.endswith("[output cut at 4096 characters]\n")


@pytest.mark.parametrize(
    ("source", "message", "token"),
    [
        ("x = y;", "unknown variable 'y'", "y"),
        ("x = .never;", "unknown global '.never'", ".never"),
        ("x = @rzz;", "unknown register '@rzz'", "@rzz"),
        ("x = $nope;", "unknown pseudo-register '$nope'", "$nope"),
        ("frob(1);", "unknown function 'frob'", "frob"),
        ("print(1, 2);", "function 'print' takes 1 arguments, 2 given", "print"),
        ("int g(int p) { return p; } x = g();", "function 'g' takes 1 arguments, 0 given", "g"),
        ('printf("%d %d", 1);', "printf format has 2 conversions for 1 arguments", "printf"),
        ('printf("%q", 1);', "unknown printf conversion '%q'", "%q"),
        ("break;", "'break' outside a loop", "break"),
        ("x = print;", "'print'", "print"),
    ],
)
def test_compile_errors(source: str, message: str, token: str) -> None:
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace("$", r"\$")) as info:
        compile_script(source)
    assert info.value.token == token


def test_capabilities_needed_are_named_with_their_token() -> None:
    program = compile_script("@al = 1; event_sc(1); pause(); x = poi(@rsp); print(1);")
    assert set(program.needs) == {
        Capability.MODIFY,
        Capability.SKIP,
        Capability.BREAK,
        Capability.MEMORY,
    }
    assert program.needs[Capability.MEMORY] == "poi() at line 1, column 36"
    assert compile_script('printf("%x", @rax); .n = .n + 1;').needs == {}
