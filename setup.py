"""The build steps pyproject.toml cannot declare: the kvm fast path and the sample guests.

- ``fastpath.c`` becomes ``agent/backends/kvm/_fastpath.so``, a plain shared library that
  ``agent.backends.kvm.fast`` loads with ctypes (and checks its ABI), so the wheel is a
  platform wheel with the C loop in it and an installed agent compiles nothing at run time.
- The sample guests (``agent/backends/kvm/guests/*.S``) are assembled with GNU binutils into
  ``*.bin`` next to their sources in the wheel. A build without binutils or a C compiler fails
  and says which tool is missing, rather than making a wheel that silently lacks them.

Everything else (metadata, dependencies, entry points) is in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
KVM = "agent/backends/kvm"


class BuildLibrary(build_ext):
    """Name the fast path ``_fastpath.so`` (no Python ABI suffix: it is not a Python module,
    and ``fast.py`` loads the same name from a wheel and from a source checkout)."""

    def get_ext_filename(self, fullname: str) -> str:
        return fullname.replace(".", "/") + ".so"

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # no PyInit_*: the library exports ioin_run, ioin_abi, ioin_insn_slot


class BuildGuests(build_py):
    """Copy the Python sources, then assemble the sample guests into the build tree."""

    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location("guest_build", HERE / KVM / "guests/build.py")
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {KVM}/guests/build.py")
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # (registered first: its dataclass looks itself up)
        out = Path(self.build_lib) / KVM / "guests"
        for guest in module.build_all(out).values():
            print(f"assembled {guest.path.relative_to(self.build_lib)} ({guest.mode} mode)")


setup(
    ext_modules=[
        Extension(
            "agent.backends.kvm._fastpath",
            sources=[f"{KVM}/fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"],
        )
    ],
    cmdclass={"build_ext": BuildLibrary, "build_py": BuildGuests},
)
