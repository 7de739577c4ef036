"""Small helpers shared by the implicit steppers: grad detection, safe steps, failure notes."""
from __future__ import annotations

from typing import Any

import torch

import sciode
from sciode import RHS

_GRAD_ATTR = "_sciode_implicit_params_need_grad"


def needs_grad(rhs: RHS, u: torch.Tensor) -> bool:
    """True when autograd is recording and u, p or f's parameters require grad."""
    if not torch.is_grad_enabled():
        return False
    if u.requires_grad:
        return True
    flag = getattr(rhs, _GRAD_ATTR, None)
    if flag is None:
        flag = any(x.requires_grad for x in sciode.parameter_tensors(rhs.problem))
        setattr(rhs, _GRAD_ATTR, flag)
    return flag


def safe_step(dt: Any) -> Any:
    """The step with zeros (members frozen by per-member stepping) replaced by 1 for divisions."""
    if isinstance(dt, torch.Tensor):
        return torch.where(dt == 0, torch.ones_like(dt), dt)
    return dt


def failure_note(reason: str, failed: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> str:
    """'<reason> for member (i,) at t = ...' for the first failing member.

    ``failed`` is 0-d (the whole batch) or broadcastable to (*batch, 1).
    """
    batch = u.shape[:-1]
    mask = torch.broadcast_to(failed, batch + (1,))[..., 0].reshape(-1)
    first = int(torch.nonzero(mask)[0, 0])
    times = torch.broadcast_to(t.detach(), batch + (1,))[..., 0].reshape(-1) if batch else t.detach().reshape(-1)
    where = ""
    if batch:
        member = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), batch))
        where = f" for member {member}"
    return f"{reason}{where} at t = {float(times[first]):.6g}"


def stage_time(rhs: RHS, t: torch.Tensor, dt: Any, fraction: float, index: int) -> torch.Tensor:
    """t + fraction*dt, taken from the loop's precomputed fixed-step grid when available."""
    if isinstance(dt, float) and rhs.stage_times is not None:
        return rhs.stage_times[index]
    if fraction == 0.0:
        return t
    return t + fraction * dt
