"""Which recorded step produces each output of the forward solve, and how.

The core loop saves ``saveat`` values by interpolating the step that contains each
time (``sciode/loop/records.py``: the first step whose end is at or after the time; the
step's end value if the time is at that end, its start value if at its start,
else the solver's interpolant). To backpropagate through the outputs exactly,
the replay must compute them the same way; ``assign_outputs`` makes that
decision once, on the detached forward record. Without ``saveat`` output 0 is
u0 and output k is the end of step k - 1.
"""
from __future__ import annotations

import dataclasses

import torch

from sciode.loop import same_time_tolerance

from .steplog import StepLog

__all__ = ["OutputRef", "assign_outputs"]


@dataclasses.dataclass(frozen=True)
class OutputRef:
    """Output ``k`` is the ``kind`` ("start", "end" or "interp" at ``theta``) of step ``step``."""

    k: int
    step: int
    kind: str
    theta: torch.Tensor | None = None


def assign_outputs(log: StepLog, t0: float, direction: float, saveat: torch.Tensor | None,
                   n_out: int) -> dict[int, list[OutputRef]]:
    """Map step index -> the outputs it produces."""
    by_step: dict[int, list[OutputRef]] = {}
    if n_out == 0 or len(log) == 0:
        return by_step
    if saveat is None:
        by_step.setdefault(0, []).append(OutputRef(0, 0, "start"))
        for k in range(1, n_out):
            by_step.setdefault(k - 1, []).append(OutputRef(k, k - 1, "end"))
        return by_step
    with torch.no_grad():
        t_start = torch.stack([t.reshape(()) for t in log.t])
        h = torch.stack([torch.as_tensor(d, dtype=t_start.dtype, device=t_start.device).reshape(()) for d in log.dt])
        end = torch.cummax((t_start + h - t0) * direction, dim=0).values
        times = saveat[:n_out].to(t_start.dtype)
        q = (times - t0) * direction
        idx = torch.searchsorted(end, q, side="left").clamp_max_(len(log) - 1)
        tol = same_time_tolerance(end.dtype, q)
        at_end = ((end[idx] - q).abs() <= tol).tolist()
        hg, tg = h[idx], t_start[idx]
        theta = torch.where(hg == 0, 0.0, (times - tg) / torch.where(hg == 0, 1.0, hg))
        at_start = (theta <= 0).tolist()
    for k, i in enumerate(idx.tolist()):
        kind = "end" if at_end[k] else ("start" if at_start[k] else "interp")
        by_step.setdefault(i, []).append(OutputRef(k, i, kind, theta[k] if kind == "interp" else None))
    return by_step
