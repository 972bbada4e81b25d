"""What the fleet needs from an agent: labels (config and --label), the advertised address,
hook ownership carried by the hook service and kept by the store, and unchanged sets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import AgentConfig, GrpcConfig, advertised_address, load_config
from agent.errors import ConfigError
from agent.hooks.lang import parse
from agent.hooks.service import HookService
from agent.hooks.table import HookTable
from agent.model import Capability
from agent.state import HookStore


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'host = "a"\n{text}\n[grpc]\ninsecure = true\n')
    return path


def test_labels_from_the_config_and_refusals_naming_the_label(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 'labels = { role = "web", "example.com/dc" = "fra1" }'))
    assert dict(cfg.labels) == {"role": "web", "example.com/dc": "fra1"}
    with pytest.raises(ConfigError) as info:
        load_config(config(tmp_path, 'labels = { role = "we b", "-x" = "y", n = 3 }'))
    problems = str(info.value)
    assert "labels.role: label 'role': value 'we b' is not a valid label value" in problems
    assert "labels.-x: label key '-x' is not a valid key" in problems
    assert "labels.n: expected a string, got int" in problems


def test_a_bad_label_flag_is_refused_naming_it(tmp_path: Path) -> None:
    path = config(tmp_path, "")
    result = CliRunner().invoke(app, ["--config", str(path), "--label", "role"])
    assert result.exit_code != 0
    assert "--label role: expected k=v" in result.output


def test_the_advertised_address() -> None:
    assert advertised_address(GrpcConfig(listen="127.0.0.1:0"), 4242) == "127.0.0.1:4242"
    assert advertised_address(GrpcConfig(advertise="ioind.fra1:50051"), 1) == "ioind.fra1:50051"
    wildcard = advertised_address(GrpcConfig(listen="0.0.0.0:50051"), 50051)
    assert wildcard == f"{socket.getfqdn()}:50051"
    assert AgentConfig().labels == {}


def test_ownership_is_carried_kept_and_unchanged_sets_write_nothing(tmp_path: Path) -> None:
    changes: list[int] = []

    def make() -> HookService:
        return HookService(
            HookTable(),
            HookStore(tmp_path),
            capabilities=frozenset(Capability),
            backend_name="test",
            changed=lambda: changes.append(1),
        )

    svc = make()
    spec = parse("!ioin 0x3f8")
    spec.owner.policy, spec.owner.applied_by, spec.owner.applied_ns = "serial", "ops@ctl", 7
    first = svc.set(spec=spec)  # the spec states its command too: they agree, the owner rides
    assert (first.created, first.unchanged) == (True, False)
    assert first.hook.spec.owner.policy == "serial"
    again = svc.set(spec=spec)
    assert (again.created, again.unchanged) == (False, True)
    assert changes == [1]  # the unchanged set neither saved nor told the backend
    by_command = svc.set(command="!ioin 0x3f8")  # pushed by hand now: the owner goes
    assert not by_command.hook.spec.HasField("owner")
    svc.set(spec=spec)
    restored = make()
    restored.restore([])
    [hook] = restored.hooks()
    assert hook.spec.owner.applied_by == "ops@ctl"  # the store keeps the whole spec
