"""The saver: what a solve keeps of its steps (every step, ``saveat`` times, dense records).

* every accepted step (``saveat=None`` with a shared clock): the times and states, as they come;
* ``saveat`` with a shared clock: the records of just the steps that reach a save time not
  yet covered (the clock's times are host floats, so the test costs no transfer), evaluated
  chunk by chunk; without dense output nothing else is kept, so memory is O(saves), not O(steps);
* ``saveat`` with per-member clocks: ``PerMemberSaves`` picks each (member, save time) in the
  pass that passed it and evaluates it once, with those of the next passes;
* dense output: the step records are kept for ``Solution.__call__``.

Members that were frozen (UNSTABLE, FAILURE) read NaN past the time they stopped, in
the saved trajectory and in dense output alike.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import ProblemError
from .records import PerMemberSaves, StepChunk, StepRecorder, evaluate_chunks, same_time_tolerance

__all__ = ["Saver"]


class Saver:
    def __init__(self, problem: Any, solver: Any, saveat: torch.Tensor | None, per_member: bool,
                 keep_dense: bool, chunk_size: int) -> None:
        self.problem, self.solver = problem, solver
        self.t0, self.t1 = problem.tspan
        self.direction = problem.direction
        u0 = problem.u0
        self.time_dtype = u0.real.dtype if u0.is_complex() else u0.dtype
        self.device = u0.device
        if saveat is None and per_member:  # members share no step grid: save the ends
            saveat = torch.tensor([self.t0, self.t1], dtype=self.time_dtype, device=self.device)
        self.saveat = saveat
        self.member_shape = problem.batch_shape if per_member else torch.Size()
        self.keep_dense = keep_dense
        self.chunk_size = chunk_size
        # per-member saves are evaluated pass by pass; step records are kept for dense output and shared saves
        self.member_saves = (PerMemberSaves(saveat, self.t0, self.direction, self.member_shape, solver)
                             if per_member else None)
        records = keep_dense or (saveat is not None and not per_member)
        self.recorder = StepRecorder(self.t0, self.direction) if records else None
        # shared saves without dense output: the save times' elapsed values (host) and the first not yet covered
        self.save_elapsed = (((saveat - self.t0) * self.direction).tolist()
                             if saveat is not None and not per_member and not keep_dense else None)
        self.next_save = 0
        self.chunks: list[StepChunk] = []
        self.times: list[Any] = []
        self.values: list[torch.Tensor | None] = [] if saveat is None else [None] * saveat.shape[0]

    def start(self, u0: torch.Tensor) -> None:
        if self.saveat is None:
            self.times.append(self.t0)
            self.values.append(u0)

    def record(self, t_start: torch.Tensor, h: Any, u0: torch.Tensor, u1: torch.Tensor, dense: Any,
               t_end: Any) -> None:
        """One step: ``h`` is 0 for members that did not advance; ``t_end`` its end (every-step saves)."""
        if self.saveat is None:
            self.times.append(t_end)
            self.values.append(u1)
        if self.member_saves is not None:
            self.member_saves.take(t_start, h, u0, u1, dense)
        if self.recorder is None or (self.save_elapsed is not None and not self._reaches_save(t_end)):
            return
        self.recorder.append(t_start, h, u0, u1, dense)
        if len(self.recorder) >= self.chunk_size:
            self.flush()

    def _reaches_save(self, t_end: float) -> bool:
        """Whether a shared step ending at ``t_end`` reaches the first save time not yet covered.

        Within the evaluation's tolerance of the end, the records round differently from the
        clock's float: such a save time is marked covered only by the next step, so both are kept."""
        times, k = self.save_elapsed, self.next_save
        end = (float(t_end) - self.t0) * self.direction
        tol = same_time_tolerance(self.time_dtype, end)
        if k >= len(times) or times[k] > end + tol:
            return False
        while k < len(times) and times[k] < end - tol:
            k += 1
        self.next_save = k
        return True

    def compact(self, members: torch.Tensor) -> None:
        """From now on the loop steps only ``members`` (flat indices): later records hold just them."""
        self.flush()
        if self.member_saves is not None:
            self.member_saves.use_members(members)
        if self.recorder is not None:
            self.recorder.members = members

    def record_block(self, t_start: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor, dense: Any,
                     accepted: list[tuple[int, float]]) -> None:
        """Several iterations stacked on dim 0 (rows with h = 0 did not advance); ``accepted``: the
        (row, end time) of the accepted rows, in order (for every-step saves)."""
        if self.saveat is None:
            self.times.extend(end for _, end in accepted)
            self.values.extend(u1[row] for row, _ in accepted)
        if self.recorder is None:
            return
        self.recorder.append_block(t_start, h, u0, u1, dense)
        if len(self.recorder) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if self.recorder is None:
            return
        chunk = self.recorder.stack()
        if chunk is None:
            return
        if self.saveat is not None and self.member_saves is None:
            values, _ = evaluate_chunks([chunk], self.solver, self.t0, self.direction, self.saveat, self.member_shape)
            for k, v in enumerate(values):
                if v is not None and self.values[k] is None:
                    self.values[k] = v
        if self.keep_dense:
            self.chunks.append(chunk)

    # -- after the loop ---------------------------------------------------------------------------
    def trajectory(self, u0: torch.Tensor, stopped: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, u) of the saved points; ``stopped`` (batch) is each frozen member's stop time, NaN for
        the others: their values past it read NaN."""
        self.flush()
        if self.saveat is None:
            t = torch.tensor([float(x) for x in self.times], dtype=self.time_dtype, device=self.device)
            u = torch.stack(self.values)
        elif self.member_saves is not None:
            t, u = self.saveat, self.member_saves.assemble(u0)
        else:  # a shared clock stops for everyone: keep the prefix of save times it reached
            reached = next((i for i, v in enumerate(self.values) if v is None), len(self.values))
            u = torch.stack(self.values[:reached]) if reached else u0.new_empty((0,) + u0.shape)
            t = self.saveat[:reached]
        return t, self.mask_stopped(t, u, stopped)

    def mask_stopped(self, t: torch.Tensor, u: torch.Tensor, stopped: torch.Tensor | None) -> torch.Tensor:
        if stopped is None or u.shape[0] == 0:
            return u
        # NaN stop times compare False: members that did not stop
        past = ((t.reshape((-1,) + (1,) * stopped.ndim) - stopped) * self.direction
                > same_time_tolerance(self.time_dtype, stopped))
        return torch.where(past[..., None], torch.full_like(u, math.nan), u)

    def interpolator(self, stopped: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
        if not self.keep_dense or not self.chunks:
            return None
        chunks, solver, t0, t1, direction = self.chunks, self.solver, self.t0, self.t1, self.direction
        member_shape = self.member_shape
        lo, hi = min(t0, t1), max(t0, t1)

        def evaluate(times: torch.Tensor) -> torch.Tensor:
            tmin, tmax = float(times.min()), float(times.max())
            slack = 1e-12 * max(1.0, abs(lo), abs(hi))
            if tmin < lo - slack or tmax > hi + slack:
                raise ProblemError(f"t must lie within tspan {(t0, t1)} for dense output; "
                                   f"got times in [{tmin}, {tmax}]")
            order = torch.argsort((times - t0) * direction)
            values, masks = evaluate_chunks(chunks, solver, t0, direction, times[order], member_shape)
            nan = None
            rows = []
            for v, m in zip(values, masks):
                if v is None:
                    nan = nan if nan is not None else torch.full_like(self.problem.u0, math.nan)
                    rows.append(nan)
                else:
                    mm = m.reshape(m.shape + (1,) * (v.ndim - m.ndim))
                    rows.append(torch.where(mm, v, torch.full_like(v, math.nan)))
            stacked = torch.stack(rows)[torch.argsort(order)]
            return self.mask_stopped(times, stacked, stopped)

        return evaluate
