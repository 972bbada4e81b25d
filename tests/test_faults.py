"""Fault tests with real parts: the broker goes away, the agent is killed, a flood, junk on the bus.

Each checks the guarantee from DESIGN.md: nothing triggered is lost silently, memory is bounded,
a restart restores hooks, and no consumer is disturbed by foreign payloads.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from agent.wire import agent_pb2, agent_pb2_grpc
from tests.busclient import collect_durable
from tests.harness import AgentProc, Broker, start_broker

pytestmark = pytest.mark.slow

ALL_PORTS = ("!ioin", "!ioout")  # with the sim backend every access is an event


async def rpc(agent: AgentProc) -> tuple[grpc.aio.Channel, agent_pb2_grpc.AgentAsyncStub]:
    channel = grpc.aio.insecure_channel(agent.address)
    return channel, agent_pb2_grpc.AgentStub(channel)


async def counters(agent: AgentProc) -> dict[str, int]:
    channel, stub = await rpc(agent)
    async with channel:
        status = await stub.GetStatus(agent_pb2.GetStatusRequest(), timeout=5)
    return {c.name: c.value for c in status.counters}


async def push(agent: AgentProc, *commands: str) -> list[str]:
    channel, stub = await rpc(agent)
    async with channel:
        replies = [
            await stub.SetHook(agent_pb2.SetHookRequest(command=c), timeout=5) for c in commands
        ]
    return [r.hook.spec.id for r in replies]


async def disable(agent: AgentProc, hook_ids: list[str]) -> None:
    channel, stub = await rpc(agent)
    async with channel:
        for hook_id in hook_ids:
            await stub.DisableHook(agent_pb2.HookRef(id=hook_id), timeout=5)


async def drained(agent: AgentProc, within: float = 30) -> dict[str, int]:
    """Wait until the spool is empty: everything acknowledged by the broker (or dropped)."""
    async with asyncio.timeout(within):
        while True:
            c = await counters(agent)
            done = c["events_published"] + c["events_dropped_spool"] >= c["events_sequenced"]
            if done and c["spool_batches"] == 0:
                return c
            await asyncio.sleep(0.2)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own that keeps sessions across its restarts."""
    b = start_broker(tmp_path / "mosquitto", persistent=True)
    yield b
    b.stop()


async def test_broker_outage_mid_stream_loses_nothing(
    agent_factory: Callable[..., AgentProc], broker: Broker
) -> None:
    agent = agent_factory("fault-outage", broker=broker, sim_rate=20_000)
    async with collect_durable(broker.port, "ioin/v1/fault-outage/events/#", "t-outage") as got:
        hook_ids = await push(agent, *ALL_PORTS)
        await asyncio.sleep(3)
        broker.stop()
        await asyncio.sleep(10)  # the agent keeps hooking; batches wait in its spool
        broker.start()
        await asyncio.sleep(3)
        await disable(agent, hook_ids)
        final = await drained(agent)
        await got.settle("fault-outage", final["events_sequenced"])
    seqs = got.seqs("fault-outage")
    assert len(seqs) == 1, "one agent boot, one epoch"
    received = next(iter(seqs.values()))
    assert final["events_dropped_spool"] == 0
    missing = sorted(set(range(1, final["events_sequenced"] + 1)) - set(received))
    assert not missing, f"{len(missing)} missing: {missing[:5]}..{missing[-5:]} of {final}"
    assert final["events_sequenced"] > 200_000  # ~16 s at 20k events/s


async def test_sigkill_loses_nothing_spooled_and_hooks_come_back(
    agent_factory: Callable[..., AgentProc], broker: Broker
) -> None:
    agent = agent_factory("fault-kill", broker=broker, sim_rate=5_000)
    async with collect_durable(broker.port, "ioin/v1/fault-kill/events/#", "t-kill") as got:
        hook_ids = await push(agent, *ALL_PORTS)
        await asyncio.sleep(1)
        broker.stop()  # batches now pile up in the spool only
        await asyncio.sleep(2)
        await disable(agent, hook_ids)  # stop producing; partial batches reach the spool
        await asyncio.sleep(0.3)
        before = await counters(agent)
        assert before["spool_batches"] > 0
        agent.stop(9)  # SIGKILL
        broker.start()
        agent.start()
        channel, stub = await rpc(agent)
        async with channel:
            hooks = await stub.ListHooks(agent_pb2.ListHooksRequest(), timeout=5)
        await drained(agent)
        await got.settle("fault-kill", before["events_sequenced"])
    assert sorted(h.spec.id for h in hooks.hooks) == sorted(hook_ids)
    assert not any(h.enabled for h in hooks.hooks)  # restored as they were: disabled
    seqs = got.seqs("fault-kill")
    assert len(seqs) == 1  # the restarted agent produced nothing new (hooks disabled)
    assert set(next(iter(seqs.values()))) == set(range(1, before["events_sequenced"] + 1))


async def test_a_flood_keeps_memory_bounded_and_drops_equal_gaps(
    agent_factory: Callable[..., AgentProc], broker: Broker
) -> None:
    agent = agent_factory(
        "fault-flood", broker=broker, sim_rate=60_000, extra_toml="", mqtt_extra="spool_mb = 4\n"
    )
    async with (
        collect_durable(broker.port, "ioin/v1/fault-flood/events/#", "t-flood") as got,
        collect_durable(broker.port, "ioin/v1/fault-flood/notices", "t-flood-n") as notices,
    ):
        broker.stop()  # the broker takes nothing: everything above the spool cap must drop
        hook_ids = await push(agent, *ALL_PORTS)
        await asyncio.sleep(8)
        rss_kib = rss(agent.pid)
        await disable(agent, hook_ids)
        broker.start()
        final = await drained(agent, within=60)
        kept = final["events_sequenced"] - final["events_dropped_spool"]
        await got.settle("fault-flood", kept)
        await asyncio.sleep(1.5)  # the drops notice goes out at most once a second
    received = set(next(iter(got.seqs("fault-flood").values())))
    gaps = final["events_sequenced"] - len(received)
    assert final["events_dropped_spool"] > 0, "the flood must exceed the 4 MB spool"
    assert gaps == final["events_dropped_spool"]
    drops = [json.loads(p) for _, p in notices.other]
    drops = [d for d in drops if d["kind"] == "drops" and d["stage"] == "spool"]
    assert drops, "the drops were announced on the notices topic"
    assert max(d["total"] for d in drops) == final["events_dropped_spool"]
    assert rss_kib < 100 * 1024, f"agent RSS {rss_kib} KiB over the 100 MB bound"


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_junk_on_an_event_topic_disturbs_neither_watch_nor_others(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker
) -> None:
    agent = agent_factory("fault-junk", sim_rate=2000)
    await push(agent, "!ioin 0x3f8")
    watch = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "controller.cli", "watch", "--broker", mosquitto.address],
        *["--host", "fault-junk", "-o", "json", "--seconds", "4"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.0)
    topic = "ioin/v1/fault-junk/events/in-3f8-785de70e"
    for payload in (b"\xff\x00junk", b'{"host": 1}', b"", b"\x0a\x05hello"):
        # -s: the payload from stdin (argv cannot carry NUL bytes); -n: an empty message
        flag = "-s" if payload else "-n"
        pub = await asyncio.create_subprocess_exec(
            *["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, flag],
            stdin=asyncio.subprocess.PIPE,
        )
        await pub.communicate(payload)
        assert pub.returncode == 0
    raw_out, raw_err = await asyncio.wait_for(watch.communicate(), 30)
    out, err = raw_out.decode(), raw_err.decode()
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) > 100, "events kept flowing around the junk"
    assert "junk" in err.lower() or "malformed" in err.lower() or "ignored" in err.lower()
    assert agent.proc is not None
    assert agent.proc.poll() is None


async def test_catch_up_after_an_outage_is_paced(
    agent_factory: Callable[..., AgentProc], fresh_mosquitto: Broker
) -> None:
    agent = agent_factory(
        "fault-pace",
        broker=fresh_mosquitto,
        sim_rate=5000,
        mqtt_extra="batch_max = 100\ncatchup_rate = 25\n",
    )
    async with asyncio.timeout(10):  # the outage starts after the first connect, not during it
        while (await counters(agent))["broker_connects"] < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    fresh_mosquitto.stop()
    hook_ids = await push(agent, "!ioin")
    await asyncio.sleep(1.5)
    await disable(agent, hook_ids)
    await asyncio.sleep(0.3)
    backlog = (await counters(agent))["spool_batches"]
    assert backlog >= 40
    fresh_mosquitto.start()
    async with asyncio.timeout(30):  # time the replay from the reconnect, not the backoff
        while (await counters(agent))["broker_connects"] < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    start = asyncio.get_running_loop().time()
    await drained(agent)
    elapsed = asyncio.get_running_loop().time() - start
    assert elapsed >= 0.9 * backlog / 25, f"{backlog} batches replayed in {elapsed:.2f} s"
