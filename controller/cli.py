"""``ioinctl``: the command tree, and the one place where errors become exit codes.

Exit codes: 0 success (every host ok); 2 some hosts failed, or ``explain`` refused the command;
1 no host ok, bad usage (including what typer/click reject), or any other controller error;
130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from controller import (
    __version__,
    cmd_agg,
    cmd_apply,
    cmd_fleet,
    cmd_hooks,
    cmd_hosts,
    cmd_pki,
    cmd_script,
    cmd_watch,
)
from controller.errors import ControllerError
from controller.render import warn

__all__ = ["app", "main"]

app = typer.Typer(
    name="ioinctl",
    help="Push I/O-port hooks (HyperDbg's !ioin / !ioout) to ioind agents; watch what they catch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"ioinctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="print the version"),
    ] = False,
) -> None:
    """Push I/O-port hooks (HyperDbg's !ioin / !ioout) to ioind agents; watch what they catch."""


app.command("push")(cmd_hooks.push)
app.command("explain")(cmd_hooks.explain)
app.command("eval")(cmd_script.eval_script)
app.add_typer(cmd_hooks.hooks_app, name="hooks")
app.command("apply")(cmd_apply.apply)
app.command("diff")(cmd_apply.diff)
app.command("hosts")(cmd_hosts.hosts)
app.command("status")(cmd_fleet.status)
app.command("resume")(cmd_fleet.resume)
app.add_typer(cmd_fleet.vm_app, name="vm")
app.command("watch")(cmd_watch.watch)
app.command("top")(cmd_agg.top)
app.command("query")(cmd_agg.query)
app.add_typer(cmd_pki.pki_app, name="pki")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ioinctl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        result = app(args=argv, prog_name="ioinctl", standalone_mode=False)
    except typer.Abort:
        warn("aborted")
        return 130
    except typer.TyperException as e:  # usage errors: 1 here, not click's 2
        show = getattr(e, "show", None)
        show() if callable(show) else warn(str(e))
        return 1
    except ControllerError as e:
        warn(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
