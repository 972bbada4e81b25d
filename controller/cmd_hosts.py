"""``ioinctl hosts``: the agents the broker knows, from their retained births and wills."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from controller.aggclient import enrich_hosts, resolve_target
from controller.brokerlogin import (
    BrokerLogin,
    MqttCaOpt,
    MqttCertOpt,
    MqttKeyOpt,
    PasswordOpt,
    UsernameOpt,
)
from controller.cmd_agg import AggregatorOpt
from controller.discovery import Agent, discover
from controller.options import (
    DEFAULT_BROKER,
    CaOpt,
    CertOpt,
    InsecureOpt,
    InventoryOpt,
    KeyOpt,
    OutputOpt,
    SelectorOpt,
)
from controller.render import Output, console
from controller.selectors import parse_selector

__all__ = ["hosts"]


def hosts(
    broker: Annotated[
        str,
        typer.Option(envvar="IOIN_BROKER", help="MQTT broker HOST:PORT."),
    ] = DEFAULT_BROKER,
    selector: SelectorOpt = None,
    online: Annotated[bool, typer.Option("--online", help="Only agents online now.")] = False,
    output: OutputOpt = Output.TABLE,
    aggregator: AggregatorOpt = None,
    inventory: InventoryOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    insecure: InsecureOpt = False,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
    mqtt_ca: MqttCaOpt = None,
    mqtt_cert: MqttCertOpt = None,
    mqtt_key: MqttKeyOpt = None,
) -> int:
    """List agents: name, address, labels, online, backend, hooks, epoch, last seen; with
    ``--aggregator`` (or the inventory's ``[defaults] aggregator``) also each host's sequence
    gaps, announced drops, event rate and last event, from the aggregator's store."""
    chosen = parse_selector(selector or "")
    login = BrokerLogin(username, password, mqtt_ca, mqtt_cert, mqtt_key)
    found = asyncio.run(discover(broker, login))
    agents = found.select(chosen, online_only=False)
    if online:
        agents = [a for a in agents if a.online]
    up = sum(a.online for a in agents)
    line = f"hosts: {len(agents)} agents, {up} online, {len(agents) - up} offline ({broker})"
    docs = [a.json() for a in agents]
    if aggregator or inventory:
        target = resolve_target(aggregator, inventory, ca=ca, cert=cert, key=key, insecure=insecure)
        docs = asyncio.run(enrich_hosts(target, docs, key="name"))
    if output is Output.TABLE:
        console().print(_table(agents, docs))
        print(line, flush=True)
        return 0
    if output is Output.JSON:
        print(json.dumps({"broker": broker, "agents": docs}, indent=2), flush=True)
    else:
        for doc in docs:
            print(json.dumps(doc, separators=(",", ":")), flush=True)
    print(line, file=sys.stderr, flush=True)
    return 0


def _table(agents: list[Agent], docs: list[dict[str, Any]]) -> Table:
    enriched = bool(docs) and "gaps" in docs[0]
    columns = ["name", "address", "labels", "online", "backend", "hooks", "epoch", "last seen"]
    table = Table(*columns, *(("gaps", "drops", "events/s", "last event") if enriched else ()))
    for a, doc in zip(agents, docs, strict=True):
        labels = ",".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        state = Text("yes", style="green") if a.online else Text("no", style="red")
        cells = [a.name, a.address, labels]
        tail = [a.backend, str(len(a.hooks)), a.epoch, _when(a.last_seen_ns)]
        if enriched:
            tail += [str(doc["gaps"]), str(doc["drops"]), f"{doc['rate']:.1f}"]
            tail.append(_when(doc["last_event_ts"]))
        table.add_row(*map(Text, cells), state, *map(Text, tail))
    return table


def _when(ns: int) -> str:
    if not ns:
        return ""
    stamp = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S")
