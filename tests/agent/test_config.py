from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError

GOOD = """
host = "web-01"
backend = "sim"
[grpc]
listen = "127.0.0.1:50051"
insecure = true
[mqtt]
port = 1884
format = "json"
[sim]
rate = 500
ports = { "0x3f8" = 3, "0x70" = 1 }
[[kvm.vm]]
name = "serial"
image = "guest.bin"
vcpus = 2
"""


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(GOOD)
    cfg = load_config(path)
    assert cfg.host == "web-01"
    assert cfg.mqtt.port == 1884
    assert cfg.mqtt.format == "json"
    assert cfg.sim.ports == {0x3F8: 3.0, 0x70: 1.0}
    assert cfg.kvm.vms[0].name == "serial"
    assert cfg.kvm.vms[0].vcpus == 2


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "host": "Web/01",
                "backend": "xen",
                "mqtt": {"port": "abc", "bogus": 1, "batch_max": True},
                "sim": {"ports": {"0x10000": 1, "zz": 2, "0x70": -1}},
            }
        )
    assert info.value.problems == [
        "mqtt.port: expected an integer, got 'abc'",
        "mqtt.bogus: unknown key",
        "mqtt.batch_max: expected an integer, got True",
        "sim.ports.0x10000: port out of range 0..0xffff",
        "sim.ports.zz: not a port number",
        "sim.ports.0x70: weight must be a positive number, got -1",
        "host: must match [a-z0-9][a-z0-9._-]{0,63}",
        "backend: one of sim, kvm, kvm-trace",
        "grpc: set cert, key and ca for mutual TLS, or insecure = true for plain gRPC",
        "sim.ports: needs at least one port",
    ]


def test_unreadable_and_invalid_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("host = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)


def test_check_config_command_exit_codes(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text('[grpc]\ninsecure = true\n[mqtt]\nport = "x"\nformat = "xml"\n')
    ok = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    no = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert no.returncode == 1
    assert no.stderr.splitlines() == [
        "ioind: mqtt.port: expected an integer, got 'x'",
        "ioind: mqtt.format: one of protobuf, json",
    ]
