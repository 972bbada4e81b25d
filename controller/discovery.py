"""Discovery: the agents the bus knows, from the retained births and wills on
``ioin/v1/+/status``.

Every agent publishes a retained birth when it connects (``online: true``, its gRPC ``address``,
``labels``, backend, hooks, epoch, ``ts``) and leaves a retained will that the broker publishes
when it goes away (``online: false``, with the same identity, so an offline agent is still
listed). :func:`discover` subscribes, takes what the broker replays, and stops once the replay
has been quiet for a moment (there is no end-of-retained marker in MQTT).

A payload that is not a birth is skipped and counted (``Discovery.junk``), never fatal.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.model import LABEL_KEY, LABEL_VALUE, check_id, printable
from controller.brokerlogin import BrokerLogin
from controller.errors import BrokerError
from controller.inventory import Host, split_address
from controller.selectors import Selector

if TYPE_CHECKING:
    import aiomqtt

__all__ = ["Agent", "Discovery", "discover"]

STATUS_TOPIC = "ioin/v1/+/status"
QUIET_S = 0.3  # the replay of retained messages is over when nothing came for this long
MAX_WAIT_S = 5.0  # and in any case after this long


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent as its last retained status message describes it."""

    name: str
    online: bool
    address: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    backend: str = ""
    version: str = ""
    hooks: tuple[str, ...] = ()
    epoch: str = ""
    last_seen_ns: int = 0

    def host(self, extra: dict[str, str] | None = None) -> Host:
        """The agent as a fan-out target; ``extra`` labels (the inventory's) add to its own."""
        return Host(self.name, self.address, labels=self.labels | (extra or {}))

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "labels": self.labels,
            "online": self.online,
            "backend": self.backend,
            "version": self.version,
            "hooks": list(self.hooks),
            "epoch": self.epoch,
            "last_seen_ns": self.last_seen_ns,
        }


@dataclass(slots=True)
class Discovery:
    """What the broker replayed: agents by name, and how many payloads were not births."""

    agents: dict[str, Agent] = field(default_factory=dict)
    junk: int = 0

    def handle(self, topic: str, payload: bytes) -> None:
        levels = topic.split("/")
        try:
            doc = json.loads(payload)
            agent = _agent(levels[2], doc)
        except (ValueError, TypeError, KeyError, IndexError):
            self.junk += 1
            return
        self.agents[agent.name] = agent

    def select(self, selector: Selector, *, online_only: bool = True) -> list[Agent]:
        """The agents ``selector`` matches (online ones with an address, by default), by name."""
        found = [a for a in self.agents.values() if selector.matches(a.labels)]
        if online_only:
            found = [a for a in found if a.online and a.address]
        return sorted(found, key=lambda a: a.name)


def _agent(name: str, doc: dict[str, Any]) -> Agent:
    """The agent a status message describes. Its name is the topic's: the broker lets each agent
    publish under its own name only, so a payload naming another host is not believed (it would
    let one agent replace another's address); names and labels must be valid ones."""
    if not isinstance(doc, dict) or not isinstance(doc["online"], bool):
        raise ValueError("not a birth")
    check_id("host", name)
    if doc.get("host", name) != name:
        raise ValueError("the payload names another host than its topic")
    labels = doc.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and LABEL_KEY.fullmatch(k)
        and LABEL_VALUE.fullmatch(v)
        for k, v in labels.items()
    ):  # fmt: skip
        raise TypeError("labels")
    address = str(doc.get("address") or "")
    if address:
        split_address(address)
    return Agent(
        name=name,
        online=doc["online"],
        address=address,
        labels=dict(labels),
        backend=printable(str(doc.get("backend") or ""), 64),  # shown in tables: no escapes
        version=printable(str(doc.get("version") or ""), 64),
        hooks=tuple(printable(str(h), 128) for h in doc.get("hooks") or ()),
        epoch=printable(str(doc.get("epoch") or ""), 64),
        last_seen_ns=int(doc.get("ts") or 0),
    )


async def discover(
    broker: str,
    login: BrokerLogin | None = None,
    *,
    quiet: float = QUIET_S,
    max_wait: float = MAX_WAIT_S,
) -> Discovery:
    """Subscribe to the status topics at ``broker`` and collect the retained replay."""
    import aiomqtt  # here: every fan-out command imports this module, few of them --discover

    login = login or BrokerLogin()
    found = Discovery()
    host, port = split_address(broker)
    client = aiomqtt.Client(
        host,
        port,
        identifier=f"ioinctl-hosts-{os.getpid()}-{os.urandom(3).hex()}",
        protocol=aiomqtt.ProtocolVersion.V5,
        username=login.username,
        password=login.password,
        tls_params=login.tls(),
    )
    try:
        async with client, asyncio.timeout(max_wait + 10):
            await client.subscribe(STATUS_TOPIC, qos=1)
            await _drain(client, found, quiet, max_wait)
    except aiomqtt.MqttError as e:
        raise BrokerError(broker, str(e)) from e
    except TimeoutError as e:
        raise BrokerError(broker, "no answer from the broker") from e
    return found


async def _drain(client: aiomqtt.Client, found: Discovery, quiet: float, max_wait: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + max_wait
    messages = aiter(client.messages)
    while (left := end - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(anext(messages), min(quiet, left))
        except TimeoutError:
            return
        payload = message.payload if isinstance(message.payload, bytes) else b""
        found.handle(message.topic.value, payload)
