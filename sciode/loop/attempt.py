"""One attempted step: the solver's step on the clock's stage times, and the clock's measure of it.

This is the per-step tensor work of the loop; ``compile=True`` replaces it with a compiled
graph (``compiled.py``), everything around it (accept, commit, events, saving) stays the same.
The few evaluations of f outside a step (``evaluate``) go the same way: eager here, one
compiled graph there.
"""
from __future__ import annotations

from typing import Any

import torch

from ..solver import RHS, Solver, StepResult
from .options import LoopOptions
from .state import LoopState

__all__ = ["COMPILE_MODES", "Attempt", "CompileWarning", "compile_mode", "make_attempt"]

#: torch.compile modes that ``solve(compile=...)`` takes by name
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileWarning(UserWarning):
    """``compile=True`` could not compile a solve's step: the solve ran eagerly (the warning says why)."""


def compile_mode(value: bool | str, device: torch.device) -> str | None:
    """The torch.compile mode of ``solve(compile=value)``: True is CUDA graphs on CUDA, else inductor's default."""
    if value is False:
        return None
    if value is True:
        return "reduce-overhead" if device.type == "cuda" else "default"
    return value


class Attempt:
    """The eager attempt: ``attempt(st, step) -> (t, res, err, nonfinite)``."""

    #: seconds of the first call of each compiled graph in this solve (tracing and compiling included); None when
    #: eager
    compile_time: float | None = None

    def __init__(self, clock: Any, solver: Solver, rhs: RHS) -> None:
        self.clock, self.solver, self.rhs = clock, solver, rhs

    def __call__(self, st: LoopState, step: Any) -> tuple[torch.Tensor, StepResult, Any, Any]:
        t, self.rhs.stage_times = self.clock.stage_clock(st.t, step)
        res = self.solver.step(self.rhs, t, st.u, step, st.solver_state)
        return (t, res, *self.clock.measure(res, st))

    def evaluate(self, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """f at one point outside a step: the start's f(t0, u0), the initial step's probe, a restart."""
        return self.rhs(t, u)

    def block(self, st: LoopState, saver: Any, budget: int) -> bool:
        """Take several steps at once (a compiled block, ``compiled.py``); the eager attempt never does."""
        return False

    def finish(self) -> None:
        """Called once after the last step (the compiled attempt hands its counts back here)."""
        self.rhs.stage_times = None


def make_attempt(clock: Any, solver: Solver, rhs: RHS, opts: LoopOptions) -> Attempt:
    """The eager attempt, or the compiled one when ``opts.compile`` names a mode (torch._dynamo loads only then)."""
    if opts.compile is None:
        return Attempt(clock, solver, rhs)
    from .compiled import CompiledAttempt

    return CompiledAttempt(clock, solver, rhs, opts.compile)
