"""Disk space held back for the spool's own recovery from a full disk.

SQLite in WAL mode needs free space even to delete: a delete is new WAL frames, and moving
committed frames into the database (a checkpoint) may grow the database file. On a disk that is
completely full the spool could then neither drop nor insert. So the spool keeps a ballast file,
``<spool>.reserve``, of :func:`sizes`' ``reserve`` bytes: on ENOSPC it deletes the ballast, which
gives the checkpoint and the drops their room, and it makes the ballast again once the disk has
space. The WAL is checkpointed every ``checkpoint_pages`` pages (SQLite's default of 1000, 4 MB,
on disks of 64 MB and more; smaller on smaller disks) and the ballast is twice that.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PAGE", "Reserve", "sizes"]

PAGE = 4096  # SQLite's default page size


def sizes(directory: Path) -> tuple[int, int]:
    """(checkpoint_pages, reserve_bytes) for a spool in ``directory``: a sixteenth of the disk
    between checkpoints, at least 16 and at most 1000 pages; the ballast is twice that."""
    st = os.statvfs(directory)
    pages = max(16, min(1000, st.f_blocks * st.f_frsize // 16 // PAGE))
    return pages, 2 * pages * PAGE


class Reserve:
    """The ballast file: :meth:`release` frees its space at once, :meth:`restore` retakes it."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    @property
    def held(self) -> bool:
        return self.path.exists()

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def restore(self) -> bool:
        """Make the ballast again (really allocated, so the space is taken); False if the disk
        has no room for it yet."""
        if self.held:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.release()
            return False
        return True
