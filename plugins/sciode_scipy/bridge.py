"""Solvers that hand a sciode Problem to ``scipy.integrate.solve_ivp``, member by member.

They bring their own loop (``owns_loop``): ``run`` solves each member with scipy's
LSODA, BDF or Radau in float64 NumPy and assembles an ordinary ``sciode.Solution``
(per-member retcodes, summed stats, dense output from scipy's interpolants). Forward
only: asking for gradients raises ``NotDifferentiableError`` naming the alternatives.

scipy controls its own steps: ``max_steps``, ``norm``, ``controller`` and ``stepping`` do
not apply (members are always solved independently); ``dt`` becomes scipy's first_step and
solve's ``max_step`` bounds scipy's steps; ``events``, ``tstops`` and ``min_step`` are refused.
Stats: ``nlinsolve`` counts scipy's LU factorizations (``nlu``), ``nrejected`` is not
reported by scipy (0), and ``nsteps`` counts accepted steps.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.integrate import solve_ivp

import sciode
from sciode import LoopOptions, NotDifferentiableError, ProblemError, ReturnCode, Solution, Solver

from .member import MemberFunctions

DIFFERENTIABLE_ALTERNATIVES = ("rodas4, implicit_euler or trapezoid for stiff problems, tsit5 or dopri5 otherwise, "
                               "with sensealg=None (backprop), 'adjoint' or 'checkpointed'")


def _failure_code(message: str) -> ReturnCode:
    text = message.lower()
    if "step size" in text or "spacing between numbers" in text:
        return ReturnCode.DT_TOO_SMALL
    return ReturnCode.FAILURE


class ScipySolver(Solver):
    """Base class: subclasses set ``name`` and ``method`` (a solve_ivp method name)."""

    method: ClassVar[str]
    owns_loop = True
    adaptive = True
    dense_output = True
    differentiable = False
    order = 5

    def __init__(self, max_step: float = math.inf, first_step: float | None = None) -> None:
        if not isinstance(max_step, (int, float)) or isinstance(max_step, bool) or not max_step > 0:
            raise ProblemError(f"max_step must be a positive number; got {max_step!r}")
        self.max_step, self.first_step = float(max_step), first_step

    def step(self, rhs: Any, t: Any, u: Any, dt: Any, state: Any) -> Any:
        raise ProblemError(f"solver {self.name!r} runs scipy's own loop; it has no step() for the sciode loop "
                           "(use it through sciode.solve)")

    def _check_no_gradients(self, problem: sciode.ODEProblem, sensealg: Any) -> None:
        wants = sensealg is not None or (torch.is_grad_enabled() and any(
            x.requires_grad for x in [problem.u0, *sciode.parameter_tensors(problem)]))
        if wants:
            raise NotDifferentiableError(
                f"solver {self.name!r} runs scipy.integrate.solve_ivp in NumPy and cannot give gradients "
                f"(sensealg={getattr(sensealg, 'name', sensealg)!r}, inputs requiring grad under grad mode); "
                f"use a differentiable solver instead: {DIFFERENTIABLE_ALTERNATIVES}; "
                "or call it under torch.no_grad() / with detached inputs")

    def run(self, problem: sciode.ODEProblem, options: LoopOptions, sensealg: Any) -> Solution:
        self._check_no_gradients(problem, sensealg)
        refused = [name for name, given in (("events", bool(options.events)), ("tstops", options.tstops is not None),
                                            ("min_step", options.min_step is not None)) if given]
        if refused:
            raise ProblemError(f"{', '.join(refused)}: not available with the scipy bridge solver {self.name!r}; "
                               "use a sciode solver (e.g. 'rodas4' for stiff problems)")
        max_step = self.max_step if options.max_step is None else min(self.max_step, options.max_step)
        batch, n = problem.batch_shape, problem.state_size
        members = int(np.prod(batch)) if batch else 1
        t0, t1 = problem.tspan
        t_eval = None if options.saveat is None else options.saveat.detach().cpu().double().numpy()
        u0 = problem.u0.detach().reshape(members, n).cpu().double().numpy()
        kwargs: dict[str, Any] = dict(method=self.method, rtol=options.rtol, atol=options.atol, max_step=max_step,
                                      dense_output=True, t_eval=t_eval)
        if self.first_step is not None or options.dt is not None:
            kwargs["first_step"] = self.first_step if self.first_step is not None else options.dt
        results, codes, notes = [], [], []
        stats = dict(nfe=0, njac=0, nlinsolve=0, nsteps=0, naccepted=0, nrejected=0)
        for i in range(members):
            fns = MemberFunctions(problem, i)
            jac = fns.jac()
            extra = {} if jac is None else {"jac": jac}
            res = solve_ivp(fns.f, (t0, t1), u0[i], **kwargs, **extra)
            steps = len(res.sol.ts) - 1 if res.sol is not None else max(len(res.t) - 1, 0)
            stats["nfe"] += int(res.nfev)
            stats["njac"] += int(res.njev)
            stats["nlinsolve"] += int(res.nlu)
            stats["nsteps"] += steps
            stats["naccepted"] += steps
            if res.status == 0 and np.isfinite(res.y).all():
                code = ReturnCode.SUCCESS
            elif not np.isfinite(res.y).all():
                code = ReturnCode.UNSTABLE
            else:
                code = _failure_code(res.message)
            codes.append(int(code))
            if code is not ReturnCode.SUCCESS:
                last = float(res.t[-1]) if res.t.size else t0
                notes.append((i, code, last, res.message))
            results.append(res)
        return self._assemble(problem, options, results, codes, notes, stats, t_eval)

    def _assemble(self, problem: sciode.ODEProblem, options: LoopOptions, results: list, codes: list[int],
                  notes: list, stats: dict, t_eval: np.ndarray | None) -> Solution:
        batch, n = problem.batch_shape, problem.state_size
        dtype, device = problem.u0.dtype, problem.u0.device
        if t_eval is None:  # every accepted step (of any member, for a batch)
            times = np.unique(np.concatenate([r.sol.ts if r.sol is not None else r.t for r in results]))
            times = times if problem.direction > 0 else times[::-1]
        else:
            times = t_eval
        values = np.stack([self._member_values(r, times, t_eval is None) for r in results], axis=1)  # (T, M, n)
        t = torch.as_tensor(times.copy(), dtype=dtype, device=device)
        u = torch.as_tensor(values, dtype=dtype, device=device).reshape((len(times),) + batch + (n,))
        retcodes = torch.tensor(codes, dtype=torch.int8, device=device).reshape(batch)
        message = self._message(notes, len(results), stats["nsteps"], problem.tspan[1], batch)
        interpolator = self._interpolator(problem, results) if options.dense else None
        opts = dict(rtol=options.rtol, atol=options.atol, dt=options.dt, adaptive=True, stepping="per_member",
                    max_steps=options.max_steps, backend=f"scipy.integrate.solve_ivp({self.method})")
        return Solution(problem, t, u, retcodes, message, stats, solver=self, options=opts, interpolator=interpolator)

    @staticmethod
    def _member_values(res: Any, times: np.ndarray, dense: bool) -> np.ndarray:
        """The member at ``times``; NaN where its solve did not reach."""
        out = np.full((len(times), res.y.shape[0]), np.nan)
        if dense:
            if res.sol is None:
                return out
            lo, hi = min(res.sol.t_min, res.sol.t_max), max(res.sol.t_min, res.sol.t_max)
            inside = (times >= lo) & (times <= hi)
            if inside.any():
                out[inside] = res.sol(times[inside]).T
            return out
        out[: res.y.shape[1]] = res.y.T  # t_eval points are filled in order up to where it stopped
        return out

    def _message(self, notes: list, members: int, nsteps: int, t1: float, batch: torch.Size) -> str:
        if not notes:
            return f"solved to t1 = {t1:g} by scipy solve_ivp({self.method}) in {nsteps} steps over {members} member(s)"
        i, code, last, text = notes[0]
        where = f"member {tuple(int(k) for k in np.unravel_index(i, tuple(batch)))}" if batch else "the system"
        others = f"; {len(notes)} of {members} members failed" if members > 1 else ""
        return f"{ReturnCode(code).name}: {where} stopped at t = {last:.6g}: scipy {self.method}: {text}{others}"

    @staticmethod
    def _interpolator(problem: sciode.ODEProblem, results: list) -> Any:
        batch, n = problem.batch_shape, problem.state_size
        dtype, device = problem.u0.dtype, problem.u0.device
        lo, hi = min(problem.tspan), max(problem.tspan)

        def evaluate(times: torch.Tensor) -> torch.Tensor:
            ts = times.detach().cpu().double().numpy()
            slack = 1e-12 * max(1.0, abs(lo), abs(hi))
            if ts.min() < lo - slack or ts.max() > hi + slack:
                raise ProblemError(f"t must lie within tspan {problem.tspan} for dense output; "
                                   f"got [{ts.min()}, {ts.max()}]")
            values = np.stack([ScipySolver._member_values(r, ts, True) for r in results], axis=1)
            return torch.as_tensor(values, dtype=dtype, device=device).reshape((len(ts),) + batch + (n,))

        return evaluate
