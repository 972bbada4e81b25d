"""The aggregator (``ioinagg``) as the controller sees it: where it is, and its three calls.

``--aggregator HOST:PORT`` wins over ``aggregator = "HOST:PORT"`` in the inventory's
``[defaults]``. gRPC errors become controller errors here (``client.translate``), naming the
aggregator and its address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from agent.wire import aggregator_pb2 as pb
from agent.wire import aggregator_pb2_grpc
from controller.client import open_channel, translate
from controller.errors import UsageError
from controller.inventory import Host, load_inventory, split_address
from controller.security import Security, choose_security

__all__ = ["AggTarget", "HostStats", "enrich_hosts", "host_stats", "query", "resolve_target", "top"]


@dataclass(frozen=True, slots=True)
class AggTarget:
    host: Host
    security: Security
    timeout: float = 10.0


def resolve_target(
    aggregator: str | None,
    inventory: Path | None,
    *,
    ca: str | None,
    cert: str | None,
    key: str | None,
    insecure: bool,
    timeout: float | None = None,
) -> AggTarget:
    inv = load_inventory(inventory) if inventory else None
    defaults = inv.defaults if inv else None
    address = aggregator or (defaults.aggregator if defaults else None)
    if not address:
        raise UsageError("no aggregator: use --aggregator HOST:PORT or [defaults] aggregator")
    try:
        split_address(address)
    except ValueError as e:
        raise UsageError(f"--aggregator: {e}") from None
    security = choose_security(insecure=insecure, ca=ca, cert=cert, key=key, defaults=defaults)
    return AggTarget(Host("aggregator", address), security, timeout or 10.0)


async def query(
    t: AggTarget, since_s: int, by: Sequence[str], where: str, limit: int
) -> pb.QueryReply:
    request = pb.QueryRequest(since_s=since_s, by=list(by), where=where, limit=limit)
    async with open_channel(t.host, t.security) as ch:
        try:
            reply: pb.QueryReply = await aggregator_pb2_grpc.AggregatorStub(ch).Query(
                request, timeout=t.timeout
            )
        except grpc.aio.AioRpcError as e:
            raise translate(t.host, e, t.timeout) from None
    return reply


async def top(t: AggTarget, request: pb.TopRequest) -> AsyncIterator[pb.TopSnapshot]:
    async with open_channel(t.host, t.security) as ch:
        call = aggregator_pb2_grpc.AggregatorStub(ch).Top(request)
        try:
            async for snap in call:
                yield snap
        except grpc.aio.AioRpcError as e:
            raise translate(t.host, e, t.timeout) from None


@dataclass(frozen=True, slots=True)
class HostStats:
    """What the aggregator's store knows of one host."""

    online: bool
    events: int
    gaps: int
    drops: int
    rate: float
    last_event_ts: int


async def host_stats(t: AggTarget) -> dict[str, HostStats]:
    async with open_channel(t.host, t.security) as ch:
        try:
            reply: pb.HostsReply = await aggregator_pb2_grpc.AggregatorStub(ch).Hosts(
                pb.HostsRequest(), timeout=t.timeout
            )
        except grpc.aio.AioRpcError as e:
            raise translate(t.host, e, t.timeout) from None
    return {
        h.host: HostStats(h.online, h.events, h.gaps, h.drops, h.rate, h.last_event_ts)
        for h in reply.hosts
    }


async def enrich_hosts(t: AggTarget, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ioinctl hosts --aggregator``: each row (with a ``host`` key, as from births) gains
    ``gaps``, ``drops``, ``rate`` (events/s) and ``last_event_ts`` (ns; 0 when never)."""
    stats = await host_stats(t)
    empty = HostStats(False, 0, 0, 0, 0.0, 0)
    out = []
    for row in rows:
        s = stats.get(str(row.get("host")), empty)
        out.append(
            row
            | {"gaps": s.gaps, "drops": s.drops, "rate": s.rate, "last_event_ts": s.last_event_ts}
        )
    return out
