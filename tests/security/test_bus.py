"""The bus trusts no one: a real mosquitto from deploy/mosquitto.conf, certificates from ioinctl.

host-a (one stolen agent certificate) cannot write into host-b's topics, cannot join a consumer's
shared group or make a message disappear from it, cannot take over host-b's session; readers read
and never write; plain, anonymous and foreign clients are refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from controller.cli import main as ioinctl
from tests.harness import AgentProc, Broker
from tests.security.conftest import SecureBroker

pytestmark = pytest.mark.slow

V5 = aiomqtt.ProtocolVersion.V5
IOINCTL = [sys.executable, "-m", "controller.cli"]
RECEIVE_S = 10.0
DENIED = 135  # MQTT 5 reason code "Not authorized" (SUBACK, PUBACK)


def client(
    b: SecureBroker,
    name: str,
    *,
    identifier: str | None = None,
    pki: Path | None = None,
    timeout: float = 5,
) -> aiomqtt.Client:
    """A TLS client presenting ``name``'s certificate (from ``pki``, default the fleet's)."""
    d = pki or b.pki
    tls = aiomqtt.TLSParameters(
        ca_certs=str(b.pki / "ca.crt"),
        certfile=str(d / f"{name}.crt"),
        keyfile=str(d / f"{name}.key"),
    )
    return aiomqtt.Client(
        "127.0.0.1",
        b.port,
        identifier=identifier or name,
        protocol=V5,
        tls_params=tls,
        timeout=timeout,
    )


async def receive_until(c: aiomqtt.Client, last: str) -> list[tuple[str, bytes]]:
    """Every message ``c`` receives up to and including one on topic ``last``."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(RECEIVE_S):
        async for msg in c.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
            got.append((str(msg.topic), payload))
            if str(msg.topic) == last:
                return got
    raise AssertionError("unreachable")


def codes(granted: object) -> list[int]:
    assert isinstance(granted, list)
    return [int(rc.value) for rc in granted]


async def test_an_agent_publishes_only_under_its_own_prefix(secure_broker: SecureBroker) -> None:
    b = secure_broker
    spoofs = [
        "ioin/v1/host-b/events/in-3f8",
        "ioin/v1/host-b/status",
        "ioin/v1/host-b/breaks",
        "ioin/v1/host-b/audit",
        "ioin/v1/alerts/fake",
        "elsewhere/x",
    ]
    async with client(b, "reader") as reader, client(b, "host-a") as a:
        assert codes(await reader.subscribe("ioin/v1/#", qos=1)) == [1]
        for topic in spoofs:
            await a.publish(topic, b"spoof", qos=1, retain=topic.endswith("status"))
        await a.publish("ioin/v1/host-a/status", b"mine", qos=1)
        got = await receive_until(reader, "ioin/v1/host-a/status")
    assert got == [("ioin/v1/host-a/status", b"mine")]  # in order: nothing spoofed came first
    denied = re.findall(r"Denied PUBLISH from host-a \(.*?'([^']+)'", b.log)
    assert denied == spoofs


async def test_an_agent_cannot_join_a_shared_group_nor_hide_messages_from_it(
    secure_broker: SecureBroker,
) -> None:
    b = secure_broker
    group = "$share/agg/ioin/v1/+/events/#"
    async with (
        client(b, "agg-1") as agg,
        client(b, "host-a") as a,
        client(b, "stranger") as s,
        client(b, "host-b") as hb,
    ):
        assert codes(await agg.subscribe(group, qos=1)) == [1]
        for intruder in (a, s):  # two intruders, as in the probe (100 of 300 got through)
            assert codes(await intruder.subscribe(group, qos=1)) == [DENIED]
            assert codes(await intruder.subscribe("$share/x/ioin/v1/#", qos=1)) == [DENIED]
            assert codes(await intruder.subscribe("ioin/v1/host-b/#", qos=1)) == [DENIED]
            assert codes(await intruder.subscribe("ioin/v1/host-a/#", qos=1)) == [DENIED]
        for i in range(300):
            await hb.publish("ioin/v1/host-b/events/in-70", str(i).encode(), qos=1)
        await hb.publish("ioin/v1/host-b/events/last", b"end", qos=1)
        got = await receive_until(agg, "ioin/v1/host-b/events/last")
    assert [p for _, p in got[:-1]] == [str(i).encode() for i in range(300)]


async def test_an_agent_cannot_take_over_another_hosts_client_id(
    secure_broker: SecureBroker,
) -> None:
    b = secure_broker
    async with client(b, "reader") as reader, client(b, "host-b", identifier="ioind-host-b") as hb:
        await reader.subscribe("ioin/v1/#", qos=1)
        for _ in range(5):
            async with client(b, "host-a", identifier="ioind-host-b") as a:
                await a.publish("ioin/v1/host-a/status", b"a", qos=1)
        await hb.publish("ioin/v1/host-b/status", b"still here", qos=1)  # raises if dropped
        got = await receive_until(reader, "ioin/v1/host-b/status")
    assert got[-1] == ("ioin/v1/host-b/status", b"still here")
    sessions = re.findall(r"New client connected from \S+ as (\S+) ", b.log)
    assert sessions.count("host-b") == 1  # host-b's session was never replaced
    assert sessions.count("host-a") == 5  # the broker bound host-a's ids to host-a
    assert "ioind-host-b" not in sessions


async def test_readers_read_and_never_publish(secure_broker: SecureBroker) -> None:
    b = secure_broker
    async with client(b, "reader") as reader, client(b, "agg-1") as agg:
        await agg.subscribe("ioin/v1/#", qos=1)
        for topic in ("ioin/v1/reader/status", "ioin/v1/host-a/status", "ioin/v1/alerts/x"):
            await reader.publish(topic, b"forged", qos=1, retain=True)
        await agg.publish("ioin/v1/alerts/rule-1", b"alert", qos=1)  # the aggregator's alerts
        got = await receive_until(agg, "ioin/v1/alerts/rule-1")
    assert got == [("ioin/v1/alerts/rule-1", b"alert")]
    assert len(re.findall(r"Denied PUBLISH from reader ", b.log)) == 3


async def test_a_certificate_the_acl_does_not_name_can_do_nothing(
    secure_broker: SecureBroker,
) -> None:
    b = secure_broker
    async with client(b, "reader") as reader, client(b, "stranger") as s:
        await reader.subscribe("ioin/v1/#", qos=1)
        await s.publish("ioin/v1/stranger/status", b"hello", qos=1)
        async with client(b, "host-a") as a:
            await a.publish("ioin/v1/host-a/status", b"sentinel", qos=1)
        got = await receive_until(reader, "ioin/v1/host-a/status")
    assert got == [("ioin/v1/host-a/status", b"sentinel")]


async def test_plain_anonymous_and_foreign_clients_are_refused(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    b = secure_broker
    # Refused clients never get a CONNACK: aiomqtt gives up after ``timeout``; the log says why.
    plain = aiomqtt.Client("127.0.0.1", b.port, identifier="plain", protocol=V5, timeout=1)
    with pytest.raises(aiomqtt.MqttError):
        async with plain:
            pass
    no_cert = aiomqtt.Client(
        "127.0.0.1",
        b.port,
        identifier="anon",
        protocol=V5,
        timeout=1,
        tls_params=aiomqtt.TLSParameters(ca_certs=str(b.pki / "ca.crt")),
    )
    with pytest.raises(aiomqtt.MqttError):
        async with no_cert:
            pass
    other = tmp_path / "other-ca"
    assert ioinctl(["pki", "init", str(other)]) == 0
    assert ioinctl(["pki", "issue", str(other), "--agent", "host-b"]) == 0
    with pytest.raises(aiomqtt.MqttError):
        async with client(b, "host-b", pki=other, timeout=1):
            pass
    assert "wrong version number" in b.log  # the plain client: no TLS, no MQTT
    assert b.log.count("certificate verify failed") == 1  # the foreign CA
    assert "peer did not return a certificate" in b.log  # TLS without a client certificate


async def test_a_real_agent_publishes_over_tls_as_its_certificate(
    secure_broker: SecureBroker, agent_factory: Callable[..., AgentProc]
) -> None:
    """ioind with ``[mqtt] tls``: its birth and events reach a reader; its client id is its CN."""
    b = secure_broker
    tls = (
        f'tls = true\ncafile = "{b.pki / "ca.crt"}"\n'
        f'certfile = "{b.pki / "host-a.crt"}"\nkeyfile = "{b.pki / "host-a.key"}"\n'
    )
    async with client(b, "reader") as reader:
        await reader.subscribe("ioin/v1/host-a/#", qos=1)
        agent = agent_factory("host-a", broker=Broker(b.port, b.workdir), mqtt_extra=tls)
        push = ["push", "!ioin 0x3f8", "--hosts", agent.address, "--insecure"]
        assert await asyncio.to_thread(ioinctl, push) == 0
        topics: set[str] = set()
        async with asyncio.timeout(RECEIVE_S):
            async for msg in reader.messages:
                topics.add(
                    str(msg.topic).rsplit("/", 1)[0]
                    if "/events/" in str(msg.topic)
                    else str(msg.topic)
                )
                if {"ioin/v1/host-a/status", "ioin/v1/host-a/events"} <= topics:
                    break
    assert re.search(r"New client connected from \S+ as host-a \(p5", b.log)
    flags = [
        f"--mqtt-{k}={b.pki / f}"
        for k, f in (("ca", "ca.crt"), ("cert", "reader.crt"), ("key", "reader.key"))
    ]
    watch = [
        *IOINCTL,
        "watch",
        "--broker",
        f"127.0.0.1:{b.port}",
        *flags,
        "--seconds",
        "2",
        "-o",
        "json",
    ]
    out = await asyncio.to_thread(subprocess.run, watch, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert events, (out.stdout[-2000:], out.stderr[-2000:])
    assert {e["host"] for e in events} == {"host-a"}

    # discovery reads the same bus with the same reader's certificate: `hosts` lists the agent,
    # and `--discover` reaches it
    hosts = [*IOINCTL, "hosts", "--broker", f"127.0.0.1:{b.port}", *flags, "-o", "json"]
    out = await asyncio.to_thread(subprocess.run, hosts, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    (found,) = json.loads(out.stdout)["agents"]
    assert (found["name"], found["online"], found["address"]) == ("host-a", True, agent.address)
    status = [*IOINCTL, "status", "--discover", "--broker", f"127.0.0.1:{b.port}", *flags]
    status += ["--insecure", "-o", "json"]
    out = await asyncio.to_thread(
        subprocess.run, status, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert [h["host"] for h in json.loads(out.stdout)["hosts"]] == ["host-a"]


def test_an_agent_refuses_to_send_under_another_hosts_certificate(
    secure_broker: SecureBroker, agent_factory: Callable[..., AgentProc]
) -> None:
    """host-a given host-b's pair: the broker would refuse every publish, so the agent does not
    connect at all and says why (its spool keeps everything)."""
    b = secure_broker
    tls = (
        f'tls = true\ncafile = "{b.pki / "ca.crt"}"\n'
        f'certfile = "{b.pki / "host-b.crt"}"\nkeyfile = "{b.pki / "host-b.key"}"\n'
    )
    agent = agent_factory("host-a", broker=Broker(b.port, b.workdir), mqtt_extra=tls)
    why = "CN 'host-b' is not this agent's host id 'host-a'"
    deadline = time.monotonic() + RECEIVE_S
    while why not in agent.log and time.monotonic() < deadline:
        time.sleep(0.1)
    assert why in agent.log
    assert "New client connected" not in b.log
