"""Certificate reload by SIGHUP, end to end: a real ioind on mutual-TLS gRPC and MQTT over TLS to
the shipped broker config; its certificate re-issued in place by ``ioinctl pki``; one SIGHUP.
New gRPC connections get the new certificate, the MQTT session reconnects presenting it, and the
event stream carries on without a gap (the spool is kept)."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from controller.cli import main as ioinctl
from tests.busclient import decode_batch
from tests.harness import AgentProc, Broker
from tests.security.conftest import SecureBroker
from tests.security.test_bus import RECEIVE_S, client

pytestmark = pytest.mark.slow

HOST = "host-a"


def served_serial(port: int, d: Path) -> int:
    """The serial of the certificate the agent's gRPC port presents to a new connection."""
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ctx.load_cert_chain(str(d / "ops.crt"), str(d / "ops.key"))
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def _wait_for(check: Callable[[], bool], what: str) -> None:
    for _ in range(int(RECEIVE_S / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {RECEIVE_S} s")


async def test_sighup_reloads_the_agents_certificate_for_grpc_and_mqtt(
    secure_broker: SecureBroker, agent_factory: Callable[..., AgentProc]
) -> None:
    b, d = secure_broker, secure_broker.pki
    issue = ["pki", "issue", str(d), "--agent", HOST, "--san", "127.0.0.1"]
    assert ioinctl(issue) == 0
    assert ioinctl(["pki", "issue", str(d), "--user", "ops", "--role", "operator"]) == 0
    mqtt = (
        f'tls = true\ncafile = "{d / "ca.crt"}"\n'
        f'certfile = "{d / f"{HOST}.crt"}"\nkeyfile = "{d / f"{HOST}.key"}"\n'
    )
    agent = agent_factory(
        HOST,
        broker=Broker(b.port, b.workdir),
        mqtt_extra=mqtt,
        tls=(d / f"{HOST}.crt", d / f"{HOST}.key", d / "ca.crt"),
    )
    tls_flags = [
        "--ca",
        str(d / "ca.crt"),
        "--cert",
        str(d / "ops.crt"),
        "--key",
        str(d / "ops.key"),
    ]
    seqs: list[int] = []
    epochs: set[str] = set()
    async with client(b, "reader") as reader:
        await reader.subscribe(f"ioin/v1/{HOST}/events/#", qos=1)
        push = ["push", "!ioin 0x3f8", "--hosts", agent.address, *tls_flags]
        assert await asyncio.to_thread(ioinctl, push) == 0

        async def gather(until: Callable[[], bool]) -> None:
            async with asyncio.timeout(RECEIVE_S):
                async for msg in reader.messages:
                    ctype = getattr(msg.properties, "ContentType", "") if msg.properties else ""
                    assert isinstance(msg.payload, bytes)
                    _, epoch, events = decode_batch(msg.payload, ctype)
                    epochs.add(epoch)
                    seqs.extend(e.seq for e in events)
                    if until():
                        return

        await gather(lambda: len(seqs) >= 50)
        old = await asyncio.to_thread(served_serial, agent.port, d)
        assert old == file_serial(d / f"{HOST}.crt")
        assert await asyncio.to_thread(ioinctl, issue) == 0  # re-issued in place
        new = file_serial(d / f"{HOST}.crt")
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        await _wait_for(lambda: '"event": "reloaded"' in agent.log, "reload")
        await _wait_for(lambda: b.log.count(f"as {HOST} (p5") == 2, "MQTT reconnect")
        before = len(seqs)
        await gather(lambda: len(seqs) >= before + 50)
    assert await asyncio.to_thread(served_serial, agent.port, d) == new != old
    assert len(epochs) == 1  # the same boot: nothing restarted
    assert sorted(set(seqs)) == list(range(min(seqs), max(seqs) + 1))  # no gap across the renewal
