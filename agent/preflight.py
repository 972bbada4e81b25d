"""What ``ioind`` checks on the machine before it starts, so a bad setting ends in one clear line.

The config file can be right and the machine still wrong: a ``state_dir`` that cannot be created
or written (a read-only mount, a file where a directory should be), a listen address another
process holds, a TLS file that is missing. Each is found here, before anything is opened, and
reported as a :class:`~agent.errors.ConfigError` problem naming the key, the value and the
system's reason; ``ioind`` prints one line per problem and exits 1, never a traceback. (A port
taken between this check and the bind is still refused with the same kind of line, by the
server.)
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path

from agent.config import AgentConfig

__all__ = ["listen_problem", "preflight"]


def preflight(cfg: AgentConfig) -> list[str]:
    """Every problem the machine has with ``cfg``: state directory, listen addresses, TLS files."""
    found = [_state_dir(cfg.state_dir), listen_problem("grpc.listen", cfg.grpc.listen)]
    if cfg.metrics.listen:
        found.append(listen_problem("metrics.listen", cfg.metrics.listen))
    if not cfg.grpc.insecure:
        files = {"grpc.cert": cfg.grpc.cert, "grpc.key": cfg.grpc.key, "grpc.ca": cfg.grpc.ca}
        found += [_readable(key, path) for key, path in files.items()]
    return [p for p in found if p]


def _state_dir(path: str) -> str | None:
    where = Path(path)
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".ioind-probe-"):
            pass
    except OSError as exc:
        return f"state_dir: cannot write '{path}': {exc.strerror or exc}"
    return None


def listen_problem(key: str, address: str) -> str | None:
    """Why ``address`` (HOST:PORT) cannot be listened on now, or None (port 0 always can)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if int(port) == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{key}: cannot resolve '{host}': {exc.strerror}"
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # as the gRPC core binds: SO_REUSEADDR, so a port in TIME_WAIT is not reported busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            reason = "in use by another process" if exc.errno == errno.EADDRINUSE else exc.strerror
            return f"{key}: cannot listen on {address}: {reason}"
    return None


def _readable(key: str, path: str) -> str | None:
    if not path:
        return None  # config's own check already names the missing TLS setting
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"{key}: cannot read '{path}': {exc.strerror or os.strerror(exc.errno or 0)}"
    return None
