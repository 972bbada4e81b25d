"""The Ansible role's templates rendered with its defaults (plain Jinja2, as Ansible renders
them), so tests can hold deploy/'s static files and the role to one source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

ROLE = Path(__file__).resolve().parents[2] / "deploy" / "ansible" / "roles" / "ioind"

__all__ = ["ROLE", "defaults", "render"]


def defaults() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return loaded


def render(template: str, **overrides: Any) -> str:
    """``templates/<template>`` with the role's defaults (and ``overrides``)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    return env.get_template(template).render(defaults() | overrides)
