"""The hook service: the one door every hook comes in by (validate once; table; store).

A hook arrives as command text, as a ``HookSpec``, as both (they must agree), from the config
file, or from the state file at start. Whichever door, :meth:`HookService.set` resolves it to one
spec, runs it through :func:`agent.hooks.validate.check_spec` and the backend's capabilities,
saves it (the spec itself, so what SetHook answered is what a restart brings back), and only
then swaps it into the :class:`~agent.hooks.table.HookTable` and tells the backend: a change the
store refuses (a full disk: :class:`~agent.errors.StateFull`) is refused whole, never live but
unsaved. A command or spec longer than ``max_command`` characters, or nesting braces deeper than
``max_nesting``, is refused naming the limit, as is one hook more than the table's ``max_hooks``.

Scripts' ``event_enable`` / ``event_disable`` / ``event_clear`` come in by the same door:
:meth:`HookService.serve` applies what the table's inbox (:mod:`agent.hooks.requests`) collected
from the hits, through :meth:`HookService.enable` and :meth:`HookService.remove`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import structlog

from agent.errors import AgentError, CapabilityError, HookError, HookSyntaxError
from agent.hooks.lang import MAX_COMMAND, MAX_NESTING, parse
from agent.hooks.requests import UNKNOWN, HookRequest
from agent.hooks.table import HookTable
from agent.hooks.validate import check_spec, required_capabilities
from agent.model import Capability
from agent.notices import Notice
from agent.script.hook import event_id
from agent.state import HookStore, StoredHook
from agent.wire import hooks_pb2

__all__ = ["HookService", "SetOutcome", "disagreement"]

log = structlog.get_logger("ioind.hooks")

# What a spec may carry without stating a hook of its own: the id to give a parsed command, and
# who owns the hook (``ioinctl apply``'s policy), which travels with whichever statement wins.
_CARRIER_FIELDS = ("id", "command", "owner")
_SHOWN = 40  # characters of a value quoted in a refusal


class SetOutcome(NamedTuple):
    """What setting a hook did: the hook as held now, and whether it was new or already so."""

    hook: hooks_pb2.Hook
    created: bool
    unchanged: bool


class HookService:
    """Hooks in, validated once; ``changed`` is called after every change (the backend's
    ``hooks_changed``); ``store`` is ``None`` where nothing persists (``ioind local``)."""

    def __init__(
        self,
        table: HookTable,
        store: HookStore | None,
        *,
        capabilities: frozenset[Capability],
        backend_name: str,
        changed: Callable[[], None],
        max_command: int = MAX_COMMAND,
        max_nesting: int = MAX_NESTING,
    ) -> None:
        self.table = table
        self._limits = (max_command, max_nesting)
        self._store = store
        self._capabilities = capabilities
        self._backend_name = backend_name
        self._changed = changed

    def set(
        self,
        *,
        command: str = "",
        spec: hooks_pb2.HookSpec | None = None,
        enabled: bool = True,
    ) -> SetOutcome:
        """Create or replace a hook from ``command``, ``spec`` or both (which must agree).

        Setting a hook exactly as it is already set changes nothing: no store write, no backend
        rebuild (``SetOutcome.unchanged``), so a repeated push or apply costs no fsync. Otherwise
        the hook is saved before it goes live: a change the store refuses is refused whole.
        """
        admitted = self.admit(resolve(command, spec, *self._limits))
        check_size(admitted, *self._limits)
        if admitted.id in self.table:
            held = self.table.get(admitted.id)
            if held.spec == admitted and held.enabled == enabled:
                return SetOutcome(held, created=False, unchanged=True)
        self.table.check_room(admitted.id)
        self._save(StoredHook(admitted, enabled))
        hook, created = self.table.set(admitted, enabled=enabled)
        self._announce("hook-set", admitted.id)
        return SetOutcome(hook, created=created, unchanged=False)

    def admit(self, spec: hooks_pb2.HookSpec) -> hooks_pb2.HookSpec:
        """``spec`` checked and normalized, if this backend can do what it asks."""
        spec = check_spec(spec)
        for cap, field in required_capabilities(spec):
            if cap not in self._capabilities:
                raise CapabilityError(cap, self._backend_name, field)
        return spec

    def remove(self, hook_id: str) -> hooks_pb2.Hook:
        self.table.get(hook_id)  # HookNotFound before anything is written
        if self._store is not None:
            self._store.delete(hook_id)
        hook = self.table.remove(hook_id)
        self._announce("hook-removed", hook_id)
        return hook

    def enable(self, hook_id: str, enabled: bool) -> hooks_pb2.Hook:
        self._save(StoredHook(self.table.get(hook_id).spec, enabled))
        hook = self.table.set_enabled(hook_id, enabled)
        self._announce("hook-enabled" if enabled else "hook-disabled", hook_id)
        return hook

    async def serve(self, notice: Callable[[Notice], None]) -> None:
        """Apply scripts' hook requests as they come (a task of the agent), announcing each
        outcome with ``notice``."""
        await self.table.requests.serve(self.script_request, notice)

    def script_request(self, request: HookRequest) -> str:
        """Do what a script asked to the hooks it names; the outcome, in a word or two.

        A string names a hook by id; a number names the hooks whose ``$event_id`` it is. A
        name that matches no hook is a no-op (``unknown hook``); a change the store refuses is
        a no-op too (``refused: ...``); a hook already in the asked state is ``unchanged``."""
        ids = self._targets(request.target)
        if not ids:
            return UNKNOWN
        outcomes = []
        for hook_id in ids:
            try:
                outcomes.append(self._do(request.action, hook_id))
            except AgentError as exc:
                outcomes.append(f"refused: {exc}")
        return outcomes[0] if len(set(outcomes)) == 1 else ", ".join(outcomes)

    def _targets(self, target: int | str) -> list[str]:
        if isinstance(target, str):
            return [target] if target in self.table else []
        return [hook_id for hook_id in self.table.ids() if event_id(hook_id) == target]

    def _do(self, action: str, hook_id: str) -> str:
        if action == "event_clear":
            self.remove(hook_id)
            return "removed"
        enabled = action == "event_enable"
        if self.table.get(hook_id).enabled == enabled:
            return "unchanged"
        self.enable(hook_id, enabled)
        return "enabled" if enabled else "disabled"

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def hooks(self) -> list[hooks_pb2.Hook]:
        return list(self.table)

    def restore(self, commands: Iterable[str]) -> None:
        """The config file's ``commands``, then the saved hooks (which win on the same id),
        each through the same checks as a SetHook; one that fails is logged and left out."""
        wanted: list[StoredHook] = []
        for command in commands:
            try:
                wanted.append(StoredHook(parse(command, max_length=self._limits[0]), True))
            except HookError as exc:
                log.error("hook-not-restored", command=command, error=str(exc))
        wanted += self._store.load() if self._store is not None else []
        for hook in wanted:
            try:
                self.table.set(self.admit(hook.spec), enabled=hook.enabled)
            except HookError as exc:
                log.error("hook-not-restored", hook_id=hook.spec.id, error=str(exc))
        if len(self.table):
            self._announce("hooks-restored", "*")  # nothing to save: each is on disk or config

    def _save(self, hook: StoredHook) -> None:
        if self._store is not None:
            self._store.put(hook)  # StateError: nothing changed, the request is refused

    def _announce(self, what: str, hook_id: str) -> None:
        log.info(what, hook_id=hook_id, hooks=len(self.table))
        self._changed()


def check_size(spec: hooks_pb2.HookSpec, max_command: int, max_nesting: int) -> None:
    """Refuse a spec whose text fields exceed ``max_command`` characters or nest braces deeper
    than ``max_nesting`` (a spec can carry blocks no command's parse has bounded)."""
    for name in ("command", "condition", "script", "code"):
        text = getattr(spec, name)
        if len(text) > max_command:
            raise HookSyntaxError(
                f"'{name}' is {len(text)} characters long, over {max_command} (limits.max_command)",
                name,
            )
        if _depth(text) > max_nesting:
            raise HookSyntaxError(
                f"'{name}' nests braces deeper than {max_nesting} (limits.max_nesting)", name
            )
    if sum(len(o) for o in spec.output) > max_command:
        raise HookSyntaxError(
            f"'output' is over {max_command} characters (limits.max_command)", "output"
        )


def _depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "{}":
            depth += 1 if char == "{" else -1
            deepest = max(deepest, depth)
    return deepest


def resolve(
    command: str,
    spec: hooks_pb2.HookSpec | None,
    max_command: int = MAX_COMMAND,
    max_nesting: int = MAX_NESTING,
) -> hooks_pb2.HookSpec:
    """The one hook a request states, or :class:`HookSyntaxError` naming the first field where
    its statements differ.

    A request states a hook by its ``command``, by ``spec.command``, and by the fields of
    ``spec`` (when it has any beyond ``id`` and ``command``: an id alone names a command's
    hook). Every statement given must be the same hook; the command's parse is the answer.
    """
    spec = spec if spec is not None else hooks_pb2.HookSpec()
    texts = list(dict.fromkeys(t for t in (command.strip(), spec.command.strip()) if t))
    if not texts:
        if spec == hooks_pb2.HookSpec():
            raise HookSyntaxError("SetHookRequest: give 'command' or 'spec'", "command")
        return spec
    answer, *others = (
        parse(text, hook_id=spec.id or None, max_length=max_command, max_nesting=max_nesting)
        for text in texts
    )
    if _states_a_hook(spec):
        others.append(spec)
    for other in others:
        stated = hooks_pb2.HookSpec()
        stated.CopyFrom(other)
        stated.id = answer.id  # ids derive from the text; a spec without one names nothing
        field = disagreement(answer, check_spec(stated))
        if field is not None:
            raise HookSyntaxError(
                f"command and spec disagree on '{field}': the command gives "
                f"{_value(answer, field)}, the spec {_value(stated, field)}",
                field,
            )
    if spec.HasField("owner"):
        answer.owner.CopyFrom(spec.owner)
    return answer


def disagreement(parsed: hooks_pb2.HookSpec, spec: hooks_pb2.HookSpec) -> str | None:
    """The first field (but the command's text) ``spec`` states differently from ``parsed``,
    or ``None``."""
    for field in hooks_pb2.HookSpec.DESCRIPTOR.fields:
        if field.name in ("command", "owner"):
            continue
        if _value(parsed, field.name) != _value(spec, field.name):
            return field.name
    return None


def _states_a_hook(spec: hooks_pb2.HookSpec) -> bool:
    return any(f.name not in _CARRIER_FIELDS for f, _ in spec.ListFields())


def _value(spec: hooks_pb2.HookSpec, name: str) -> str:
    """A field's value as a refusal shows it (``nothing`` for an absent optional)."""
    field = hooks_pb2.HookSpec.DESCRIPTOR.fields_by_name[name]
    if field.has_presence and not spec.HasField(name):  # type: ignore[arg-type]
        return "nothing"
    value = getattr(spec, name)
    if not isinstance(value, str | int):
        value = list(value)
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."  # never echo a megabyte
