"""Hollow agents (as kubemark runs hollow kubelets): many real agents in one process.

Each hollow agent is the real agent minus its event sources: ioind's own gRPC server
(:func:`agent.rpc.server.create_server`: the call caps, the role interceptor and its audit, the
error mapping, health) over a real agent core (hook table, hook store on disk, status,
counters), on a port of its own with a certificate of its own (mutual TLS, made as
``ioinctl pki`` makes them). Each is entered as ioind enters it (the backend opened, the saved hooks
restored from its store, which opens the store as a real agent's start does), but its backend
never runs, so nothing is generated and the agent costs nothing while idle: what is measured is
the controller and the gRPC path.

Run by bench/fleet.py: ``python bench/hollow.py SPEC.json READY_FD`` where the spec lists the
agents (name, state_dir, cert, key) and the shared CA; the process writes one JSON line
``{"ports": {name: port}}`` to ``READY_FD`` once every server listens, and serves until stdin
closes. Its stdout and stderr (the agents' logs) go where the driver points them: a pipe
nobody reads would fill and stop the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from agent.build import build_agent
from agent.config import AgentConfig, GrpcConfig
from agent.core import Agent
from agent.logs import setup_logging
from agent.rpc.server import create_server

__all__ = ["hollow_agent", "main"]


async def hollow_agent(
    name: str, state_dir: str, tls: GrpcConfig
) -> tuple[Agent, grpc.aio.Server, int]:
    """One hollow agent and ioind's own gRPC server for it (the call caps, the role interceptor
    with its audit, the error mapping, health), bound to a free port, not yet started."""
    config = AgentConfig(host=name, backend="sim", state_dir=state_dir, grpc=tls)
    agent = build_agent(config)  # entered by serve(), never run: nothing is generated
    server, port, _ = await create_server(agent, tls)
    return agent, server, port


async def serve(spec: dict[str, Any], ready_fd: int) -> None:
    servers: list[grpc.aio.Server] = []
    agents: list[Agent] = []
    ports: dict[str, int] = {}
    for a in spec["agents"]:
        tls = GrpcConfig(listen="127.0.0.1:0", cert=a["cert"], key=a["key"], ca=spec["ca"])
        agent, server, port = await hollow_agent(a["name"], a["state_dir"], tls)
        await agent.__aenter__()
        agents.append(agent)
        await server.start()
        servers.append(server)
        ports[a["name"]] = port
    with os.fdopen(ready_fd, "w") as ready:
        ready.write(json.dumps({"ports": ports}) + "\n")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the driver closes our stdin
    await asyncio.gather(*(s.stop(None) for s in servers))
    for agent in agents:
        await agent.__aexit__(None, None, None)


def main() -> None:
    setup_logging("info")  # as ioind logs: one JSON line per event on stdout
    spec = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(serve(spec, int(sys.argv[2])))


if __name__ == "__main__":
    main()
