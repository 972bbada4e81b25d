"""Names as HyperDbg's scanner reads them: case-sensitive, hex words are numbers (so they cannot be
declared), number prefixes in lower case, blanks never joining two numbers, and ``@flags``."""

from __future__ import annotations

import pytest

from agent.script import ScriptError, compile_script

from .conftest import run


def test_variables_globals_and_functions_are_case_sensitive() -> None:
    src = """
    x = 1; X = 2; .G = 3; .g = 4;
    int Sum(int p, int q) { return p + q; }
    int sum(int p, int q) { return p - q; }
    printf("%d %d %d %d %d %d\\n", x, X, .G, .g, Sum(7, 2), sum(7, 2));
    """
    ran = run(src)
    assert ran.lines == ["1 2 3 4 9 5"]
    assert ran.globals == {"G": 3, "g": 4}


CASE = "names are case-sensitive: did you mean"
LOWER_CASE_ONLY = [
    ("IF (1 == 1) { x = 1; }", "'IF' is not a keyword: keywords and types are lower case ('if')"),
    ("While (1) { }", "'While' is not a keyword"),
    ("INT x = 1;", "'INT' is not a keyword: keywords and types are lower case ('int')"),
    ("PRINT(1);", "unknown function 'PRINT'"),
    ("x = @RAX;", f"unknown register '@RAX' ({CASE} @rax?)"),
    ("x = RAX;", f"unknown variable 'RAX' (never assigned; {CASE} @rax?)"),
    ("x = $Context;", f"unknown pseudo-register '$Context' ({CASE} $context?)"),
]


@pytest.mark.parametrize(("source", "message"), LOWER_CASE_ONLY)
def test_keywords_functions_and_registers_exist_in_lower_case_only(
    source: str, message: str
) -> None:
    token = message.split("'")[1]
    with pytest.raises(ScriptError) as info:
        compile_script(source)
    assert message in str(info.value)
    assert (info.value.token, info.value.line, info.value.col) == (
        token,
        1,
        source.index(token) + 1,
    )


def test_a_keyword_in_another_case_is_a_name_where_a_name_fits() -> None:
    assert run("IF = 3; Print = IF + 1; print(Print);").lines == ["4"]


@pytest.mark.parametrize(
    ("source", "name", "col"),
    [
        ("int abc = 5; print(abc);", "abc", 5),
        ("int sub(int a, int q) { return a - q; }", "a", 13),
        ("int sub(int p, int b) { return p - b; }", "b", 20),
        ("int cafe() { return 1; }", "cafe", 5),
        ("int f(int p) { return p; }", "f", 5),
        ("for (int Ab = 0; Ab < 2; Ab++) { }", "Ab", 10),
        ("int x = 1; int d`e = 2;", "d`e", 16),
    ],
)
def test_a_declared_name_that_is_a_hex_number_is_refused(source: str, name: str, col: int) -> None:
    with pytest.raises(ScriptError) as info:
        compile_script(source)
    assert str(info.value) == (
        f"'{name}' is a hex number, not a name: pick another name at line 1, column {col}"
    )
    assert info.value.token == name


@pytest.mark.parametrize(("source", "name"), [("int al = 1;", "al"), ("int g(int rip) { }", "rip")])
def test_a_declared_name_that_is_a_register_is_refused(source: str, name: str) -> None:
    with pytest.raises(ScriptError, match=f"'{name}' is a register \\(@{name}\\), not a name"):
        compile_script(source)


def test_names_that_are_not_hex_declare_locals_and_parameters() -> None:
    src = "int sub(int p, int q) { return p - q; } int total = sub(5, 3); print(total);"
    assert run(src).lines == ["2"]


@pytest.mark.parametrize("prefix", ["0X", "0N", "0Y", "0O"])
def test_number_prefixes_are_lower_case(prefix: str) -> None:
    with pytest.raises(ScriptError) as info:
        compile_script(f"x = {prefix}10;")
    assert str(info.value) == (
        f"number prefixes are lower case (0x, 0n, 0y, 0o), as in HyperDbg: '{prefix}10' "
        "at line 1, column 5"
    )


def test_lower_case_prefixes_and_either_case_of_hex_digits() -> None:
    assert run('printf("%llx %d %d %d\\n", 0xFf, 0n10, 0y11, 0o17);').lines == ["ff 10 3 15"]


@pytest.mark.parametrize(
    ("source", "first", "second", "col"),
    [
        ("x = 1 2;", "1", "2", 7),
        ("x = 0x1f\t0n10;", "0x1f", "0n10", 10),
        ("x = 0n 29 1;", "0n 29", "1", 11),
    ],
)
def test_blanks_never_join_two_numbers(source: str, first: str, second: str, col: int) -> None:
    with pytest.raises(ScriptError) as info:
        compile_script(source)
    assert str(info.value) == (
        f"two numbers in a row, '{first}' then '{second}' (blanks do not join digits) "
        f"at line 1, column {col}"
    )
    assert info.value.token == second


def test_the_two_blank_forms_hyperdbgs_semantic_suite_writes_are_kept() -> None:
    """``0n 29`` and ``5 a`` (manual-test-cases_30-39.ds); nothing wider."""
    src = 'x = 0n 29; y = 0x 1f; z = 5 a - 1; printf("%d %d %llx\\n", x, y, z);'
    assert run(src).lines == ["29 31 59"]
    with pytest.raises(ScriptError, match="expected ';' after the statement, got 'a'"):
        compile_script("x = 0x5 a;")  # after a prefix, the digits end at the blank


def test_flags_is_the_low_16_bits_of_rflags_and_eflags_the_low_32() -> None:
    src = 'printf("%llx %llx %llx\\n", @flags, @eflags, @rflags); @flags = 0x10246;'
    ran = run(src, regs={"rflags": 0x1_2345_6789})
    assert ran.lines == ["6789 23456789 123456789"]
    assert ran.regs["rflags"] == 0x1_2345_0246  # a write to a part merges into the register
