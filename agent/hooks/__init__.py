"""Hooks: the language (``lang``: HyperDbg's `!ioin` syntax → HookSpec) and the table."""

from agent.hooks.table import HookRule, HookTable, rule_from_spec

__all__ = ["HookRule", "HookTable", "rule_from_spec"]
