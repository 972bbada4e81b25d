"""``ioind health``: ask the agent running with a config for its gRPC health, as a rollout does.

It connects where the config says the agent listens (a wildcard address becomes 127.0.0.1) with
the agent's own TLS pair as the client identity (an agent certificate carries ``clientAuth``),
and waits until the overall health (service ``""``) is SERVING: the backend produces and the
broker is connected. The TLS name checked is the certificate's first DNS name, else the address.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.config import AgentConfig
from agent.errors import ConfigError

__all__ = ["local_target", "wait_serving"]

_WILDCARDS = ("0.0.0.0", "[::]", "", "*")


def local_target(listen: str) -> str:
    """The address to reach a server listening on ``listen`` from this host."""
    host, _, port = listen.rpartition(":")
    return f"127.0.0.1:{port}" if host in _WILDCARDS else listen


def _channel(cfg: AgentConfig) -> grpc.Channel:
    target = local_target(cfg.grpc.listen)
    if cfg.grpc.insecure:
        return grpc.insecure_channel(target)
    try:
        ca, key, cert = (Path(p).read_bytes() for p in (cfg.grpc.ca, cfg.grpc.key, cfg.grpc.cert))
    except OSError as exc:
        raise ConfigError(f"grpc: cannot read {exc.filename}: {exc.strerror}") from None
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    try:
        san = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        names = san.value.get_values_for_type(x509.DNSName)
    except (ValueError, x509.ExtensionNotFound):
        names = []
    options = [("grpc.ssl_target_name_override", names[0])] if names else []
    return grpc.secure_channel(target, creds, options=options)


def wait_serving(cfg: AgentConfig, wait_s: float) -> str:
    """Poll until SERVING (returned) or ``wait_s`` passes (the last status or error returned)."""
    deadline = time.monotonic() + wait_s
    last = "no answer"
    with _channel(cfg) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            if last == "SERVING" or time.monotonic() >= deadline:
                return last
            time.sleep(0.5)
