"""Who a certificate names, and with which role: the fleet PKI's scheme, in one place.

The scheme (``ioinctl pki`` writes it, the agent's and the aggregator's role interceptor read it):

- A user's certificate carries its role as a URI subject alternative name
  ``ioin://role/<viewer|operator|admin>`` and the extended key usage ``clientAuth`` only.
- An agent's certificate carries ``serverAuth`` (its gRPC server) and ``clientAuth`` (it logs in
  to the broker with it), the broker's ``serverAuth`` only; neither carries a role. A certificate
  whose extended key usage includes ``serverAuth`` is never accepted as a controller, whatever
  else it names.
- The subject's common name is the user's name (or the host id); it is only ever displayed or
  logged, never parsed for a role, so a CN like ``x; DROP TABLE hooks`` is just a name.

Roles are ordered: ``viewer`` < ``operator`` < ``admin``; a role grants everything below it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import IntEnum

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ROLE_URI_PREFIX", "Identity", "Role", "identity_from_pem"]

ROLE_URI_PREFIX = "ioin://role/"


class Role(IntEnum):
    """A controller's role; a higher value grants everything a lower one does."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def uri(self) -> str:
        return ROLE_URI_PREFIX + self.label

    @classmethod
    def parse(cls, text: str) -> Role:
        """``viewer`` / ``operator`` / ``admin``; ``ValueError`` naming ``text`` otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise ValueError(f"unknown role '{text}': expected one of {names}") from None


@dataclass(frozen=True, slots=True)
class Identity:
    """What a peer's certificate says about it (see the module docstring for the scheme)."""

    subject: str  # RFC 4514, e.g. "CN=alice"
    common_name: str
    role: Role | None  # None: no role URI (agents, brokers, foreign certificates)
    role_problem: str  # why ``role`` is None when a role URI was there but unusable
    client_auth: bool  # extendedKeyUsage allows TLS client use (absent EKU: any use)
    server: bool  # extendedKeyUsage includes serverAuth: an agent's or the broker's certificate
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    uris: tuple[str, ...]
    not_after: datetime.datetime

    @property
    def presented(self) -> str:
        """The role as a refusal names it: ``operator``, ``agent certificate``, ``none``."""
        if self.role is not None:
            return self.role.label
        if self.server:
            return "agent certificate (serverAuth)"
        return f"none ({self.role_problem})" if self.role_problem else "none"


def identity_from_pem(pem: bytes) -> Identity:
    """Read an :class:`Identity` from one PEM certificate (``ValueError`` if it is not one)."""
    return identity_from_cert(x509.load_pem_x509_certificate(pem))


def identity_from_cert(cert: x509.Certificate) -> Identity:
    ext = cert.extensions
    try:
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    try:
        eku = set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = None
    client_auth = eku is None or ExtendedKeyUsageOID.CLIENT_AUTH in eku
    role, problem = _role(uris)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Identity(
        subject=cert.subject.rfc4514_string(),
        common_name=str(cns[0].value) if cns else "",
        role=role,
        role_problem=problem,
        client_auth=client_auth,
        server=eku is not None and ExtendedKeyUsageOID.SERVER_AUTH in eku,
        dns=tuple(san.get_values_for_type(x509.DNSName)),
        ips=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        uris=uris,
        not_after=cert.not_valid_after_utc,
    )


def _role(uris: tuple[str, ...]) -> tuple[Role | None, str]:
    """The one role URI; two different roles or an unknown one count as no role."""
    named = {u.removeprefix(ROLE_URI_PREFIX) for u in uris if u.startswith(ROLE_URI_PREFIX)}
    if not named:
        return None, ""
    if len(named) > 1:
        return None, f"several role URIs: {', '.join(sorted(named))}"
    (text,) = named
    labels = {r.label: r for r in Role}
    if text not in labels:
        return None, f"unknown role '{text}' in {ROLE_URI_PREFIX}{text}"
    return labels[text], ""
