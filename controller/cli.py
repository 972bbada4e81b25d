"""``ioinctl``: the command tree, and the one place where errors become exit codes.

Exit codes: 0 success (every host ok); 2 some hosts failed, or ``explain`` refused the command;
1 no host ok, bad usage (including what typer/click reject), or any other controller error;
130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from controller.errors import ControllerError
from controller.render import warn

__all__ = ["COMMANDS", "build_app", "main"]

# Each command: (module under controller/, attribute). A typer.Typer attribute is a group.
# Only the command being run is imported (``build_app``): a ``push`` to a thousand hosts does not
# pay for the aggregator's client, the PKI's cryptography or the script compiler.
COMMANDS: dict[str, tuple[str, str]] = {
    "push": ("cmd_hooks", "push"),
    "explain": ("cmd_hooks", "explain"),
    "eval": ("cmd_script", "eval_script"),
    "hooks": ("cmd_hooks", "hooks_app"),
    "apply": ("cmd_apply", "apply"),
    "diff": ("cmd_apply", "diff"),
    "hosts": ("cmd_hosts", "hosts"),
    "status": ("cmd_fleet", "status"),
    "resume": ("cmd_fleet", "resume"),
    "vm": ("cmd_fleet", "vm_app"),
    "watch": ("cmd_watch", "watch"),
    "top": ("cmd_agg", "top"),
    "query": ("cmd_agg", "query"),
    "pki": ("cmd_pki", "pki_app"),
}
HELP = "Push I/O-port hooks (HyperDbg's !ioin / !ioout) to ioind agents; watch what they catch."


def _version(show: bool) -> None:
    if show:
        from agent.model import version

        typer.echo(f"ioinctl {version()}")
        raise typer.Exit(0)


def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="print the version"),
    ] = False,
) -> None:
    """Push I/O-port hooks (HyperDbg's !ioin / !ioout) to ioind agents; watch what they catch."""


def build_app(argv: Sequence[str] = ()) -> typer.Typer:
    """The command tree for ``argv``: only the command it names, or every command when it names
    none (``--help``, no arguments, a typo: click then lists them all)."""
    app = typer.Typer(
        name="ioinctl",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_options)
    named = next((a for a in argv if not a.startswith("-")), "")
    for name in [named] if named in COMMANDS else list(COMMANDS):
        module, attribute = COMMANDS[name]
        command = getattr(importlib.import_module(f"controller.{module}"), attribute)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ioinctl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = build_app(args)(args=args, prog_name="ioinctl", standalone_mode=False)
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
