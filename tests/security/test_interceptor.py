"""The role interceptor on a service of another shape (as the aggregator's is): a real gRPC
server on port 0 with mutual TLS, certificates from ``ioinctl pki``, every kind of method."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.identity import Role
from agent.rpc.roles import Done, RoleInterceptor, table_policy
from controller.cli import main as ioinctl

READS = {"/t.T/Read": Role.VIEWER, "/t.T/Watch": Role.VIEWER}
WRITES = {"/t.T/Write": Role.OPERATOR}


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _upload(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"".join([r async for r in requests])


async def _watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield request


async def _chat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r


HANDLERS = {
    "Read": grpc.unary_unary_rpc_method_handler(_echo),
    "Write": grpc.unary_unary_rpc_method_handler(_echo),
    "Watch": grpc.unary_stream_rpc_method_handler(_watch),
    "Upload": grpc.stream_unary_rpc_method_handler(_upload),
    "Chat": grpc.stream_stream_rpc_method_handler(_chat),
}


async def _call(ch: grpc.aio.Channel, method: str) -> grpc.StatusCode:
    path = f"/t.T/{method}"
    try:
        if method in ("Read", "Write"):
            await ch.unary_unary(path, None, None)(b"x", timeout=5)
        elif method == "Watch":
            [_ async for _ in ch.unary_stream(path, None, None)(b"x", timeout=5)]
        elif method == "Upload":
            await ch.stream_unary(path, None, None)(iter([b"x"]), timeout=5)
        else:
            [_ async for _ in ch.stream_stream(path, None, None)(iter([b"x"]), timeout=5)]
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    assert ioinctl(["pki", "init", str(d)]) == 0
    assert ioinctl(["pki", "issue", str(d), "--agent", "svc", "--san", "127.0.0.1"]) == 0
    for role in ("viewer", "admin"):
        assert ioinctl(["pki", "issue", str(d), "--user", role, "--role", role]) == 0
    return d


async def test_every_method_shape_is_checked_and_writes_are_audited(pki: Path) -> None:
    audited: list[Done] = []
    roles = RoleInterceptor(table_policy(READS, WRITES), secure=True, audit=audited.append)
    server = grpc.aio.server(interceptors=[roles])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", HANDLERS),))
    creds = grpc.ssl_server_credentials(
        [((pki / "svc.key").read_bytes(), (pki / "svc.crt").read_bytes())],
        root_certificates=(pki / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    got: dict[str, dict[str, grpc.StatusCode]] = {}
    try:
        for who in ("viewer", "admin"):
            client = grpc.ssl_channel_credentials(
                *((pki / f).read_bytes() for f in ("ca.crt", f"{who}.key", f"{who}.crt"))
            )
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", client) as ch:
                got[who] = {m: await _call(ch, m) for m in HANDLERS}
    finally:
        await server.stop(None)
    denied = grpc.StatusCode.PERMISSION_DENIED
    ok = grpc.StatusCode.OK
    assert got["viewer"] == {
        "Read": ok,
        "Watch": ok,
        "Write": denied,
        "Upload": denied,
        "Chat": denied,
    }
    assert set(got["admin"].values()) == {ok}  # Upload and Chat: not in the table, admin only
    assert [(d.method, d.code, d.caller.common_name if d.caller else "") for d in audited] == [
        ("/t.T/Write", denied, "viewer"),
        ("/t.T/Upload", denied, "viewer"),
        ("/t.T/Chat", denied, "viewer"),
        ("/t.T/Write", ok, "admin"),
        ("/t.T/Upload", ok, "admin"),
        ("/t.T/Chat", ok, "admin"),
    ]  # reads (Read, Watch) are not audited
