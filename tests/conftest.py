"""Fixtures with real parts: mosquitto on a free port, real ioind processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Generator, Iterator
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


HARDWARE_MARKERS = ("kvm", "tracefs", "qemu")
# marker -> nodeid -> outcome
_marked: dict[str, dict[str, str]] = {m: {} for m in HARDWARE_MARKERS}
_skip_reasons: dict[str, set[str]] = {m: set() for m in HARDWARE_MARKERS}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    for marker in HARDWARE_MARKERS:
        if item.get_closest_marker(marker) is None:
            continue
        if rep.skipped:
            _marked[marker][item.nodeid] = "skipped"
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            _skip_reasons[marker].add(reason.removeprefix("Skipped: "))
        elif rep.when == "call" or rep.failed:
            _marked[marker].setdefault(item.nodeid, "ran")
    return rep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many of the tests that need real hardware ran here (CI prints this)."""
    terminalreporter.section("tests needing /dev/kvm, tracefs, QEMU")
    for marker in HARDWARE_MARKERS:
        outcomes = list(_marked[marker].values())
        ran, skipped = outcomes.count("ran"), outcomes.count("skipped")
        line = f"{marker}: {ran} ran, {skipped} skipped"
        if _skip_reasons[marker]:
            line += " (" + "; ".join(sorted(_skip_reasons[marker])) + ")"
        terminalreporter.write_line(line)
