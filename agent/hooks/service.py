"""The hook service: the one door every hook comes in by (validate once; table; store).

A hook arrives as command text, as a ``HookSpec``, as both (they must agree), from the config
file, or from the state file at start. Whichever door, :meth:`HookService.set` resolves it to one
spec, runs it through :func:`agent.hooks.validate.check_spec` and the backend's capabilities,
swaps it into the :class:`~agent.hooks.table.HookTable`, tells the backend, and saves the table's
specs (the specs themselves, so what SetHook answered is what a restart brings back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import structlog

from agent.errors import CapabilityError, HookError, HookSyntaxError
from agent.hooks.lang import parse
from agent.hooks.table import HookTable
from agent.hooks.validate import check_spec, required_capabilities
from agent.model import Capability
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
    ) -> None:
        self.table = table
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
        rebuild (``SetOutcome.unchanged``), so a repeated push or apply costs no fsync.
        """
        admitted = self.admit(resolve(command, spec))
        if admitted.id in self.table:
            held = self.table.get(admitted.id)
            if held.spec == admitted and held.enabled == enabled:
                return SetOutcome(held, created=False, unchanged=True)
        hook, created = self.table.set(admitted, enabled=enabled)
        self._commit("hook-set", admitted.id)
        return SetOutcome(hook, created=created, unchanged=False)

    def admit(self, spec: hooks_pb2.HookSpec) -> hooks_pb2.HookSpec:
        """``spec`` checked and normalized, if this backend can do what it asks."""
        spec = check_spec(spec)
        for cap, field in required_capabilities(spec):
            if cap not in self._capabilities:
                raise CapabilityError(cap, self._backend_name, field)
        return spec

    def remove(self, hook_id: str) -> hooks_pb2.Hook:
        hook = self.table.remove(hook_id)
        self._commit("hook-removed", hook_id)
        return hook

    def enable(self, hook_id: str, enabled: bool) -> hooks_pb2.Hook:
        hook = self.table.set_enabled(hook_id, enabled)
        self._commit("hook-enabled" if enabled else "hook-disabled", hook_id)
        return hook

    def hooks(self) -> list[hooks_pb2.Hook]:
        return list(self.table)

    def restore(self, commands: Iterable[str]) -> None:
        """The config file's ``commands``, then the saved hooks (which win on the same id),
        each through the same checks as a SetHook; one that fails is logged and left out."""
        wanted: list[StoredHook] = []
        for command in commands:
            try:
                wanted.append(StoredHook(parse(command), True))
            except HookError as exc:
                log.error("hook-not-restored", command=command, error=str(exc))
        wanted += self._store.load() if self._store is not None else []
        for hook in wanted:
            try:
                self.table.set(self.admit(hook.spec), enabled=hook.enabled)
            except HookError as exc:
                log.error("hook-not-restored", hook_id=hook.spec.id, error=str(exc))
        if len(self.table):
            self._commit("hooks-restored", "*")

    def _commit(self, what: str, hook_id: str) -> None:
        log.info(what, hook_id=hook_id, hooks=len(self.table))
        self._changed()
        if self._store is not None:
            self._store.save([StoredHook(h.spec, h.enabled) for h in self.table])


def resolve(command: str, spec: hooks_pb2.HookSpec | None) -> hooks_pb2.HookSpec:
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
    answer, *others = (parse(text, hook_id=spec.id or None) for text in texts)
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
