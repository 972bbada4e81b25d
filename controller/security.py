"""Transport security for the gRPC channels: mutual TLS by default, plain only when asked for.

Choosing is strict on purpose (DESIGN.md, "Secure by default"): without ``--ca/--cert/--key``
(``IOIN_CA``, ``IOIN_CERT``, ``IOIN_KEY``, or the inventory's ``[defaults]``) and without an
explicit ``--insecure`` (``IOIN_INSECURE=1``) no channel is opened and the command fails.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import grpc

from controller.errors import UsageError
from controller.inventory import Defaults

__all__ = ["Security", "choose_security"]

_NONE_CHOSEN = (
    "no transport security chosen: give --ca, --cert and --key (or IOIN_CA, IOIN_CERT, "
    "IOIN_KEY) for mutual TLS, or --insecure (IOIN_INSECURE=1) for plain gRPC"
)


@dataclass(frozen=True, slots=True)
class Security:
    """Plain (``insecure``) or mutual TLS with the PEM bytes of the CA, our cert and our key."""

    insecure: bool
    ca: bytes = b""
    cert: bytes = b""
    key: bytes = b""

    def credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials for mutual TLS, ``None`` for a plain channel.

        Built once and shared by every channel: parsing the PEM files again for each of a
        thousand hosts was a measurable part of a fan-out's CPU (bench/fleet.py).
        """
        if self.insecure:
            return None
        return _credentials(self.ca, self.key, self.cert)


@functools.cache
def _credentials(ca: bytes, key: bytes, cert: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(ca, key, cert)


def choose_security(
    *,
    insecure: bool,
    ca: str | None,
    cert: str | None,
    key: str | None,
    defaults: Defaults | None = None,
) -> Security:
    """Flags (and their environment variables) first, then the inventory's defaults."""
    d = defaults or Defaults()
    if insecure and (ca or cert or key):
        raise UsageError("give --insecure or --ca/--cert/--key, not both")
    if insecure:
        return Security(insecure=True)
    files = {"--ca": ca or d.ca, "--cert": cert or d.cert, "--key": key or d.key}
    if not any(files.values()):
        if d.insecure:
            return Security(insecure=True)
        raise UsageError(_NONE_CHOSEN)
    missing = [flag for flag, path in files.items() if not path]
    if missing:
        raise UsageError(f"mutual TLS needs --ca, --cert and --key: missing {', '.join(missing)}")
    pem = {flag: _read(flag, str(path)) for flag, path in files.items()}
    return Security(insecure=False, ca=pem["--ca"], cert=pem["--cert"], key=pem["--key"])


def _read(flag: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot read: {e.strerror or e}") from e
