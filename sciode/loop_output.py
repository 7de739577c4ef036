"""Turning a finished run of the loop into a Solution's pieces: trajectory, dense output, retcodes.

``OutputMixin`` is mixed into the loop's run object; it reads what the stepping
drivers left behind (saved points, step chunks, member status, step counts).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .dense import evaluate_chunks
from .errors import ProblemError
from .solution import ReturnCode


class OutputMixin:
    """Assembly of the saved trajectory, the dense-output evaluator and per-member retcodes."""

    def assemble(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the saved points into (t, u); with per-member stepping, NaN where a member never got."""
        if self.saveat is None:
            times = [float(x) for x in self.step_times]
            return torch.tensor(times, dtype=self.dtype, device=self.device), torch.stack(self.saved_values)
        if self.member_saves is not None:
            return self.saveat, self.member_saves.assemble(self.u0)
        # a shared clock stops for everyone: keep the prefix of save times it reached
        values = self.saved_values
        reached = next((i for i, v in enumerate(values) if v is None), len(values))
        u = torch.stack(values[:reached]) if reached else self.u0.new_empty((0,) + self.u0.shape)
        return self.saveat[:reached], u

    def interpolator(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        if not self.keep_dense or not self.chunks:
            return None
        chunks, solver, t0, t1, direction = self.chunks, self.solver, self.t0, self.t1, self.direction
        member_shape = self.member_shape
        lo, hi = min(t0, t1), max(t0, t1)

        def evaluate(times: torch.Tensor) -> torch.Tensor:
            tmin, tmax = float(times.min()), float(times.max())
            slack = 1e-12 * max(1.0, abs(lo), abs(hi))
            if tmin < lo - slack or tmax > hi + slack:
                raise ProblemError(f"t must lie within tspan {(t0, t1)} for dense output; got times in [{tmin}, {tmax}]")
            order = torch.argsort((times - t0) * direction)
            values, masks = evaluate_chunks(chunks, solver, t0, direction, times[order], member_shape)
            nan = None
            rows = []
            for v, m in zip(values, masks):
                if v is None:
                    nan = nan if nan is not None else torch.full_like(chunks[0].u0[0], math.nan)
                    rows.append(nan)
                else:
                    mm = m.reshape(m.shape + (1,) * (v.ndim - m.ndim))
                    rows.append(torch.where(mm, v, torch.full_like(v, math.nan)))
            stacked = torch.stack(rows)
            return stacked[torch.argsort(order)]

        return evaluate

    def retcodes(self, u: torch.Tensor) -> tuple[torch.Tensor, str]:
        """Per-member return codes (shape batch) and a message naming the first failure."""
        success = torch.tensor(ReturnCode.SUCCESS, dtype=torch.int8, device=self.device)
        if self.adaptive:
            codes = self.status.expand(self.batch_shape) if not self.per_member else self.status
        else:
            codes = success.expand(self.batch_shape).clone()
            if u.shape[0] > 0:
                nonfinite = (~torch.isfinite(u)).any(-1).any(0)
                codes = torch.where(nonfinite, torch.tensor(ReturnCode.UNSTABLE, dtype=torch.int8), codes)
            if getattr(self, "newton_failed", None) is not None:
                codes = torch.where(self.newton_failed, torch.tensor(ReturnCode.FAILURE, dtype=torch.int8), codes)
            if getattr(self, "max_steps_hit", False):
                codes = torch.where(codes == success, torch.tensor(ReturnCode.MAX_STEPS, dtype=torch.int8), codes)
        codes = codes.contiguous()
        flat = codes.reshape(-1)
        bad = torch.nonzero(flat != success)
        if bad.numel() == 0:
            return codes, f"solved to t1 = {self.t1:g} in {self.nsteps} steps"
        first = int(bad[0, 0])
        member = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), self.batch_shape)) if self.batch_shape else ()
        code = ReturnCode(int(flat[first]))
        where = f"member {member}" if member else "the system"
        if self.adaptive:
            t_fail = self.t_final.reshape(-1)[first if self.per_member else 0]
            at = f" at t = {float(t_fail):.6g}"
        else:
            at = ""
        reason = {
            ReturnCode.MAX_STEPS: f"max_steps = {self.opts.max_steps} iterations used before reaching t1 = {self.t1:g}",
            ReturnCode.DT_TOO_SMALL: "the step size fell below the resolution of t (stiff or singular dynamics?)",
            ReturnCode.UNSTABLE: "the state became non-finite (NaN or inf)",
            ReturnCode.FAILURE: "the solver could not complete a step (e.g. the Newton iteration failed)",
        }[code]
        note = getattr(self.solver, "failure_note", "")
        if note:  # a solver may say what went wrong in its last failed step (e.g. Newton diverged)
            reason = f"{reason}; solver: {note}"
        count = int(bad.shape[0])
        others = f"; {count} of {flat.numel()} members failed" if flat.numel() > 1 else ""
        return codes, f"{code.name}: {where} stopped{at} after {self.nsteps} steps: {reason}{others}"

