"""``[mqtt]`` TLS keys: what check-config refuses, and what an unusable file is called."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import MqttConfig, parse_config
from agent.errors import ConfigError
from agent.publish.tls import mqtt_context
from controller.cli import main as ioinctl

GRPC = {"grpc": {"insecure": True}}


@pytest.mark.parametrize(
    ("mqtt", "problem"),
    [
        ({"tls": True}, "mqtt.cafile: required with tls = true"),
        ({"cafile": "/x/ca.crt"}, "mqtt.tls: cafile, certfile and keyfile are used only with"),
        ({"tls": True, "cafile": "c", "certfile": "a.crt"}, "mqtt.keyfile: certfile and keyfile"),
        ({"tls": "yes"}, "mqtt.tls: expected a boolean, got 'yes'"),
    ],
)
def test_check_config_names_the_tls_key(mqtt: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(GRPC | {"mqtt": mqtt})
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


def test_context_presents_the_agent_certificate_and_names_unusable_files(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert ioinctl(["pki", "init", str(d)]) == 0
    assert ioinctl(["pki", "issue", str(d), "--agent", "web-01"]) == 0
    ok = MqttConfig(
        tls=True,
        cafile=str(d / "ca.crt"),
        certfile=str(d / "web-01.crt"),
        keyfile=str(d / "web-01.key"),
    )
    ctx = mqtt_context(ok, "web-01")
    assert ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1
    with pytest.raises(ConfigError, match=r"mqtt.cafile: .*/nope.crt"):
        mqtt_context(MqttConfig(tls=True, cafile=str(d / "nope.crt")), "web-01")
    mismatched = MqttConfig(
        tls=True,
        cafile=str(d / "ca.crt"),
        certfile=str(d / "web-01.crt"),
        keyfile=str(d / "ca.key"),
    )
    with pytest.raises(ConfigError, match=r"mqtt.certfile/keyfile: .*web-01.crt, .*ca.key"):
        mqtt_context(mismatched, "web-01")
    with pytest.raises(ConfigError, match=r"CN 'web-01' is not this agent's host id 'web-02'"):
        mqtt_context(ok, "web-02")
