"""``ioinagg``: run the aggregator (``--config FILE`` and flags over it), or ``check-config``.

Exit codes: 0 ok; 1 a configuration or store error (the message names the key); 130 interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import structlog
import typer

from aggregator.config import Config, load
from aggregator.errors import AggError

__all__ = ["app", "main"]

app = typer.Typer(
    name="ioinagg",
    help="Count every ioind event exactly once into rollups; serve Top, Query and Hosts.",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Opt = typer.Option


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    config: Annotated[Path | None, Opt("--config", "-c", help="TOML configuration.")] = None,
    broker: Annotated[str | None, Opt(help="MQTT broker HOST:PORT.")] = None,
    group: Annotated[str | None, Opt(help="Shared-subscription group.")] = None,
    id: Annotated[str | None, Opt("--id", help="This instance's id (MQTT session).")] = None,
    listen: Annotated[str | None, Opt(help="gRPC HOST:PORT.")] = None,
    store: Annotated[str | None, Opt(help="'' (SQLite) or postgresql://...")] = None,
    state_dir: Annotated[Path | None, Opt(help="Where the SQLite store lives.")] = None,
    metrics: Annotated[str | None, Opt(help="Prometheus HOST:PORT.")] = None,
    alerts: Annotated[str | None, Opt(help="Alert rules file (reloaded on change).")] = None,
    insecure: Annotated[bool | None, Opt("--insecure", help="Plain gRPC (no TLS).")] = None,
    cert: Annotated[str | None, Opt(help="Server certificate (PEM), mutual TLS.")] = None,
    key: Annotated[str | None, Opt(help="Its private key.")] = None,
    ca: Annotated[str | None, Opt(help="CA that signs the clients' certificates.")] = None,
    mqtt_ca: Annotated[str | None, Opt(help="MQTT over TLS: the broker's CA.")] = None,
    mqtt_cert: Annotated[
        str | None, Opt(help="MQTT over TLS: this instance's certificate.")
    ] = None,
    mqtt_key: Annotated[str | None, Opt(help="Its private key.")] = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    cfg = load(config).with_flags(
        broker=broker, group=group, id=id, listen=listen, store=store, state_dir=state_dir,
        metrics=metrics, alerts=alerts, insecure=insecure, cert=cert, key=key, ca=ca,
        mqtt_ca=mqtt_ca, mqtt_cert=mqtt_cert, mqtt_key=mqtt_key,
    )  # fmt: skip
    _logging()
    asyncio.run(_serve(cfg))


async def _serve(cfg: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop the app's task group (unacknowledged messages stay
    with the broker for the next run); an error of the app itself propagates."""
    from aggregator.app import App

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app_task = asyncio.create_task(App(cfg).run(), name="ioinagg")
    stop_task = asyncio.create_task(stop.wait(), name="signals")
    await asyncio.wait({app_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    stop_task.cancel()
    if not app_task.done():
        app_task.cancel()
        await asyncio.gather(app_task, return_exceptions=True)
        return
    app_task.result()


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="TOML configuration.")]) -> None:
    """Load and check a configuration (and its alert rules); print OK or the error."""
    cfg = load(path).with_flags()
    if cfg.alerts:
        from aggregator.alerts import load_rules

        load_rules(Path(cfg.alerts))
    typer.echo(f"{path}: OK")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="ioinagg", standalone_mode=False)
    except typer.Abort:
        return 130
    except KeyboardInterrupt:
        return 130
    except typer.TyperException as e:
        show = getattr(e, "show", None)
        show() if callable(show) else typer.echo(str(e), err=True)
        return 1
    except AggError as e:
        typer.echo(f"ioinagg: {e}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
