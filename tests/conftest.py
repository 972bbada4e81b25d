"""Fixtures with real parts: mosquitto on a free port, real ioind processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import AgentProc, Broker, start_agent, start_broker


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the session (tests use distinct host ids, so topics do not collide)."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make test` (it installs it)")
    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop and restart it."""
    broker = start_broker(tmp_path / "mosquitto")
    yield broker
    broker.stop()


@pytest.fixture
def agent_factory(
    mosquitto: Broker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., AgentProc]]:
    """Start real ``ioind`` processes: ``agent_factory("host-a", backend="sim", broker=...)``."""
    started: list[AgentProc] = []

    def factory(host_id: str, *, broker: Broker | None = None, **kwargs: object) -> AgentProc:
        agent = start_agent(host_id, broker or mosquitto, tmp_path / host_id, **kwargs)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        agent.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for agent in started:
            print(f"--- ioind {agent.host_id} log ---\n{agent.log[-4000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)  # type: ignore[attr-defined]
    return rep
