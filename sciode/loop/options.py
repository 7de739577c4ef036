"""``LoopOptions``: the validated options of one run of the loop (``solve`` builds them)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from .controller import PIController

__all__ = ["LoopOptions"]


@dataclasses.dataclass
class LoopOptions:
    """Everything the loop needs besides the problem and the solver.

    ``on_step(t, dt, u, state, accepted)`` is called once per loop iteration in which
    any member accepted its step, before the state moves on: the step started at
    ``(t, u)`` with solver state ``state`` and size ``dt``; ``accepted`` is None
    when every running member took it, else the per-member mask (shape of the
    clock). Checkpointing sensitivities use it to replay steps with autograd on.
    """

    saveat: torch.Tensor | None = None  # 1-D times, ordered in the direction of integration
    dt: float | None = None
    rtol: float | torch.Tensor = 1e-6  # a float, or a tensor broadcastable to (n,)
    atol: float | torch.Tensor = 1e-9
    max_steps: int = 100_000
    per_member: bool = False
    dense: bool = True
    progress: bool = False
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    controller: PIController = dataclasses.field(default_factory=PIController)
    adaptive: bool = True
    chunk_size: int = 64
    on_step: Callable[..., None] | None = None
    events: tuple[Any, ...] = ()  # sciode.Event instances
    max_step: float | None = None
    min_step: float | None = None
    tstops: torch.Tensor | None = None  # 1-D times strictly inside tspan, ordered in the direction of integration
    #: ``jump(t, u) -> u``: at each tstop ``t`` the clock lands on, the state jumps before the solver restarts there
    #: (a shared clock only). The adjoint adds the loss's gradient at each output time to its backward state so
    jump: Callable[[float, torch.Tensor], torch.Tensor] | None = None
    #: per-member stepping: step only the running members once they are fewer than this fraction of
    #: the stepped batch (compaction.py); None or 0 turns compaction off
    compact: float | None = 0.5
    compile: str | None = None  # a torch.compile mode: each attempted step runs as one compiled graph (compiled.py)
