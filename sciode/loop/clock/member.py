"""``MemberClock``: adaptive steps per member, time and step size as ``(*batch, 1)`` tensors."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...retcode import ReturnCode
from ...solver import StepResult
from ..controller import initial_step, rms_norm
from ..state import LoopState
from .base import FREEZE_AFTER, _Clock, tree_where


class MemberClock(_Clock):
    """Adaptive steps per member: t, dt, err_prev are ``(*batch, 1)`` tensors.

    The one host transfer of a pass is ``running``: the count of running members, together with
    the numbers that riders (``ride``) need from the device, in one ``tolist``.
    """

    per_member = True
    #: running members at the last ``running`` call (the compactor reads it instead of syncing again)
    running_count = 0
    #: what shares the pass's host transfer (``ride``)
    riders: tuple[Any, ...] = ()

    def ride(self, rider: Any) -> None:
        """Let ``rider`` (``pending() -> 1-D int tensor | None``, ``settle(values: list[int])``) share the pass's
        host transfer."""
        self.riders = self.riders + (rider,)

    def clock(self, value: float) -> torch.Tensor:
        return torch.full(self.batch_shape + (1,), value, dtype=self.time_dtype, device=self.device)

    def initial_time(self) -> torch.Tensor:
        return self.clock(self.t0)

    def start(self, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, solver_state: Any,
              evaluate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LoopState:
        st = self.new_state(u0, solver_state, None, t0, self.clock(1.0))
        self.fail_at_start(st, f0)
        opts, span = self.opts, abs(self.t1 - self.t0)
        if opts.dt is not None:
            dt = self.clock(self.direction * min(opts.dt, span))
        else:
            safe_f0 = torch.where(torch.isfinite(f0), f0, 0)
            dt = initial_step(evaluate, t0, u0, safe_f0, self.k - 1, self.rhs.rtol, self.rhs.atol, self.rhs.norm,
                              self.direction, span).expand(self.batch_shape + (1,)).clone()
        st.dt = self.clamp_size(dt)
        st.dt_before_streak = st.dt.clone()
        st.accepted = torch.zeros(self.batch_shape, dtype=torch.int64, device=self.device)
        st.rejected = torch.zeros_like(st.accepted)
        self.stops_t = torch.tensor(self.stops, dtype=self.time_dtype, device=self.device)
        self.elapsed_stops = (self.stops_t - self.t0) * self.direction
        return st

    def running(self, st: LoopState) -> bool:
        pending = [(r, r.pending()) for r in self.riders]
        pending = [(r, values) for r, values in pending if values is not None]
        count = st.running.sum()
        if pending:
            count, *values = torch.cat([count.reshape(1)] + [v.to(count.dtype) for _, v in pending]).tolist()
            for rider, v in pending:
                rider.settle(values[:v.numel()])
                values = values[v.numel():]
        self.running_count = int(count)
        return self.running_count > 0

    def batch_norm_fn(self, running: torch.Tensor | None) -> Any:
        """Per-member clocks need no mask: each member's norm is its own (shape ``(*batch, 1)``)."""
        md = len(self.batch_shape)
        return self.opts.norm or (lambda x: rms_norm(x, md))

    def member_target(self, t: torch.Tensor) -> torch.Tensor:
        if len(self.stops) == 1:
            target = self.clock(self.t1)
        else:
            elapsed = (t - self.t0) * self.direction
            idx = torch.searchsorted(self.elapsed_stops, elapsed.reshape(-1).contiguous(), side="right")
            target = self.stops_t[idx.clamp_max(len(self.stops) - 1)].reshape(t.shape)
        is_stop = target != self.t1
        if self.landing is not None:
            closer = (self.landing - target) * self.direction < 0
            target = torch.where(closer, self.landing, target)
            is_stop = is_stop & ~closer
        return target, is_stop

    def beside_tensor(self, t: torch.Tensor, side: float) -> torch.Tensor:
        return torch.nextafter(t, torch.full_like(t, side * self.direction * math.inf))

    def reported_time(self, st: LoopState, last: Any, target: Any) -> Any:
        return st.t

    def plain(self) -> bool:
        """No tstop and no terminal landing ahead: every member's target is t1 and none stops short of it."""
        return len(self.stops) == 1 and self.landing is None

    def clamp(self, st: LoopState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            if self.plain():
                target, self.at_stop = self.clock(self.t1), False
                end = target
            else:
                target, self.at_stop = self.member_target(st.t)
                end = torch.where(self.at_stop, self.beside_tensor(target, -1.0), target)
            span = end - st.t
            last = st.dt.abs() >= self.signed(span) * (1 - 4 * self.eps)
            self.stepping = st.running[..., None]  # status does not change before commit: accept reuses it
            step = torch.where(self.stepping, torch.where(last, span, st.dt), 0.0)
        return step, last, target

    def stage_clock(self, t: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, None]:
        return t, None

    def measure_tensors(self, res: StepResult, st: LoopState) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            u, u1 = st.u.detach(), res.u.detach()
            scaled = self.scaled_error(res.error.detach(), u, u1)
            err = self.rhs.norm(scaled)
            finite = torch.isfinite(u1).all(-1, keepdim=True)
            return torch.where(finite & torch.isfinite(err), err, math.inf), ~finite[..., 0] & st.running

    def measure(self, res: StepResult, st: LoopState, measured: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member: the error norm (inf where the new state is not finite) and the non-finite mask."""
        return self.measure_tensors(res, st) if measured is None else measured

    def accept(self, err: torch.Tensor, st: LoopState) -> torch.Tensor:
        return (err <= 1) & self.stepping

    def commit(self, st: LoopState, accepted: torch.Tensor, res: StepResult, step: torch.Tensor,
               last: torch.Tensor, target: torch.Tensor) -> None:
        st.u = torch.where(accepted, res.u, st.u)
        st.solver_state = tree_where(accepted[..., 0], res.state, st.solver_state)
        with torch.no_grad():
            landing = accepted & last
            if self.plain():  # the target is t1 for all: nothing to restart, and landing there is success
                st.t = torch.where(accepted, torch.where(last, target, st.t + step), st.t)
                done = landing[..., 0]
            else:
                crossed = landing & self.at_stop
                landed = torch.where(crossed, self.beside_tensor(target, 1.0), target)
                st.t = torch.where(accepted, torch.where(last, landed, st.t + step), st.t)
                self.restarted = crossed[..., 0] if bool(crossed.any()) else False
                done = landing[..., 0] & (target[..., 0] == self.t1)
            moved = accepted[..., 0]
            st.t_stop = torch.where(moved, st.t[..., 0], st.t_stop)
            st.accepted += moved
            st.status = torch.where(done, ReturnCode.SUCCESS.value, st.status)

    def propose(self, st: LoopState, step: torch.Tensor, err: torch.Tensor, accepted: torch.Tensor,
                nonfinite: torch.Tensor) -> None:
        with torch.no_grad():
            running = st.running[..., None]
            factor = self.opts.controller.factor(err, st.err_prev, accepted, self.k)
            st.err_prev = torch.where(accepted, err.clamp_min(1e-4), st.err_prev)
            rejected = running & ~accepted
            st.rejected += rejected[..., 0]
            new_dt = self.clamp_size(torch.where(running, step * factor, st.dt))
            starting = nonfinite & (st.nonfinite_streak == 0)
            st.dt_before_streak = torch.where(starting[..., None], st.dt, st.dt_before_streak)
            st.nonfinite_streak = torch.where(nonfinite, st.nonfinite_streak + 1, 0)
            underflow = (rejected & self.collapsing(new_dt, step, st.t))[..., 0]
            unstable = nonfinite & (underflow | (st.nonfinite_streak >= FREEZE_AFTER))
            too_small = underflow & ~nonfinite
            st.status = torch.where(unstable, ReturnCode.UNSTABLE.value,
                                    torch.where(too_small, ReturnCode.DT_TOO_SMALL.value, st.status))
            st.dt = torch.where(unstable[..., None], st.dt_before_streak, new_dt)

    def stop_times(self, st: LoopState) -> torch.Tensor:
        return st.t_stop
