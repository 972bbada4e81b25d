"""``ioind``: run the agent, check a config file, or run one backend locally.

Exit codes: 0 ok, 1 bad configuration or usage, 2 a hook command refused (``local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TextIO

import structlog
import typer

from agent.config import AgentConfig, VmConfig, advertised_address, load_config, with_overrides
from agent.errors import AgentError, ConfigError, HookSyntaxError
from agent.model import check_label

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False)
log = structlog.get_logger("ioind")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="agent TOML file")]
BackendOpt = Annotated[str | None, typer.Option(help="sim | kvm | kvm-trace")]
TracefsOpt = Annotated[str | None, typer.Option(help="kvm-trace: where tracefs is mounted")]
TraceBufferOpt = Annotated[int | None, typer.Option(help="kvm-trace: ring buffer KiB per CPU")]


def _fail(exc: AgentError, code: int = 1) -> typer.Exit:
    problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
    for p in problems:
        typer.echo(f"ioind: {p}", err=True)
    return typer.Exit(code)


def _version(show: bool) -> None:
    if show:
        from agent import version

        typer.echo(f"ioind {version()}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="host id")] = None,
    backend: BackendOpt = None,
    listen: Annotated[str | None, typer.Option(help="gRPC HOST:PORT")] = None,
    advertise: Annotated[
        str | None, typer.Option(help="gRPC HOST:PORT announced in the birth (discovery)")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="k=v label, added to the config's (repeatable)"),
    ] = None,
    insecure: Annotated[bool | None, typer.Option("--insecure", help="plain gRPC")] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="broker host")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="broker port")] = None,
    state_dir: Annotated[str | None, typer.Option(help="where hooks are kept")] = None,
    sim_rate: Annotated[float | None, typer.Option(help="sim accesses per second")] = None,
    tracefs: TracefsOpt = None,
    trace_buffer_kib: TraceBufferOpt = None,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="print the version"),
    ] = False,
) -> None:
    """Run the agent (gRPC service, backend, MQTT publisher) until SIGTERM / Ctrl-C.

    SIGHUP reloads the config file (log level, its hooks, TLS material); see agent.reload.
    """
    if ctx.invoked_subcommand is not None:
        return
    flags = {
        "host": host,
        "backend": backend,
        "state_dir": state_dir,
        "grpc__listen": listen,
        "grpc__advertise": advertise,
        "grpc__insecure": insecure,
        "mqtt__host": mqtt_host,
        "mqtt__port": mqtt_port,
        "sim__rate": sim_rate,
        "kvm_trace__tracefs": tracefs,
        "kvm_trace__buffer_kib": trace_buffer_kib,
    }

    def load() -> AgentConfig:  # again on every reload: the file, then the same flags on top
        base = load_config(config)
        labels = {**base.labels, **_labels(label)} if label else None
        return with_overrides(base, labels=labels, **flags)

    try:
        cfg = load()
        _preflight(cfg)  # once, at start: on a reload the ports are ours already
        _setup(cfg)
        asyncio.run(_serve(cfg, load))
    except AgentError as exc:
        raise _fail(exc) from None


def _labels(flags: list[str]) -> dict[str, str]:
    """``--label k=v`` flags as a table; a bad one is a ConfigError naming it."""
    labels: dict[str, str] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        try:
            if not sep:
                raise ValueError("expected k=v")
            check_label(key, value)
        except ValueError as exc:
            raise ConfigError(f"--label {flag}: {exc}") from None
        labels[key] = value
    return labels


def _preflight(cfg: AgentConfig) -> None:
    """The machine checked before anything opens: one line per problem, never a traceback."""
    from agent.preflight import preflight

    problems = preflight(cfg)
    if problems:
        raise ConfigError(problems)


def _setup(cfg: AgentConfig, stream: TextIO | None = None) -> None:
    from agent.logs import setup_logging

    setup_logging(cfg.log_level, stream)


async def _serve(cfg: AgentConfig, load: Callable[[], AgentConfig]) -> None:
    from agent.build import build_agent
    from agent.reload import Reloader
    from agent.rpc.server import create_server, serve
    from agent.rpc.tls import ServerTls
    from agent.sdnotify import Notifier, watchdog_interval
    from agent.supervisor import Supervisor, all_set, status_line

    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    notifier, watchdog_s = Notifier.from_env(), watchdog_interval()
    async with build_agent(cfg) as agent:
        tls = None if cfg.grpc.insecure else ServerTls(cfg.grpc)
        server, port, health = await create_server(agent, cfg.grpc, tls)
        agent.reports.address = advertised_address(cfg.grpc, port)  # before the first birth
        supervisor = Supervisor(
            notifier,
            status=lambda: status_line(agent.status()),
            healthy=agent.producing.is_set,
            watchdog_s=watchdog_s,
        )
        reloader = Reloader(agent, cfg, load, supervisor, tls)
        listening = asyncio.Event()
        if cfg.metrics.listen:
            from agent.metrics import serve_metrics

            log.info("metrics-listening", port=serve_metrics(agent.reports, cfg.metrics.listen))
        log.info(
            "agent-starting",
            host=cfg.host,
            backend=cfg.backend,
            grpc_port=port,
            broker=f"{cfg.mqtt.host}:{cfg.mqtt.port}",
            epoch=agent.identity.epoch,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run(
                lambda: serve(agent, server, health, listening),
                lambda: supervisor.run(all_set(listening, agent.producing)),
                reloader.run,
            )
        log.info("agent-stopped", host=cfg.host)


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="agent TOML file")]) -> None:
    """Report every problem in a config file at once (exit 0 if none)."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise _fail(exc) from None
    typer.echo(f"{path}: ok (host {cfg.host}, backend {cfg.backend})")


@app.command("health")
def health(
    config: Annotated[Path, typer.Option("--config", "-c", help="the agent's TOML file")],
    wait: Annotated[float, typer.Option(help="seconds to wait for SERVING")] = 0.0,
) -> None:
    """Exit 0 once the agent running with CONFIG reports gRPC health SERVING, else 1."""
    from agent.probe import wait_serving

    try:
        status = wait_serving(load_config(config), wait)
    except AgentError as exc:
        raise _fail(exc) from None
    if status != "SERVING":
        typer.echo(f"ioind: health: {status} (after {wait:g} s)", err=True)
        raise typer.Exit(1)
    typer.echo("SERVING")


@app.command("local")
def local(
    hook: Annotated[list[str], typer.Option("--hook", help="!ioin / !ioout command (repeatable)")],
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text | json")] = "text",
    seconds: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    sim_rate: Annotated[float | None, typer.Option(help="sim accesses per second")] = None,
    bios: Annotated[str | None, typer.Option(help="kvm: firmware image (e.g. SeaBIOS)")] = None,
    image: Annotated[str | None, typer.Option(help="kvm: flat guest image")] = None,
    mode: Annotated[str, typer.Option(help="kvm: real | protected | long")] = VmConfig.mode,
    load_addr: Annotated[str, typer.Option(help="kvm: load address")] = hex(VmConfig.load_addr),
    entry: Annotated[str | None, typer.Option(help="kvm: entry (default: load address)")] = None,
    vcpus: Annotated[int, typer.Option(help="kvm: vCPUs")] = VmConfig.vcpus,
    mem_mib: Annotated[int, typer.Option(help="kvm: guest memory in MiB")] = VmConfig.mem_mib,
    vm_name: Annotated[str, typer.Option(help="kvm: the VM's name")] = "vm1",
    break_timeout: Annotated[
        float | None, typer.Option(help="kvm: a paused vCPU resumes after this many s")
    ] = None,
    on_fault: Annotated[str | None, typer.Option(help="kvm: stop | keep a faulting VM")] = None,
    tracefs: TracefsOpt = None,
    trace_buffer_kib: TraceBufferOpt = None,
) -> None:
    """Run one backend with hooks from the command line; print events to stdout."""
    from agent.local import run_local

    if output not in ("text", "json"):
        typer.echo(f"ioind: --output: expected text or json, got '{output}'", err=True)
        raise typer.Exit(1)
    try:
        # local never listens: the gRPC security settings do not apply
        cfg = with_overrides(
            load_config(config),
            backend=backend,
            sim__rate=sim_rate,
            grpc__insecure=True,
            kvm_trace__tracefs=tracefs,
            kvm_trace__buffer_kib=trace_buffer_kib,
            kvm__break_timeout=break_timeout,
            kvm__on_fault=on_fault,
        )
        if bios or image:
            vm = VmConfig(
                name=vm_name,
                image=image or "",
                bios=bios or "",
                mode=mode,
                load_addr=int(load_addr, 0),
                entry=int(entry or load_addr, 0),
                vcpus=vcpus,
                mem_mib=mem_mib,
            )
            cfg = with_overrides(cfg, kvm=_with_vm(cfg, vm))
        _setup(with_overrides(cfg, log_level="warning"), sys.stderr)  # stdout carries events
        asyncio.run(run_local(cfg, hook, output=output, seconds=seconds))
    except HookSyntaxError as exc:
        raise _fail(exc, 2) from None
    except AgentError as exc:
        raise _fail(exc) from None
    except ValueError as exc:
        typer.echo(f"ioind: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def _with_vm(cfg: AgentConfig, vm: VmConfig) -> Any:
    from dataclasses import replace

    return replace(cfg.kvm, vms=(*cfg.kvm.vms, vm))


def main() -> None:
    """Console entry point; usage errors exit 1."""
    try:
        rc = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"ioind: {exc}", err=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
