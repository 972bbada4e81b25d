"""Scale limits with real agents: a low descriptor limit does not fail hosts, and rollout shares.

The 120 agents here are hollow (bench/hollow.py): real servicers, hook tables and stores, each
with its own gRPC server, port and certificate, in one process, over real mutual TLS.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleet import HollowFleet
from controller.errors import UsageError
from controller.fanout import Rollout, Share, concurrency_for
from controller.progress import Progress


@pytest.fixture
def hollow(tmp_path: Path) -> Iterator[HollowFleet]:
    fleet = HollowFleet(120, 120, tmp_path)
    yield fleet
    fleet.close()


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


@pytest.mark.slow
def test_120_hosts_under_ulimit_n_128_all_succeed(hollow: HollowFleet) -> None:
    inventory = str(hollow.inventory())
    argv = [sys.executable, "-m", "controller.cli", "push", "!ioin 0x3f8", "-i", inventory]
    done = subprocess.run(
        [*argv, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=_low_fd_limit,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)["summary"]
    assert summary["ok"] == 120
    assert summary["outcomes"] == {"created": 120}


def test_shares_and_rollouts() -> None:
    assert Share.parse("--batch", "10%").of(1000) == 100
    assert Share.parse("--batch", "7").of(1000) == 7
    assert Rollout(batch=Share(10, percent=True)).batch_size(5) == 1  # at least one at a time
    assert Rollout().batch_size(1000) == 1000
    assert Rollout(max_fail=Share(5, percent=True)).budget(200) == 10
    assert Rollout().budget(200) is None
    for bad in ("x", "-1", "150%", "1.5"):
        with pytest.raises(UsageError, match=f"--max-fail: '{bad}'"):
            Share.parse("--max-fail", bad)


def test_concurrency_fits_the_descriptor_limit() -> None:
    wide = concurrency_for(10**6)  # raises the soft limit to the hard one first
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY
    assert wide == (soft - 64) // 2
    assert concurrency_for(3) == 3


def test_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("push", 1000)
    assert "push: 0/1000 done, 0 ok, 0 failed, 1000 pending" in capsys.readouterr().err  # at once
    for state in ["ok"] * 737 + ["failed"] * 3:
        progress.update(state)
    assert progress.line() == "push: 740/1000 done, 737 ok, 3 failed, 260 pending"
    progress.update("skipped")
    assert progress.line() == "push: 741/1000 done, 737 ok, 3 failed, 1 not attempted, 259 pending"
    progress.close()
    assert capsys.readouterr().err.endswith("\r")
