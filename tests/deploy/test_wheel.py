"""The package as an operator gets it: ``python -m build``, then the wheel in a fresh venv.

The venv is made outside the checkout and runs from a directory outside it, so it imports
nothing from the source tree; the wheel's dependencies come from a wheelhouse (``--no-index``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.backends.kvm._kvm import Kvm
from agent.errors import KvmError
from tests.deploy.conftest import Dist, run

pytestmark = pytest.mark.slow

KVM = "agent/backends/kvm"


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path  # the venv's site-packages
    cwd: Path  # a directory outside the checkout to run from

    def run(self, tool: str, *args: str) -> str:
        return run(self.venv / "bin" / tool, *args, cwd=self.cwd)


@pytest.fixture(scope="session")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=root)
    pip: list[str | Path] = [venv / "bin/python", "-m", "pip", "install", "-q", "--no-compile"]
    run(*pip, "--no-index", "--find-links", dist.wheelhouse, dist.wheel, cwd=root)
    site = Path(run(venv / "bin/python", "-c", "import agent; print(agent.__file__)", cwd=root))
    return Installed(venv, site.parent.parent, root)


def test_build_gives_an_sdist_and_a_platform_wheel_with_the_fast_path_and_guests(
    dist: Dist,
) -> None:
    assert dist.wheel.name.endswith("-cp311-cp311-linux_x86_64.whl"), dist.wheel.name
    names = set(zipfile.ZipFile(dist.wheel).namelist())
    assert f"{KVM}/_fastpath.so" in names
    for guest in ("serial", "cmos", "string_in", "two_vcpu", "clock"):
        assert {f"{KVM}/guests/{guest}.bin", f"{KVM}/guests/{guest}.S"} <= names
    with tarfile.open(dist.sdist) as sdist:
        files = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"setup.py", f"{KVM}/fastpath.c", f"{KVM}/guests/serial.S"} <= files
    assert not [f for f in files if f.endswith((".so", ".bin"))]  # built from source, not shipped


def test_the_installed_package_imports_nothing_from_the_checkout(installed: Installed) -> None:
    where = installed.run("python", "-c", "import agent, controller; print(agent.__file__)")
    assert where.startswith(str(installed.site)), where
    sys_path = installed.run("python", "-c", "import json, sys; print(json.dumps(sys.path))")
    paths = json.loads(sys_path)
    checkout = str(Path(__file__).resolve().parents[2])
    assert not [p for p in paths if p.startswith(checkout)]


def test_versions_and_explain_work_from_the_wheel(installed: Installed) -> None:
    assert installed.run("ioind", "--version").strip() == "ioind 0.1.0"
    assert installed.run("ioinctl", "--version").strip() == "ioinctl 0.1.0"
    hook = json.loads(installed.run("ioinctl", "explain", "!ioin 0x3f8 core 1"))
    assert (hook["port"], hook["core"]) == (0x3F8, 1)


def test_the_installed_fast_path_loads_without_compiling_or_writing(installed: Installed) -> None:
    before = sorted(p.name for p in (installed.site / "agent/backends/kvm").iterdir())
    probe = (
        "import os; os.environ['CC'] = '/nonexistent'; from agent.backends.kvm import fast; "
        "lib, why = fast.load(); print(fast.CHECKOUT, lib is not None, why)"
    )
    assert installed.run("python", "-c", probe).split() == ["False", "True"]  # loaded, no reason
    assert sorted(p.name for p in (installed.site / "agent/backends/kvm").iterdir()) == before


def _kvm_problem() -> str:
    try:
        Kvm().close()
    except KvmError as e:
        return f"/dev/kvm unusable: {e}"
    return ""


@pytest.mark.kvm
def test_ioind_local_from_the_wheel_runs_a_sample_guest_in_the_c_loop(
    installed: Installed,
) -> None:
    if problem := _kvm_problem():
        pytest.skip(problem)
    serial = installed.site / KVM / "guests/serial.bin"
    args = ["local", "--backend", "kvm", "--image", str(serial), "--hook", "!ioin 0x3fd"]
    done = subprocess.run(
        [installed.venv / "bin/ioind", *args, "--seconds", "2", "-o", "json"],
        cwd=installed.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events, done.stderr[-3000:]
    assert {e["port"] for e in events} == {0x3FD}
    (report,) = [line for line in done.stderr.splitlines() if line.startswith("[counters] ")]
    assert json.loads(report.removeprefix("[counters] "))["kvm_fast_path"] == 1
