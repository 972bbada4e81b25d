"""The publisher against a real mosquitto that dies mid-stream: the connection's task group ends
on the first MQTT error, and every message not acknowledged is back in the outbox."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from agent.config import MqttConfig
from agent.publish.mqtt import Publisher
from agent.publish.outbox import Message, Outbox
from agent.publish.spool import Spool
from tests.harness import Broker

pytestmark = pytest.mark.slow

TOTAL = 20_000


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 -- polling counters: there is no event to wait on
            await asyncio.sleep(0.01)


async def test_a_broker_killed_mid_stream_leaves_every_unacked_message_in_the_outbox(
    fresh_mosquitto: Broker,
) -> None:
    outbox = Outbox(Spool(":memory:", max_bytes=1 << 20), max_control=TOTAL)
    for i in range(TOTAL):
        outbox.put_control(Message("pub-test/stream", str(i).encode()))
    cfg = MqttConfig(port=fresh_mosquitto.port, max_inflight=16, ack_timeout=2.0)
    publisher = Publisher("pub-test", cfg, outbox, lambda: {"host": "pub-test"})
    task = asyncio.create_task(publisher.run())
    try:
        await until(lambda: publisher.published_messages >= 500)
        assert fresh_mosquitto.proc is not None
        fresh_mosquitto.proc.send_signal(signal.SIGKILL)  # no DISCONNECT, no last PUBACKs
        fresh_mosquitto.proc.wait(5)
        await until(lambda: not publisher.connected)
        # nothing is lost: acknowledged, or queued again (in-flight ones back at the front)
        assert publisher.published_messages + outbox.depth() == TOTAL
        assert publisher.published_messages < TOTAL
        fresh_mosquitto.start()
        await until(lambda: publisher.published_messages == TOTAL)
        assert outbox.depth() == 0
        assert publisher.connects == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
