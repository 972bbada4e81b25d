"""Discovery from a real mosquitto: agents' retained births (address, labels) and wills."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import Cli
from tests.controller.fleet import Fleet
from tests.harness import AgentProc, Broker

pytestmark = pytest.mark.slow


def hosts_json(cli: Cli, broker: Broker, *extra: str) -> dict[str, dict[str, Any]]:
    run = cli("hosts", "--broker", broker.address, "-o", "json", *extra)
    assert run.code == 0, run.err
    return {a["name"]: a for a in json.loads(run.out)["agents"]}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_hosts_lists_births_and_wills_and_discover_targets_the_online(
    cli: Cli, agent_factory: Callable[..., AgentProc], fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    fleet = Fleet(agent_factory, tmp_path)
    web = fleet.start("disc-web", broker=fresh_mosquitto, flags=["--label", "role=web"])
    db_flags = ["--label", "role=db", "--label", "dc=fra1"]
    db = fleet.start("disc-db", {"tier": "gold"}, broker=fresh_mosquitto, flags=db_flags)
    gone = fleet.start("disc-gone", broker=fresh_mosquitto, flags=["--label", "role=web"])
    bye = fleet.start("disc-bye", broker=fresh_mosquitto, flags=["--label", "role=batch"])
    wait_for(lambda: len(hosts_json(cli, fresh_mosquitto)) == 4, "four births")
    found = hosts_json(cli, fresh_mosquitto)
    assert found["disc-web"]["address"] == web.address
    assert found["disc-db"]["labels"] == {"role": "db", "dc": "fra1"}
    assert all(a["online"] and a["backend"] == "sim" and a["epoch"] for a in found.values())
    assert all(a["last_seen_ns"] > 0 for a in found.values())

    assert gone.proc is not None
    gone.stop(signal.SIGKILL)  # no clean disconnect: the broker publishes the agent's will
    wait_for(lambda: not hosts_json(cli, fresh_mosquitto)["disc-gone"]["online"], "the will")
    offline = hosts_json(cli, fresh_mosquitto)["disc-gone"]
    assert offline["address"] == gone.address  # still known, with its identity
    assert offline["labels"] == {"role": "web"}
    bye.stop()  # SIGTERM: a clean disconnect, which discards the will; the agent says it itself
    farewell = hosts_json(cli, fresh_mosquitto)["disc-bye"]
    assert (farewell["online"], farewell["address"]) == (False, bye.address)
    table = cli("hosts", "--broker", fresh_mosquitto.address, "-l", "role=web")
    assert table.out.splitlines()[-1].startswith("hosts: 2 agents, 1 online, 1 offline")

    inv = fleet.inventory()  # only for the TLS defaults; --discover picks the hosts
    tls = ["-i", inv, "--discover", "--broker", fresh_mosquitto.address]
    run = cli("push", "!ioin 0x3f8", *tls, "-l", "role=web", "-o", "json")
    assert run.code == 0, run.err
    assert [h["host"] for h in json.loads(run.out)["hosts"]] == ["disc-web"]
    gold = cli("hooks", "list", *tls, "-l", "tier=gold,dc=fra1", "-o", "json")  # inventory label
    assert [h["address"] for h in json.loads(gold.out)["hosts"]] == [db.address]

    policy = tmp_path / "policy.toml"
    policy.write_text('[[policy]]\nname = "web"\nselector = "role=web"\nhooks = ["!ioin 0x60"]\n')
    applied = cli("apply", str(policy), *tls, "-o", "json")
    assert applied.code == 2  # the offline agent the bus still knows is not converged
    states = {h["host"]: h["state"] for h in json.loads(applied.out)["hosts"]}
    assert states == {
        "disc-bye": "failed",
        "disc-db": "ok",
        "disc-gone": "failed",
        "disc-web": "ok",
    }
