"""SIGHUP against a real ioind: RELOADING=1 then READY=1, and what a reload changes and keeps."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.wire import agent_pb2, agent_pb2_grpc
from tests.controller.pki import make_pki
from tests.deploy.service import NotifySocket, ServiceProc, write_config
from tests.harness import free_port

pytestmark = pytest.mark.slow

Service = Callable[..., ServiceProc]
ANSWERED = (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)


def status(svc: ServiceProc) -> tuple[agent_pb2.Status, dict[str, int]]:
    with grpc.insecure_channel(svc.address) as channel:
        got = agent_pb2_grpc.AgentStub(channel).GetStatus(agent_pb2.GetStatusRequest(), timeout=15)
    return got, {c.name: c.value for c in got.counters}


def set_hook(svc: ServiceProc, command: str) -> str:
    with grpc.insecure_channel(svc.address) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        reply = stub.SetHook(agent_pb2.SetHookRequest(command=command), timeout=15)
    hook_id: str = reply.hook.spec.id
    return hook_id


def reload(svc: ServiceProc, notify: NotifySocket, extra: str, broker_port: int) -> None:
    """Rewrite the config with ``extra``, send SIGHUP, wait for RELOADING=1 then READY=1."""
    write_config(svc.config.parent, svc.port, broker_port, extra)
    notify.collect(0.1)
    svc.proc.send_signal(signal.SIGHUP)
    assert "MONOTONIC_USEC" in notify.wait_for("RELOADING", "1", timeout=15)
    notify.wait_for("READY", "1", timeout=15)


def test_sighup_applies_level_and_config_hooks_and_keeps_spool_epoch_and_pushed_hooks(
    service: Service, notify_socket: NotifySocket
) -> None:
    dead_broker = free_port()  # nothing listens: every batch stays in the spool
    svc = service('hooks = ["!ioin 0x3f8"]\n', broker_port=dead_broker)
    notify_socket.wait_for("READY", "1")
    pushed = set_hook(svc, "!ioin 0x70")
    assert svc.wait_line("hook-set")["hook_id"] == pushed
    time.sleep(1.0)
    before, counts = status(svc)
    assert counts["spool_batches"] > 0

    reload(svc, notify_socket, 'log_level = "warning"\nhooks = ["!ioin 0x60"]\n', dead_broker)

    after, counts_after = status(svc)
    assert {h.spec.port for h in after.hooks} == {0x70, 0x60}  # 0x3f8 left the file
    assert after.epoch == before.epoch
    assert counts_after["spool_batches"] >= counts["spool_batches"]
    assert counts_after["events_dropped_spool"] == 0
    assert counts_after["events_sequenced"] > counts["events_sequenced"]
    lines = len(svc.lines)
    set_hook(svc, "!ioin 0x71")
    time.sleep(0.3)
    assert not any('"hook-set"' in line for line in svc.lines[lines:])  # level is warning now


def test_a_reload_names_keys_that_need_a_restart(
    service: Service, notify_socket: NotifySocket, mosquitto_port: int
) -> None:
    svc = service()
    notify_socket.wait_for("READY", "1")
    reload(svc, notify_socket, "[kvm]\nbreak_timeout = 5\n", mosquitto_port)
    assert svc.wait_line("reload-needs-restart")["keys"] == ["kvm"]


def test_a_refused_reload_changes_nothing_and_names_the_command(
    service: Service, notify_socket: NotifySocket, mosquitto_port: int
) -> None:
    svc = service('hooks = ["!ioin 0x3f8"]\n')
    notify_socket.wait_for("READY", "1")
    reload(svc, notify_socket, 'log_level = "error"\nhooks = ["!ioin 10000"]\n', mosquitto_port)
    refused = svc.wait_line("reload-refused")
    assert "'!ioin 10000'" in str(refused["problems"])
    assert [h.spec.port for h in status(svc)[0].hooks] == [0x3F8]
    set_hook(svc, "!ioin 0x70")
    assert str(svc.wait_line("hook-set")["hook_id"]).startswith("in-70-")  # level still info


def health(address: str, pki_dir: Path) -> int:
    """The health status over a new mutual-TLS connection with the client pair in ``pki_dir``."""
    creds = grpc.ssl_channel_credentials(
        (pki_dir / "ca.pem").read_bytes(),
        (pki_dir / "client.key").read_bytes(),
        (pki_dir / "client.pem").read_bytes(),
    )
    own_pool = [("grpc.use_local_subchannel_pool", 1)]  # never reuse an earlier connection
    with grpc.secure_channel(address, creds, options=own_pool) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=15)
    code: int = reply.status
    return code


def test_sighup_swaps_the_grpc_certificates_for_new_connections(
    service: Service, notify_socket: NotifySocket, tmp_path: Path, mosquitto_port: int
) -> None:
    live, old, new = tmp_path / "tls", tmp_path / "old", tmp_path / "new"
    make_pki(live, name="first")
    for pem in ("ca.pem", "client.pem", "client.key"):  # the first CA's client, kept aside
        old.mkdir(exist_ok=True)
        (old / pem).write_bytes((live / pem).read_bytes())
    svc = service(tls=live)
    notify_socket.wait_for("READY", "1")
    assert health(svc.address, old) in ANSWERED  # the TLS handshake went through

    make_pki(new, name="second")
    for pem in ("ca.pem", "server.pem", "server.key"):
        (live / pem).write_bytes((new / pem).read_bytes())
    write_config(svc.config.parent, svc.port, mosquitto_port, tls=live)
    svc.proc.send_signal(signal.SIGHUP)
    notify_socket.wait_for("RELOADING", "1", timeout=15)
    notify_socket.wait_for("READY", "1", timeout=15)

    assert health(svc.address, new) in ANSWERED
    with pytest.raises(grpc.RpcError):
        health(svc.address, old)  # the first CA's client is no longer admitted
