"""``ioinctl eval``: HyperDbg's ``?`` command for the fleet — run a script offline.

The script is compiled exactly as an agent compiles it at SetHook (:mod:`agent.script`), then
run once against the registers and pseudo-registers given (unset ones are 0), with no guest
memory. Prints the printf/print output, then what changed (registers, globals) and the effects
asked for (``event_sc``, ``pause``, ``event_*``). Exit 0, or 2 with the error on stderr when the
script is refused or its run aborts (step budget, division by zero); what an aborted run printed
before the abort is printed first, as HyperDbg prints as it goes.

``-o json`` prints one document, ``-o jsonl`` the same object on one line (there is one result,
not one per host): ``ok``, ``error`` (``null``, or ``{"kind": "refused" | "aborted", "message",
"token", "line", "column"}``), ``output`` (lines), ``registers``, ``globals``,
``short_circuit``, ``pause``, ``events``, ``steps``. A failure still prints its document on
stdout (with the output before an abort), and its error on stderr, exit 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agent.errors import CapabilityError
from agent.model import Capability
from agent.script import STEP_BUDGET, Program, ScriptAbort, ScriptError, compile_script
from agent.script.lexer import Kind, tokenize
from agent.script.names import PSEUDO, REGISTERS
from controller.errors import InvalidScript
from controller.options import OutputOpt
from controller.render import Output, print_json

__all__ = ["eval_script"]

# What an offline run can do: everything an event can, except reach a guest's memory.
EVAL_CAPABILITIES = frozenset(Capability) - {Capability.MEMORY}

RegOpt = Annotated[
    list[str] | None,
    typer.Option("--reg", help="Register value, NAME=VALUE (hex by default; 0n decimal)."),
]
PseudoOpt = Annotated[
    list[str] | None,
    typer.Option("--pseudo", help="Pseudo-register value, NAME=VALUE (e.g. context=3f8)."),
]
BudgetOpt = Annotated[
    int, typer.Option("--budget", min=1, help="Step budget of the run (an agent's is 1,000,000).")
]


def eval_script(
    script: Annotated[
        str, typer.Argument(help="Script text, e.g. 'printf(\"%x\\n\", @rax + 1);'.")
    ],
    reg: RegOpt = None,
    pseudo: PseudoOpt = None,
    budget: BudgetOpt = STEP_BUDGET,
    output: OutputOpt = Output.TABLE,
) -> int:
    """Evaluate a script offline against the given registers; print its output and changes."""
    doc, error = _evaluate(script, reg or [], pseudo or [], budget)
    _render(doc, output)
    if error is not None:
        raise error
    return 0


def _evaluate(
    script: str, reg: list[str], pseudo: list[str], budget: int
) -> tuple[dict[str, Any], InvalidScript | None]:
    """The run's document, and the error to exit with (None when it ran to its end)."""
    try:
        regs = _assignments(reg, "--reg", "@", REGISTERS)
        pseudos = _assignments(pseudo, "--pseudo", "$", PSEUDO)
        program = _compile(script)
    except _Refused as e:
        return _failed("refused", e.error, e.line, e.col), e.error
    full = _registers(regs)
    before, globals_ = dict(full), dict[str, int]()
    try:
        result = program.run(full, pseudos, globals_, budget=budget)
    except ScriptAbort as e:
        error = InvalidScript(str(e))
        return _failed("aborted", error, printed=e.output) | {"steps": e.steps}, error
    changed = {k: v for k, v in full.items() if before.get(k, 0) != v}
    doc = {
        "ok": True,
        "error": None,
        "output": result.output.splitlines(),
        "registers": changed,
        "globals": globals_,
        "short_circuit": result.short_circuit,
        "pause": result.pause,
        "events": [{"action": a, "target": t} for a, t in result.events],
        "steps": result.steps,
    }
    return doc, None


def _failed(
    kind: str, error: InvalidScript, line: int = 0, col: int = 0, printed: str = ""
) -> dict[str, Any]:
    """The document of a script refused (``kind`` refused) or aborted (``aborted``)."""
    where = {"line": line or None, "column": col or None}
    return {
        "ok": False,
        "error": {"kind": kind, "message": error.message, "token": error.token} | where,
        "output": printed.splitlines(),
        "registers": {},
        "globals": {},
        "short_circuit": False,
        "pause": False,
        "events": [],
        "steps": 0,
    }


class _Refused(Exception):
    """Compiling (or reading the options) refused: the error and, for a script, its position."""

    def __init__(self, error: InvalidScript, line: int = 0, col: int = 0) -> None:
        self.error, self.line, self.col = error, line, col
        super().__init__(error.message)


def _compile(script: str) -> Program:
    try:
        program = compile_script(script)
        program.check(EVAL_CAPABILITIES, "eval")
    except ScriptError as e:
        raise _Refused(InvalidScript(e.message, e.token), e.line, e.col) from None
    except CapabilityError as e:
        message = f"{e} (ioinctl eval has no guest memory)"
        raise _Refused(InvalidScript(message, e.capability)) from None
    return program


def _assignments(items: list[str], flag: str, sigil: str, known: Any) -> dict[str, int]:
    values: dict[str, int] = {}
    for item in items:
        name, eq, text = item.partition("=")
        key = name.strip().lower().removeprefix(sigil)
        if not eq or key not in known:
            message = f"{flag} {item!r}: expected NAME=VALUE with a known name"
            raise _Refused(InvalidScript(message, name))
        values[key] = _number(text.strip(), flag, item)
    return values


def _number(text: str, flag: str, item: str) -> int:
    try:
        tokens = tokenize(text)
    except ScriptError:
        tokens = []
    if len(tokens) == 2 and tokens[0].kind is Kind.NUM:
        return int(tokens[0].value)
    if (
        len(tokens) == 2
        and tokens[0].kind is Kind.WORD
        and set(text.lower()) <= set("0123456789abcdef`")
    ):
        return int(text.replace("`", ""), 16)
    raise _Refused(InvalidScript(f"{flag} {item!r}: '{text}' is not a number", text))


def _registers(parts: dict[str, int]) -> dict[str, int]:
    """Full registers from the values given; a part (``al``) merges into its register."""
    full: dict[str, int] = {}
    for name in sorted(parts, key=lambda p: -REGISTERS[p].width):  # widest first
        part = REGISTERS[name]
        clear = ((1 << 64) - 1) ^ (part.mask << part.shift)
        full[part.base] = (full.get(part.base, 0) & clear) | (
            (parts[name] & part.mask) << part.shift
        )
    return full


def _render(doc: dict[str, Any], output: Output) -> None:
    if output is not Output.TABLE:  # jsonl: the one result as one line
        print_json(doc, compact=output is Output.JSONL)
        return
    for line in doc["output"]:
        print(line)
    for name, value in doc["registers"].items():
        print(f"@{name} = 0x{value:x}")
    for name, value in doc["globals"].items():
        print(f".{name} = 0x{value:x}")
    if doc["short_circuit"]:
        print("event_sc: the instruction would be skipped")
    if doc["pause"]:
        print("pause: the vCPU would be paused")
    for event in doc["events"]:
        print(f"{event['action']}({event['target']})")
