"""HyperDbg's script language for ``condition { }`` and ``script { }`` blocks.

``compile_script`` / ``compile_condition`` parse and check a block once (syntax, names, arity,
capabilities needed) and return a :class:`Program` whose ``run`` is bounded (step budget, call
depth, output size). :func:`canonical` prints the parsed form; :mod:`agent.script.vector`
evaluates pure conditions over whole columns of events with numpy.
"""

from agent.script.canon import canonical
from agent.script.compiler import Program, compile_condition, compile_script
from agent.script.errors import ScriptAbort, ScriptError
from agent.script.runtime import STEP_BUDGET, GuestMemory, RunResult

__all__ = [
    "STEP_BUDGET",
    "GuestMemory",
    "Program",
    "RunResult",
    "ScriptAbort",
    "ScriptError",
    "canonical",
    "compile_condition",
    "compile_script",
]
