"""The controller's side of the aggregator: where it is, durations, sparklines, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.aggclient import resolve_target
from controller.cli import main
from controller.cmd_agg import parse_duration
from controller.errors import InventoryError, UsageError
from controller.topview import sparkline


def test_the_aggregator_comes_from_the_flag_or_the_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "fleet.toml"
    inv.write_text(
        '[defaults]\naggregator = "agg.internal:50070"\ninsecure = true\n'
        '[[agent]]\naddress = "10.0.0.5:50051"\n'
    )
    t = resolve_target(None, inv, ca=None, cert=None, key=None, insecure=False)
    assert t.host.address == "agg.internal:50070"
    assert t.security.insecure
    t = resolve_target("other:1", inv, ca=None, cert=None, key=None, insecure=False)
    assert t.host.address == "other:1"
    with pytest.raises(UsageError, match="no aggregator"):
        resolve_target(None, None, ca=None, cert=None, key=None, insecure=True)
    with pytest.raises(UsageError, match="'nowhere'"):
        resolve_target("nowhere", None, ca=None, cert=None, key=None, insecure=True)
    inv.write_text('[defaults]\naggregator = "x"\n[[agent]]\naddress = "10.0.0.5:50051"\n')
    with pytest.raises(InventoryError, match=r"defaults\.aggregator"):
        resolve_target(None, inv, ca=None, cert=None, key=None, insecure=True)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "1w", "-5m", "h", ""])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(UsageError, match=f"'{text}'"):
        parse_duration(text)


def test_sparkline_scales_to_the_largest() -> None:
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0, 4, 8]) == "▁▄█"
    assert len(sparkline([3] * 10)) == 10


def test_usage_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--since", "soon", "--aggregator", "a:1", "--insecure"]) == 1
    assert "'soon'" in capsys.readouterr().err
    assert main(["top", "--label", "env", "--aggregator", "a:1", "--insecure"]) == 1
    assert "'env'" in capsys.readouterr().err
