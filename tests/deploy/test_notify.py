"""sd_notify against a real ioind process: readiness, status lines, watchdog pings and their stop.

The notify socket is a real ``AF_UNIX`` datagram socket, as systemd's manager binds one.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import grpc
import pytest

from agent.wire import agent_pb2, agent_pb2_grpc
from tests.deploy.service import NotifySocket, ServiceProc

pytestmark = pytest.mark.slow

Service = Callable[..., ServiceProc]


def agent_stub(svc: ServiceProc) -> tuple[grpc.Channel, agent_pb2_grpc.AgentStub]:
    channel = grpc.insecure_channel(svc.address)
    return channel, agent_pb2_grpc.AgentStub(channel)


def pings(messages: list[dict[str, str]]) -> int:
    return sum(1 for m in messages if m.get("WATCHDOG") == "1")


def set_hooks_until_stuck(stub: agent_pb2_grpc.AgentStub) -> grpc.StatusCode | None:
    """Set hooks (each logs a line) until a call gets no answer; its status code."""
    for i in range(1000):
        try:
            stub.SetHook(agent_pb2.SetHookRequest(command=f"!ioin {i:x}"), timeout=2)
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    return None


def test_ready_comes_once_grpc_listens_and_the_backend_produces(
    service: Service, notify_socket: NotifySocket
) -> None:
    svc = service('hooks = ["!ioin 0x3f8"]\n')
    ready = notify_socket.wait_for("READY", "1")
    with socket.create_connection(("127.0.0.1", svc.port), timeout=1):
        pass  # gRPC was listening when READY=1 left
    assert ready["STATUS"].startswith("backend sim, 1 hooks, broker ")
    assert ready["STATUS"].endswith(" batches")
    channel, stub = agent_stub(svc)
    with channel:
        status = stub.GetStatus(agent_pb2.GetStatusRequest(), timeout=5)
    counters = {c.name: c.value for c in status.counters}
    assert counters["events_matched"] > 0  # the backend was producing
    assert svc.wait_line("ready")["level"] == "info"  # JSON lines on stdout


def test_status_lines_follow_hooks_and_the_broker(
    service: Service, notify_socket: NotifySocket
) -> None:
    svc = service()
    notify_socket.wait_for("READY", "1")
    notify_socket.wait_for("STATUS", "backend sim, 0 hooks, broker connected, spool 0 batches")
    channel, stub = agent_stub(svc)
    with channel:
        stub.SetHook(agent_pb2.SetHookRequest(command="!ioin 0x70"), timeout=5)
    msg = notify_socket.wait_for("STATUS", timeout=5)
    assert msg["STATUS"].startswith("backend sim, 1 hooks, broker connected")


def test_watchdog_pings_every_half_interval(service: Service, notify_socket: NotifySocket) -> None:
    service(watchdog_s=0.4)
    notify_socket.wait_for("READY", "1")
    got = pings(notify_socket.collect(2.0))
    assert 7 <= got <= 12, got  # one per 0.2 s


def test_watchdog_stops_while_the_event_loop_is_blocked_and_resumes_after(
    service: Service, notify_socket: NotifySocket
) -> None:
    """The loop is blocked the way journald blocks a service: it stops reading its stdout.

    The pipe holds 4 KiB; each hook set writes a log line to stdout, so a few dozen hook sets
    fill it, and the agent's event loop blocks in ``write`` (nothing in ioind is changed for
    the test). The watchdog pings must stop although the process lives and its threads run;
    once the pipe is read again the loop moves and the pings come back.
    """
    svc = service(watchdog_s=0.4, pipe_bytes=4096)
    notify_socket.wait_for("READY", "1")
    svc.draining.clear()  # journald stalls
    channel, stub = agent_stub(svc)
    with channel:
        assert set_hooks_until_stuck(stub) == grpc.StatusCode.DEADLINE_EXCEEDED
        notify_socket.collect(0.5)  # pings sent before the loop blocked
        assert pings(notify_socket.collect(2.0)) == 0
        assert svc.proc.poll() is None  # alive, only its loop is stuck: systemd would restart it
        svc.draining.set()
        resumed_at = time.monotonic()
        notify_socket.wait_for("WATCHDOG", "1", timeout=5)
        assert time.monotonic() - resumed_at < 2.0
        assert pings(notify_socket.collect(1.0)) >= 3
