"""Roles end to end: a real ioind with mutual TLS, certificates from ``ioinctl pki``, and every
class of RPC tried with a viewer's, an operator's, an admin's and an agent's certificate (and
one the CA signed with no role at all)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.identity import Role
from agent.model import REQUEST_ID
from agent.wire import agent_pb2, agent_pb2_grpc, hooks_pb2
from controller.cli import main as ioinctl
from tests.harness import AgentProc

pytestmark = pytest.mark.slow

HOST = "roles-a"
Stub = agent_pb2_grpc.AgentStub
Call = Callable[[Stub, grpc.aio.Channel], Any]  # returns the call to await


def fleet_pki(d: Path) -> Path:
    assert ioinctl(["pki", "init", str(d)]) == 0
    for host in (HOST, "roles-b"):
        assert ioinctl(["pki", "issue", str(d), "--agent", host, "--san", "127.0.0.1"]) == 0
    for role in Role:
        assert ioinctl(["pki", "issue", str(d), "--user", role.label, "--role", role.label]) == 0
    _roleless(d, "x; DROP TABLE hooks")
    return d


def _roleless(d: Path, cn: str) -> None:
    """A client certificate the fleet CA signed, with a hostile CN and no role URI."""
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "roleless.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (d / "roleless.key").write_bytes(pem)


def channel(agent: AgentProc, d: Path, name: str) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        (d / "ca.crt").read_bytes(),
        (d / f"{name}.key").read_bytes(),
        (d / f"{name}.crt").read_bytes(),
    )
    return grpc.aio.secure_channel(agent.address, creds)


def set_hook(command: str, hook_id: str = "") -> Call:
    request = agent_pb2.SetHookRequest(command=command, spec=hooks_pb2.HookSpec(id=hook_id))
    return lambda s, _: s.SetHook(request, timeout=5)


def on_hook(rpc: str, hook_id: str) -> Call:
    return lambda s, _: getattr(s, rpc)(agent_pb2.HookRef(id=hook_id), timeout=5)


def health(_: Stub, ch: grpc.aio.Channel) -> Any:
    return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)


def rpc(name: str, request: Any) -> Call:
    return lambda s, _: getattr(s, name)(request, timeout=5)


# (label, call, role it needs, how the refusal names the call)
CLASSES: list[tuple[str, Call, Role, str]] = [
    ("ListHooks", rpc("ListHooks", agent_pb2.ListHooksRequest()), Role.VIEWER, "ListHooks"),
    ("GetStatus", rpc("GetStatus", agent_pb2.GetStatusRequest()), Role.VIEWER, "GetStatus"),
    ("ListVms", rpc("ListVms", agent_pb2.ListVmsRequest()), Role.VIEWER, "ListVms"),
    ("health", health, Role.VIEWER, "Check"),  # a probe: any fleet certificate may ask
    ("SetHook observe", set_hook("!ioin 0x3f8", "obs"), Role.OPERATOR, "SetHook"),
    ("DisableHook observe", on_hook("DisableHook", "obs"), Role.OPERATOR, "DisableHook"),
    ("EnableHook observe", on_hook("EnableHook", "obs"), Role.OPERATOR, "EnableHook"),
    ("RemoveHook unknown", on_hook("RemoveHook", "nope"), Role.OPERATOR, "RemoveHook"),
    (
        "SetHook print",
        set_hook('!ioin 0x64 script { printf("%x", @rax); }'),
        Role.OPERATOR,
        "SetHook",
    ),
    ("SetHook break", set_hook("!ioin 0x70 break", "brk"), Role.ADMIN, "SetHook with break"),
    (
        "SetHook pause",
        set_hook("!ioin 0x61 script { pause(); }"),
        Role.ADMIN,
        "SetHook with script: pause() at line 1, column 1",
    ),
    ("SetHook set", set_hook("!ioin 0x71 stage post set 5"), Role.ADMIN, "SetHook with set"),
    ("SetHook sc on", set_hook("!ioin 0x60 sc on"), Role.ADMIN, "SetHook with sc on"),
    (
        "SetHook over break",
        set_hook("!ioin 0x70", "brk"),
        Role.ADMIN,
        "SetHook over a hook with break",
    ),
    ("DisableHook break", on_hook("DisableHook", "brk"), Role.ADMIN, "DisableHook with break"),
    ("RemoveHook break", on_hook("RemoveHook", "brk"), Role.ADMIN, "RemoveHook with break"),
    ("Resume", rpc("Resume", agent_pb2.ResumeRequest(break_id="b0")), Role.ADMIN, "Resume"),
    ("StartVm", rpc("StartVm", agent_pb2.VmSpec(name="v")), Role.ADMIN, "StartVm"),
    ("StopVm", rpc("StopVm", agent_pb2.VmRef(id=1)), Role.ADMIN, "StopVm"),
]

PRESENTED = {
    "viewer": "presented viewer (CN=viewer)",
    "operator": "presented operator (CN=operator)",
    "admin": "presented admin (CN=admin)",
    HOST: f"presented agent certificate (serverAuth) (CN={HOST})",
    "roles-b": "presented agent certificate (serverAuth) (CN=roles-b)",
    "roleless": "presented none (CN=x\\; DROP TABLE hooks)",
}
LEVEL = {"viewer": Role.VIEWER, "operator": Role.OPERATOR, "admin": Role.ADMIN}


async def _outcome(call: Call, ch: grpc.aio.Channel) -> tuple[grpc.StatusCode, str, str]:
    try:
        await call(Stub(ch), ch)
    except grpc.aio.AioRpcError as e:
        metadata: Any = e.trailing_metadata() or ()
        rid = next((str(value) for key, value in metadata if key == REQUEST_ID), "")
        return e.code(), e.details() or "", rid
    return grpc.StatusCode.OK, "", ""


async def test_every_rpc_class_against_every_kind_of_certificate(
    agent_factory: Callable[..., AgentProc], tmp_path: Path
) -> None:
    d = fleet_pki(tmp_path / "pki")
    agent = agent_factory(HOST, tls=(d / f"{HOST}.crt", d / f"{HOST}.key", d / "ca.crt"))
    async with channel(agent, d, "admin") as ch:  # the hooks the calls below name
        await set_hook("!ioin 0x3f8", "obs")(Stub(ch), ch)
        await set_hook("!ioin 0x70 break", "brk")(Stub(ch), ch)
    wrong: list[str] = []
    for who in ("viewer", "operator", HOST, "roles-b", "roleless", "admin"):
        async with channel(agent, d, who) as ch:
            for label, call, needed, what in CLASSES:
                code, details, rid = await _outcome(call, ch)
                allowed = (who in LEVEL and LEVEL[who] >= needed) or label == "health"
                if allowed and code == grpc.StatusCode.PERMISSION_DENIED:
                    wrong.append(f"{who} / {label}: refused: {details}")
                elif not allowed:
                    expect = f"{what} needs role {needed.label}; {PRESENTED[who]}"
                    if code != grpc.StatusCode.PERMISSION_DENIED or details != expect:
                        wrong.append(f"{who} / {label}: {code.name} {details!r}, not {expect!r}")
                    elif not rid:
                        wrong.append(f"{who} / {label}: refusal without a request id")
    assert not wrong, "\n".join(wrong)
