"""The publisher's TLS: a fresh ``ssl.SSLContext`` for every connect to the broker.

Built from ``[mqtt]`` ``cafile`` (the CA that signed the broker's certificate), ``certfile`` and
``keyfile`` (the agent's own certificate; with deploy/mosquitto.conf its CN is its MQTT username
and its client id). The publisher calls :func:`mqtt_context` on every connect, so certificate
files replaced in place are presented from the next connect on: no restart, nothing spooled is
lost. The broker's name is checked against its certificate (``mqtt.host`` must be one of its
SANs). Problems become :class:`~agent.errors.ConfigError` naming the keys and the files.

The certificate's CN must be the agent's host id: the broker takes the CN as the identity and
would refuse every publish under ``ioin/v1/<host>/``, so a mismatch is refused here, before
anything is sent (the spool keeps the batches, the publisher retries and says why).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.config import MqttConfig
from agent.errors import ConfigError

__all__ = ["mqtt_context"]


def mqtt_context(cfg: MqttConfig, host: str) -> ssl.SSLContext:
    """A client context trusting ``cafile`` and presenting ``certfile`` / ``keyfile`` if set
    (whose CN must be ``host``)."""
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
        _check_cn(cfg.certfile, host)
    return ctx


def _check_cn(certfile: str, host: str) -> None:
    cert = x509.load_pem_x509_certificate(Path(certfile).read_bytes())  # loaded just above
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [host]:
        named = cns[0] if cns else "none"
        raise ConfigError(
            f"mqtt.certfile: {certfile}: CN '{named}' is not this agent's host id '{host}'"
            " (the broker would refuse its publishes)"
        )
