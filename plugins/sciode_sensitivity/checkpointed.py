"""``checkpointed``: exact discrete gradients with memory bounded by checkpoints.

Forward: the core loop under no_grad with a :class:`StepLog` on ``on_step``,
keeping (t, dt) of every accepted step and the state (u, solver state) at the
start of every step, or of at most ``n_checkpoints`` steps. Backward, segment by
segment from the end: recompute the segment's step-start states under no_grad
from its checkpoint (skipped when every step is stored), then walk its steps
backwards, replaying one step at a time with autograd on (``solver.step`` with
the recorded t, dt and state gives the same numbers as the forward) and
backpropagating through it, and through the outputs that step produced (see
``outputs.py``). The solver state is an input and an output of each replayed step,
so FSAL stages, multistep history and cached Jacobians carry their adjoints like
u does: the result equals ``backprop``'s gradient up to summation order.
Memory: the stored states + one segment's step-start states (no graph) + one
step's graph. Work: one extra forward (with ``n_checkpoints``: two) + backward.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

import sciode
from sciode.loop import event_state
from sciode.validation import positive_int

from .bridge import bridged_solve, zero_fill
from .inputs import DifferentiableInputs
from .outputs import OutputRef, assign_outputs
from .steplog import StepLog, fixed_step_count
from .trees import float_leaves, map_float_leaves, replace_float_leaves

__all__ = ["Checkpointed"]


class Checkpointed(sciode.Sensitivity):
    """Recompute-and-backpropagate sensitivity: the exact discrete gradient in bounded memory.

    n_checkpoints: None stores the state at every accepted step (backward: one
    replay per step); an int K stores at most K states and recomputes the steps
    between them (memory ~ K + N/K states + one step's graph).
    """

    name = "checkpointed"
    summary = ("Stores states at checkpoints, replays steps with autograd in backward: exact discrete gradient, "
               "bounded memory.")
    reference = "Griewank & Walther, Algorithm 799: revolve (2000); Gholami, Keutzer & Biros, ANODE (2019)"

    def __init__(self, *, n_checkpoints: int | None = None) -> None:
        self.n_checkpoints = positive_int(n_checkpoints, "checkpointed n_checkpoints", allow_none=True)

    def solve(self, problem: sciode.ODEProblem, solver: sciode.Solver, options: sciode.LoopOptions) -> sciode.Solution:
        if options.per_member and options.adaptive and solver.adaptive and len(problem.batch_shape) > 0:
            raise sciode.ProblemError(
                "sensealg 'checkpointed' does not support stepping='per_member': each member takes its own step "
                "sequence, so a replayed iteration would have to re-apply the per-member accept masks and saveat "
                "interpolation; use stepping='shared' (members still get exact gradients) or sensealg='adjoint'")
        if not solver.differentiable:
            raise sciode.NotDifferentiableError(f"sensealg 'checkpointed' replays steps with autograd, but solver "
                                                f"{solver.name!r} is not differentiable; use sensealg='adjoint' with a "
                                                "differentiable backward solver")
        inputs = DifferentiableInputs.of(problem)
        return bridged_solve(_CheckpointedRun(self.n_checkpoints, problem, solver, options, inputs), inputs)


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().requires_grad_(True)


@dataclasses.dataclass
class _CheckpointedRun:
    n_checkpoints: int | None
    problem: sciode.ODEProblem
    solver: sciode.Solver
    options: sciode.LoopOptions
    inputs: DifferentiableInputs
    #: event states are outputs too: each is replayed in the step it occurred in
    differentiates_events = True

    def forward(self) -> sciode.Solution:
        opts = self.options
        expected = None
        if not (opts.adaptive and self.solver.adaptive) and opts.dt is not None:
            expected = fixed_step_count(*self.problem.tspan, opts.dt)
        self.log = StepLog(self.n_checkpoints, expected)
        outer = opts.on_step

        def on_step(*args: Any) -> None:
            self.log(*args)
            if outer is not None:
                outer(*args)

        with torch.no_grad():
            sol = sciode.integrate(self.problem, self.solver, dataclasses.replace(opts, on_step=on_step))
        sol.stats.update(backward_nfe=0, backward_nsteps=0, checkpoints=len(self.log.states))
        self.stats = sol.stats  # the dict only: holding sol would make a reference cycle through autograd
        self.n_out = sol.u.shape[0]
        occurrences = [o for name in sorted(sol.events) for o in sol.events[name].occurrences]
        self.event_steps: dict[int, list[tuple[int, Any]]] = {}
        for j, occ in enumerate(occurrences):
            self.event_steps.setdefault(occ.step, []).append((j, occ.theta))
        return sol

    # -- backward ---------------------------------------------------------------------------
    def backward(self, grad_u: torch.Tensor, needs: tuple[bool, ...],
                 grad_events: list[torch.Tensor] | None = None) -> list[torch.Tensor | None]:
        self.grad_events = grad_events or []
        all_inputs = self.inputs.all()
        p_tree, params = self.inputs.detached_p(self.problem.p)
        wrt = [params[i] for i, x in enumerate(params) if x.requires_grad and needs[1 + i]]
        wrt_index = [i for i, x in enumerate(params) if x.requires_grad and needs[1 + i]]
        rhs = sciode.RHS(self.problem, self.options.rtol, self.options.atol,
                         self.options.norm or (lambda x: x.square().mean().sqrt()))
        rhs.p = p_tree
        self.rhs, self.wrt, self.grad_u = rhs, wrt, grad_u
        log = self.log
        outputs = assign_outputs(log, self.problem.tspan[0], self.problem.direction, self.options.saveat, self.n_out)
        a_u = torch.zeros_like(self.problem.u0)
        a_state: list[torch.Tensor | None] | None = None
        self.param_grads: list[torch.Tensor | None] = [None] * len(wrt)
        steps = 0
        for start, stop in reversed(log.segments()):
            starts = self._segment_starts(start, stop)
            for i in range(stop - 1, start - 1, -1):
                u_i, state_i = starts[i - start]
                a_u, a_state = self._step_back(i, u_i, state_i, a_u, a_state, outputs.get(i, []))
                steps += 1
            del starts
        a_u = self._init_back(a_u, a_state)
        self.stats["backward_nfe"] += rhs.nfe
        self.stats["backward_nsteps"] += steps
        grads: list[torch.Tensor | None] = [a_u] + [None] * (len(all_inputs) - 1)
        for k, g in zip(wrt_index, self.param_grads):
            grads[1 + k] = g
        self.rhs = self.grad_u = None  # type: ignore[assignment]
        return zero_fill(grads, all_inputs, needs)

    def _segment_starts(self, start: int, stop: int) -> list[tuple[torch.Tensor, Any]]:
        """(u, solver state) at the start of each step in [start, stop), recomputed without a graph."""
        log = self.log
        u, state = log.states[start]
        out = [(u, state)]
        with torch.no_grad():
            for i in range(start, stop - 1):
                res = self.solver.step(self.rhs, log.t[i], u, log.dt[i], state)
                u, state = res.u, res.state
                out.append((u, state))
        return out

    def _accumulate(self, grads: tuple) -> None:
        for k, g in enumerate(grads):
            if g is not None:
                self.param_grads[k] = g if self.param_grads[k] is None else self.param_grads[k] + g

    def _step_back(self, i: int, u_i: torch.Tensor, state_i: Any, a_u: torch.Tensor,
                   a_state: list[torch.Tensor | None] | None, refs: list[OutputRef]) -> tuple[torch.Tensor, list]:
        """Adjoints at the start of step i from those at its end (and the outputs it produced)."""
        log, grad_u = self.log, self.grad_u
        for ref in refs:
            if ref.kind == "end":
                a_u = a_u + grad_u[ref.k]
        with torch.enable_grad():
            u_in = _leaf(u_i)
            s_in = [_leaf(x) for x in float_leaves(state_i)]
            res = self.solver.step(self.rhs, log.t[i], u_in, log.dt[i], replace_float_leaves(state_i, s_in))
            outs, couts = [res.u], [a_u]
            if a_state is not None:
                for x, g in zip(float_leaves(res.state), a_state):
                    if g is not None and x.requires_grad:
                        outs.append(x)
                        couts.append(g)
            for ref in refs:
                if ref.kind == "interp":
                    outs.append(self._interpolate(i, ref.theta, u_in, res))
                    couts.append(grad_u[ref.k])
            for j, theta in self.event_steps.get(i, []) if self.grad_events else []:
                outs.append(res.u if theta is None else self._event_state(i, theta, u_in, res))
                couts.append(self.grad_events[j])
            grads = torch.autograd.grad(outs, [u_in, *s_in, *self.wrt], couts, allow_unused=True)
        n_s = len(s_in)
        a_prev = grads[0] if grads[0] is not None else torch.zeros_like(u_i)
        for ref in refs:
            if ref.kind == "start":
                a_prev = a_prev + grad_u[ref.k]
        self._accumulate(grads[1 + n_s:])
        return a_prev, list(grads[1:1 + n_s])

    def _interpolate(self, i: int, theta: torch.Tensor, u0: torch.Tensor, res: sciode.StepResult) -> torch.Tensor:
        """The loop's saveat interpolation within step i, with the same shapes (a batch of one time)."""
        shape = (1,) * (u0.ndim + 1)
        h = torch.as_tensor(self.log.dt[i], dtype=u0.dtype, device=u0.device).reshape(shape)
        dense = map_float_leaves(res.dense, lambda x: x.unsqueeze(0))
        value = self.solver.interpolate(theta.reshape(shape), h, u0.unsqueeze(0), res.u.unsqueeze(0), dense)
        return value[0]

    def _event_state(self, i: int, theta: torch.Tensor, u0: torch.Tensor, res: sciode.StepResult) -> torch.Tensor:
        """The loop's event-state interpolation within step i, the same function the forward used."""
        t = self.log.t[i]
        h = torch.full(u0.shape[:-1] + (1,), float(self.log.dt[i]), dtype=t.dtype, device=u0.device)
        return event_state(self.solver, self.rhs, theta, t, h, u0, res)

    def _init_back(self, a_u: torch.Tensor, a_state: list[torch.Tensor | None] | None) -> torch.Tensor:
        """Backpropagate through the solver's initial state (e.g. an FSAL first stage f(t0, u0))."""
        if a_state is None or all(g is None for g in a_state) or len(self.log) == 0:
            return a_u
        t = self.log.t[0]
        with torch.enable_grad():
            u_in = _leaf(self.problem.u0)
            state = self.solver.init(self.rhs, t, u_in, self.rhs(t, u_in))
            outs, couts = [], []
            for x, g in zip(float_leaves(state), a_state):
                if g is not None and x.requires_grad:
                    outs.append(x)
                    couts.append(g)
            if not outs:
                return a_u
            grads = torch.autograd.grad(outs, [u_in, *self.wrt], couts, allow_unused=True)
        self._accumulate(grads[1:])
        return a_u if grads[0] is None else a_u + grads[0]
