"""gRPC ``ioin.v1.Aggregator``: Top (streaming), Query, Hosts. The servicer only translates
proto to the reader's calls and back; :class:`ErrorInterceptor` maps :class:`QueryError` to
INVALID_ARGUMENT and :class:`StoreError` to UNAVAILABLE, in one place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio

from agent.identity import Role
from agent.rpc.handlers import rewrap
from agent.rpc.roles import RoleInterceptor, table_policy
from agent.wire import aggregator_pb2 as pb
from agent.wire import aggregator_pb2_grpc
from aggregator.alerts import Alert
from aggregator.config import Config
from aggregator.errors import QueryError, StoreError
from aggregator.query import Reader, TopLine
from aggregator.rollup import NS

__all__ = ["AggregatorService", "create_server"]

T = TypeVar("T")
_SORTS = {
    "rate": lambda r: (-r.events, r.key),
    "events": lambda r: (-r.events, r.key),
    "host": lambda r: r.key,
    "port": lambda r: (r.port, r.host, r.vm),
    "last": lambda r: (-r.last_ts, r.key),
}


class AggregatorService(aggregator_pb2_grpc.AggregatorServicer):
    def __init__(
        self,
        reader: Reader,
        labels: Callable[[], dict[str, dict[str, str]]],
        alerts: Callable[[], Iterable[Alert]],
        ingest_rate: Callable[[], float],
    ) -> None:
        self._reader = reader
        self._labels = labels
        self._alerts = alerts
        self._rate = ingest_rate
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ioinagg-read")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def Query(self, request: pb.QueryRequest, context: Any) -> pb.QueryReply:
        since = request.since_s or 3600
        limit = request.limit or 1000
        cols, rows, first, width = await self._run(
            self._reader.query, since, list(request.by), request.where, limit
        )
        reply = pb.QueryReply(columns=[*cols, "events"], start_ts=first * NS, bucket_s=width)
        for row in rows:
            keys = [_key(c, v) for c, v in zip(cols, row, strict=False)]
            ev, first, last, top = row[len(cols) :]
            out = reply.rows.add(keys=keys, events=int(ev), first_ts=int(first), last_ts=int(last))
            for value, n in top:
                out.values.add(value=value, events=n)
        return reply

    async def Top(self, request: pb.TopRequest, context: Any) -> AsyncIterator[pb.TopSnapshot]:
        sort = request.sort or "rate"
        if sort not in _SORTS:
            raise QueryError(sort, f"unknown sort key (one of {', '.join(_SORTS)})")
        window = request.window_s or 10
        if window > 600:
            raise QueryError(str(window), "window_s above 600")
        while True:
            yield await self._snapshot(request, window, sort)
            if request.once:
                return
            await asyncio.sleep(request.interval_s or 1.0)

    async def _snapshot(self, request: pb.TopRequest, window: int, sort: str) -> pb.TopSnapshot:
        hosts = self._hosts_for(dict(request.labels), set(request.hosts))
        lines: list[TopLine] = []
        if hosts is None or hosts:
            lines = await self._run(
                self._reader.top, window, hosts, set(request.ports), set(request.hooks)
            )
        lines.sort(key=_SORTS[sort])
        snap = pb.TopSnapshot(ts=time.time_ns(), window_s=window, ingest_rate=self._rate())
        for line in lines[: request.limit or 20]:
            snap.rows.add(
                host=line.host, vm=line.vm, vm_name=line.vm_name, port=line.port,
                rate=line.events / window, events=line.events, spark=line.spark,
                last_ts=line.last_ts, dir=line.dir,
            )  # fmt: skip
        for a in list(self._alerts())[:10]:
            snap.alerts.add(
                rule=a.rule, host=a.host, vm=a.vm, port=a.port, dir=a.dir, reason=a.reason,
                ts=a.ts,
            )  # fmt: skip
        return snap

    def _hosts_for(self, labels: dict[str, str], hosts: set[str]) -> set[str] | None:
        if not labels:
            return hosts or None
        known = self._labels()
        chosen = {h for h, lab in known.items() if all(lab.get(k) == v for k, v in labels.items())}
        return chosen & hosts if hosts else chosen

    async def Hosts(self, request: pb.HostsRequest, context: Any) -> pb.HostsReply:
        reply = pb.HostsReply()
        for h in await self._run(self._reader.hosts):
            reply.hosts.add(
                host=h.host, online=h.online, epoch=h.epoch, address=h.address, labels=h.labels,
                events=h.events, gaps=h.gaps, drops=h.drops, rate=h.rate,
                last_event_ts=h.last_event_ts, last_seen_ts=h.last_seen_ts,
            )  # fmt: skip
        return reply


def _key(column: str, value: Any) -> str:
    if column == "port":
        return f"{int(value):#06x}"
    if column == "dir":
        return "out" if value else "in"
    return str(value)


if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    MethodHandler = grpc.RpcMethodHandler[Any, Any]


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """QueryError -> INVALID_ARGUMENT, StoreError -> UNAVAILABLE (messages name the token)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        return rewrap(handler, unary=_mapped_unary, stream=_mapped_stream)


def _mapped_unary(inner: Any) -> Any:
    async def unary(request: Any, context: Ctx) -> Any:
        try:
            return await inner(request, context)
        except (QueryError, StoreError) as exc:
            await context.abort(_code(exc), str(exc))

    return unary


def _mapped_stream(inner: Any) -> Any:
    async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
        try:
            async for item in inner(request, context):
                yield item
        except (QueryError, StoreError) as exc:
            await context.abort(_code(exc), str(exc))

    return stream


def _code(exc: Exception) -> grpc.StatusCode:
    return (
        grpc.StatusCode.INVALID_ARGUMENT
        if isinstance(exc, QueryError)
        else grpc.StatusCode.UNAVAILABLE
    )


# The agents' roles (agent.rpc.roles): every call here is a read, open to viewers; a method
# missing from this table would need admin.
_READS = {f"/ioin.v1.Aggregator/{m}": Role.VIEWER for m in ("Top", "Query", "Hosts")}


def create_server(cfg: Config, service: AggregatorService) -> tuple[grpc.aio.Server, int]:
    """The gRPC server (not started) and its bound port (``listen`` may say port 0)."""
    roles = RoleInterceptor(table_policy(_READS, {}), secure=not cfg.insecure)
    server = grpc.aio.server(interceptors=[roles, ErrorInterceptor()])
    aggregator_pb2_grpc.add_AggregatorServicer_to_server(service, server)
    if cfg.insecure:
        port = server.add_insecure_port(cfg.listen)
    else:
        creds = grpc.ssl_server_credentials(
            [(Path(cfg.key).read_bytes(), Path(cfg.cert).read_bytes())],
            root_certificates=Path(cfg.ca).read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port(cfg.listen, creds)
    return server, port
