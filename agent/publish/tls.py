"""The publisher's TLS: a fresh ``ssl.SSLContext`` for every connect to the broker.

Built from ``[mqtt]`` ``cafile`` (the CA that signed the broker's certificate), ``certfile`` and
``keyfile`` (the agent's own certificate; with deploy/mosquitto.conf its CN is its MQTT username
and its client id). The publisher calls :func:`mqtt_context` on every connect, so certificate
files replaced in place are presented from the next connect on: no restart, nothing spooled is
lost. The broker's name is checked against its certificate (``mqtt.host`` must be one of its
SANs). Problems become :class:`~agent.errors.ConfigError` naming the keys and the files.
"""

from __future__ import annotations

import ssl

from agent.config import MqttConfig
from agent.errors import ConfigError

__all__ = ["mqtt_context"]


def mqtt_context(cfg: MqttConfig) -> ssl.SSLContext:
    """A client context trusting ``cafile`` and presenting ``certfile`` / ``keyfile`` if set."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.cafile)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"mqtt.cafile: {cfg.cafile}: {exc.strerror or exc}") from None
    if cfg.certfile:
        try:
            ctx.load_cert_chain(cfg.certfile, cfg.keyfile or None)
        except OSError as exc:
            files = ", ".join(f for f in (cfg.certfile, cfg.keyfile) if f)
            raise ConfigError(f"mqtt.certfile/keyfile: {files}: {exc.strerror or exc}") from None
    return ctx
