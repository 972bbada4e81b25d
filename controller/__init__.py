"""ioinctl: the ioin-fleet controller (pushes hooks to many agents, shows what comes back)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ioin-fleet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
