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


# -- issue 10, item 6: every key range-checked, unreadable files and a wrong machine ---------------


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[mqtt]\nkeepalive = -5", "mqtt.keepalive: out of range 1..65535, got -5"),
        ("[mqtt]\nkeepalive = 100000", "mqtt.keepalive: out of range 1..65535, got 100000"),
        ("[mqtt]\nsession_expiry = -1", "mqtt.session_expiry: out of range 0..4294967295, got -1"),
        ("[mqtt]\nsession_expiry = 1099511627776", "mqtt.session_expiry: out of range"),
        ("[mqtt]\nack_timeout = 0", "mqtt.ack_timeout: out of range 0.1..3600, got 0.0"),
        ("[mqtt]\nack_timeout = -1", "mqtt.ack_timeout: out of range 0.1..3600, got -1.0"),
        ("[mqtt]\ncatchup_rate = inf", "mqtt.catchup_rate: out of range 0.001..1000000, got inf"),
        ("[kvm]\nbreak_timeout = nan", "kvm.break_timeout: out of range 0.001..86400.0, got nan"),
        ("[grpc]\nlisten = '0.0.0.0:99999'", "grpc.listen: expected HOST:PORT with a port in"),
        ("[metrics]\nlisten = ':80'", "metrics.listen: expected HOST:PORT"),
        ("[limits]\nmax_hooks = 0", "limits.max_hooks: out of range 1..1000000, got 0"),
        ("[limits]\nmax_nesting = 1000", "limits.max_nesting: out of range 1..256, got 1000"),
        ("state_dir = ''", "state_dir: must not be empty"),
        ("[mqtt]\nhost = ' '", "mqtt.host: must not be empty"),
    ],
)
def test_out_of_range_values_are_refused_naming_key_range_and_value(
    tmp_path: Path, toml: str, problem: str
) -> None:
    path = tmp_path / "a.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p for p in info.value.problems if p.startswith(problem)], info.value.problems


def test_check_config_reports_every_range_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text("[mqtt]\nkeepalive = -5\nsession_expiry = -1\nack_timeout = 0\n")
    res = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1
    keys = [line.split(":")[1].strip() for line in res.stderr.splitlines()]
    assert keys == ["grpc", "mqtt.keepalive", "mqtt.session_expiry", "mqtt.ack_timeout"]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'host = "h\xff\xfe"\n', "UTF-8 (byte 9 is 0xff)"),
        (
            b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",
            "valid TOML: arrays or tables nested too deeply",
        ),
        (
            b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n",
            "valid TOML: arrays or tables nested too deeply",
        ),
    ],
)
def test_undecodable_files_are_one_error_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    res = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (res.returncode, res.stderr) == (1, f"ioind: {path}: not {problem}\n")
