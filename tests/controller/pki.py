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
    """A CA named ``<name>-ca``, the agent ``ioind`` (SAN 127.0.0.1) and the user ``ioinctl``."""
    ca = pki.init_ca(directory, f"{name}-ca")
    server = pki.issue_agent(directory, "ioind", ["127.0.0.1"])
    client = pki.issue_user(directory, "ioinctl", role)
    return Pki(ca.cert, server.cert, server.key, client.cert, client.key)
