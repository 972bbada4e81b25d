"""ioind: the ioin-fleet agent.

Public contract for the controller: :mod:`agent.wire` (generated gRPC / protobuf code),
:mod:`agent.hooks.lang` (the hook language parser, with :mod:`agent.hooks.validate`),
:mod:`agent.events`, :mod:`agent.eventline`, :mod:`agent.batch`, :mod:`agent.topics`,
:mod:`agent.identity` (roles in certificates) and :mod:`agent.model`. The role interceptor
(:mod:`agent.rpc.roles`) is meant for the aggregator's gRPC service too. Everything else is
the agent's own; :mod:`agent.build` wires it together.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ioin-fleet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
