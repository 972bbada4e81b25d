"""Generate agent/wire/ from proto/ioin/v1/*.proto (``make proto``).

protoc names imports after the proto package path (``from ioin.v1 import hooks_pb2``); the
generated modules live in the ``agent.wire`` package, so imports are rewritten to match.

Usage: python tools/genproto.py [OUT_DIR]   (default: agent/wire)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
_IMPORT = re.compile(r"^from ioin\.v1 import ", re.MULTILINE)
_PYI_IMPORT = re.compile(r"^import ioin\.v1\.(\w+)$", re.MULTILINE)
_PYI_REF = re.compile(r"\bioin\.v1\.(\w+_pb2)\b")


def generate(out: Path) -> list[Path]:
    """Run protoc into ``out`` and return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    # protoc finds the mypy plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) on PATH.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "ioin/v1").glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for f in sorted((out / "ioin/v1").iterdir()):
        text = _IMPORT.sub("from agent.wire import ", f.read_text())
        text = _PYI_IMPORT.sub(r"import agent.wire.\1", text)
        text = _PYI_REF.sub(r"agent.wire.\1", text)
        target = out / f.name
        target.write_text(text)
        written.append(target)
        f.unlink()
    for d in (out / "ioin/v1", out / "ioin"):
        d.rmdir()
    return written


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "agent/wire")
