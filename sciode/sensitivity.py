"""The Sensitivity interface: how gradients flow through a solve.

``solve`` hands the validated problem, solver and loop options to the
Sensitivity, which returns a Solution whose tensors carry gradients to ``u0``,
``p`` and the parameters of ``f`` in whatever way it chooses (autograd through
the loop, a continuous adjoint, checkpointed recomputation, ...). Sensitivities
call :func:`sciode.loop.integrate` to run the forward pass.
"""
from __future__ import annotations

from typing import Any, ClassVar

from .loop import LoopOptions
from .problems import ODEProblem
from .solution import Solution
from .solver import Solver, constructor_options

__all__ = ["Sensitivity"]


class Sensitivity:
    """Base class of sensitivity plugins; subclasses set ``name`` and implement ``solve``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    def solve(self, problem: ODEProblem, solver: Solver, options: LoopOptions) -> Solution:
        raise NotImplementedError

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """Names of the keyword options the sensitivity's constructor takes."""
        return constructor_options(cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def describe(self) -> dict[str, Any]:
        return dict(name=self.name, summary=self.summary, reference=self.reference)
