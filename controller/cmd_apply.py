"""``ioinctl apply FILE`` and ``ioinctl diff FILE``: desired state from a policy file.

The file is checked whole first (:mod:`controller.policy`), before any option is resolved or any
agent contacted. Then each targeted agent gets one ``GetStatus`` (its labels and hooks), a plan
(:mod:`controller.plan`) and, for ``apply``, the plan's changes. ``diff`` and ``apply --dry-run``
print the plan per host and change nothing.

Exit codes: 0 every agent converged (a second ``apply`` reports 0 changes and exits 0); 2 some
agents are not converged (offline, refused, a conflict) or a rollout stopped; 1 none converged.
"""

from __future__ import annotations

import getpass
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.client import exit_code
from controller.inventory import Host
from controller.options import FleetOptions, fleet_command
from controller.plan import HostPlan, Owner, apply_host
from controller.policy import PolicyFile, load_policies
from controller.render import Output, Report, Row, View
from controller.run import gather

__all__ = ["apply", "diff"]

FileArg = Annotated[
    Path, typer.Argument(help="Policy file (TOML, one table per policy: name, selector, hooks).")
]


def _outcome(plan: HostPlan) -> str:
    if not plan.changes:
        return "unchanged"
    return "changed" if plan.applied else "would change"


def _rows(plan: HostPlan) -> list[Row]:
    if not plan.changes:
        return [["", "unchanged", "", f"{plan.unchanged} policy hooks as wanted"]]
    return [[c.hook_id, str(c.action), c.policy, c.command] for c in plan.changes]


def _fields(plan: HostPlan) -> dict[str, Any]:
    return {
        "converged": plan.converged,
        "applied": plan.applied,
        "unchanged": plan.unchanged,
        "changes": [c.json() for c in plan.changes],
    }


PLAN = View(
    columns=["hook", "action", "policy", "command"], rows=_rows, fields=_fields, outcome=_outcome
)


@fleet_command(rollout=True)
def apply(
    file: FileArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    *,
    fleet: FleetOptions,
) -> int:
    """Make each agent's policy-owned hooks equal to FILE's (hooks pushed by hand stay)."""
    policies = load_policies(file)  # before anything else: a bad file is the one error shown
    return _run("diff" if dry_run else "apply", policies, fleet, dry_run=dry_run)


@fleet_command()
def diff(file: FileArg, *, fleet: FleetOptions) -> int:
    """Print what ``apply FILE`` would change on each agent (every row; nothing is changed)."""
    policies = load_policies(file)
    return _run("diff", policies, fleet, dry_run=True)


def _run(command: str, policies: PolicyFile, fleet: FleetOptions, *, dry_run: bool) -> int:
    t = fleet.targets(include_offline=True)
    owner = Owner(f"{getpass.getuser()}@{socket.gethostname()}", time.time_ns())
    wide = fleet.wide or (dry_run and fleet.output is Output.TABLE)  # a plan is read row by row
    report = Report(command, PLAN, fleet.output, wide=wide)

    def call_for(host: Host) -> Any:
        return lambda stub, deadline: apply_host(
            stub, deadline, host, policies, owner, dry_run=dry_run
        )

    # Idempotent: a retry reads the agent's hooks again and plans from what it finds.
    results = gather(t, call_for, report, idempotent=True)
    return exit_code(results)
