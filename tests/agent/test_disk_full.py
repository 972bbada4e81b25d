"""A full disk under the spool (issue 10, item 2): real SQLite on a real 2 MB tmpfs.

The spool used to raise ``sqlite3.OperationalError: database or disk is full`` out of ``put``,
which took the agent down, and a restart on the full disk failed again (a crash loop under
``Restart=on-failure``). Now it drops by its policy, counts, and carries on.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.publish.spool import MEMORY_FALLBACK_BYTES, Spool

BATCH = os.urandom(20_000)  # incompressible, like a protobuf batch


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB tmpfs (the tests run as root); skipped, with the reason, where mount fails."""
    where = tmp_path / "disk"
    where.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs: {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


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


def test_put_on_a_full_disk_drops_oldest_counts_and_keeps_going(tiny_disk: Path) -> None:
    spool = Spool(tiny_disk / "spool.db", max_bytes=64 * 2**20)  # the disk, not the cap, is full
    ids = [spool.put("t", BATCH, "x", 10) for _ in range(400)]  # 8 MB into 2 MB
    assert spool.disk_full > 0
    assert spool.dropped_batches > 0
    assert spool.dropped_events == 10 * spool.dropped_batches
    assert spool.batches + spool.dropped_batches == 400
    assert spool.batches > 10  # most of the disk still holds batches
    kept = spool.take(1000)
    assert [b.id for b in kept] == sorted(b.id for b in kept)
    assert kept[-1].id == ids[-1]  # the newest is kept: drop-oldest
    for b in kept:
        spool.ack(b.id, b.events, len(b.payload))
    assert (spool.batches, spool.bytes) == (0, 0)
    spool.close()


def test_acks_whose_delete_fails_are_retried_and_not_sent_again(tiny_disk: Path) -> None:
    spool = Spool(tiny_disk / "spool.db", max_bytes=64 * 2**20)
    first = [spool.put("t", BATCH, "x", 1) for _ in range(5)]
    fill(tiny_disk)
    for batch_id in first:
        spool.ack(batch_id, 1, len(BATCH))  # a delete may need WAL space: deferred if so
    assert spool.batches == 0
    spool.rewind()
    assert spool.take(10) == []  # acknowledged: never handed out again
    (tiny_disk / "ballast").unlink()
    spool.put("t", BATCH, "x", 1)  # the next write retries the deferred deletes
    assert spool.batches == 1
    spool.close()


def test_opening_on_a_full_disk_falls_back_to_memory(tiny_disk: Path) -> None:
    fill(tiny_disk)
    spool = Spool(tiny_disk / "spool.db", max_bytes=256 * 2**20)
    assert not spool.on_disk
    assert spool.max_bytes == MEMORY_FALLBACK_BYTES
    batch_id = spool.put("t", BATCH, "x", 3)
    assert [b.id for b in spool.take(5)] == [batch_id]
    spool.close()
