"""The publisher reads its TLS files again when told to (a SIGHUP reload does), against a real
mosquitto from the shipped config: replaced files are presented at once, nothing queued is lost.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import MqttConfig
from agent.publish.mqtt import Publisher
from agent.publish.outbox import Message, Outbox
from agent.publish.spool import Spool
from controller.cli import main as ioinctl
from tests.security.conftest import SecureBroker
from tests.security.test_bus import RECEIVE_S, client, receive_until

pytestmark = pytest.mark.slow


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(int(RECEIVE_S / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {RECEIVE_S} s")


async def test_renew_presents_replaced_files_and_loses_nothing(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    b = secure_broker
    live = tmp_path / "live"  # the agent's certificate files, replaced in place below
    live.mkdir()
    for name in ("host-a.crt", "host-a.key"):
        shutil.copy(b.pki / name, live / name)
    cfg = MqttConfig(
        host="127.0.0.1",
        port=b.port,
        tls=True,
        cafile=str(b.pki / "ca.crt"),
        certfile=str(live / "host-a.crt"),
        keyfile=str(live / "host-a.key"),
        ack_timeout=1.0,  # a refused handshake is given up quickly, then retried
    )
    outbox = Outbox(Spool(tmp_path / "spool.db", 1 << 20))
    publisher = Publisher("host-a", cfg, outbox, lambda: {"host": "host-a"})
    foreign = tmp_path / "foreign"
    assert ioinctl(["pki", "init", str(foreign)]) == 0
    assert ioinctl(["pki", "issue", str(foreign), "--agent", "host-a"]) == 0
    async with client(b, "reader") as reader, asyncio.TaskGroup() as tg:
        await reader.subscribe("ioin/v1/host-a/notices", qos=1)
        task = tg.create_task(publisher.run())
        await _until(lambda: publisher.connected, "first connect")
        for name in ("host-a.crt", "host-a.key"):  # a pair the broker does not trust
            shutil.copy(foreign / name, live / name)
        publisher.renew()
        await _until(lambda: "certificate verify failed" in b.log, "the new files presented")
        outbox.put_control(Message("ioin/v1/host-a/notices", b"queued while refused"))
        assert (
            await asyncio.to_thread(ioinctl, ["pki", "issue", str(b.pki), "--agent", "host-a"]) == 0
        )
        for name in ("host-a.crt", "host-a.key"):  # renewed by the fleet CA: accepted again
            shutil.copy(b.pki / name, live / name)
        got = await receive_until(reader, "ioin/v1/host-a/notices")
        task.cancel()
    assert got == [("ioin/v1/host-a/notices", b"queued while refused")]
    assert publisher.renewals == 1
    assert b.log.count("as host-a (p5") == 2  # first connect, then the renewed certificate
