"""Hypervisor backends, loaded lazily by name so ctypes / ioctl code loads only when used.

========== ============================================ ===================================
name       module                                       what it is
========== ============================================ ===================================
sim        agent.backends.sim                           deterministic access generator
kvm        agent.backends.kvm                           ioind as a micro-VMM on /dev/kvm
kvm-trace  agent.backends.kvm_trace                     every VM on the host, via kvm_pio
========== ============================================ ===================================

Each module exposes ``create(config: BackendConfig) -> Backend``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agent.backends.base import Backend, EventSink
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config import AgentConfig

__all__ = ["BACKENDS", "Backend", "EventSink", "load_backend"]

BACKENDS = {
    "sim": "agent.backends.sim",
    "kvm": "agent.backends.kvm",
    "kvm-trace": "agent.backends.kvm_trace",
}


def load_backend(config: AgentConfig) -> Backend:
    """Import the backend named in ``config.backend`` and create it."""
    try:
        module_name = BACKENDS[config.backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"backend: unknown backend '{config.backend}' (known: {known})") from None
    module = importlib.import_module(module_name)
    backend: Backend = module.create(config)
    return backend
