"""ioind: the ioin-fleet agent.

Public contract for the controller: :mod:`agent.wire` (generated gRPC / protobuf code),
:mod:`agent.hooks.lang` (the hook language parser), :mod:`agent.events` and :mod:`agent.model`.
Everything else is the agent's own.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ioin-fleet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
