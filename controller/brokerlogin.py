"""How ioinctl logs in to the MQTT broker (``watch``, ``hosts``, ``--discover``).

The shipped broker (deploy/mosquitto.conf) has one listener, TLS with client certificates, so
every command that reads the bus takes the same options: ``--mqtt-ca`` (and, for the shipped
broker, ``--mqtt-cert`` / ``--mqtt-key``: a reader's certificate) and, for a broker with
passwords, ``--username`` / ``--password``. Each has an ``IOIN_MQTT_*`` environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from controller.errors import UsageError

if TYPE_CHECKING:
    import aiomqtt

__all__ = [
    "BrokerLogin",
    "MqttCaOpt",
    "MqttCertOpt",
    "MqttKeyOpt",
    "PasswordOpt",
    "UsernameOpt",
]

PANEL = "MQTT broker"

UsernameOpt = Annotated[
    str | None, typer.Option(envvar="IOIN_MQTT_USERNAME", rich_help_panel=PANEL)
]
PasswordOpt = Annotated[
    str | None, typer.Option(envvar="IOIN_MQTT_PASSWORD", rich_help_panel=PANEL)
]
MqttCaOpt = Annotated[
    str | None,
    typer.Option(envvar="IOIN_MQTT_CA", help="CA for MQTT over TLS.", rich_help_panel=PANEL),
]
MqttCertOpt = Annotated[
    str | None,
    typer.Option(
        envvar="IOIN_MQTT_CERT",
        help="Client certificate for MQTT over TLS (its CN must be a reader).",
        rich_help_panel=PANEL,
    ),
]
MqttKeyOpt = Annotated[
    str | None,
    typer.Option(envvar="IOIN_MQTT_KEY", help="Its key.", rich_help_panel=PANEL),
]


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """Credentials and TLS files for the broker; all optional (a plain, open broker)."""

    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None) or (self.cert and not self.ca):
            raise UsageError("--mqtt-cert and --mqtt-key go together, and need --mqtt-ca")

    def tls(self) -> aiomqtt.TLSParameters | None:
        """aiomqtt's TLS parameters, or None for a plain connection."""
        import aiomqtt  # here: most ioinctl commands never talk to the broker

        if not self.ca:
            return None
        return aiomqtt.TLSParameters(ca_certs=self.ca, certfile=self.cert, keyfile=self.key)
