"""The supervisor in process, on a real notify socket: readiness waits, pings need health."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.sdnotify import Notifier
from agent.supervisor import Supervisor, all_set
from tests.deploy.service import NotifySocket


async def test_ready_waits_for_every_condition_and_pings_need_a_healthy_backend(
    tmp_path: Path,
) -> None:
    sock = NotifySocket(tmp_path / "n.sock")
    healthy = False
    notifier = Notifier(str(sock.path))
    sup = Supervisor(notifier, status=lambda: "s", healthy=lambda: healthy, watchdog_s=0.2)
    listening, producing = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sup.run(all_set(listening, producing)))
    listening.set()
    await asyncio.sleep(0.2)
    assert not sup.ready  # the backend does not produce yet
    producing.set()
    await asyncio.sleep(0.5)
    assert sup.ready
    assert (sup.pings, sup.pings_withheld >= 3) == (0, True)
    healthy = True
    await asyncio.sleep(0.5)
    assert sup.pings >= 3
    async with sup.reloading():
        pass
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    messages = await asyncio.to_thread(sock.collect, 0.2)
    assert messages[0] == {"READY": "1", "STATUS": "s"}
    kinds = [next(iter(m)) for m in messages[1:]]
    assert kinds.count("WATCHDOG") == sup.pings
    assert kinds[-3:] == ["RELOADING", "READY", "STOPPING"]
    notifier.close()
    sock.close()
