"""Policy files for ``ioinctl apply`` / ``diff``: the hooks each kind of agent should have.

::

    [[policy]]
    name = "serial"                          # hooks created by apply are owned by their policy
    selector = "role=web"                    # optional; absent = every agent
    hooks = ["!ioin 0x3f8", "!ioout 0x3f8 rate 100"]

    [[policy]]
    name = "rtc"
    selector = "dc=fra1"
    hooks = ["!ioin 0x71 core 1", { id = "rtc-index", command = "!ioout 0x70" }]

The file is read and checked whole before any agent is contacted: malformed TOML, an unknown
key, a bad selector, a hook that does not parse, two policies of the same name, or one id twice
in a policy are refused with a :class:`~controller.errors.PolicyError` naming the file, the
policy and the key (``policy.toml: policy 'rtc': hooks[1]: invalid hook: ...``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.model import check_id
from controller import language
from controller.errors import InvalidHook, PolicyError, SelectorError
from controller.selectors import Selector, parse_selector

if TYPE_CHECKING:
    from agent.wire.hooks_pb2 import HookSpec

__all__ = ["Policy", "PolicyFile", "load_policies"]

_TOP_KEYS = {"policy"}
_POLICY_KEYS = {"name", "selector", "hooks"}
_HOOK_KEYS = {"id", "command"}


@dataclass(frozen=True, slots=True)
class Policy:
    """One ``[[policy]]``: its name, which agents it selects, and its parsed hooks by id."""

    name: str
    selector: Selector
    hooks: tuple[HookSpec, ...]


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """Every policy of one file, in file order."""

    path: str
    policies: tuple[Policy, ...]

    def for_labels(self, labels: dict[str, str]) -> list[Policy]:
        """The policies whose selector matches ``labels``."""
        return [p for p in self.policies if p.selector.matches(labels)]


def load_policies(path: Path) -> PolicyFile:
    """Read and check ``path`` whole (see the module docstring); ``PolicyError`` on any fault."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(where, "", "", f"cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(where, "", "", f"not valid TOML: {e}") from e
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise PolicyError(where, "", unknown[0], "unknown key (expected [[policy]] tables)")
    entries = data.get("policy")
    if not isinstance(entries, list) or not entries:
        raise PolicyError(where, "", "policy", "expected one or more [[policy]] tables")
    policies: list[Policy] = []
    for i, entry in enumerate(entries):
        policy = _policy(where, i, entry)
        if any(p.name == policy.name for p in policies):
            raise PolicyError(where, policy.name, "name", "two policies have this name")
        _same_hooks_for_the_same_agents(where, policies, policy)
        policies.append(policy)
    return PolicyFile(where, tuple(policies))


def _same_hooks_for_the_same_agents(where: str, earlier: list[Policy], policy: Policy) -> None:
    """Two policies with the same selector that set the same hook id conflict on every agent
    they select: refused here, before any host. (Selectors that only overlap are checked per
    agent, when the plan is made.)"""
    ids = {h.id for h in policy.hooks}
    for other in earlier:
        if set(other.selector.requirements) != set(policy.selector.requirements):
            continue
        shared = sorted(ids & {h.id for h in other.hooks})
        if shared:
            problem = f"policy '{other.name}' sets hook '{shared[0]}' too, for the same agents"
            raise PolicyError(where, policy.name, "hooks", problem)


def _policy(path: str, i: int, entry: Any) -> Policy:
    if not isinstance(entry, dict):
        raise PolicyError(path, f"#{i + 1}", "", "expected a table")
    name = entry.get("name")
    unknown = sorted(set(entry) - _POLICY_KEYS)
    if unknown:  # first: a misspelt `name` is named as such, not reported missing
        where = name if isinstance(name, str) else f"#{i + 1}"
        raise PolicyError(path, where, unknown[0], "unknown key (expected name, selector, hooks)")
    if not isinstance(name, str):
        raise PolicyError(path, f"#{i + 1}", "name", "missing, or not a string")
    try:
        check_id("policy name", name)
    except ValueError as e:
        raise PolicyError(path, name, "name", str(e)) from None
    selector = entry.get("selector", "")
    if not isinstance(selector, str):
        raise PolicyError(path, name, "selector", "expected a string")
    try:
        parsed = parse_selector(selector)
    except SelectorError as e:
        raise PolicyError(path, name, "selector", str(e)) from None
    hooks = entry.get("hooks")
    if not isinstance(hooks, list):
        raise PolicyError(path, name, "hooks", "missing, or not a list")
    specs = [_hook(path, name, j, h) for j, h in enumerate(hooks)]
    seen: dict[str, int] = {}
    for j, spec in enumerate(specs):
        if spec.id in seen:
            raise PolicyError(
                path, name, f"hooks[{j}]", f"hook id '{spec.id}' also in hooks[{seen[spec.id]}]"
            )
        seen[spec.id] = j
    return Policy(name, parsed, tuple(specs))


def _hook(path: str, policy: str, j: int, item: Any) -> HookSpec:
    key = f"hooks[{j}]"
    hook_id: str | None = None
    if isinstance(item, dict):
        unknown = sorted(set(item) - _HOOK_KEYS)
        if unknown:
            raise PolicyError(
                path, policy, f"{key}.{unknown[0]}", "unknown key (expected id, command)"
            )
        hook_id, item = item.get("id"), item.get("command")
        if hook_id is not None and not isinstance(hook_id, str):
            raise PolicyError(path, policy, f"{key}.id", "expected a string")
    if not isinstance(item, str):
        raise PolicyError(path, policy, key, "expected a hook command (a string)")
    try:
        return language.parse_command(item, hook_id)
    except InvalidHook as e:
        raise PolicyError(path, policy, key, str(e)) from None
