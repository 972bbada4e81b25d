"""One reader thread per CPU on ``per_cpu/cpuN/trace_pipe_raw``.

Each thread ``poll``s its non-blocking fd (the instance sets ``buffer_percent`` 0, so poll wakes
as soon as the CPU's buffer holds any event — Documentation/trace/ftrace.rst, "buffer_percent"),
then reads whole sub-buffers until ``EAGAIN`` (a read of ``trace_pipe_raw`` returns one sub-buffer,
``tracing_buffers_read`` in kernel/trace/trace.c), parses them and hands the pages of one wake-up
to ``on_pages`` in a single call. After a wake-up that found data it waits ``pace_s`` (5 ms) so
that under load each read takes a full page and wake-ups stay at about 200/s per CPU — the ring
buffer absorbs the burst; an idle CPU costs nothing. A self-pipe wakes the thread for shutdown.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
from collections.abc import Callable

from agent.backends.kvm_trace.ringbuf import EventFormat, PageLayout, RawPage, parse_page

__all__ = ["CpuReader", "OnError", "OnPages"]

OnPages = Callable[[int, list[RawPage]], None]
"""Called on the reader thread with the CPU number and the pages of one wake-up."""
OnError = Callable[[int, OSError], None]

MAX_PAGES_PER_WAKE = 256  # hand over at least every 1 MiB so batches stay bounded
PACE_S = 0.005  # the longest an event waits in the ring buffer once its CPU is busy


class CpuReader:
    """Reads one CPU's ring buffer on a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        cpu: int,
        fd: int,
        *,
        page_size: int,
        fmt: EventFormat,
        layout: PageLayout,
        on_pages: OnPages,
        on_error: OnError,
        pace_s: float = PACE_S,
    ) -> None:
        self.cpu = cpu
        self._fd = fd
        self._page_size = page_size
        self._fmt = fmt
        self._layout = layout
        self._on_pages = on_pages
        self._on_error = on_error
        self._pace_ms = round(pace_s * 1000)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping = False
        self.pages = 0
        self._thread = threading.Thread(target=self._run, name=f"kvm-trace-cpu{cpu}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the thread, wait for it, and close every fd (the instance can then be removed)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        for fd in (self._fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def drain(self) -> list[RawPage]:
        """Read every page available now (also used directly by tests)."""
        pages: list[RawPage] = []
        while len(pages) < MAX_PAGES_PER_WAKE:
            try:
                buf = os.read(self._fd, self._page_size)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not buf:
                break
            pages.append(parse_page(buf, self._fmt, self._layout))
        self.pages += len(pages)
        return pages

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        pacer = select.poll()
        pacer.register(self._wake_r, select.POLLIN)
        try:
            while not self._stopping:
                poller.poll()
                if self._stopping:
                    break
                pages = self.drain()
                if pages:
                    self._on_pages(self.cpu, pages)
                    if len(pages) < MAX_PAGES_PER_WAKE:
                        pacer.poll(self._pace_ms)  # let the buffer fill; stop() still wakes us
        except OSError as e:
            if not self._stopping and e.errno != errno.EBADF:
                self._on_error(self.cpu, e)
