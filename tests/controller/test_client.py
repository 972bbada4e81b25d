"""The client boundary: fan-out, deadlines, gRPC errors → controller errors, mutual TLS.

A tiny in-test servicer stands in for the agent here only because these tests need answers a
real agent does not give on demand (a hang, UNAVAILABLE from a live server); the real agent is
exercised in test_integration.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from agent.wire import agent_pb2, agent_pb2_grpc, hooks_pb2
from controller.client import HostResult, exit_code, translate
from controller.errors import AgentUnreachable, RemoteError
from controller.fanout import Targets, fan_out
from controller.inventory import Host
from controller.security import Security, choose_security
from tests.controller.conftest import Cli
from tests.controller.pki import make_pki
from tests.harness import free_port

Ctx = grpc.aio.ServicerContext[Any, Any]


class FakeAgent(agent_pb2_grpc.AgentServicer):
    """Answers each RPC in one fixed way (see the module docstring for why it exists)."""

    async def GetStatus(
        self, request: agent_pb2.GetStatusRequest, context: Ctx
    ) -> agent_pb2.Status:
        return agent_pb2.Status(host="fake", backend="sim", version="0")

    async def RemoveHook(
        self, request: agent_pb2.HookRef, context: Ctx
    ) -> agent_pb2.RemoveHookResponse:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no hook with id '{request.id}'")

    async def ListHooks(
        self, request: agent_pb2.ListHooksRequest, context: Ctx
    ) -> agent_pb2.ListHooksResponse:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, "backend 'sim' lacks capability 'vms'"
        )

    async def EnableHook(self, request: agent_pb2.HookRef, context: Ctx) -> hooks_pb2.Hook:
        await asyncio.sleep(5)
        return hooks_pb2.Hook()

    async def DisableHook(self, request: agent_pb2.HookRef, context: Ctx) -> hooks_pb2.Hook:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "broker not connected")


async def serve(credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServicer_to_server(FakeAgent(), server)  # type: ignore[abstract]
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def fake() -> AsyncIterator[str]:
    server, address = await serve()
    yield address
    await server.stop(None)


def targets(*addresses: str, timeout: float = 5.0) -> Targets:
    hosts = [Host(f"h{i}", a) for i, a in enumerate(addresses)]
    return Targets(hosts, Security(insecure=True), timeout)


def test_exit_code_all_some_none() -> None:
    ok = HostResult(Host("a", "a:1"), value=1)
    bad: HostResult[int] = HostResult(Host("b", "b:1"), error=RemoteError("b", "X", "y"))
    assert exit_code([ok, ok]) == 0
    assert exit_code([ok, bad]) == 2
    assert exit_code([bad, bad]) == 1


async def test_fan_out_keeps_the_inventory_order_and_isolates_failures(fake: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    results = await fan_out(
        targets(dead, fake), lambda s, d: s.GetStatus(agent_pb2.GetStatusRequest(), timeout=d)
    )
    assert [r.host.address for r in results] == [dead, fake]
    assert isinstance(results[0].error, AgentUnreachable)
    assert results[0].error.address == dead
    assert "Connection refused" in results[0].error.reason
    assert results[0].error.kind == "refused"
    assert results[1].value is not None
    assert results[1].value.host == "fake"


async def test_not_found_and_invalid_argument_keep_the_agents_reason(fake: str) -> None:
    ref = agent_pb2.HookRef(id="uart")
    call = lambda s, d: s.RemoveHook(ref, timeout=d)  # noqa: E731
    [rm] = await fan_out(targets(fake), call, about=("hook", "uart"))
    assert isinstance(rm.error, RemoteError)
    assert str(rm.error) == "h0: NOT_FOUND: no hook with id 'uart'"
    [ls] = await fan_out(
        targets(fake), lambda s, d: s.ListHooks(agent_pb2.ListHooksRequest(), timeout=d)
    )
    assert str(ls.error) == "h0: INVALID_ARGUMENT: backend 'sim' lacks capability 'vms'"


async def test_unavailable_from_a_live_agent_is_its_answer_not_unreachable(fake: str) -> None:
    [r] = await fan_out(
        targets(fake), lambda s, d: s.DisableHook(agent_pb2.HookRef(id="x"), timeout=d)
    )
    assert isinstance(r.error, RemoteError)
    assert (r.error.code, r.error.details) == ("UNAVAILABLE", "broker not connected")


async def test_a_hanging_agent_misses_the_deadline(fake: str) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    call = lambda s, d: s.EnableHook(agent_pb2.HookRef(id="x"), timeout=d)  # noqa: E731
    [r] = await fan_out(targets(fake, timeout=0.3), call)
    assert loop.time() - start < 2
    assert isinstance(r.error, AgentUnreachable)
    assert r.error.reason == "no answer within 0.3 s"
    assert r.error.kind == "timeout"


def test_translate_names_what_the_call_was_about() -> None:
    md = grpc.aio.Metadata()
    err = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, md, md, details="", debug_error_string="")
    assert (
        str(translate(Host("a", "a:1"), err, 5, ("hook", "uart")))
        == "a: NOT_FOUND: hook 'uart': not_found"
    )


async def test_mutual_tls(tmp_path: Path) -> None:
    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other", "other")
    creds = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
        root_certificates=pki.ca.read_bytes(),
        require_client_auth=True,
    )
    server, address = await serve(creds)
    try:
        call = lambda s, d: s.GetStatus(agent_pb2.GetStatusRequest(), timeout=d)  # noqa: E731
        good = choose_security(
            insecure=False, ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key)
        )
        [r] = await fan_out(Targets([Host("a", address)], good), call)
        assert r.ok, r.error
        # A client certificate from another CA is refused in the handshake.
        bad = choose_security(
            insecure=False, ca=str(pki.ca), cert=str(other.client_cert), key=str(other.client_key)
        )
        [r] = await fan_out(Targets([Host("a", address)], bad), call)
        assert isinstance(r.error, AgentUnreachable)
        assert r.error.kind == "tls", r.error
        plain = await fan_out(targets(address), call)
        assert isinstance(plain[0].error, AgentUnreachable)
    finally:
        await server.stop(None)


def test_cli_refuses_to_connect_without_a_security_choice(cli: Cli) -> None:
    run = cli("status", "--hosts", "127.0.0.1:1")
    assert run.code == 1
    assert run.err.strip().startswith(
        "ioinctl: no transport security chosen: give --ca, --cert and --key"
    )
