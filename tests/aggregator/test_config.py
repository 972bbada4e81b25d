"""Configuration and alert rules: every refusal names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.alerts import Alert, Engine, load_rules
from aggregator.cli import main
from aggregator.config import load
from aggregator.errors import ConfigError
from aggregator.rollup import Rollup

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 1\n", "colour"),
        ("broker = 5\n", "broker"),
        ("[retention]\nd = 3\n", "retention.d"),
        ("[retention]\ns = 0\n", "retention.s"),
        ("[ingest]\nreceive_max = 70000\n", "ingest.receive_max"),
        ('listen = "nowhere"\n', "listen"),
        ("insecure = false\n", "cert/key/ca"),
    ],
)
def test_config_refusals_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "agg.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(path).with_flags()
    assert key in exc.value.key


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agg.toml"
    path.write_text('broker = "mq:1883"\ngroup = "g1"\ninsecure = true\n')
    cfg = load(path).with_flags(group="g2", listen="127.0.0.1:0")
    assert (cfg.broker, cfg.group, cfg.listen) == ("mq:1883", "g2", "127.0.0.1:0")


def test_check_config_accepts_the_shipped_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DEPLOY / "ioinagg.toml").read_text()
    conf = tmp_path / "ioinagg.toml"
    conf.write_text(text.replace("/etc/ioinagg/alerts.toml", str(DEPLOY / "alerts.toml")))
    assert main(["check-config", str(conf)]) == 0
    assert "OK" in capsys.readouterr().out
    (tmp_path / "bad.toml").write_text('[[rule]]\nname = "x"\nports = ["nope"]\n')
    conf.write_text(text.replace("/etc/ioinagg/alerts.toml", str(tmp_path / "bad.toml")))
    assert main(["check-config", str(conf)]) == 1
    assert "rule[0].ports" in capsys.readouterr().err
    names = [r.name for r in load_rules(DEPLOY / "alerts.toml")]
    assert {"floppy-venom", "port-scan"} <= set(names)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[rule]]\nname = "Bad Name"\n', "rule[0].name"),
        ('[[rule]]\nname = "a"\nports = ["0x3f7-0x3f0"]\n', "rule[0].ports"),
        ('[[rule]]\nname = "a"\ndir = "sideways"\n', "rule[0].dir"),
        ('[[rule]]\nname = "a"\ncolour = 1\n', "rule[0].colour"),
        ('[[rule]]\nname = "a"\nwindow_s = 0\n', "rule[0].window_s"),
    ],
)
def test_rule_refusals_name_the_rule_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_rules(path)
    assert key in exc.value.key


def row(host: str, vm: int, port: int, bucket: int, events: int) -> tuple[object, ...]:
    return (host, vm, 0, 0, port, "in-all", bucket, events, 0, 0, "vm")


def test_rate_and_first_seen_rules(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(
        '[[rule]]\nname = "hot"\nrate = 100\nwindow_s = 2\ncooldown_s = 60\n\n'
        '[[rule]]\nname = "new"\nfirst_seen = true\ncooldown_s = 0\n'
    )
    fired: list[Alert] = []
    engine = Engine(fired.append, lambda h: {})
    engine.set_rules(load_rules(path))
    engine.remember([("h1", 1, 0x70)])
    engine.feed([Rollup([row("h1", 1, 0x70, 100, 150)], [])])  # type: ignore[list-item]
    assert [a.rule for a in fired] == []  # 75/s over 2 s; the pair is known
    engine.feed([Rollup([row("h1", 1, 0x70, 101, 100)], [])])  # type: ignore[list-item]
    engine.feed([Rollup([row("h1", 1, 0x71, 101, 1)], [])])  # type: ignore[list-item]
    assert [a.rule for a in fired] == ["hot", "new"]
    assert fired[1].port == 0x71


def test_rule_matches_on_labels_values_vms_and_direction(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(
        '[[rule]]\nname = "m"\nports = [0x60]\ndir = "out"\nvms = [3]\nvalues = ["0xd0-0xdf"]\n'
        'labels = { env = "prod" }\ncooldown_s = 0\n'
    )
    fired: list[Alert] = []
    labels = {"h1": {"env": "prod"}, "h2": {"env": "dev"}}
    engine = Engine(fired.append, lambda h: labels.get(h, {}))
    engine.set_rules(load_rules(path))

    def out_row(host: str, vm: int, value: int, out: int = 1) -> Rollup:
        key = (host, vm, 0, out, 0x60, "in-all", 100)
        return Rollup([(*key, 5, 0, 0, "vm")], [(*key, value, 5)])

    engine.feed([out_row("h2", 3, 0xD1)])  # a dev host
    engine.feed([out_row("h1", 4, 0xD1)])  # another VM
    engine.feed([out_row("h1", 3, 0x10)])  # a value outside the range
    engine.feed([out_row("h1", 3, 0xD1, out=0)])  # IN, not OUT
    assert fired == []
    engine.feed([out_row("h1", 3, 0xD1)])
    assert [(a.rule, a.host, a.vm, a.dir) for a in fired] == [("m", "h1", 3, "out")]
    assert b'"rule":"m"' in fired[0].payload()
