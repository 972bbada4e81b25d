"""The bus's access control: mosquitto's dynamic-security file for a fleet (``ioinctl pki
broker-acl``).

Why not ``acl_file``: mosquitto 2.0's ACL file never checks subscriptions (its check returns
success for every SUBSCRIBE), so an agent could join the consumers' shared group
(``$share/agg/ioin/v1/+/events/#``), be handed its share of the messages, and have them dropped
by the read check at delivery: messages that vanish from the real reader. The dynamic-security
plugin checks subscriptions, with a default of deny.

The file this module writes (loaded by ``plugin_opt_config_file``, see deploy/mosquitto.conf):

- everything is denied by default: publish, receive and subscribe;
- each agent ``<host>`` (the CN of its certificate, used as its username) may publish under
  ``ioin/v1/<host>/#`` and nothing else: it subscribes to nothing, so it joins no shared group;
- each reader may subscribe to and receive ``ioin/v1/#`` (plain or in any shared group) and
  publish nothing;
- each aggregator is a reader that may also publish alerts under ``ioin/v1/alerts/#``;
- a certificate the fleet CA signed for any other name can connect but do nothing.

mosquitto 2.0.11's plugin has no ``%u`` substitution, hence one role per host.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.model import check_id
from agent.topics import PREFIX
from controller.errors import PkiError

__all__ = ["ALERTS", "broker_acl", "write_broker_acl"]

ALERTS = "alerts"  # ioin/v1/alerts/<rule> is the aggregator's; no host may take that name
READER_ROLE = "ioin-reader"
AGGREGATOR_ROLE = "ioin-aggregator"


def broker_acl(
    agents: Sequence[str], readers: Sequence[str] = (), aggregators: Sequence[str] = ()
) -> dict[str, Any]:
    """The dynamic-security document for these agents (host ids), readers and aggregators."""
    _check_names(agents, readers, aggregators)
    clients = [_client(h, [_agent_role(h)]) for h in agents]
    clients += [_client(r, [READER_ROLE]) for r in readers]
    clients += [_client(a, [READER_ROLE, AGGREGATOR_ROLE]) for a in aggregators]
    roles = [_role(_agent_role(h), [_acl("publishClientSend", f"{PREFIX}/{h}/#")]) for h in agents]
    roles.append(
        _role(
            READER_ROLE,
            [
                _acl("subscribePattern", f"{PREFIX}/#"),
                _acl("subscribePattern", f"$share/+/{PREFIX}/#"),
                _acl("publishClientReceive", f"{PREFIX}/#"),
            ],
        )
    )
    roles.append(_role(AGGREGATOR_ROLE, [_acl("publishClientSend", f"{PREFIX}/{ALERTS}/#")]))
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def write_broker_acl(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as the plugin reads it (mosquitto rewrites the file when it changes it)."""
    try:
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise PkiError(str(path), exc.strerror or str(exc)) from None


def _check_names(*groups: Sequence[str]) -> None:
    seen: set[str] = set()
    for kind, names in zip(("agent", "reader", "aggregator"), groups, strict=True):
        for name in names:
            try:
                check_id(kind, name)
            except ValueError as exc:
                raise PkiError(name, str(exc)) from None
            if name in seen:
                raise PkiError(name, "named twice: one identity, one kind")
            if kind == "agent" and name == ALERTS:
                raise PkiError(name, f"'{ALERTS}' is the aggregator's topic, not a host id")
            seen.add(name)


def _agent_role(host: str) -> str:
    return f"ioin-agent-{host}"


def _client(username: str, roles: list[str]) -> dict[str, Any]:
    # No password: these clients log in by certificate (use_identity_as_username).
    return {"username": username, "roles": [{"rolename": r} for r in roles]}


def _role(name: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rolename": name, "acls": acls}


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": True}
