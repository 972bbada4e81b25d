"""systemd's notify protocol, spoken directly: one datagram per message to ``$NOTIFY_SOCKET``.

The protocol (sd_notify(3)): newline-separated ``KEY=VALUE`` assignments in one ``AF_UNIX``
``SOCK_DGRAM`` datagram to the path in ``$NOTIFY_SOCKET``; a leading ``@`` names a socket in the
abstract namespace (the ``@`` becomes a NUL byte). ``READY=1`` ends a ``Type=notify`` start;
``RELOADING=1`` with ``MONOTONIC_USEC=`` (systemd >= 253 checks it for ``Type=notify-reload``)
opens a reload that the next ``READY=1`` closes; ``WATCHDOG=1`` feeds ``WatchdogSec=``, whose
interval reaches us as ``$WATCHDOG_USEC`` (for us only if ``$WATCHDOG_PID`` is unset or ours).

Outside systemd ``$NOTIFY_SOCKET`` is unset and every call is a no-op. The variables are read once
and removed from the environment, as ``sd_notify(unset_environment=1)`` does, so that processes we
start (the C compiler of the kvm fast path) do not talk to systemd in our name. A failed send is
counted and logged, never raised: a lost status line must not stop the agent.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import MutableMapping

import structlog

__all__ = ["Notifier", "watchdog_interval"]

log = structlog.get_logger("ioind.sdnotify")


def watchdog_interval(environ: MutableMapping[str, str] = os.environ) -> float | None:
    """The watchdog period in seconds that systemd set for this process, or ``None``.

    Pops ``WATCHDOG_USEC`` / ``WATCHDOG_PID`` like ``sd_watchdog_enabled(unset_environment=1)``.
    """
    usec, pid = environ.pop("WATCHDOG_USEC", ""), environ.pop("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a service's main process)
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


def _address(raw: str) -> str | bytes:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace (unix(7))
    return raw


class Notifier:
    """Sends notify messages; ``Notifier.from_env()`` in the agent, an explicit path in tests."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self.sent = 0
        self.failed = 0
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)  # never stall the event loop on a busy manager

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        return cls(environ.pop("NOTIFY_SOCKET", None))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *assignments: str) -> bool:
        """One datagram with ``assignments`` (``"READY=1"``, ...); False if not delivered."""
        if self._sock is None or self.address is None:
            return False
        try:
            self._sock.sendto("\n".join(assignments).encode(), _address(self.address))
        except OSError as exc:
            self.failed += 1
            log.warning("sd-notify-failed", socket=self.address, error=exc.strerror or str(exc))
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
