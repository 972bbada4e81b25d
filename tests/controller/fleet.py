"""A small real fleet for controller tests: ioind processes serving mutual TLS, and an inventory.

``Fleet.start(name, labels)`` starts a real agent (sim backend) with the test PKI's server
certificate; ``Fleet.inventory()`` writes a TOML inventory naming every agent with its labels
and the controller's certificate, so a test runs ``ioinctl ... -i <inventory>`` over mTLS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.controller.pki import Pki, make_pki
from tests.harness import AgentProc

__all__ = ["Fleet"]


@dataclass
class Fleet:
    factory: Callable[..., AgentProc]
    workdir: Path
    pki: Pki = field(init=False)
    agents: dict[str, AgentProc] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)  # name -> address nothing listens on

    def __post_init__(self) -> None:
        self.pki = make_pki(self.workdir / "pki")

    def tls(self) -> tuple[Path, Path, Path]:
        return (self.pki.server_cert, self.pki.server_key, self.pki.ca)

    def start(self, name: str, labels: dict[str, str] | None = None, **kw: object) -> AgentProc:
        agent = self.factory(name, tls=self.tls(), sim_rate=kw.pop("sim_rate", 50.0), **kw)
        self.agents[name] = agent
        self.labels[name] = labels or {}
        return agent

    def inventory(self, *, with_labels: bool = True) -> str:
        pki = self.pki
        text = (
            f'[defaults]\nca = "{pki.ca}"\ncert = "{pki.client_cert}"\nkey = "{pki.client_key}"\n'
        )
        entries = [(n, a.address) for n, a in self.agents.items()] + list(self.dead.items())
        for name, address in entries:
            text += f'[[agent]]\nname = "{name}"\naddress = "{address}"\n'
            labels = self.labels.get(name, {}) if with_labels else {}
            if labels:
                text += (
                    "labels = { " + ", ".join(f'{k} = "{v}"' for k, v in labels.items()) + " }\n"
                )
        path = self.workdir / "fleet.toml"
        path.write_text(text)
        return str(path)
