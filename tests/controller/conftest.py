"""Running ``ioinctl`` in-process: ``cli("status", "--hosts", ...)`` → exit code, stdout, stderr."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from controller.cli import main


@dataclass(frozen=True)
class Run:
    """One ``ioinctl`` run."""

    code: int
    out: str
    err: str


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Call :func:`controller.cli.main` with the given arguments (no IOIN_* from the caller)."""
    for name in ("IOIN_CA", "IOIN_CERT", "IOIN_KEY", "IOIN_INSECURE", "IOIN_BROKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "250")

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
