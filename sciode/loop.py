"""The integration loop: step-size control, saving, dense output, retcodes, stats.

One loop serves every solver. It works on "clocks": tensors holding each member's
time and step (0-d when the batch shares one step, ``(*batch, 1)`` when members
step independently), so per-member stepping is the same code with a different
clock shape; finished members are frozen by giving them ``dt = 0``. Fixed-step
runs take no host sync per step; adaptive runs take one (is everyone done?).
Sensitivity algorithms call :func:`integrate` directly.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from .controller import PIController, initial_step, rms_norm
from .dense import PerMemberSaves, StepChunk, StepRecorder, evaluate_chunks
from .errors import ProblemError
from .loop_output import OutputMixin
from .problems import ODEProblem
from .solution import ReturnCode, Solution
from .solver import RHS, Solver

__all__ = ["LoopOptions", "integrate"]

RUNNING = 0


@dataclasses.dataclass
class LoopOptions:
    """Validated options of one integration (``solve`` builds these)."""

    saveat: torch.Tensor | None = None  # 1-D times, ordered in the direction of integration
    dt: float | None = None
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 100_000
    per_member: bool = False
    dense: bool = True
    progress: bool = False
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    controller: PIController = dataclasses.field(default_factory=PIController)
    adaptive: bool = True
    chunk_size: int = 64
    #: called after every step as on_step(t, dt, u, state, accepted): the step started at
    #: (t, u) with solver state ``state`` and size ``dt``; ``accepted`` is None when the
    #: whole batch took it, else the per-member mask. Checkpointing sensitivities use it
    #: to replay steps with autograd on.
    on_step: Callable[..., None] | None = None


def _tree_where(mask: torch.Tensor, new: Any, old: Any) -> Any:
    """Per-member select over a solver state (tensors whose leading dims are the member dims)."""
    if new is None or old is None:
        return new
    if isinstance(new, torch.Tensor):
        if new.ndim < mask.ndim:  # a shared quantity (e.g. a scalar counter): keep the new one
            return new
        return torch.where(mask.reshape(mask.shape + (1,) * (new.ndim - mask.ndim)), new, old)
    if isinstance(new, (tuple, list)):
        return type(new)(_tree_where(mask, a, b) for a, b in zip(new, old))
    if isinstance(new, dict):
        return {k: _tree_where(mask, v, old[k]) for k, v in new.items()}
    return new


def _check_f_output(value: Any, u0: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise ProblemError(f"f must return a tensor shaped like u0 {tuple(u0.shape)}; it returned {type(value).__name__}")
    if value.shape != u0.shape:
        raise ProblemError(f"f returned shape {tuple(value.shape)}; expected the shape of u0, {tuple(u0.shape)}")
    if value.dtype != u0.dtype:
        raise ProblemError(f"f returned dtype {value.dtype}; expected u0's dtype {u0.dtype}")
    if value.device != u0.device:
        raise ProblemError(f"f returned a tensor on {value.device}; expected u0's device {u0.device}")


class _Integration(OutputMixin):
    """State of one run of the loop; methods are the phases of the run."""

    def __init__(self, problem: ODEProblem, solver: Solver, opts: LoopOptions) -> None:
        self.problem, self.solver, self.opts = problem, solver, opts
        self.u0 = problem.u0
        self.dtype, self.device = self.u0.dtype, self.u0.device
        self.t0, self.t1 = problem.tspan
        self.direction = problem.direction
        self.batch_shape = problem.batch_shape
        adaptive = opts.adaptive and solver.adaptive
        self.adaptive = adaptive
        self.per_member = adaptive and opts.per_member and len(self.batch_shape) > 0
        self.member_shape = self.batch_shape if self.per_member else torch.Size()
        self.clock_shape = self.batch_shape + (1,) if self.per_member else torch.Size()
        md = len(self.member_shape)
        self.norm = opts.norm or (lambda x: rms_norm(x, md))
        self.rhs = RHS(problem, opts.rtol, opts.atol, self.norm)
        saveat = opts.saveat
        if saveat is None and self.per_member:
            saveat = torch.tensor([self.t0, self.t1], dtype=self.dtype, device=self.device)
        self.saveat = saveat
        self.keep_dense = opts.dense and solver.dense_output
        self.recorder = StepRecorder(self.t0, self.direction) if (saveat is not None or self.keep_dense) else None
        self.chunks: list[StepChunk] = []
        self.member_saves = PerMemberSaves(saveat, self.t0, self.direction, self.member_shape) if self.per_member else None
        self.saved_values: list[torch.Tensor | None] = [] if saveat is None else [None] * saveat.shape[0]
        self.step_times: list[torch.Tensor] = []
        self.nsteps = self.naccepted = self.nrejected = 0
        self._fractions: torch.Tensor | None = None
        self.progress = None

    # -- helpers --------------------------------------------------------------------------
    def clock(self, value: float) -> torch.Tensor:
        return torch.full(self.clock_shape, value, dtype=self.dtype, device=self.device)

    def record(self, t_start: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor, dense: Any) -> None:
        if self.recorder is None:
            return
        self.recorder.append(t_start, h, u0, u1, dense)
        if len(self.recorder) >= self.opts.chunk_size:
            self.flush()

    def flush(self) -> None:
        if self.recorder is None:
            return
        chunk = self.recorder.stack()
        if chunk is None:
            return
        if self.member_saves is not None:
            self.member_saves.add(chunk, self.solver)
        elif self.saveat is not None:  # a shared clock: each save time is covered by exactly one chunk
            values, _ = evaluate_chunks([chunk], self.solver, self.t0, self.direction, self.saveat, self.member_shape)
            for k, v in enumerate(values):
                if v is not None and self.saved_values[k] is None:
                    self.saved_values[k] = v
        if self.keep_dense:
            self.chunks.append(chunk)

    def first_evaluation(self, t: torch.Tensor) -> torch.Tensor:
        f0 = self.rhs(t, self.u0)
        _check_f_output(f0, self.u0)
        return f0

    def start_progress(self) -> None:
        if self.opts.progress:
            from tqdm.auto import tqdm

            self.progress = tqdm(total=abs(self.t1 - self.t0), unit="t", desc=getattr(self.solver, "name", "solve"))
            self._progress_at = 0.0

    def update_progress(self, t: torch.Tensor) -> None:
        if self.progress is not None:
            done = abs(float(t.min() if self.direction > 0 else t.max()) - self.t0)
            self.progress.update(done - self._progress_at)
            self._progress_at = done

    # -- fixed step -----------------------------------------------------------------------
    def run_fixed(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.opts.dt is None:
            raise ProblemError(f"dt is required by the fixed-step solver {self.solver.name!r}: pass solve(..., dt=...)")
        span = abs(self.t1 - self.t0)
        ratio = span / self.opts.dt
        n = max(1, round(ratio)) if abs(ratio - round(ratio)) <= 1e-9 * max(1.0, ratio) else math.ceil(ratio)
        grid = [self.t0 + self.direction * self.opts.dt * i for i in range(n)] + [self.t1]
        h = [self.direction * self.opts.dt] * (n - 1) + [grid[n] - grid[n - 1]]
        h_tensor = {value: torch.tensor(value, dtype=self.dtype, device=self.device) for value in set(h)} if self.recorder is not None else {}
        u = self.u0
        clock = self.fixed_clock(grid, h, 0, min(n, self.opts.chunk_size))
        state = self.solver.init(self.rhs, clock[0][0], u, self.first_evaluation(clock[0][0]))
        every_step = self.saveat is None
        if every_step:
            self.step_times.append(grid[0])
            self.saved_values.append(u)
        failed = None
        self.start_progress()
        for i in range(n):
            if i >= self.opts.max_steps:
                self.max_steps_hit = True
                break
            block = i % self.opts.chunk_size
            if block == 0 and i > 0:  # stage times are built one block at a time: memory stays flat
                clock = self.fixed_clock(grid, h, i, min(n, i + self.opts.chunk_size))
            t, self.rhs.stage_times = clock[block]
            res = self.solver.step(self.rhs, t, u, h[i], state)
            if self.opts.on_step is not None:
                self.opts.on_step(t, h[i], u, state, None)
            u1 = res.u
            if res.error is not None:  # implicit solvers flag steps they could not compute
                bad = ~torch.isfinite(res.error).all(-1)
                failed = bad if failed is None else failed | bad
            if self.recorder is not None:
                self.record(t, h_tensor[h[i]], u, u1, res.dense)
            u, state = u1, res.state
            self.nsteps += 1
            if every_step:
                self.step_times.append(grid[i + 1])
                self.saved_values.append(u)
            if (i + 1) % self.opts.chunk_size == 0:
                self.update_progress(torch.tensor(grid[i + 1]))
                if bool((~torch.isfinite(u)).any(-1).all()):
                    break  # every member has blown up: stop early
        self.rhs.stage_times = None
        self.flush()
        self.naccepted = self.nsteps
        self.newton_failed = failed
        return self.assemble()

    def fixed_clock(self, grid: list[float], h: list[float], start: int, stop: int) -> list[tuple[torch.Tensor, Any]]:
        """(t, stage times) tensors for steps ``start:stop`` of a fixed grid, built in one tensor op."""
        fractions = (0.0, *self.solver.stage_fractions)
        table = torch.tensor([[grid[i] + c * h[i] for c in fractions] for i in range(start, stop)],
                             dtype=self.dtype, device=self.device)
        flat, m = table.reshape(-1).unbind(0), len(fractions)
        return [(flat[j * m], flat[j * m + 1:(j + 1) * m] if m > 1 else None) for j in range(stop - start)]

    # -- adaptive, one step shared by the whole batch ---------------------------------------
    def stage_clock(self, t: float, dt: float) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The step's start time and its stage times as tensors, in two tensor ops."""
        if self._fractions is None:
            fractions = (0.0, *self.solver.stage_fractions)
            self._fractions = torch.tensor(fractions, dtype=self.dtype, device=self.device)
        times = torch.mul(self._fractions, dt).add_(t).unbind(0)
        return times[0], (times[1:] if len(times) > 1 else None)

    def run_adaptive_shared(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Adaptive stepping with one clock for the batch, kept in Python floats.

        The error norm and a finiteness probe of the new state come back to the host
        in one transfer per step; the controller, time and step size are then plain
        float arithmetic, and solvers receive ``dt`` as a float (fewest tensor ops).
        """
        solver, opts, rhs = self.solver, self.opts, self.rhs
        t, direction = self.t0, self.direction
        t_tensor = torch.tensor(t, dtype=self.dtype, device=self.device)
        u = self.u0
        f0 = self.first_evaluation(t_tensor)
        state = solver.init(rhs, t_tensor, u, f0)
        span = abs(self.t1 - self.t0)
        k = min(solver.order, solver.error_order or solver.order - 1) + 1
        if opts.dt is not None:
            dt = direction * min(opts.dt, span)
        else:
            dt = float(initial_step(rhs, t_tensor, u, f0, k - 1, opts.rtol, opts.atol, self.norm, direction, span))
        eps = torch.finfo(self.dtype).eps
        every_step = self.saveat is None
        if every_step:
            self.step_times.append(t_tensor)
            self.saved_values.append(u)
        err_prev, code = 1.0, RUNNING
        self.start_progress()
        while code == RUNNING:
            if self.nsteps >= opts.max_steps:
                code = ReturnCode.MAX_STEPS
                break
            remaining = (self.t1 - t) * direction
            last = abs(dt) >= remaining * (1 - 4 * eps)
            step = remaining * direction if last else dt
            t_tensor, rhs.stage_times = self.stage_clock(t, step)
            res = solver.step(rhs, t_tensor, u, step, state)
            with torch.no_grad():
                u1 = res.u.detach()
                err = float(rhs.error_norm(res.error.detach(), u.detach(), u1))
                probe = float(u1.sum())
            if not (math.isfinite(err) and math.isfinite(probe)):
                err = math.inf
            accept = err <= 1.0
            factor = opts.controller.factor_scalar(err, err_prev, accept, k)
            self.nsteps += 1
            if accept:
                if opts.on_step is not None:
                    opts.on_step(t_tensor, step, u, state, None)
                self.record(t_tensor, step, u, res.u, res.dense)
                t = self.t1 if last else t + step
                u, state, err_prev = res.u, res.state, max(err, 1e-4)
                self.naccepted += 1
                if every_step:
                    self.step_times.append(t)
                    self.saved_values.append(u)
                if last:
                    code = ReturnCode.SUCCESS
            else:
                self.nrejected += 1
                if abs(step * factor) <= 16 * eps * max(abs(t), 1.0):
                    code = ReturnCode.DT_TOO_SMALL if math.isfinite(probe) else ReturnCode.UNSTABLE
            dt = step * factor
            if self.progress is not None:
                self.update_progress(torch.tensor(t))
        rhs.stage_times = None
        self.flush()
        self.status = torch.tensor(code, dtype=torch.int8, device=self.device)
        self.t_final = torch.tensor(t)
        return self.assemble()

    # -- adaptive, members stepping independently ---------------------------------------------
    def run_adaptive_per_member(self) -> tuple[torch.Tensor, torch.Tensor]:
        solver, opts = self.solver, self.opts
        t = self.clock(self.t0)
        u = self.u0
        f0 = self.first_evaluation(t)
        state = solver.init(self.rhs, t, u, f0)
        span = abs(self.t1 - self.t0)
        k = min(solver.order, solver.error_order or solver.order - 1) + 1
        if opts.dt is not None:
            dt = self.clock(self.direction * min(opts.dt, span))
        else:
            dt = initial_step(self.rhs, t, u, f0, k - 1, opts.rtol, opts.atol, self.norm, self.direction, span).expand(self.clock_shape).clone()
        err_prev = torch.ones(self.clock_shape, dtype=self.dtype, device=self.device)
        status = torch.zeros(self.clock_shape, dtype=torch.int8, device=self.device)
        eps = torch.finfo(self.dtype).eps
        every_step = self.saveat is None
        if every_step:
            self.step_times.append(t)
            self.saved_values.append(u)
        t1 = self.clock(self.t1)
        accepted_count = torch.zeros(self.clock_shape, dtype=torch.int64, device=self.device)
        rejected_count = torch.zeros_like(accepted_count)
        self.start_progress()
        while True:
            active = status == RUNNING
            if not bool(active.any()):
                break
            if self.nsteps >= opts.max_steps:
                status = torch.where(active, torch.tensor(ReturnCode.MAX_STEPS, dtype=torch.int8), status)
                break
            with torch.no_grad():
                remaining = (t1 - t) * self.direction
                last = dt.abs() >= remaining * (1 - 4 * eps)
                step = torch.where(last, remaining * self.direction, dt)
                if self.per_member:
                    step = torch.where(active, step, 0.0)
            res = solver.step(self.rhs, t, u, step, state)
            with torch.no_grad():
                u1 = res.u.detach()
                err = self.rhs.error_norm(res.error.detach(), u.detach(), u1)
                finite_u1 = torch.isfinite(u1).all(-1) if not self.per_member else torch.isfinite(u1).all(-1, keepdim=True)
                if not self.per_member:
                    finite_u1 = finite_u1.all()
                err = torch.where(finite_u1, err, math.inf)
                accept = (err <= 1) & active
                factor = opts.controller.factor(err, err_prev, accept, k)
                t_new = torch.where(last, t1, t + step)
            self.nsteps += 1
            if opts.on_step is not None and (self.per_member or bool(accept)):
                opts.on_step(t, step, u, state, accept if self.per_member else None)
            if self.per_member:
                self.record(t, torch.where(accept, step, 0.0), u, res.u, res.dense)
                u = torch.where(accept, res.u, u)
                state = _tree_where(accept.reshape(self.member_shape), res.state, state)
                with torch.no_grad():
                    t = torch.where(accept, t_new, t)
                    err_prev = torch.where(accept, err.clamp_min(1e-4), err_prev)
                    dt = torch.where(active, step * factor, dt)
                    status = torch.where(accept & last, torch.tensor(ReturnCode.SUCCESS, dtype=torch.int8), status)
                    accepted_count += accept
                    rejected_count += active & ~accept
                    status = self.check_collapse(status, active & ~accept, dt, t, finite_u1, eps)
            else:
                if bool(accept):
                    self.record(t, step, u, res.u, res.dense)
                    t, u, state = t_new, res.u, res.state
                    err_prev = err.clamp_min(1e-4)
                    self.naccepted += 1
                    if every_step:
                        self.step_times.append(t)
                        self.saved_values.append(u)
                    if bool(last):
                        status = torch.full_like(status, ReturnCode.SUCCESS)
                else:
                    self.nrejected += 1
                    status = self.check_collapse(status, torch.ones_like(active), step * factor, t, finite_u1, eps)
                dt = step * factor
            if self.progress is not None:
                self.update_progress(t)
        self.flush()
        if self.per_member:
            self.naccepted, self.nrejected = int(accepted_count.sum()), int(rejected_count.sum())
            self.member_stats = {"naccepted": accepted_count.reshape(self.member_shape),
                                 "nrejected": rejected_count.reshape(self.member_shape)}
        self.status = status.reshape(self.member_shape)
        self.t_final = t
        return self.assemble()

    def check_collapse(self, status: torch.Tensor, rejected: torch.Tensor, dt: torch.Tensor, t: torch.Tensor,
                       finite_u1: torch.Tensor, eps: float) -> torch.Tensor:
        """Members whose step fell below the resolution of their clock fail."""
        tiny = rejected & (dt.abs() <= 16 * eps * torch.clamp_min(t.abs(), 1.0))
        code = torch.where(finite_u1, torch.tensor(ReturnCode.DT_TOO_SMALL, dtype=torch.int8),
                           torch.tensor(ReturnCode.UNSTABLE, dtype=torch.int8))
        return torch.where(tiny, code, status)

    # -- output ---------------------------------------------------------------------------
    def run(self) -> Solution:
        if not self.adaptive:
            t, u = self.run_fixed()
        elif self.per_member:
            t, u = self.run_adaptive_per_member()
        else:
            t, u = self.run_adaptive_shared()
        if self.progress is not None:
            self.progress.close()
        codes, message = self.retcodes(u)
        stats = dict(self.rhs.stats, nsteps=self.nsteps, naccepted=self.naccepted, nrejected=self.nrejected)
        options = dict(rtol=self.opts.rtol, atol=self.opts.atol, dt=self.opts.dt, adaptive=self.adaptive,
                       stepping="per_member" if self.per_member else "shared", max_steps=self.opts.max_steps)
        return Solution(self.problem, t.detach().clone() if t.requires_grad else t, u, codes, message, stats,
                        solver=self.solver, options=options, interpolator=self.interpolator(),
                        member_stats=getattr(self, "member_stats", None))


def integrate(problem: ODEProblem, solver: Solver, opts: LoopOptions) -> Solution:
    """Run the loop: the one place where steps are taken, saved and checked."""
    return _Integration(problem, solver, opts).run()
