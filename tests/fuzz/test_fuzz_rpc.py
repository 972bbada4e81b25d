"""Fuzz target: the agent's RPC surface, on a real in-process gRPC server (port 0).

Structured requests (every method, fields drawn from their types, commands from the hook
language's token soup, ids of any text and size) and random bytes sent as any method's request.
Whatever comes in, the agent answers OK or a refusal with a code that names the problem, never
INTERNAL or UNKNOWN, with details bounded (no unbounded input echoed back), and keeps serving.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import AgentConfig, GrpcConfig
from agent.rpc.errors import MAX_DETAILS
from agent.wire import agent_pb2, agent_pb2_grpc, hooks_pb2
from tests.agent.test_lang_props import grammarish
from tests.fuzz.budget import run

REFUSALS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = [m.name for m in agent_pb2.DESCRIPTOR.services_by_name["Agent"].methods]


class Served:
    """An agent (sim backend, no broker) and its gRPC server on a loop in a thread of its own."""

    def __init__(self, state_dir: Path) -> None:
        self.config = AgentConfig(
            state_dir=str(state_dir), grpc=GrpcConfig(listen="127.0.0.1:0", insecure=True)
        )
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        from agent.build import build_agent
        from agent.rpc.server import create_server

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with build_agent(self.config) as agent:
            server, self.port, _ = await create_server(agent, self.config.grpc)
            await server.start()
            self._ready.set()
            await self._stop.wait()
            await server.stop(None)

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(20), "the in-process agent did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    with Served(tmp_path_factory.mktemp("rpc-fuzz")) as served:
        ch = grpc.insecure_channel(f"127.0.0.1:{served.port}")
        try:
            yield ch
        finally:
            ch.close()


def utf8(text: str) -> str:
    """Protobuf strings are UTF-8: lone surrogates (the language's fuzz has them) become '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


TEXT = st.one_of(st.text(max_size=80), st.sampled_from(["", "a", "x" * 70_000, "h\x1b[2J"]))
TEXT = TEXT.map(utf8)
U32 = st.integers(0, 2**32 - 1)


def specs() -> st.SearchStrategy[hooks_pb2.HookSpec]:
    return st.builds(
        hooks_pb2.HookSpec,
        id=TEXT,
        direction=st.integers(0, 5),
        port=st.one_of(st.none(), U32),
        pid=st.one_of(st.none(), U32),
        core=st.one_of(st.none(), U32),
        stage=st.integers(0, 99),
        short_circuit=st.booleans(),
        set_value=st.one_of(st.none(), U32),
        rate=U32,
        burst=U32,
        condition=TEXT,
        command=TEXT,
    )


REQUESTS: dict[str, st.SearchStrategy[Any]] = {
    "SetHook": st.builds(
        agent_pb2.SetHookRequest,
        spec=st.one_of(st.none(), specs()),
        command=st.one_of(grammarish().map(utf8), TEXT),
        disabled=st.booleans(),
    ),
    "RemoveHook": st.builds(agent_pb2.HookRef, id=TEXT),
    "EnableHook": st.builds(agent_pb2.HookRef, id=TEXT),
    "DisableHook": st.builds(agent_pb2.HookRef, id=TEXT),
    "ListHooks": st.builds(agent_pb2.ListHooksRequest, page_size=U32, page_token=TEXT),
    "GetStatus": st.just(agent_pb2.GetStatusRequest()),
    "Resume": st.builds(agent_pb2.ResumeRequest, break_id=TEXT, value=st.one_of(st.none(), U32)),
    "StartVm": st.builds(
        agent_pb2.VmSpec, name=TEXT, image=TEXT, mode=TEXT, vcpus=U32, mem_mib=U32
    ),
    "StopVm": st.builds(agent_pb2.VmRef, id=U32),
    "ListVms": st.just(agent_pb2.ListVmsRequest()),
}


def call(channel: grpc.Channel, method: str, payload: bytes) -> None:
    rpc: Callable[..., bytes] = channel.unary_unary(f"/ioin.v1.Agent/{method}", None, None)
    try:
        rpc(payload, timeout=10)
    except grpc.RpcError as e:
        code, details = e.code(), e.details() or ""
        assert code in REFUSALS, f"{method}: {code} {details}"
        assert len(details) <= MAX_DETAILS + 16, f"{method}: {len(details)} characters echoed"


@st.composite
def structured(draw: st.DrawFn) -> tuple[str, bytes]:
    method = draw(st.sampled_from(sorted(REQUESTS)))
    return method, draw(REQUESTS[method]).SerializeToString()


def test_fuzz_rpc_structured_and_random_bytes(channel: grpc.Channel) -> None:
    @given(st.one_of(structured(), st.tuples(st.sampled_from(METHODS), st.binary(max_size=512))))
    def rpc_target(method_payload: tuple[str, bytes]) -> None:
        call(channel, *method_payload)

    assert run(rpc_target, examples=300) >= 1
    status = agent_pb2_grpc.AgentStub(channel).GetStatus(agent_pb2.GetStatusRequest(), timeout=10)
    assert status.host  # still serving after all of it
