"""The forward pass's record of accepted steps, with a bounded number of stored states.

``StepLog`` is a ``LoopOptions.on_step`` callback. It keeps (t, dt) of every
accepted step (scalars) and the state (u, solver state) at the start of steps on
a stride: every step when ``limit`` is None, else at most ``limit`` states. When
the step count is known in advance (fixed-step runs) the stride is set up front
(ceil(N / limit): equal segments of about N / limit steps); otherwise it starts
at 1 and doubles whenever the store overflows, dropping every other state, so
segments stay within 2N / limit steps.
"""
from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["StepLog", "fixed_step_count"]


def fixed_step_count(t0: float, t1: float, dt: float) -> int:
    """Number of steps the core loop takes on a fixed grid (same rounding rule as the loop)."""
    ratio = abs(t1 - t0) / dt
    return max(1, round(ratio)) if abs(ratio - round(ratio)) <= 1e-9 * max(1.0, ratio) else math.ceil(ratio)


class StepLog:
    """on_step(t, dt, u, state, accepted) recorder for checkpointed replay (shared stepping)."""

    def __init__(self, limit: int | None, expected_steps: int | None = None) -> None:
        self.limit = limit
        self.stride = 1 if limit is None or expected_steps is None else max(1, math.ceil(expected_steps / limit))
        self.t: list[torch.Tensor] = []
        self.dt: list[Any] = []
        self.states: dict[int, tuple[torch.Tensor, Any]] = {}

    def __call__(self, t: torch.Tensor, dt: Any, u: torch.Tensor, state: Any, accepted: Any) -> None:
        i = len(self.t)
        self.t.append(t)
        self.dt.append(dt)
        if i % self.stride == 0:
            self.states[i] = (u, state)
            if self.limit is not None and len(self.states) > self.limit:
                self.stride *= 2
                self.states = {k: v for k, v in self.states.items() if k % self.stride == 0}

    def __len__(self) -> int:
        return len(self.t)

    def segments(self) -> list[tuple[int, int]]:
        """[start, stop) step ranges, one per stored state, in forward order."""
        starts = sorted(self.states)
        return [(s, starts[k + 1] if k + 1 < len(starts) else len(self.t)) for k, s in enumerate(starts)]
