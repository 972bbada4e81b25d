"""``ioind local`` in-process: backend → pipeline → stdout, and nothing of the bus built."""

from __future__ import annotations

import io
import re
from pathlib import Path

from agent.config import AgentConfig, GrpcConfig, SimConfig
from agent.eventline import event_line
from agent.events import Event, to_json
from agent.local import run_local
from agent.model import Direction, Stage

# time, host, #seq, hook id, direction, port: the head every line of the one formatter has
LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{6} box #\d+ in-70-[0-9a-f]{8} IN  port 0x0070 size 1 ")


async def test_local_prints_the_shared_event_line_and_writes_no_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sim, grpc = SimConfig(rate=2000.0), GrpcConfig(insecure=True)  # local never listens
    config = AgentConfig(host="box", state_dir=str(state), sim=sim, grpc=grpc)
    out, err = io.StringIO(), io.StringIO()
    printed = await run_local(config, ["!ioin 0x70"], seconds=0.5, out=out, err=err)
    lines = out.getvalue().splitlines()
    assert printed == len(lines) > 0
    assert all(LINE.match(line) for line in lines), lines[:3]
    assert not state.exists()  # no spool, no hooks.json: local publishes and persists nothing


def test_the_one_line_shows_the_stage_string_data_and_actions() -> None:
    ev = Event(
        hook_id="k",
        ts=0,
        dir=Direction.IN,
        port=0x60,
        count=10,
        string=True,
        rep=True,
        data=tuple(range(10)),
        vm=3,
        vm_name="db",
        stage=Stage.POST,
        rip=0x1004,
    )
    ev.seq = 4
    line = event_line(to_json(ev, "h", "e"))
    assert line == (
        "00:00:00.000000 h #4 k IN  port 0x0060 size 1 value 0x0 vm 3 (db) vcpu 0 post "
        "count 10 rep string data [0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, ...] rip 0x1004"
    )
