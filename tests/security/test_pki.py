"""``ioinctl pki``: the files it writes, what the certificates say, and what it refuses."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.identity import Role, identity_from_pem
from controller.cli import main

IOINCTL = [sys.executable, "-m", "controller.cli"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_init_and_issue_write_signed_certificates_and_0600_keys(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert main(["pki", "init", str(d)]) == 0
    assert main(["pki", "issue", str(d), "--agent", "web-01", "--san", "10.0.0.5"]) == 0
    assert main(["pki", "issue", str(d), "--user", "alice", "--role", "operator"]) == 0
    assert main(["pki", "issue", str(d), "--broker", "mqtt", "--san", "localhost"]) == 0
    ca = _load(d / "ca.crt")
    for name in ("ca", "web-01", "alice", "mqtt"):
        assert _mode(d / f"{name}.key") == 0o600, name
        _load(d / f"{name}.crt").verify_directly_issued_by(ca)
    assert not list(d.glob(".*.tmp"))  # written atomically, nothing left behind

    agent, user, broker = (_load(d / f"{n}.crt") for n in ("web-01", "alice", "mqtt"))
    assert _eku(agent) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _eku(user) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _eku(broker) == {ExtendedKeyUsageOID.SERVER_AUTH}
    who = identity_from_pem((d / "alice.crt").read_bytes())
    assert (who.common_name, who.role, who.server) == ("alice", Role.OPERATOR, False)
    assert who.uris == ("ioin://role/operator",)
    host = identity_from_pem((d / "web-01.crt").read_bytes())
    assert (host.role, host.server, host.dns, host.ips) == (None, True, ("web-01",), ("10.0.0.5",))


def test_show_prints_subject_role_sans_and_expiry(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    main(["pki", "init", str(d)])
    main(["pki", "issue", str(d), "--user", "bob", "--role", "admin", "--days", "3"])
    main(["pki", "issue", str(d), "--agent", "web-02", "--san", "web-02.example"])
    out = subprocess.run(
        [*IOINCTL, "pki", "show", str(d / "bob.crt"), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert doc["subject"] == "CN=bob"
    assert doc["role"] == "admin"
    assert doc["uri"] == ["ioin://role/admin"]
    assert doc["expired"] is False
    assert _load(d / "bob.crt").not_valid_after_utc.isoformat() == doc["not_after"]
    table = subprocess.run(
        [*IOINCTL, "pki", "show", str(d / "web-02.crt")], capture_output=True, text=True, check=True
    ).stdout
    assert "CN=web-02" in table
    assert "agent certificate (serverAuth)" in table
    assert "web-02, web-02.example" in table


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--user", "x; DROP TABLE hooks", "--role", "admin"], "x; DROP TABLE hooks"),
        (["--user", "carol", "--role", "root"], "'root'"),
        (["--user", "carol"], "--role"),
        (["--agent", "web-03", "--role", "admin"], "--role"),
        (["--agent", "web-03", "--user", "carol", "--role", "admin"], "--broker"),
        (["--user", "carol", "--role", "viewer", "--days", "0"], "--days"),
    ],
)
def test_issue_refusals_name_the_offending_flag_or_value(
    tmp_path: Path, args: list[str], named: str
) -> None:
    d = tmp_path / "pki"
    main(["pki", "init", str(d)])
    run = subprocess.run([*IOINCTL, "pki", "issue", str(d), *args], capture_output=True, text=True)
    assert run.returncode == 1
    assert named in run.stderr
    assert sorted(p.name for p in d.iterdir()) == ["ca.crt", "ca.key"]


def test_init_refuses_to_replace_a_ca_and_issue_needs_one(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    main(["pki", "init", str(d)])
    before = (d / "ca.key").read_bytes()
    again = subprocess.run([*IOINCTL, "pki", "init", str(d)], capture_output=True, text=True)
    assert again.returncode == 1
    assert str(d / "ca.key") in again.stderr
    assert (d / "ca.key").read_bytes() == before
    none = subprocess.run(
        [*IOINCTL, "pki", "issue", str(tmp_path / "empty"), "--agent", "web-01"],
        capture_output=True,
        text=True,
    )
    assert none.returncode == 1
    assert "ca.crt" in none.stderr
    assert "ioinctl pki init" in none.stderr


def test_reissue_replaces_the_certificate_keeping_the_key_private(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    main(["pki", "init", str(d)])
    main(["pki", "issue", str(d), "--agent", "web-01"])
    first = _load(d / "web-01.crt").serial_number
    main(["pki", "issue", str(d), "--agent", "web-01"])
    assert _load(d / "web-01.crt").serial_number != first
    assert _mode(d / "web-01.key") == 0o600
