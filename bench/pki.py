"""A certificate authority for benchmarks: one CA, then a certificate per agent or client."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Ca"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Ca:
    """A CA written under ``directory``; :meth:`issue` signs a certificate for 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = directory / "ca.pem"
        ca = self._builder("bench-ca", self.key.public_key(), ca=True).sign(
            self.key, hashes.SHA256()
        )
        self.cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, cn: str, public: ec.EllipticCurvePublicKey, *, ca: bool
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name("bench-ca"))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName(cn)]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder

    def issue(self, cn: str) -> tuple[Path, Path]:
        """A key and a certificate for ``cn`` (server and client use alike): their paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._builder(cn, key.public_key(), ca=False).sign(self.key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{cn}.pem", self.directory / f"{cn}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key_path.write_bytes(pem)
        return cert_path, key_path
