"""``FixedClock``: a fixed grid, built lazily one block of steps at a time, no host transfer per step."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...retcode import ReturnCode
from ...solver import StepResult
from ..state import LoopState
from .shared import SharedClock


class FixedClock(SharedClock):
    """A fixed grid t0 + i*dt (restarting from each stop), built lazily; no host transfer per step.

    Stage times of regular grid steps are built one block of ``chunk_size`` steps at
    a time in one tensor op. Non-finite members are found once per block (and at the
    end): they cannot be retried with a smaller step, so they are marked UNSTABLE
    (FAILURE where an implicit solver flagged the step) and the others go on.
    """

    adaptive = False

    def start(self, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, solver_state: Any,
              evaluate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LoopState:
        dt = self.opts.dt
        st = self.new_state(u0, solver_state, self.direction * dt, self.t0, 1.0)
        self.fail_at_start(st, f0)
        self.grid_base, self.grid_index = self.t0, 0
        self.block: list[tuple[torch.Tensor, Any]] = []
        self.block_start = -1
        self.flagged: torch.Tensor | None = None  # members an implicit solver could not step (inf error)
        return st

    def clamp(self, st: LoopState) -> tuple[float, bool, float]:
        target, self.at_stop = self.target(st.t)
        end = self.beside(target, -1.0) if self.at_stop else target
        h = abs(st.dt)
        remaining = (end - st.t) * self.direction
        last = remaining <= h + 1e-9 * max(h, abs(target - self.grid_base))
        return (remaining * self.direction if last else st.dt), last, target

    def stage_clock(self, t: float, step: float) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        if step != self.direction * abs(self.opts.dt):
            return super().stage_clock(t, step)
        i = self.grid_index
        chunk = self.opts.chunk_size
        if not (self.block_start <= i < self.block_start + len(self.block)) or self.block_base != self.grid_base:
            self.block = self._block(i, chunk)
            self.block_start, self.block_base = i, self.grid_base
        return self.block[i - self.block_start]

    def _block(self, start: int, count: int) -> list[tuple[torch.Tensor, Any]]:
        fractions = (0.0, *self.solver.stage_fractions)
        h, base = self.direction * abs(self.opts.dt), self.grid_base
        table = torch.tensor([[base + i * h + c * h for c in fractions] for i in range(start, start + count)],
                             dtype=self.time_dtype, device=self.device)
        flat, m = table.reshape(-1).unbind(0), len(fractions)
        return [(flat[j * m], flat[j * m + 1:(j + 1) * m] if m > 1 else None) for j in range(count)]

    def measure_tensors(self, res: StepResult, st: LoopState) -> None:
        return None

    def blockable(self, st: LoopState) -> bool:
        return False  # the grid decides the steps: there is no controller to fuse

    def measure(self, res: StepResult, st: LoopState, measured: None = None) -> tuple[float, torch.Tensor | None]:
        if res.error is not None:  # implicit solvers flag steps they could not compute with inf
            bad = ~torch.isfinite(res.error.detach()).all(-1)
            self.flagged = bad if self.flagged is None else self.flagged | bad
        return 0.0, None

    def accept(self, err: float, st: LoopState) -> bool:
        return True

    def commit(self, st: LoopState, accepted: Any, res: StepResult, step: float, last: bool, target: float) -> None:
        st.u, st.solver_state = res.u, res.state
        self.restarted = last and self.at_stop
        if last:
            st.t = self.beside(target, 1.0) if self.restarted else target
            self.grid_base, self.grid_index = st.t, 0
        else:
            self.grid_index += 1
            st.t = self.grid_base + self.grid_index * st.dt
        st.accepted += 1
        if st.accepted % self.opts.chunk_size == 0 or (last and st.t == self.t1):
            self.check_members(st)
        if last and st.t == self.t1:
            self.stop_all(st, ReturnCode.SUCCESS)

    def check_members(self, st: LoopState) -> None:
        """Mark members that went non-finite (or that the solver flagged) since the last check."""
        with torch.no_grad():
            bad = ~torch.isfinite(st.u.detach()).all(-1)
            if self.flagged is not None:
                self.freeze(st, self.flagged, ReturnCode.FAILURE, st.t)
            self.freeze(st, bad, ReturnCode.UNSTABLE, st.t)

    def propose(self, st: LoopState, step: float, err: float, accepted: bool, nonfinite: torch.Tensor | None) -> None:
        """The grid decides the steps: nothing to control."""
