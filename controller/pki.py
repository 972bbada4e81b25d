"""The fleet PKI behind ``ioinctl pki``: a CA, and the certificates it signs for agents, users and
the broker (the scheme is :mod:`agent.identity`'s).

Files, all PEM, in one directory: ``ca.crt`` / ``ca.key`` from :func:`init_ca`, then
``<name>.crt`` / ``<name>.key`` per issued certificate. Private keys are created with mode 0600
(never world-readable, not even for a moment); a certificate is replaced atomically, so an agent
reloading on SIGHUP never reads half a file. Keys are ECDSA P-256, signatures SHA-256.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.identity import Role
from agent.model import check_id
from controller.errors import PkiError

__all__ = ["Issued", "init_ca", "issue_agent", "issue_broker", "issue_user"]

CA_DAYS = 3650
CERT_DAYS = 365
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clocks a little behind ours


@dataclass(frozen=True, slots=True)
class Issued:
    """The files of one certificate."""

    cert: Path
    key: Path


def init_ca(directory: Path, name: str = "ioin-fleet-ca", days: int = CA_DAYS) -> Issued:
    """Make ``ca.crt`` and ``ca.key`` in ``directory``; refuses to replace an existing CA key."""
    directory.mkdir(parents=True, exist_ok=True)
    files = Issued(directory / "ca.crt", directory / "ca.key")
    if files.key.exists():
        raise PkiError(str(files.key), "a CA key is already there; refusing to replace it")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    cert = (
        _builder(subject, subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(files.key, key)
    _write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def issue_agent(directory: Path, host: str, sans: list[str], days: int = CERT_DAYS) -> Issued:
    """An agent's certificate: CN = host id, SANs host + ``sans``, no role.

    Its extended key usage is serverAuth (its gRPC server) and clientAuth, because the agent also
    authenticates to the broker with it (the broker's OpenSSL checks a client certificate's
    purpose). The serverAuth usage is what marks it as an agent's: the role interceptor never
    accepts such a certificate from a controller.
    """
    _check_name("host", host)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue(directory, host, [host, *sans], usage, days)


def issue_broker(directory: Path, name: str, sans: list[str], days: int = CERT_DAYS) -> Issued:
    """The MQTT broker's server certificate: serverAuth only, SANs name + ``sans``."""
    _check_name("broker", name)
    return _issue(directory, name, [name, *sans], [ExtendedKeyUsageOID.SERVER_AUTH], days)


def issue_user(directory: Path, name: str, role: Role, days: int = CERT_DAYS) -> Issued:
    """A user's client certificate: CN = name, clientAuth only, role as URI SAN."""
    _check_name("user", name)
    uri = x509.UniformResourceIdentifier(role.uri)
    return _issue(directory, name, [], [ExtendedKeyUsageOID.CLIENT_AUTH], days, extra=[uri])


def _issue(
    directory: Path,
    name: str,
    sans: list[str],
    usage: list[x509.ObjectIdentifier],
    days: int,
    extra: list[x509.GeneralName] | None = None,
) -> Issued:
    if days < 1:
        raise PkiError("--days", f"must be at least 1, got {days}")
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    names = [*(_general_name(s) for s in dict.fromkeys(sans)), *(extra or [])]
    builder = (
        _builder(_name(name), ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    files = Issued(directory / f"{name}.crt", directory / f"{name}.key")
    _write_key(files.key, key)
    _write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def _check_name(kind: str, name: str) -> None:
    """Names become file names and MQTT usernames: the host-id alphabet keeps both safe."""
    try:
        check_id(kind, name)
    except ValueError as exc:
        raise PkiError(name, str(exc)) from None


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(text: str) -> x509.GeneralName:
    """An IP address where ``text`` is one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        hint = f"{exc.strerror} (run `ioinctl pki init` first)"
        raise PkiError(str(exc.filename), hint) from None
    except ValueError as exc:
        raise PkiError(str(directory), f"cannot read the CA: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(str(key_path), "not an EC private key")
    return cert, key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomic(path, pem, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Create a temporary file with ``mode`` from the start, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # umask may have taken bits away from 0o644
    os.replace(tmp, path)
