"""``make bench``: run every bench/bench_*.py and print one table of ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, emit


def main() -> int:
    rows: list[Row] = []
    failed = []
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        res = subprocess.run(
            [sys.executable, str(script), "--json"], capture_output=True, text=True, check=False
        )
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[")]
        if res.returncode != 0 or not lines:
            failed.append(script.name)
            print(res.stderr[-2000:], file=sys.stderr)
            continue
        rows += [Row(**r) for r in json.loads(lines[-1])]
    emit(rows)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
