"""``ioinagg`` configuration: a TOML file, then flags over it. Every error names its key.

Example (deploy/ioinagg.toml)::

    broker = "mqtt.internal:1883"
    group = "ioinagg"            # the shared-subscription group all instances join
    id = "agg-1"                 # this instance's MQTT client id suffix (persistent session)
    listen = "0.0.0.0:50070"     # gRPC ioin.v1.Aggregator
    store = ""                   # "" = SQLite under state_dir; or "postgresql://..."
    state_dir = "/var/lib/ioinagg"
    metrics = "0.0.0.0:9170"     # Prometheus; "" = off
    alerts = "/etc/ioinagg/alerts.toml"
    insecure = false             # plain gRPC: only when asked
    cert = "/etc/ioinagg/agg.pem"
    key = "/etc/ioinagg/agg.key"
    ca = "/etc/ioinagg/ca.pem"

    [retention]                  # seconds each rollup level keeps its buckets
    s = 3600                     # 1 s
    m = 604800                   # 1 min
    t = 2592000                  # 10 min
    h = 31536000                 # 1 h

    [ingest]
    commit_ms = 50               # longest a message waits for its group commit
    commit_max = 500             # messages per group commit
    receive_max = 2000           # MQTT 5 Receive Maximum: unacknowledged messages in flight
    max_past_s = 604800          # older events: the batch is skipped (counted)
    max_future_s = 300
"""

from __future__ import annotations

import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agent.model import check_id
from aggregator.errors import ConfigError

__all__ = ["Config", "Ingest", "load", "split_address"]


@dataclass(frozen=True, slots=True)
class Ingest:
    commit_ms: int = 50
    commit_max: int = 500
    receive_max: int = 2000
    max_past_s: float = 7 * 86400.0
    max_future_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Config:
    broker: str = "127.0.0.1:1883"
    group: str = "ioinagg"
    id: str = field(default_factory=lambda: socket.gethostname().lower()[:40] or "agg")
    listen: str = "127.0.0.1:50070"
    store: str = ""
    state_dir: Path = Path("/var/lib/ioinagg")
    metrics: str = ""
    alerts: str = ""
    insecure: bool = False
    cert: str = ""
    key: str = ""
    ca: str = ""
    username: str = ""
    password: str = ""
    # MQTT over TLS (deploy/mosquitto.conf): the CA of the broker's certificate, and this
    # instance's own pair (`ioinctl pki issue --user NAME`; `ioinctl pki broker-acl --aggregator
    # NAME` lets NAME read and publish alerts). Each instance needs a certificate of its own.
    mqtt_ca: str = ""
    mqtt_cert: str = ""
    mqtt_key: str = ""
    session_expiry: int = 3600  # s the broker keeps our session (and queues) while we are away
    retention: dict[str, int] = field(
        default_factory=lambda: {"s": 3600, "m": 7 * 86400, "t": 30 * 86400, "h": 365 * 86400}
    )
    ingest: Ingest = field(default_factory=Ingest)

    def with_flags(self, **flags: Any) -> Config:
        """Flags over the file (``None``: not given), the result checked."""
        given = {k: v for k, v in flags.items() if v is not None}
        if "state_dir" in given:
            given["state_dir"] = Path(given["state_dir"])
        return _checked(replace(self, **given))


def split_address(key: str, text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(key, f"'{text}' is not HOST:PORT")
    return host.strip("[]"), int(port)


def load(path: Path | None) -> Config:
    """The config from ``path`` (defaults when ``None``), not yet checked as a whole: flags may
    still complete it (:meth:`Config.with_flags` checks)."""
    if path is None:
        return Config()
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), str(exc)) from None
    known = {f.name for f in fields(Config)}
    for key in doc:
        if key not in known:
            raise ConfigError(f"{path}: {key}", "unknown key")
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "retention":
            values[key] = _retention(path, value)
        elif key == "ingest":
            values[key] = _ingest(path, value)
        elif key == "state_dir":
            values[key] = Path(_typed(path, key, value, str))
        elif key in ("insecure",):
            values[key] = _typed(path, key, value, bool)
        elif key == "session_expiry":
            values[key] = _typed(path, key, value, int)
        else:
            values[key] = _typed(path, key, value, str)
    return Config(**values)


def _typed(path: Path, key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: {key}", f"must be {kind.__name__}, got {value!r}")
    return value


def _retention(path: Path, table: Any) -> dict[str, int]:
    out = Config().retention
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: retention", "must be a table")
    for lvl, secs in table.items():
        if lvl not in out:
            raise ConfigError(f"{path}: retention.{lvl}", "unknown level (s, m, t, h)")
        out[lvl] = _typed(path, f"retention.{lvl}", secs, int)
    return out


def _ingest(path: Path, table: Any) -> Ingest:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: ingest", "must be a table")
    names = {f.name: f.type for f in fields(Ingest)}
    for k, v in table.items():
        if k not in names:
            raise ConfigError(f"{path}: ingest.{k}", "unknown key")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{path}: ingest.{k}", f"must be a number, got {v!r}")
    return Ingest(**table)


def _checked(c: Config) -> Config:
    if split_address("broker", c.broker)[1] == 0:
        raise ConfigError("broker", f"'{c.broker}': port 0")
    split_address("listen", c.listen)
    if c.metrics:
        split_address("metrics", c.metrics)
    try:
        check_id("group", c.group)
        check_id("id", c.id)
    except ValueError as exc:
        raise ConfigError("group/id", str(exc)) from None
    for lvl, secs in c.retention.items():
        if not 1 <= secs <= 10 * 365 * 86400:
            raise ConfigError(f"retention.{lvl}", f"{secs} out of range 1..315360000 s")
    i = c.ingest
    checks = [
        ("ingest.commit_ms", 1 <= i.commit_ms <= 10_000, "1..10000"),
        ("ingest.commit_max", 1 <= i.commit_max <= 100_000, "1..100000"),
        ("ingest.receive_max", 1 <= i.receive_max <= 65_535, "1..65535 (MQTT 5)"),
        ("ingest.max_past_s", i.max_past_s > 0, "positive"),
        ("ingest.max_future_s", i.max_future_s > 0, "positive"),
        ("session_expiry", 0 <= c.session_expiry <= 0xFFFF_FFFF, "0..2^32-1"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(key, f"out of range {what}")
    if bool(c.mqtt_cert) != bool(c.mqtt_key) or (c.mqtt_cert and not c.mqtt_ca):
        raise ConfigError("mqtt_cert/mqtt_key", "go together, and need mqtt_ca")
    if not c.insecure and not (c.cert and c.key and c.ca):
        raise ConfigError("cert/key/ca", "mutual TLS needs all three (or insecure = true)")
    return c
