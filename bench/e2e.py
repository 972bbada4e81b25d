"""End-to-end plumbing for benchmarks: a real ioind and mosquitto, a counting subscriber.

``fleet(tmp, host, backend, extra_toml)`` starts a broker and an agent and yields a
:class:`Fleet`; :meth:`Fleet.count` subscribes to the host's events and counts them (decoding only
the batch sizes, in C); :meth:`Fleet.drained` waits until the agent's spool is empty and returns
how many events it sequenced, to compare with what the subscriber received.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import grpc

from agent.batch import batch_size
from agent.wire import agent_pb2, agent_pb2_grpc, events_pb2
from tests.harness import AgentProc, Broker, start_agent, start_broker

__all__ = ["Fleet", "fleet"]


@dataclass
class Fleet:
    broker: Broker
    agent: AgentProc
    stub: agent_pb2_grpc.AgentAsyncStub
    received: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def hook(self, command: str) -> str:
        reply = await self.stub.SetHook(agent_pb2.SetHookRequest(command=command), timeout=10)
        hook_id: str = reply.hook.spec.id
        return hook_id

    async def disable(self, hook_id: str) -> None:
        await self.stub.DisableHook(agent_pb2.HookRef(id=hook_id), timeout=10)

    async def counters(self) -> dict[str, int]:
        status = await self.stub.GetStatus(agent_pb2.GetStatusRequest(), timeout=10)
        return {c.name: c.value for c in status.counters}

    async def drained(self, within: float = 60.0) -> int:
        """Wait for an empty spool; the events the agent sequenced."""
        deadline = time.monotonic() + within
        while True:
            c = await self.counters()
            done = c["spool_batches"] == 0 and c["events_published"] >= c["events_sequenced"]
            if done or time.monotonic() > deadline:
                return c["events_sequenced"]
            await asyncio.sleep(0.2)

    async def settle(self, expected: int, within: float = 60.0) -> int:
        """Wait until the subscriber has ``expected`` events (or ``within`` passes)."""
        deadline = time.monotonic() + within
        while self.received < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        return self.received

    async def count(self) -> None:
        """Subscribe to the agent's events and count them, in the background."""
        client = aiomqtt.Client("127.0.0.1", self.broker.port, protocol=aiomqtt.ProtocolVersion.V5)
        ready = asyncio.Event()

        async def run() -> None:
            async with client:
                await client.subscribe(f"ioin/v1/{self.agent.host_id}/events/#", qos=1)
                ready.set()
                async for msg in client.messages:
                    if isinstance(msg.payload, bytes):
                        self.received += batch_size(events_pb2.EventBatch.FromString(msg.payload))

        self._tasks.append(asyncio.create_task(run()))
        await asyncio.wait_for(ready.wait(), 10)


@contextlib.asynccontextmanager
async def fleet(tmp: Path, host: str, backend: str, extra_toml: str = "") -> AsyncIterator[Fleet]:
    broker = start_broker(tmp / f"{host}-mosquitto")
    agent = start_agent(
        host,
        broker,
        tmp / host,
        backend=backend,
        extra_toml=extra_toml,
        mqtt_extra="batch_max = 2000\n",
    )
    try:
        async with grpc.aio.insecure_channel(agent.address) as channel:
            f = Fleet(broker, agent, agent_pb2_grpc.AgentStub(channel))
            try:
                yield f
            finally:
                for task in f._tasks:
                    task.cancel()
                await asyncio.gather(*f._tasks, return_exceptions=True)
    finally:
        agent.stop()
        broker.stop()
