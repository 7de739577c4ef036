"""``adjoint``: Chen et al.'s continuous adjoint (backsolve), O(1) memory in the number of steps.

Forward: the core loop under no_grad. Backward: from the last output time to t0,
integrate the augmented system [u, a, a_p] (see ``augmented.py``) backwards in
time with any registered solver, in one solve whose tstops are the output times in
between; at each of them u is reset to the stored forward value and the incoming
gradient dL/du(t_k) is added to a (the adjoint "jump", ``LoopOptions.jump``), so
losses on a whole ``saveat`` trajectory work. Output times whose incoming gradient
is exactly zero are stepped over without stopping. The result is the gradient of the
continuous problem, accurate to the backward solve's tolerance (not the exact
gradient of the discrete forward solution: use ``checkpointed`` for that).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

import sciode
from sciode.validation import positive_int, positive_number

from .augmented import AugmentedField, Packing, channel_norm
from .bridge import bridged_solve, zero_fill
from .inputs import DifferentiableInputs

__all__ = ["Adjoint"]

#: steps the core loop buffers before interpolating saveat values; the backward solve
#: only needs its end value, so a small buffer keeps the backward pass's memory flat
#: (the loop's default of 64 augmented states with their stages would dominate it)
BACKWARD_CHUNK = 8


class Adjoint(sciode.Sensitivity):
    """Continuous adjoint sensitivity (backsolve) with optional seminorm step control.

    solver: the backward solver (a registered name or a Solver instance); default:
        the forward's solver. ``solver_options`` are passed to a named solver.
    rtol, atol: the backward solve's tolerances (default: the forward's).
    dt: the backward step for fixed-step solvers (default: the forward's dt).
    seminorm: leave the parameter adjoint out of the error norm (Kidger et al. 2021).
    max_steps: step limit of the backward solve (default: the forward's).
    """

    name = "adjoint"
    summary = "Continuous adjoint (backsolve): augmented system solved backwards; O(1) memory; seminorm option."
    reference = ("Chen, Rubanova, Bettencourt & Duvenaud, Neural ODEs, NeurIPS 2018; "
                 "Kidger, Chen & Lyons, 'Hey, that's not an ODE', ICML 2021 (seminorm)")

    def __init__(self, *, solver: str | sciode.Solver | None = None, rtol: float | None = None,
                 atol: float | None = None, dt: float | None = None, seminorm: bool = False,
                 max_steps: int | None = None, solver_options: dict[str, Any] | None = None) -> None:
        if solver is not None and not isinstance(solver, (str, sciode.Solver)):
            raise sciode.ProblemError("adjoint solver must be None, a registered solver name or a Solver instance; "
                                      f"got {type(solver).__name__}")
        if solver_options and not isinstance(solver, str):
            raise sciode.ProblemError("adjoint solver_options are only taken with a solver name; "
                                      "configure an instance directly")
        if not isinstance(seminorm, bool):
            raise sciode.ProblemError(f"adjoint seminorm must be True or False; got {seminorm!r}")
        max_steps = positive_int(max_steps, "adjoint max_steps", allow_none=True)
        self.rtol = positive_number(rtol, "adjoint rtol", allow_none=True)
        self.atol = positive_number(atol, "adjoint atol", allow_none=True)
        self.dt = positive_number(dt, "adjoint dt", allow_none=True)
        self.seminorm, self.max_steps = seminorm, max_steps
        self.backward_solver: sciode.Solver | None
        if isinstance(solver, str):
            cls = sciode.lookup("solver", solver, "adjoint solver")
            unknown = sorted(set(solver_options or {}) - set(cls.options()))
            if unknown:
                raise sciode.ProblemError(f"adjoint solver {solver!r} does not take option(s) {unknown}; "
                                          f"it accepts {list(cls.options())}")
            self.backward_solver = cls(**(solver_options or {}))
        else:
            self.backward_solver = solver

    def solve(self, problem: sciode.ODEProblem, solver: sciode.Solver, options: sciode.LoopOptions) -> sciode.Solution:
        if options.events and DifferentiableInputs.of(problem).any_requires_grad():
            raise sciode.ProblemError("sensealg 'adjoint' does not differentiate event times or states: the backward "
                                      "solve would have to start at each event; use sensealg='checkpointed' (exact, "
                                      "bounded memory) or 'backprop'")
        back = self.backward_solver or solver
        if sciode.ODEProblem not in back.problem_types:
            raise sciode.ProblemError(f"adjoint: the backward solver {back.name!r} cannot solve the augmented "
                                      "first-order system; pass Adjoint(solver=...) with a first-order ODE solver")
        adaptive = back.adaptive and (options.adaptive or self.backward_solver is not None)
        dt = self.dt if self.dt is not None else options.dt
        if not adaptive and dt is None:
            raise sciode.ProblemError(f"adjoint: the backward solver {back.name!r} steps at a fixed dt; "
                                      "pass Adjoint(dt=...)")
        inputs = DifferentiableInputs.of(problem)
        return bridged_solve(_AdjointRun(self, problem, solver, back, options, inputs, adaptive, dt), inputs)


@dataclasses.dataclass
class _AdjointRun:
    sens: Adjoint
    problem: sciode.ODEProblem
    solver: sciode.Solver
    back: sciode.Solver
    options: sciode.LoopOptions
    inputs: DifferentiableInputs
    adaptive: bool
    dt: float | None

    def forward(self) -> sciode.Solution:
        with torch.no_grad():
            sol = sciode.integrate(self.problem, self.solver, self.options)
        sol.stats.update(backward_nfe=0, backward_nsteps=0, backward_naccepted=0, backward_nrejected=0)
        self.stats = sol.stats  # the dict only: holding sol would make a reference cycle through autograd
        self.t = sol.t.detach()
        self.values = sol.u.detach()
        return sol

    def backward(self, grad_u: torch.Tensor, needs: tuple[bool, ...]) -> list[torch.Tensor | None]:
        all_inputs = self.inputs.all()
        p_tree, params = self.inputs.detached_p(self.problem.p)
        wrt = [i for i, x in enumerate(params) if x.requires_grad and needs[1 + i]]
        packing = Packing(self.problem.u0.shape, [params[i].shape for i in wrt])
        field = AugmentedField(self.problem.f, p_tree, [params[i] for i in wrt], packing)
        norm = channel_norm(packing, self.sens.seminorm)
        t0 = self.problem.tspan[0]
        times = self.t.tolist()
        K = len(times)
        if K == 0:
            return zero_fill([None] * len(all_inputs), all_inputs, needs)
        nonzero = grad_u.reshape(K, -1).ne(0).any(1).tolist()
        # per output time below the last: the outputs there with a nonzero incoming gradient, latest first
        outputs: dict[float, list[int]] = {}
        for j in range(K - 2, -1, -1):
            if nonzero[j]:
                outputs.setdefault(times[j], []).append(j)
        start = times[K - 1]
        u, a = self.values[K - 1], grad_u[K - 1]
        for j in outputs.pop(start, []):
            a = a + grad_u[j]
        at_t0 = outputs.pop(t0, [])
        a_p: list[torch.Tensor | None] = [None] * len(wrt)
        if start != t0:
            def jump(t: float, y: torch.Tensor) -> torch.Tensor:
                _, a_t, a_p_t = packing.unpack(y)
                for j in outputs[t]:
                    a_t = a_t + grad_u[j]
                return packing.pack(self.values[outputs[t][-1]], a_t, list(a_p_t))

            stops = sorted(outputs, reverse=start > t0)  # in the backward solve's direction of travel
            y = self._solve(field, norm, packing.pack(u, a, a_p), start, stops, jump)
            u, a, a_p = packing.unpack(y)
            a_p = list(a_p)
        for j in at_t0:
            a = a + grad_u[j]
        grads: list[torch.Tensor | None] = [a] + [None] * (len(all_inputs) - 1)
        for k, g in zip(wrt, a_p):  # None: no backward solve ran (outputs at t0 only), a zero gradient
            grads[1 + k] = None if g is None else g.clone()
        return zero_fill(grads, all_inputs, needs)

    def _solve(self, field: AugmentedField, norm: Any, y0: torch.Tensor, t_start: float, stops: list[float],
               jump: Callable[[float, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Integrate the augmented system from the last output time to t0: one solve, whose tstops are the
        output times in between (``jump`` applies the adjoint jump at each), so its set-up, first step
        size and f(t0, y0) are paid once, not once per output interval. Returns the state at t0."""
        opts = self.options
        t_end = self.problem.tspan[0]
        end = torch.tensor([t_end], dtype=y0.dtype, device=y0.device)
        first = None if self.adaptive else min(self.dt, abs(t_end - t_start))
        if opts.compile is not None and not field.functional:
            field.use_functional()  # torch.compile traces torch.func.vjp; autograd.grad would break the graph
        loop = sciode.LoopOptions(saveat=end, dt=first, rtol=self.sens.rtol or opts.rtol,
                                  atol=self.sens.atol or opts.atol, max_steps=self.sens.max_steps or opts.max_steps,
                                  dense=False, norm=norm, controller=opts.controller, adaptive=self.adaptive,
                                  chunk_size=BACKWARD_CHUNK, tstops=stops or None, jump=jump, compile=opts.compile)
        try:
            sol = sciode.integrate(sciode.ODEProblem(field, y0, (t_start, t_end)), self.back, loop)
        except (sciode.ProblemError, RuntimeError):
            if field.functional:
                raise
            field.use_functional()  # the solver transforms f with torch.func (e.g. a Jacobian by vmap/jvp)
            sol = sciode.integrate(sciode.ODEProblem(field, y0, (t_start, t_end)), self.back, loop)
        s = self.stats
        s["backward_nfe"] += sol.stats["nfe"]
        s["backward_nsteps"] += sol.stats["nsteps"]
        s["backward_naccepted"] += sol.stats["naccepted"]
        s["backward_nrejected"] += sol.stats["nrejected"]
        if not sol.successful or sol.u.shape[0] == 0:
            raise sciode.SciodeError(f"adjoint backward solve from t = {t_start:g} to {t_end:g} failed: {sol.message}")
        return sol.u[-1]
