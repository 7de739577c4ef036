"""``compile=True``: each attempted step (the solver's step and the clock's error measure) as one graph.

The graph is ``torch.compile`` (inductor) of one module-level function, so every solve in the
process shares its cache: a repeated solve with the same solver, shapes, dtypes, tolerances
and ``f`` reuses the compiled graph, and nothing recompiles from step to step because

* the time and the step come in as tensors (0-d for a shared clock), never as Python floats,
  which the compiler would bake in as constants;
* the solver's constants and the tolerances are fixed for the whole solve (baked in once);
* the work counters (``nfe``, ``njac``, ``nlinsolve``) that solvers increment are 0-d tensors
  on a separate ``GraphRHS`` during the graph (a Python int changed inside a graph is a guard:
  it would recompile every step), handed back to the loop's RHS when the solve ends.

Gradients flow through the graph (AOTAutograd) for ``backprop`` and the checkpointed replay.
With ``mode="reduce-overhead"`` (the default on CUDA) a step is one CUDA-graph launch; its
outputs are copied out, since the next launch overwrites them. Where the step cannot be one
graph (a graph break: a host sync or data-dependent Python branch in ``f`` or in the solver,
e.g. a Newton iteration's convergence test), the solve continues eagerly after one warning
that says why: never a different answer than ``compile=False``.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import torch
from torch.utils import _pytree

from ..solver import RHS, Solver, StepResult
from .attempt import Attempt, CompileWarning
from .state import LoopState

__all__ = ["CompiledAttempt", "GraphRHS"]

#: how many (solver, clock, shape, dtype, tolerance, grad mode) variants one process may compile
RECOMPILE_LIMIT = 64


class GraphRHS(RHS):
    """The problem's RHS as a compiled step calls it: counters are 0-d int64 tensors."""

    def __post_init__(self) -> None:
        super().__post_init__()
        device = self.problem.u0.device
        self.nfe, self.njac, self.nlinsolve = (torch.zeros((), dtype=torch.int64, device=device) for _ in range(3))


def _graph(clock: Any, solver: Solver, rhs: GraphRHS, st: LoopState, t: torch.Tensor,
           stage_times: tuple[torch.Tensor, ...] | None, step: torch.Tensor) -> tuple[StepResult, Any]:
    """What one compiled call computes: the step and its measure, as a pure tensor function."""
    rhs.stage_times = stage_times
    res = solver.step(rhs, t, st.u, step, st.solver_state)
    return res, clock.measure_tensors(res, st)


_compiled: dict[str, Any] = {}


def _compiled_graph(mode: str) -> Any:
    if mode not in _compiled:
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
        _compiled[mode] = torch.compile(_graph, fullgraph=True, dynamic=False, mode=mode)
    return _compiled[mode]


#: what torch.compile raises when a function cannot become one graph (graph break, compiler failure, too many variants)
_CANNOT_COMPILE = (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit)


#: (solver class, clock class, f) that failed to compile in this process: later solves skip the attempt
_breaks: dict[tuple[Any, ...], str] = {}


def _reason(exc: BaseException) -> str:
    """The compiler's first line, and the last user-code location it names (where the graph breaks)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = text if len(text) <= 240 else text[:237] + "..."
    where = [line for line in lines if line.startswith('File "')]
    return f"{text}; at {where[-1]}" if where else text


def _key(clock: Any, solver: Solver, rhs: RHS) -> tuple[Any, ...]:
    f = rhs.problem.f
    return type(solver), type(clock), getattr(f, "__code__", None) or type(f)


class CompiledAttempt(Attempt):
    """The attempt as one compiled graph; eager (after one CompileWarning) if it cannot be compiled."""

    def __init__(self, clock: Any, solver: Solver, rhs: RHS, mode: str) -> None:
        super().__init__(clock, solver, rhs)
        self.mode = mode
        self.graph = _compiled_graph(mode)
        self.graph_rhs = GraphRHS(rhs.problem, rhs.rtol, rhs.atol, rhs.norm)
        self.cudagraphs = mode == "reduce-overhead" and rhs.problem.u0.device.type == "cuda"
        self.key = _key(clock, solver, rhs)
        self.eager = self.key in _breaks
        self._steps: dict[float, torch.Tensor] = {}

    def _step_tensor(self, step: Any) -> torch.Tensor:
        """A shared clock's float step as a 0-d tensor (cached: a fixed grid has one or two sizes)."""
        if isinstance(step, torch.Tensor):
            return step
        if len(self._steps) > 4:
            self._steps.clear()
        if step not in self._steps:
            self._steps[step] = torch.tensor(step, dtype=self.clock.time_dtype, device=self.clock.device)
        return self._steps[step]

    def __call__(self, st: LoopState, step: Any) -> tuple[torch.Tensor, StepResult, Any, Any]:
        if self.eager:
            return super().__call__(st, step)
        t, stage_times = self.clock.stage_clock(st.t, step)
        self.graph_rhs.norm = self.rhs.norm  # the loop swaps the norm when a member is frozen
        start = time.perf_counter() if self.compile_time is None else None
        try:
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            res, measured = self.graph(self.clock, self.solver, self.graph_rhs, st, t, stage_times,
                                       self._step_tensor(step))
        except _CANNOT_COMPILE as exc:
            self.eager = True
            _breaks[self.key] = reason = _reason(exc)
            name = getattr(self.solver, "name", type(self.solver).__name__)
            warnings.warn(f"compile=True: the step of solver {name!r} on this f cannot be compiled as one graph "
                          f"({reason}); it runs eagerly (in this process, for every solve of this solver and f)",
                          CompileWarning, stacklevel=4)
            return super().__call__(st, step)
        if self.cudagraphs:  # the next replay overwrites the graph's outputs
            res, measured = _pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, (res, measured))
        if start is not None:
            self.compile_time = time.perf_counter() - start
        return (t, res, *self.clock.measure(res, st, measured))

    def finish(self) -> None:
        super().finish()
        rhs, graph = self.rhs, self.graph_rhs
        rhs.nfe += int(graph.nfe)
        rhs.njac += int(graph.njac)
        rhs.nlinsolve += int(graph.nlinsolve)
