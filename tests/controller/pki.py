"""A throwaway PKI for TLS tests, made by ``ioinctl pki``'s own code (:mod:`controller.pki`):
a CA, an agent certificate for 127.0.0.1 and an admin user's client certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.identity import Role
from controller import pki

__all__ = ["Pki", "make_pki"]


@dataclass(frozen=True)
class Pki:
    """PEM files written under one directory."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, name: str = "test", role: Role = Role.ADMIN) -> Pki:
    """A CA named ``<name>-ca``, the agent ``ioind`` (SAN 127.0.0.1) and the user ``ioinctl``
    (``role``), under the file names tests have always used (ca.pem, server.pem, client.pem)."""
    ca = pki.init_ca(directory, f"{name}-ca")
    server = pki.issue_agent(directory, "ioind", ["127.0.0.1"])
    client = pki.issue_user(directory, "ioinctl", role)
    return Pki(
        ca=ca.cert.rename(directory / "ca.pem"),
        server_cert=server.cert.rename(directory / "server.pem"),
        server_key=server.key.rename(directory / "server.key"),
        client_cert=client.cert.rename(directory / "client.pem"),
        client_key=client.key.rename(directory / "client.key"),
    )
