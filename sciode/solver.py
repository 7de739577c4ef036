"""The Solver interface: a solver owns one step; the core loop owns everything else.

The loop calls ``init`` once and ``step`` repeatedly. Time arguments are tensors
shaped like the members' clocks (0-d when the batch shares one step, ``(*batch, 1)``
when members step independently); ``dt`` is a Python float whenever the batch
shares one step (fixed-step runs and shared adaptive runs) and a tensor like ``t``
with per-member stepping, so a solver's arithmetic must accept both.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import torch

from .problems import ODEProblem

__all__ = ["Solver", "StepResult", "RHS"]


class StepResult(NamedTuple):
    """What one step returns.

    u:     the state at t + dt.
    error: a raw local error estimate shaped like ``u`` (the loop scales it by the
           tolerances and takes the norm), or None for solvers without one. A step
           that could not be computed (e.g. Newton did not converge) puts ``inf``
           in the failing members' entries; the loop then rejects and shrinks.
    state: the solver state after the step (kept only if the step is accepted).
    dense: what ``interpolate`` needs for this step (a tuple of tensors whose
           leading dims are the member dims), or None.
    """

    u: torch.Tensor
    error: torch.Tensor | None
    state: Any
    dense: Any


@dataclasses.dataclass
class RHS:
    """The problem's vector field as the loop and the solvers call it: ``rhs(t, u)``.

    Counts evaluations and carries what solvers may need besides f: the problem,
    its parameters, the tolerances and the error norm (for Newton convergence
    tests), and counters (``nfe``, ``njac``, ``nlinsolve``, ``nkrylov``: Krylov iterations of
    matrix-free linear solves) that solvers increment.
    """

    problem: ODEProblem
    rtol: float
    atol: float
    norm: Any
    nfe: int = 0
    njac: int = 0
    nlinsolve: int = 0
    nkrylov: int = 0
    #: when the batch shares one step, the times t + c*dt for the solver's ``stage_fractions``
    #: at the current step, built by the loop in one op (saves tensor ops per step); else None
    stage_times: tuple[torch.Tensor, ...] | None = None

    def __post_init__(self) -> None:
        self.f = self.problem.f
        self.p = self.problem.p

    def __call__(self, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.f(u, self.p, t)

    @property
    def stats(self) -> dict[str, int]:
        return dict(nfe=self.nfe, njac=self.njac, nlinsolve=self.nlinsolve, nkrylov=self.nkrylov)

    def error_norm(self, error: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor) -> torch.Tensor:
        """Scaled norm of an error estimate, one value per member (shape of the clock)."""
        scale = torch.maximum(u0.abs(), u1.abs()).mul_(self.rtol).add_(self.atol)
        return self.norm(error / scale)


@functools.cache
def constructor_options(cls: type) -> tuple[str, ...]:
    """Keyword names a plugin class's constructor accepts (its options), cached per class."""
    import inspect

    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in params if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


class Solver:
    """Base class of every solver plugin.

    Subclasses set ``name`` (the registry key), ``order``, ``adaptive`` and
    ``dense_output``, and implement ``step``; ``init`` and ``interpolate`` have
    sensible defaults. Constructor keyword arguments are the solver's options
    (``solve(..., **solver_options)`` passes them); ``options()`` lists them.
    """

    name: ClassVar[str] = ""
    order: ClassVar[int] = 0
    error_order: ClassVar[int | None] = None
    adaptive: ClassVar[bool] = False
    dense_output: ClassVar[bool] = True
    problem_types: ClassVar[tuple[type, ...]] = (ODEProblem,)
    #: True for solvers whose arithmetic is valid for complex states (norms are taken on abs)
    supports_complex: ClassVar[bool] = False
    #: (beta1, beta2) of the PI step-size controller when ``solve`` is given none (``sciode.PIController``):
    #: OrdinaryDiffEq.jl's general choice; a method whose authors published their own carries theirs
    pi_coefficients: ClassVar[tuple[float, float]] = (0.7, 0.4)
    #: True when the step is differentiable by autograd (the backprop default).
    differentiable: ClassVar[bool] = True
    #: fractions c of the step at which ``step`` evaluates f; with a shared clock the loop
    #: builds those times in one op and hands them over as ``rhs.stage_times``
    stage_fractions: ClassVar[tuple[float, ...]] = ()
    #: True for solvers that bring their own integration loop (e.g. a bridge to scipy or
    #: torchsde): ``solve`` then calls ``run(problem, options, sensealg)`` instead of the core loop
    owns_loop: ClassVar[bool] = False
    #: True for solvers that handle ``ODEProblem(mass_matrix=...)`` (M du/dt = f, DAEs)
    supports_mass_matrix: ClassVar[bool] = False
    #: False for solvers whose compiled steps must not be fused into ``compile=True``'s blocks of
    #: several steps (``sciode/loop/compiled.py``): each step then stays one graph of its own
    compiled_blocks: ClassVar[bool] = True
    #: a solver may set this (per instance) to say why its last step failed, e.g. which
    #: member's Newton iteration diverged; the loop appends it to a failed solve's message
    failure_note: str = ""
    #: short description and citation, shown by ``sciode plugins`` and the docs
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    def init(self, rhs: RHS, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor | None) -> Any:
        """Solver state before the first step; ``f0`` is f(t0, u0) when the loop has it."""
        return f0

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        raise NotImplementedError

    def run(self, problem: ODEProblem, options: Any, sensealg: Any) -> Any:
        """Solve the whole problem (only for ``owns_loop`` solvers); returns a Solution."""
        raise NotImplementedError(f"solver {self.name!r} uses the core loop; it has no run()")

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        """u(t + theta*h) within an accepted step. Default: linear between the ends."""
        return torch.lerp(u0, u1, theta)

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """Names of the keyword options the solver's constructor takes."""
        return constructor_options(cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
