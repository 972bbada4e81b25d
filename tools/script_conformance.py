"""Measure `ioinctl eval` against HyperDbg's script-engine test suite (HyperDbg/script-engine-test).

The suite is not part of this project: pass the files you have. Value cases
(``script-test-cases.txt`` format: number, script, expected hex value or ``$error$``, ``$end$``)
run with ``test_statement(x)`` turned into ``printf("%llx\\n", x)`` and the suite's registers
(rax=1, rdx=3, rbx=4, rbp=6, rsi=7, rdi=8, r8..r13 = 9..0xe); semantic files (``*.ds``) run with
their ``? `` prefix dropped and must print only "... was successful" lines.

    python tools/script_conformance.py CASES.txt [FILE.ds ...] [--budget N]
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.cli import main as ioinctl

REGS = {"rax": 1, "rdx": 3, "rbx": 4, "rbp": 6, "rsi": 7, "rdi": 8}
REGS |= {f"r{8 + i}": 9 + i for i in range(6)}
STATEMENT = re.compile(r"test_statement\((.*?)\);")


def evaluate(script: str, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = ["eval", script, *extra]
    for name, value in REGS.items():
        args += ["--reg", f"{name}={value:x}"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = ioinctl(args)
    return code, out.getvalue(), err.getvalue()


def value_cases(path: Path) -> tuple[int, int, int, int, list[str]]:
    ok_values = values = ok_rejects = rejects = 0
    misses = []
    for case in (c.strip() for c in path.read_text().split("$end$")):
        if not case:
            continue
        number, script, expected = case.split("\n")[:3]
        code, out, err = evaluate(STATEMENT.sub(r'printf("%llx\\n", \1);', script))
        got = out.split("\n")[0].strip() if code == 0 else "$error$"
        if expected == "$error$":
            rejects += 1
            ok_rejects += got == expected
        else:
            values += 1
            ok_values += got == expected
        if got != expected:
            misses.append(f"  case {number}: expected {expected}, got {got} {err.strip()[:60]}")
    return ok_values, values, ok_rejects, rejects, misses


def semantic_file(path: Path, budget: str) -> tuple[bool, list[str]]:
    text = re.sub(r"^\s*\?\s*", "", path.read_text(), count=1)
    code, out, err = evaluate(text, "--budget", budget)
    lines = [ln for ln in out.splitlines() if "test case" in ln]
    return code == 0 and all("successful" in ln for ln in lines), lines or [err.strip()]


def run(argv: list[str]) -> int:
    budget = "1000000"
    if "--budget" in argv:
        i = argv.index("--budget")
        budget = argv[i + 1]
        del argv[i : i + 2]
    for name in argv:
        path = Path(name)
        if path.suffix == ".ds":
            ok, lines = semantic_file(path, budget)
            print(f"{path.name}: {'only successful' if ok else 'NOT only successful'}")
            print("\n".join(f"  {ln}" for ln in lines if "successful" not in ln))
            continue
        ok_v, n_v, ok_r, n_r, misses = value_cases(path)
        print(f"{path.name}: value cases {ok_v}/{n_v}, must-reject cases {ok_r}/{n_r}")
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
