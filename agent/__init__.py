"""ioind: the ioin-fleet agent.

Public contract for the controller: :mod:`agent.wire` (generated gRPC / protobuf code),
:mod:`agent.hooks.lang` (the hook language parser, with :mod:`agent.hooks.validate`),
:mod:`agent.events`, :mod:`agent.eventline`, :mod:`agent.batch`, :mod:`agent.topics`,
:mod:`agent.identity` (roles in certificates) and :mod:`agent.model`. The role interceptor
(:mod:`agent.rpc.roles`) is meant for the aggregator's gRPC service too. Everything else is
the agent's own; :mod:`agent.build` wires it together.
"""

from agent.model import version

__all__ = ["version"]
