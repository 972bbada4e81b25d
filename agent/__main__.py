"""``python -m agent`` is ``ioind``."""

from agent.cli import main

main()
