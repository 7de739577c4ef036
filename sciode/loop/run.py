"""The integration loop: one body for every stepping mode, composed of the loop's parts.

    clock      where each member is, how far the next step goes, what an accepted step commits
    controller accept/reject and the next step size (inside the clock's ``propose``)
    events     sign changes located on the step's interpolant; terminal ones land the clock
    saver      every step / saveat / dense records
    state      one ``LoopState`` that all of them read and write

Sensitivity algorithms call :func:`integrate` too (the adjoint's augmented state, the
checkpointed replay through ``LoopOptions.on_step``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import ProblemError
from ..problems import ODEProblem
from ..retcode import ReturnCode
from ..solution import Solution
from ..solver import RHS, Solver
from .attempt import make_attempt
from .clock import make_clock, tree_where
from .compaction import make_compactor
from .events import EventTracker, event_time_gradients
from .options import LoopOptions
from .outcome import final_codes, message
from .progress import Progress
from .saver import Saver
from .state import RUNNING

__all__ = ["integrate"]


def _check_f_output(value: Any, u0: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise ProblemError(f"f must return a tensor shaped like u0 {tuple(u0.shape)}; "
                           f"it returned {type(value).__name__}")
    if value.shape != u0.shape:
        raise ProblemError(f"f returned shape {tuple(value.shape)}; expected the shape of u0, {tuple(u0.shape)}")
    if value.dtype != u0.dtype:
        raise ProblemError(f"f returned dtype {value.dtype}; expected u0's dtype {u0.dtype}")
    if value.device != u0.device:
        raise ProblemError(f"f returned a tensor on {value.device}; expected u0's device {u0.device}")


def integrate(problem: ODEProblem, solver: Solver, opts: LoopOptions) -> Solution:
    """Run the loop: the one place where steps are taken, saved and checked."""
    rhs = RHS(problem, opts.rtol, opts.atol, None)
    clock = make_clock(problem, solver, opts, rhs)
    if opts.jump is not None and clock.per_member:
        raise ProblemError("LoopOptions.jump needs a clock shared by the batch: per-member clocks reach a tstop "
                           "at different passes")
    rhs.norm = clock.batch_norm_fn(None)
    saver = Saver(problem, solver, opts.saveat, clock.per_member, opts.dense and solver.dense_output, opts.chunk_size)
    u0 = problem.u0
    t0 = clock.initial_time()
    attempt = make_attempt(clock, solver, rhs, opts)
    f0 = attempt.evaluate(t0, u0)
    _check_f_output(f0, u0)
    st = clock.start(t0, u0, f0, solver.init(rhs, t0, u0, f0), attempt.evaluate)
    events = EventTracker(opts.events, problem, solver, rhs, clock) if opts.events else None
    if events is not None:
        events.start(t0, u0)
    saver.start(u0)
    if saver.member_saves is not None:
        clock.ride(saver.member_saves)
    progress = Progress(opts.progress, problem.tspan, getattr(solver, "name", "solve"))
    compactor = make_compactor(opts, solver, problem, clock, rhs, saver, st.solver_state)
    ran_out = False
    while clock.running(st):
        if st.iterations >= opts.max_steps:
            ran_out = True
            break
        if compactor is not None:
            st = compactor(st)
        if attempt.block(st, saver, opts.max_steps - st.iterations):
            progress.update(st.t, clock.direction)
            continue
        step, last, target = clock.clamp(st)
        t, res, err, nonfinite = attempt(st, step)
        accepted = clock.accept(err, st)
        if events is not None and accepted is not False:
            accepted = events.check(st, t, step, res, accepted, last, target)
        st.iterations += 1
        st.member_evaluations += st.status.numel()
        if accepted is True or (accepted is not False and bool(accepted.any())):
            everyone = None if not clock.per_member else accepted
            if opts.on_step is not None:
                opts.on_step(t, step, st.u, st.solver_state, everyone)
            u_start = st.u
            clock.commit(st, accepted, res, step, last, target)
            h = step if not clock.per_member else torch.where(accepted, step, 0.0)
            saver.record(t, h, u_start, st.u, res.dense, clock.reported_time(st, last, target))
            if clock.restarted is not False:
                if opts.jump is not None:
                    st.u = opts.jump(target, st.u)
                _restart(solver, rhs, clock, st, attempt.evaluate)
            if events is not None and events.terminated is not None:
                if clock.per_member:
                    code = torch.tensor(ReturnCode.TERMINATED.value, dtype=torch.int8, device=st.status.device)
                    st.status = torch.where(events.terminated & (st.status == RUNNING), code, st.status)
                else:
                    clock.stop_all(st, ReturnCode.TERMINATED)
                events.terminated = None
        clock.propose(st, step, err, accepted, nonfinite)
        progress.update(st.t, clock.direction)
    attempt.finish()
    progress.close()
    if compactor is not None:
        st = compactor.finish(st)
    if not clock.adaptive:
        clock.check_members(st)
    return _solution(problem, solver, opts, clock, saver, events, st, rhs, ran_out, attempt.compile_time)


def _restart(solver: Solver, rhs: RHS, clock: Any, st: Any,
             evaluate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """After a tstop the solver starts afresh (f may jump there): its state from f at the new start."""
    t = st.t if isinstance(st.t, torch.Tensor) else torch.tensor(st.t, dtype=clock.time_dtype, device=clock.device)
    fresh = solver.init(rhs, t, st.u, evaluate(t, st.u))
    st.solver_state = fresh if clock.restarted is True else tree_where(clock.restarted, fresh, st.solver_state)
    clock.restarted = False


def _solution(problem: ODEProblem, solver: Solver, opts: LoopOptions, clock: Any, saver: Saver,
              events: EventTracker | None, st: Any, rhs: RHS, ran_out: bool, compile_time: float | None) -> Solution:
    codes = final_codes(st, ran_out)
    stop_times = clock.stop_times(st)
    stop_times = stop_times.reshape(problem.batch_shape) if stop_times.ndim else stop_times.expand(problem.batch_shape)
    frozen = st.frozen_members
    stopped = torch.where(frozen, stop_times, torch.nan) if bool(frozen.any()) and not clock.per_member else None
    t, u = saver.trajectory(problem.u0, stopped)
    text = message(codes, stop_times, clock.t1, st.iterations, opts.max_steps,
                   getattr(solver, "failure_note", ""), clock.adaptive,
                   sorted(events.terminal_names) if events is not None else [])
    stats = dict(rhs.stats, iterations=st.iterations, member_evaluations=st.member_evaluations)
    if compile_time is not None:
        stats["compile_time"] = compile_time
    member_stats = None
    if clock.per_member:  # step counts are summed over members; iterations counts the loop's passes
        stats.update(naccepted=int(st.accepted.sum()), nrejected=int(st.rejected.sum()))
        member_stats = {"naccepted": st.accepted.clone(), "nrejected": st.rejected.clone(),
                        "nsteps": st.accepted + st.rejected}
    else:
        stats.update(naccepted=st.accepted, nrejected=st.rejected)
    stats["nsteps"] = stats["naccepted"] + stats["nrejected"]
    options = dict(rtol=opts.rtol, atol=opts.atol, dt=opts.dt, adaptive=clock.adaptive,
                   stepping="per_member" if clock.per_member else "shared", max_steps=opts.max_steps)
    records = {}
    if events is not None:
        records = event_time_gradients(events.finish(problem.u0), events.events, problem)
    return Solution(problem, t.detach().clone() if t.requires_grad else t, u, codes, text, stats,
                    solver=solver, options=options, interpolator=saver.interpolator(stopped),
                    member_stats=member_stats, events=records)
