"""What discovery makes of retained status payloads: births, wills, and junk (no broker here;
the broker is real in test_discovery.py)."""

from __future__ import annotations

import json

from controller.discovery import Discovery
from controller.selectors import parse_selector


def birth(host: str, online: bool = True, **extra: object) -> bytes:
    doc = {"host": host, "online": online, "backend": "sim", "epoch": "e1", "ts": 5} | extra
    return json.dumps(doc).encode()


def test_births_wills_and_junk() -> None:
    d = Discovery()
    d.handle(
        "ioin/v1/web-1/status", birth("web-1", address="10.0.0.1:50051", labels={"role": "web"})
    )
    d.handle("ioin/v1/db-1/status", birth("db-1", address="10.0.0.2:50051", labels={"role": "db"}))
    d.handle(
        "ioin/v1/web-2/status", birth("web-2", False, address="10.0.0.3:1", labels={"role": "web"})
    )
    d.handle(
        "ioin/v1/old/status", birth("old")
    )  # an agent from before addresses: listed, not targeted
    d.handle("ioin/v1/bad/status", b"\xff not json")
    d.handle("ioin/v1/bad2/status", json.dumps({"host": "bad2"}).encode())  # no online flag
    d.handle("ioin/v1/bad3/status", birth("bad3", address="nowhere"))  # not HOST:PORT
    assert d.junk == 3
    assert sorted(d.agents) == ["db-1", "old", "web-1", "web-2"]
    web = parse_selector("role=web")
    assert [a.name for a in d.select(web)] == ["web-1"]
    assert [a.name for a in d.select(web, online_only=False)] == ["web-1", "web-2"]
    host = d.agents["web-1"].host({"tier": "gold"})
    assert (host.name, host.address) == ("web-1", "10.0.0.1:50051")
    assert dict(host.labels) == {"role": "web", "tier": "gold"}  # the inventory's labels add
    assert d.agents["web-1"].json()["last_seen_ns"] == 5


def test_a_status_naming_another_host_or_carrying_bad_names_is_not_believed() -> None:
    d = Discovery()
    d.handle("ioin/v1/web-01/status", birth("web-01", address="10.0.0.1:50051"))
    # host "evil" may publish on its own topic only; what it says of web-01 replaces nothing
    d.handle("ioin/v1/evil/status", birth("web-01", address="10.6.6.6:50051"))
    d.handle("ioin/v1/\x1b[31mred/status", birth("\x1b[31mred", address="10.0.0.9:1"))
    d.handle("ioin/v1/lab/status", birth("lab", address="10.0.0.8:1", labels={"\x1b[2Jk": "v"}))
    d.handle("ioin/v1/lab2/status", birth("lab2", address="10.0.0.7:1", labels={"k": 5}))
    assert d.junk == 4
    assert sorted(d.agents) == ["web-01"]
    assert d.agents["web-01"].address == "10.0.0.1:50051"


def test_what_a_status_says_is_shown_without_escape_sequences() -> None:
    d = Discovery()
    d.handle("ioin/v1/h/status", birth("h", address="10.0.0.1:1", backend="\x1b[2Jsim"))
    d.handle("ioin/v1/i/status", birth("i", address="\x1b[31m:1"))  # not HOST:PORT
    assert d.junk == 1
    assert d.agents["h"].backend == "\\x1b[2Jsim"
