"""Audit records of a push and of a refused push: on ``ioin/v1/<host>/audit`` (QoS 1) and in the
agent's log, naming who (subject, role), what (method, hook id, canonical command), the result
and the request id. Real ioind, real mosquitto, ``ioinctl pki`` and ``ioinctl push``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from controller.cli import main as ioinctl
from tests.harness import AgentProc, Broker

pytestmark = pytest.mark.slow

HOST = "audit-a"
IOINCTL = [sys.executable, "-m", "controller.cli"]


def push(agent: AgentProc, d: Path, command: str) -> subprocess.CompletedProcess[str]:
    tls = ["--ca", str(d / "ca.crt"), "--cert", str(d / "alice.crt"), "--key", str(d / "alice.key")]
    args = [*IOINCTL, "push", command, "--hosts", agent.address, *tls, "-o", "json"]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


async def test_a_push_and_a_refused_push_are_audited(
    agent_factory: Callable[..., AgentProc], mosquitto: Broker, tmp_path: Path
) -> None:
    d = tmp_path / "pki"
    assert ioinctl(["pki", "init", str(d)]) == 0
    assert ioinctl(["pki", "issue", str(d), "--agent", HOST, "--san", "127.0.0.1"]) == 0
    assert ioinctl(["pki", "issue", str(d), "--user", "alice", "--role", "operator"]) == 0
    agent = agent_factory(HOST, tls=(d / f"{HOST}.crt", d / f"{HOST}.key", d / "ca.crt"))
    records: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="audit-reader") as sub:
        await sub.subscribe(f"ioin/v1/{HOST}/audit", qos=1)
        ok = await asyncio.to_thread(push, agent, d, "!ioin 0x3f8")
        refused = await asyncio.to_thread(push, agent, d, "!ioin 0x70 break")
        async with asyncio.timeout(10):
            async for msg in sub.messages:
                assert msg.qos == 1
                assert isinstance(msg.payload, bytes)
                records.append(json.loads(msg.payload))
                if len(records) == 2:
                    break
    assert ok.returncode == 0, ok.stderr
    assert refused.returncode == 1
    refusal = "SetHook with break needs role admin; presented operator (CN=alice)"
    assert refusal in refused.stdout + refused.stderr
    first, second = records
    common = {"host": HOST, "subject": "CN=alice", "method": "/ioin.v1.Agent/SetHook"}
    assert first.items() >= (common | {"role": "operator", "result": "OK", "detail": ""}).items()
    assert (first["hook_id"], first["command"]) == ("in-3f8-785de70e", "!ioin 3f8")
    assert second.items() >= (common | {"result": "PERMISSION_DENIED", "detail": refusal}).items()
    assert second["command"] == "!ioin 70 break"
    assert second["hook_id"].startswith("in-70-")
    assert first["request_id"] != second["request_id"]
    logged = [json.loads(line) for line in agent.log.splitlines() if '"event": "audit"' in line]
    assert [r["request_id"] for r in logged] == [first["request_id"], second["request_id"]]
    rpc_lines = [json.loads(line) for line in agent.log.splitlines() if '"event": "rpc"' in line]
    assert first["request_id"] in {r["request_id"] for r in rpc_lines}  # one id for a call
    assert {r["subject"] for r in rpc_lines} == {"CN=alice"}  # every call's line names who
