"""What a sensitivity differentiates: u0, the tensors of ``p`` and f's nn.Module parameters.

``DifferentiableInputs`` splits :func:`sciode.parameter_tensors` into the leaves of
``p`` (which a sensitivity replaces by detached copies when it re-evaluates f, so
the caller's graph behind ``p`` is reached only through the autograd.Function) and
the module parameters (leaves already, used as they are).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

import sciode

from .trees import float_leaves, map_float_leaves

__all__ = ["DifferentiableInputs"]


@dataclasses.dataclass
class DifferentiableInputs:
    """u0 followed by every parameter tensor, in the order a Function receives them."""

    u0: torch.Tensor
    p_leaves: list[torch.Tensor]
    module_params: list[torch.Tensor]

    @classmethod
    def of(cls, problem: sciode.ODEProblem) -> "DifferentiableInputs":
        p_leaves = float_leaves(problem.p)
        ids = {id(x) for x in p_leaves}
        seen: set[int] = set()
        unique_p = []
        for x in p_leaves:
            if id(x) not in seen:
                seen.add(id(x))
                unique_p.append(x)
        module = [x for x in sciode.parameter_tensors(problem) if id(x) not in ids and x.is_floating_point()]
        return cls(problem.u0, unique_p, module)

    @property
    def params(self) -> list[torch.Tensor]:
        return self.p_leaves + self.module_params

    def all(self) -> list[torch.Tensor]:
        return [self.u0, *self.params]

    def any_requires_grad(self) -> bool:
        return torch.is_grad_enabled() and any(x.requires_grad for x in self.all())

    def detached_p(self, p: Any) -> tuple[Any, list[torch.Tensor]]:
        """``p`` with each tensor replaced by a detached leaf (requiring grad like the original).

        Returns the new tree and the parameter list to differentiate against, aligned
        with :attr:`params` (detached p leaves, then the module parameters).
        """
        copies: dict[int, torch.Tensor] = {id(x): x.detach().requires_grad_(x.requires_grad) for x in self.p_leaves}
        tree = map_float_leaves(p, lambda x: copies.get(id(x), x))
        return tree, [copies[id(x)] for x in self.p_leaves] + list(self.module_params)
