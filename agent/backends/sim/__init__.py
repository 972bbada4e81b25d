"""The ``sim`` backend: a deterministic generator of port accesses.

Given the same seed, port weights, VM and core counts, it produces the same sequence of accesses
(port, direction, VM, core, value) every time, at ``rate`` accesses per second in 10 ms ticks.
It supports every action, simulated: ``set N`` changes the value the simulated guest reads or
writes, ``sc on`` marks the access skipped, ``break`` pauses the simulated vCPU (its accesses stop)
until ``resume`` or the break timeout. It is the default backend in tests and the demo, and a load
generator far above what a broker takes.
"""

from __future__ import annotations

from agent.backends.sim.backend import SimBackend

__all__ = ["SimBackend", "create"]


def create(config: object) -> SimBackend:
    """Create the backend from an ``AgentConfig``."""
    from agent.config import AgentConfig

    assert isinstance(config, AgentConfig)
    return SimBackend(config.sim, break_timeout=config.kvm.break_timeout)
