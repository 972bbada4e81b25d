"""Build the sample guests with GNU as / ld / objcopy.

``python -m agent.backends.kvm.guests.build [OUT_DIR]`` writes ``NAME.bin`` for every ``NAME.S``
in this folder (next to the sources unless OUT_DIR is given). Each image is linked to run at
``LOAD_ADDR`` (= the default ``load_addr`` and ``entry`` of a VM); a ``# mode: real|protected|long``
line in the source says which CPU mode it expects. Tests call :func:`build_all` and
:func:`assemble` (for small inline guests); both raise :class:`ToolchainMissing` when binutils
are absent, so callers can skip with that reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GUEST_DIR", "LOAD_ADDR", "Guest", "ToolchainMissing", "assemble", "build_all"]

GUEST_DIR = Path(__file__).resolve().parent
LOAD_ADDR = 0x1000
TOOLS = ("as", "ld", "objcopy", "nm")
_MODE = re.compile(r"^#\s*mode:\s*(real|protected|long)\s*$", re.MULTILINE)


class ToolchainMissing(RuntimeError):
    """GNU binutils (as, ld, objcopy, nm) are not installed."""


@dataclass(frozen=True)
class Guest:
    """A built guest image and what a VM needs to run it."""

    name: str
    path: Path
    mode: str
    symbols: dict[str, int]
    load_addr: int = LOAD_ADDR

    @property
    def entry(self) -> int:
        return self.symbols.get("_start", self.load_addr)


def _check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise ToolchainMissing(f"GNU binutils missing: {', '.join(missing)} (apt install binutils)")


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def assemble(source: str, name: str, out_dir: Path) -> Guest:
    """Assemble and link ``source`` (GNU as text) to ``out_dir/name.bin``."""
    _check_tools()
    out_dir.mkdir(parents=True, exist_ok=True)
    match = _MODE.search(source)
    mode = match.group(1) if match else "real"
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, elf = Path(tmp, f"{name}.S"), Path(tmp, f"{name}.o"), Path(tmp, f"{name}.elf")
        src.write_text(source)
        _run("as", "--64", "-o", str(obj), str(src))
        _run("ld", "-m", "elf_x86_64", "-N", "-e", "_start", f"-Ttext={LOAD_ADDR:#x}",
             "-o", str(elf), str(obj))  # fmt: skip
        out = out_dir / f"{name}.bin"
        _run("objcopy", "-O", "binary", str(elf), str(out))
        symbols = {}
        for line in _run("nm", str(elf)).splitlines():
            parts = line.split()
            if len(parts) == 3:
                symbols[parts[2]] = int(parts[0], 16)
    return Guest(name, out, mode, symbols)


def build_all(out_dir: Path | None = None) -> dict[str, Guest]:
    """Build every ``*.S`` of this folder; name → :class:`Guest`."""
    return {
        src.stem: assemble(src.read_text(), src.stem, out_dir or GUEST_DIR)
        for src in sorted(GUEST_DIR.glob("*.S"))
    }


def main(argv: list[str]) -> int:
    try:
        guests = build_all(Path(argv[0]) if argv else None)
    except ToolchainMissing as e:
        print(f"skipped: {e}", file=sys.stderr)
        return 0
    for guest in guests.values():
        print(f"{guest.path}  mode={guest.mode} entry={guest.entry:#x}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
