"""How a run ended, in words: per-member return codes and the message that names the failures."""
from __future__ import annotations

import numpy as np
import torch

from ..retcode import ReturnCode
from .state import RUNNING, LoopState

__all__ = ["final_codes", "message"]


def final_codes(st: LoopState, ran_out: bool) -> torch.Tensor:
    """Per-member codes once the loop has stopped: members still running hit max_steps."""
    if ran_out:
        max_steps = torch.tensor(ReturnCode.MAX_STEPS.value, dtype=torch.int8, device=st.status.device)
        return torch.where(st.status == RUNNING, max_steps, st.status).contiguous()
    return st.status.contiguous()


def _members(flat_index: torch.Tensor, batch_shape: torch.Size, limit: int = 5) -> str:
    picked = flat_index[:limit].tolist()
    # numpy's unravel_index: torch's pulls in torch.fx and sympy (~0.5 s) on first use
    names = [str(tuple(int(i) for i in np.unravel_index(j, tuple(batch_shape)))) for j in picked]
    more = f" and {flat_index.numel() - limit} more" if flat_index.numel() > limit else ""
    return ", ".join(names) + more


def message(codes: torch.Tensor, stop_times: torch.Tensor, t1: float, iterations: int, max_steps: int,
            solver_note: str, adaptive: bool, terminal_events: list[str]) -> str:
    """'solved to t1 ...' or, per failure kind, which members stopped where and why."""
    batch_shape = codes.shape
    flat = codes.reshape(-1)
    ok = (flat == ReturnCode.SUCCESS) | (flat == ReturnCode.TERMINATED)
    if bool(ok.all()):
        terminated = int((flat == ReturnCode.TERMINATED).sum())
        if terminated:
            where = f"{terminated} of {flat.numel()} members" if batch_shape else "the system"
            names = ", ".join(repr(name) for name in terminal_events)
            return f"TERMINATED: {where} stopped at terminal event {names} after {iterations} steps"
        return f"solved to t1 = {t1:g} in {iterations} steps"
    times = stop_times.reshape(-1)
    parts = []
    for code in ReturnCode:
        if code.successful:
            continue
        index = torch.nonzero(flat == code.value)[:, 0]
        if index.numel() == 0:
            continue
        first = int(index[0])
        if batch_shape:
            who = f"member {_members(index[:1], batch_shape)}"
            if index.numel() > 1:
                who += f" (also {_members(index[1:], batch_shape)})"
        else:
            who = "the system"
        at = f" at t = {float(times[first]):.6g}" if (adaptive or code is not ReturnCode.MAX_STEPS) else ""
        reason = code.description if code is not ReturnCode.MAX_STEPS else \
            f"max_steps = {max_steps} iterations used before reaching t1 = {t1:g}"
        parts.append(f"{code.name}: {who} stopped{at} after {iterations} steps: {reason}")
    text = "; ".join(parts)
    if flat.numel() > 1:
        text += f" ({int((~ok).sum())} of {flat.numel()} members failed)"
    if solver_note:  # a solver may say what went wrong in its last failed step (e.g. Newton diverged)
        text = f"{text}; solver: {solver_note}"
    return text
