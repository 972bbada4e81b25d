"""The ``kvm-trace`` backend: every VM on the host, observed through the ``kvm:kvm_pio`` tracepoint.

How it works, module by module:

- ``tracefs``: mounts tracefs if needed and owns ``instances/ioin-<host>`` (never the top-level
  instance); stale ``ioin-*`` instances of dead agents are removed at start.
- ``filter``: the instance's kvm_pio filter, rebuilt from the hook table on every change — the
  analogue of HyperDbg's I/O bitmap: unhooked ports never reach user space; with no hooks the
  event is disabled. A pid hook selects the VM's threads (``common_pid``), rescanned every second.
- ``reader`` / ``ringbuf``: one thread per CPU reads binary sub-buffers from
  ``per_cpu/cpuN/trace_pipe_raw`` and parses them with the offsets of the event's format file;
  lost events (the page's missed-events flag, the ``dropped events`` stat) become ``lost`` notices.
- ``convert`` / ``procs``: records are matched exactly against the table; ``vm`` is the VM's host
  pid, ``vm_name`` QEMU's ``-name`` (or the process name), ``vcpu`` from the thread's name,
  ``cpu`` the host CPU; ``ts`` is wall-clock ns (trace clock ``mono`` plus an offset).

Observe-only: capabilities ``in``, ``out``, ``pid`` (the VM's host process), ``core`` (the
host CPU). Needs root (tracefs, /proc/<pid>/fd of other users' VMs).
"""

from __future__ import annotations

from agent.backends.kvm_trace.backend import KvmTraceBackend

__all__ = ["KvmTraceBackend", "create"]


def create(config: object) -> KvmTraceBackend:
    """Create the backend from an ``AgentConfig`` (its ``kvm_trace`` section and host id)."""
    from agent.config import AgentConfig

    assert isinstance(config, AgentConfig)
    return KvmTraceBackend(config.kvm_trace, config.host)
