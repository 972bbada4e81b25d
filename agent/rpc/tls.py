"""The gRPC server's mutual-TLS material, replaceable while the server runs (SIGHUP).

gRPC's dynamic server credentials ask ``_fetch`` before every new handshake whether the
certificate changed; :meth:`ServerTls.reload` reads and checks the files named by the new
config and leaves them for the next ``_fetch``. Connections already open keep the material they
were set up with. A reload that cannot read a file raises ``ConfigError`` naming it, and the
server goes on with what it had.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from agent.config import GrpcConfig
from agent.errors import ConfigError

__all__ = ["ServerTls"]


def _read(config: GrpcConfig) -> grpc.ServerCertificateConfiguration:
    try:
        key, cert, ca = (Path(p).read_bytes() for p in (config.key, config.cert, config.ca))
    except OSError as exc:
        raise ConfigError(f"grpc: cannot read {exc.filename}: {exc.strerror}") from None
    for name, pem in (("key", key), ("cert", cert), ("ca", ca)):
        if b"-----BEGIN " not in pem:
            raise ConfigError(f"grpc.{name}: {getattr(config, name)} is not a PEM file")
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


class ServerTls:
    """Server credentials whose certificate, key and CA a reload can replace."""

    def __init__(self, config: GrpcConfig) -> None:
        self._initial = _read(config)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()  # _fetch runs on gRPC's threads
        self.reloads = 0

    def credentials(self) -> grpc.ServerCredentials:
        # grpc-stubs types the fetcher without its documented ``None`` ("no change")
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=True,
        )

    def reload(self, config: GrpcConfig) -> None:
        """Use the files ``config`` names from the next handshake on."""
        fresh = _read(config)
        with self._lock:
            self._pending = fresh
        self.reloads += 1

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            fresh, self._pending = self._pending, None
        return fresh
