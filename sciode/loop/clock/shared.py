"""``SharedClock``: adaptive steps shared by the batch, time and step size in Python floats."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...retcode import ReturnCode
from ...solver import RHS, Solver, StepResult
from ..controller import initial_step
from ..state import LoopState
from .base import FREEZE_AFTER, _Clock, tree_where


class SharedClock(_Clock):
    """Adaptive steps shared by the batch; t and dt in Python floats.

    The error norm is the largest per-member RMS norm over the running members, so
    every member meets the tolerance (an RMS over the whole batch would let one
    member's error drown among quiet ones) and a frozen member leaves it without
    changing the others' step sequence.
    """

    def start(self, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, solver_state: Any,
              evaluate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LoopState:
        st = self.new_state(u0, solver_state, 0.0, self.t0, 1.0)
        st.nonfinite_streak = 0
        self.fail_at_start(st, f0)
        st.dt = self.first_step(st, t0, u0, f0, evaluate)
        return st

    def first_step(self, st: LoopState, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor,
                   evaluate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        opts, span = self.opts, abs(self.t1 - self.t0)
        if opts.dt is not None:
            return self.max_step_clamp(self.direction * min(opts.dt, span))
        if not bool(st.running.any()):
            return self.direction * span
        running = st.running
        norm = self.batch_norm_fn(running if st.frozen_any else None)
        safe_u0 = torch.where(running[..., None], u0, 0) if st.frozen_any else u0
        safe_f0 = torch.where(running[..., None], f0, 0) if st.frozen_any else f0
        h = initial_step(evaluate, t0, safe_u0, safe_f0, self.k - 1, self.rhs.rtol, self.rhs.atol, norm,
                         self.direction, span)
        value = float(h)
        if not math.isfinite(value) or value == 0.0:
            value = self.direction * 1e-6 * max(span, 1e-300)
        return self.max_step_clamp(value)

    def batch_norm_fn(self, running: torch.Tensor | None) -> Any:
        """The loop's norm of a scaled error over the batch (the user's ``norm`` when given)."""
        user = self.opts.norm
        if user is not None:
            if running is None:
                return user
            return lambda x: user(torch.where(running[..., None], x, 0))
        if not self.batch_shape:
            return lambda x: self.member_norm(x)
        if running is None:
            return lambda x: self.member_norm(x).amax()
        return lambda x: torch.where(running, self.member_norm(x), 0).amax()

    def running(self, st: LoopState) -> bool:
        return not self.finished

    def clamp(self, st: LoopState) -> tuple[float, bool, float]:
        target, self.at_stop = self.target(st.t)
        end = self.beside(target, -1.0) if self.at_stop else target
        remaining = (end - st.t) * self.direction
        last = abs(st.dt) >= remaining * (1 - 4 * self.eps)
        return (remaining * self.direction if last else st.dt), last, target

    def measure_tensors(self, res: StepResult, st: LoopState) -> torch.Tensor:
        """The tensor work of ``measure``: the step's error norm and a finiteness probe of the new
        state, stacked so that one host transfer brings both back (a compiled step ends here)."""
        running = st.running if st.frozen_any else None
        scaled, err, probe = self.error_and_probe(res, st.u, running)
        self.last_scaled = scaled
        return torch.stack((err, probe))

    def error_and_probe(self, res: StepResult, u: torch.Tensor, running: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scaled error, its norm over the (running) members and the sum of the new state (0-d, time dtype):
        the sum is finite exactly when every running member's new state is."""
        with torch.no_grad():
            u, u1 = u.detach(), res.u.detach()
            scaled = self.scaled_error(res.error.detach(), u, u1)
            err = self.batch_norm_fn(running)(scaled)
            probe_u = torch.where(running[..., None], u1, 0) if running is not None else u1
            probe = probe_u.sum()
            if self.complex:
                probe = probe.abs()
            return scaled, err.to(self.time_dtype).reshape(()), probe.to(self.time_dtype)

    def blockable(self, st: LoopState) -> bool:
        """Whether the next steps are plain ones that a compiled block may take (``block_step``): no
        member frozen, no tstop, event landing, per-step hook or event ahead, the target is t1."""
        opts = self.opts
        return (not st.frozen_any and self.landing is None and opts.tstops is None and opts.on_step is None
                and not opts.events and not self.finished)

    def block_step(self, solver: Solver, rhs: RHS, fractions: torch.Tensor, clock: tuple[torch.Tensor, ...],
                   u: torch.Tensor, state: Any, live: torch.Tensor) -> tuple[Any, ...]:
        """One plain step as tensor work, for a compiled block of steps (``compiled.py``).

        ``clock`` is (t, dt, err_prev, t1) as 0-d tensors and ``live`` whether this attempt
        happens at all (the block has not reached t1 or halted). It does what ``clamp``,
        ``measure``, ``accept``, ``commit`` and ``propose`` do for a step that is finite and does
        not collapse the step size; an attempt that is not plain *halts* the block before it
        takes effect, so that the loop repeats it through the ordinary path, which handles it.
        Returns the new clock, u, state, and (accepted, done, halted, counted) masks with the
        record of the attempt (t, h, u0, u1, dense; h = 0 where it was not accepted).
        """
        t, dt, err_prev, t1 = clock
        d, eps, opts = self.direction, self.eps, self.opts
        with torch.no_grad():
            remaining = (t1 - t) * d
            last = dt.abs() >= remaining * (1 - 4 * eps)
            step = torch.where(live, torch.where(last, remaining * d, dt), 0.0)
            times = torch.mul(fractions, step).add_(t).unbind(0)
        rhs.stage_times = times[1:] if len(times) > 1 else None
        res = solver.step(rhs, times[0], u, step, state)
        _, err, probe = self.error_and_probe(res, u, None)
        with torch.no_grad():
            finite = torch.isfinite(err) & torch.isfinite(probe)
            good = finite & (err <= 1.0)
            factor = opts.controller.factor(err, err_prev, good, self.k)
            new_dt = self.clamp_size(step * factor)
            halted = live & ~(good | (finite & ~self.collapsing(new_dt, step, t)))
            counted = live & ~halted
            accepted = counted & good
            done = accepted & last
            h = torch.where(accepted, step, 0.0)
            t_new = torch.where(accepted, torch.where(last, t1, t + step), t)
            err_prev = torch.where(accepted, err.clamp_min(1e-4), err_prev)
            dt = torch.where(counted, new_dt, dt)
        u_new = torch.where(accepted, res.u, u)
        state = tree_where(accepted, res.state, state)
        record = (t, h, u, u_new, res.dense)
        return (t_new, dt, err_prev, t1), u_new, state, (accepted, done, halted, counted), record

    def measure(self, res: StepResult, st: LoopState, measured: torch.Tensor | None = None
                ) -> tuple[float, torch.Tensor | None]:
        """The step's error norm as a float (inf when it is not finite) and, when some running
        member's new state is not finite, the mask of those members (else None)."""
        err_f, probe_f = (self.measure_tensors(res, st) if measured is None else measured).tolist()
        if math.isfinite(err_f) and math.isfinite(probe_f):
            return err_f, None
        with torch.no_grad():
            nonfinite = ~torch.isfinite(res.u.detach()).all(-1) & st.running
        return math.inf, (nonfinite if bool(nonfinite.any()) else None)

    def accept(self, err: float, st: LoopState) -> bool:
        return err <= 1.0

    def commit(self, st: LoopState, accepted: Any, res: StepResult, step: float, last: bool, target: float) -> None:
        """Move the running members to the end of an accepted step (frozen ones keep their state)."""
        if st.frozen_any:
            running = st.running
            st.u = torch.where(running[..., None], res.u, st.u)
            st.solver_state = tree_where(running, res.state, st.solver_state)
        else:
            st.u, st.solver_state = res.u, res.state
        self.restarted = last and self.at_stop
        st.t = (self.beside(target, 1.0) if self.restarted else target) if last else st.t + step
        st.accepted += 1
        if last and st.t == self.t1:
            self.stop_all(st, ReturnCode.SUCCESS)

    def propose(self, st: LoopState, step: float, err: float, accepted: bool, nonfinite: torch.Tensor | None) -> None:
        """The next step size (PI control), and the failures a rejection may reveal.

        A step that turns some (not all) members non-finite freezes them at once and is
        retried at the same size, so the others take exactly the steps they would take
        without them. When every running member is non-finite the step is rejected and
        shrunk like any other; after FREEZE_AFTER such attempts in a row (a Python int
        streak) or an underflowing step, they are UNSTABLE.
        """
        opts = self.opts
        factor = opts.controller.factor_scalar(err, st.err_prev, accepted, self.k)
        if accepted:
            st.err_prev = max(err, 1e-4)
        else:
            st.rejected += 1
        new_dt = self.max_step_clamp(step * factor)
        if accepted:
            self.accepted_dt = new_dt
        if nonfinite is not None and not bool((nonfinite == st.running).all()):
            # some members, not all: they alone are at fault; freeze them and retry the same step
            self.freeze(st, nonfinite, ReturnCode.UNSTABLE, st.t)
            st.dt = step
            return
        if nonfinite is None:
            st.nonfinite_streak = 0
        else:
            st.nonfinite_streak += 1
        underflow = abs(new_dt) <= 16 * self.eps * max(abs(st.t), 1.0)
        at_min = opts.min_step is not None and not accepted and abs(step) <= opts.min_step * (1 + 4 * self.eps)
        if nonfinite is not None and (underflow or at_min or st.nonfinite_streak >= FREEZE_AFTER):
            self.freeze(st, nonfinite, ReturnCode.UNSTABLE, st.t)
            st.nonfinite_streak = 0
        elif not accepted and (underflow or at_min):
            new_dt = self.too_small(st, new_dt)
        st.dt = new_dt

    def too_small(self, st: LoopState, new_dt: float) -> float:
        """The shared step collapsed: the members whose error rejects it are DT_TOO_SMALL.

        If others remain, they go on from the step size of the last accepted step; when
        every running member rejects, the whole batch stops.
        """
        if self.opts.norm is None and self.batch_shape:
            culprits = (self.member_norm(self.last_scaled) > 1) & st.running
            if bool(culprits.any()) and not bool((culprits == st.running).all()):
                self.freeze(st, culprits, ReturnCode.DT_TOO_SMALL, st.t)
                return getattr(self, "accepted_dt", new_dt)
        self.stop_all(st, ReturnCode.DT_TOO_SMALL)
        return new_dt

    def stop_times(self, st: LoopState) -> torch.Tensor:
        """Per member, the last time it reached: frozen members where they froze, the rest at t."""
        return torch.where(st.frozen_members, st.t_stop, st.t)
