"""ioinagg: the fleet's consumer. Counts every event exactly once into rollups in a store,
evaluates alert rules, and serves ``ioin.v1.Aggregator`` (Top, Query, Hosts) over gRPC."""

from aggregator.errors import AggError, ConfigError, Junk, QueryError, StoreError

__all__ = ["AggError", "ConfigError", "Junk", "QueryError", "StoreError"]
