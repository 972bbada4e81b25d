"""A full disk under a real ``ioind`` (issue 10, item 2), on a real 2 MB tmpfs.

Before: the agent exited with ``sqlite3.OperationalError: database or disk is full``, a restart
failed again (a crash loop under ``Restart=on-failure``), and a SetHook while the disk was full
answered INTERNAL with the hook live, and gone after a restart. Now the agent stays up, drops by
the spool's policy, counts and announces the drops; a SetHook is persisted or refused whole; and
a restart on the full disk comes up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agent.wire import agent_pb2, agent_pb2_grpc
from tests.busclient import collect
from tests.harness import start_agent, start_broker

pytestmark = pytest.mark.slow


@pytest.fixture
def state_on_tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """``<workdir>/state`` on a real 2 MB tmpfs (tests run as root); skipped where mount fails."""
    state = tmp_path / "full" / "state"
    state.mkdir(parents=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs: {res.stderr.strip()}")
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(where: Path) -> None:
    """Take every free byte of the filesystem."""
    fd = os.open(where / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


async def call(address: str, method: str, request: object) -> object:
    async with grpc.aio.insecure_channel(address) as channel:
        return await getattr(agent_pb2_grpc.AgentStub(channel), method)(request, timeout=10)


async def counters(address: str) -> dict[str, int]:
    status = await call(address, "GetStatus", agent_pb2.GetStatusRequest())
    return {c.name: c.value for c in status.counters}  # type: ignore[attr-defined]


async def hook_ids(address: str) -> set[str]:
    page = await call(address, "ListHooks", agent_pb2.ListHooksRequest())
    return {h.spec.id for h in page.hooks}  # type: ignore[attr-defined]


async def test_a_full_disk_keeps_the_agent_up_and_a_restart_comes_up(
    state_on_tiny_disk: Path, tmp_path: Path
) -> None:
    broker = start_broker(tmp_path / "mosquitto")
    broker.stop()  # no broker: everything goes to the spool, which fills the disk
    workdir = state_on_tiny_disk.parent
    agent = start_agent("full", broker, workdir, sim_rate=20_000, mqtt_extra="spool_mb = 64\n")
    try:
        await call(agent.address, "SetHook", agent_pb2.SetHookRequest(command="!ioin"))
        for _ in range(120):
            if (await counters(agent.address))["spool_disk_full"]:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        assert (await counters(agent.address))["events_dropped_spool"] > 0
        assert agent.proc is not None
        assert agent.proc.poll() is None  # still up

        fill(state_on_tiny_disk)  # now not even the hook store has room
        request = agent_pb2.SetHookRequest(command="!ioout 0x80")
        refused: grpc.aio.AioRpcError | None = None
        try:
            reply = await call(agent.address, "SetHook", request)
        except grpc.aio.AioRpcError as e:
            refused = e
        if refused is None:
            persisted = {reply.hook.spec.id}  # type: ignore[attr-defined]
        else:
            assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details()
            assert "cannot save hooks" in (refused.details() or "")
            persisted = set()
        live = await hook_ids(agent.address)
        assert len(live) == 1 + len(persisted)

        broker.start()  # the drops are announced on the notices topic once the agent connects
        topic = f"ioin/v1/{agent.host_id}/notices"
        async with collect(broker.port, topic) as got:
            for _ in range(120):
                if any(b'"drops"' in p and b'"spool"' in p for _, p in got.other):
                    break
                await asyncio.sleep(0.5)
        notice = next(json.loads(p) for _, p in got.other if b'"spool"' in p)
        assert notice["events"] > 0

        assert agent.stop() == 0
        agent.start()  # on the full disk: comes up instead of crash-looping
        assert await hook_ids(agent.address) == live  # persisted, or refused: never half
        assert persisted <= live
    finally:
        agent.stop()
        broker.stop()
