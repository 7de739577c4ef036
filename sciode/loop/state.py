"""``LoopState``: everything that changes from one iteration of the loop to the next.

One explicit object, created once per run, so every part of the loop reads and
writes the same named fields. With a shared clock ``t``, ``dt`` and ``err_prev``
are Python floats; with per-member clocks they are ``(*batch, 1)`` tensors.
``status`` is always per member (shape ``batch``), so a member can fail, be
frozen and leave the error norm whatever the clock.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["LoopState", "RUNNING"]

#: status of a member that is still integrating (the ReturnCodes are the final states)
RUNNING = 0


@dataclasses.dataclass
class LoopState:
    t: Any
    dt: Any
    u: torch.Tensor
    solver_state: Any
    err_prev: Any
    status: torch.Tensor  # int8 (batch), RUNNING or a ReturnCode
    t_stop: torch.Tensor  # (batch): the time each member stopped at (its last accepted time)
    nonfinite_streak: Any  # consecutive non-finite attempts: an int (shared clock) or an int tensor (batch)
    dt_before_streak: Any  # the step size in use before a member's non-finite streak began
    frozen_members: torch.Tensor  # bool (batch): members stopped early while others went on
    iterations: int = 0
    member_evaluations: int = 0  # summed over passes: the members each pass stepped (compaction shrinks it)
    accepted: Any = 0  # int, or an int64 tensor (batch) with per-member clocks
    rejected: Any = 0
    frozen_any: bool = False  # True once some member has been frozen (a shared clock then masks it)

    @property
    def running(self) -> torch.Tensor:
        return self.status == RUNNING
