"""``ioinctl pki``: make the fleet CA and the certificates of agents, users and the broker.

::

    ioinctl pki init DIR                                   DIR/ca.crt, DIR/ca.key
    ioinctl pki issue DIR --agent HOST [--san NAME|IP]...  DIR/HOST.crt, .key (server+client)
    ioinctl pki issue DIR --user NAME --role ROLE [--days N]   (clientAuth, ioin://role/ROLE)
    ioinctl pki issue DIR --broker NAME [--san NAME|IP]...     (serverAuth)
    ioinctl pki show CERT [-o json]                        subject, role, SANs, expiry
    ioinctl pki broker-acl FILE --agent HOST... --reader NAME... [--aggregator NAME...]
                                                           mosquitto's dynamic-security file
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.identity import Identity, Role, identity_from_pem
from controller import brokeracl, pki
from controller.errors import PkiError, UsageError
from controller.options import OutputOpt
from controller.render import Output, console, print_json

__all__ = ["pki_app"]

pki_app = typer.Typer(help="The fleet's certificates: a CA, agents', users' and the broker's.")

DirArg = Annotated[Path, typer.Argument(help="Directory of the fleet CA (ca.crt, ca.key).")]


@pki_app.command("init")
def init(
    directory: DirArg,
    name: Annotated[str, typer.Option("--name", help="The CA's common name.")] = "ioin-fleet-ca",
    days: Annotated[int, typer.Option("--days", help="Validity in days.")] = pki.CA_DAYS,
) -> int:
    """Make a fleet CA: DIR/ca.crt and DIR/ca.key (0600). Refuses to replace an existing one."""
    files = pki.init_ca(directory, name, days)
    console().print(f"CA {name}: {files.cert} (key {files.key}, mode 0600)")
    return 0


@pki_app.command("issue")
def issue(
    directory: DirArg,
    agent: Annotated[str | None, typer.Option("--agent", help="Host id of an agent.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Name of a user.")] = None,
    broker: Annotated[str | None, typer.Option("--broker", help="Name of the broker.")] = None,
    role: Annotated[
        str | None, typer.Option("--role", help="A user's role: viewer, operator or admin.")
    ] = None,
    san: Annotated[
        list[str] | None, typer.Option("--san", help="Extra DNS name or IP (agent, broker).")
    ] = None,
    days: Annotated[int, typer.Option("--days", help="Validity in days.")] = pki.CERT_DAYS,
) -> int:
    """Issue one certificate signed by DIR's CA: DIR/<name>.crt and DIR/<name>.key (0600)."""
    chosen = [(flag, v) for flag, v in (("--agent", agent), ("--user", user), ("--broker", broker))]
    given = [(flag, v) for flag, v in chosen if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --agent, --user and --broker")
    flag, name = given[0]
    if flag == "--user":
        if san:
            raise UsageError("--san is for --agent and --broker, not --user")
        if role is None:
            raise UsageError("--user needs --role (viewer, operator or admin)")
        files = pki.issue_user(directory, name, _role(role), days)
    elif role is not None:
        raise UsageError(f"--role is for --user, not {flag}")
    elif flag == "--agent":
        files = pki.issue_agent(directory, name, san or [], days)
    else:
        files = pki.issue_broker(directory, name, san or [], days)
    console().print(f"{flag.removeprefix('--')} {name}: {files.cert} (key {files.key})")
    return 0


@pki_app.command("show")
def show(
    cert: Annotated[Path, typer.Argument(help="A certificate (PEM).")],
    output: OutputOpt = Output.TABLE,
) -> int:
    """Print a certificate's subject, role, SANs and expiry."""
    try:
        ident = identity_from_pem(cert.read_bytes())
    except OSError as exc:
        raise PkiError(str(cert), exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise PkiError(str(cert), f"not a PEM certificate: {exc}") from None
    doc = _describe(ident)
    if output is Output.JSON:
        print_json(doc)
    else:
        out = console()
        for key, value in doc.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            out.print(f"{key + ':':<11} {shown if shown not in ('', None) else '-'}")
    return 0


@pki_app.command("broker-acl")
def broker_acl(
    path: Annotated[Path, typer.Argument(help="The file to write (plugin_opt_config_file).")],
    agent: Annotated[list[str] | None, typer.Option("--agent", help="An agent's host id.")] = None,
    reader: Annotated[
        list[str] | None, typer.Option("--reader", help="A reader (watch): reads, never writes.")
    ] = None,
    aggregator: Annotated[
        list[str] | None, typer.Option("--aggregator", help="A reader that publishes alerts.")
    ] = None,
) -> int:
    """Write the broker's access control for these identities (certificate CNs); see
    deploy/mosquitto.conf. Everyone else the CA signed may connect and do nothing."""
    doc = brokeracl.broker_acl(agent or [], reader or [], aggregator or [])
    brokeracl.write_broker_acl(path, doc)
    console().print(f"{path}: {len(doc['clients'])} identities, {len(doc['roles'])} roles")
    return 0


def _role(text: str) -> Role:
    try:
        return Role.parse(text)
    except ValueError as exc:
        raise UsageError(f"--role: {exc}") from None


def _describe(ident: Identity) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC)
    kind = "server (agent or broker)" if ident.server else "client"
    return {
        "subject": ident.subject,
        "role": ident.role.label if ident.role else ident.presented,
        "use": kind,
        "dns": list(ident.dns),
        "ip": list(ident.ips),
        "uri": list(ident.uris),
        "not_after": ident.not_after.isoformat(),
        "expired": ident.not_after <= now,
    }
