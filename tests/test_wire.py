"""The committed wire code (agent/wire) matches proto/ (``make proto`` regenerates it)."""

from __future__ import annotations

from pathlib import Path

from tools.genproto import ROOT, generate


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = {p.name: p.read_text() for p in generate(tmp_path / "wire")}
    committed = {p.name: p.read_text() for p in (ROOT / "agent/wire").glob("*_pb2*.py*")}
    assert set(fresh) == set(committed), "run `make proto`: generated files differ in name"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"run `make proto`: stale generated files {stale}"
