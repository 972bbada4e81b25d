"""What one ``ioinctl`` run loads: only the command it runs (controller.cli.COMMANDS), and per host
only the RPCs it calls (controller/stub.py). At 1,000 hosts these are a sixth of a push's time
(bench/fleet.py); these tests keep them from coming back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc.aio
import pytest
import typer.main

from controller.cli import COMMANDS, build_app
from controller.stub import agent_stub

ROOT = Path(__file__).resolve().parents[2]

# What a push to many hosts has no use for: the MQTT client (discovery, watch), the PKI's
# cryptography, the aggregator's client, numpy and the script compiler (a hook without a block).
NOT_FOR_PUSH = [
    "aiomqtt",
    "cryptography.x509",
    "controller.aggclient",
    "agent.wire.aggregator_pb2",
    "numpy",
    "agent.script",
    "importlib.metadata",
]


def loaded_by(argv: list[str]) -> set[str]:
    code = (
        "import json, sys\n"
        "from controller.cli import build_app\n"
        f"build_app({argv!r})\n"
        "from controller.language import parse_command\n"
        "parse_command('!ioin 0x3f8 core 1')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def test_a_push_loads_neither_the_bus_nor_the_pki_nor_the_script_compiler() -> None:
    loaded = loaded_by(["push", "!ioin 0x3f8", "--hosts", "h:1"])
    assert "controller.cmd_hooks" in loaded
    assert [m for m in NOT_FOR_PUSH if m in loaded] == []
    everything = loaded_by(["--help"])  # the whole tree, as the help lists it
    assert {"controller.cmd_agg", "controller.cmd_pki", "aiomqtt"} <= everything


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["no-such-command"]])
def test_without_a_known_command_every_command_is_there(argv: list[str]) -> None:
    group = typer.main.get_group(build_app(argv))
    assert set(group.commands) == set(COMMANDS)


def test_a_named_command_alone_is_built() -> None:
    group = typer.main.get_group(build_app(["-h", "hooks", "list"]))
    assert set(group.commands) == {"hooks"}


async def test_the_stub_builds_only_the_methods_asked_for() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        stub = agent_stub(channel)
        assert vars(stub).keys() == {"_channel"}
        call = stub.GetStatus
        assert stub.GetStatus is call  # built once
        assert vars(stub).keys() == {"_channel", "GetStatus"}
        with pytest.raises(AttributeError, match="no unary method 'Watch'"):
            _ = stub.Watch  # type: ignore[attr-defined]
