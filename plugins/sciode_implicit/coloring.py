"""Colored forward-mode Jacobians: one Jacobian-vector product per color of the pattern.

The seed of color c is the sum of the unit vectors of its columns; since those columns share
no row, each entry (i, j) of the pattern is read back from product color(j) at row i. The
products run batched (``torch.func.vmap`` over ``torch.func.jvp``) when f allows it, one by one
otherwise, and through the Problem's ``jvp(u, p, t, v)`` when it gives one. The coloring is
computed once per pattern (``Pattern.coloring``).
"""
from __future__ import annotations

import torch
from torch.func import jvp, vmap

from sciode import RHS

from .pattern import Pattern

_LOOP_ATTR = "_sciode_implicit_jvp_loop"


def _seeds(pattern: Pattern, u: torch.Tensor) -> torch.Tensor:
    colors, color = pattern.coloring
    seeds = torch.zeros(colors, pattern.n, dtype=u.dtype, device=u.device)
    seeds[color.to(u.device), torch.arange(pattern.n, device=u.device)] = 1.0
    return seeds.reshape((colors,) + (1,) * (u.ndim - 1) + (pattern.n,)).expand((colors,) + u.shape)


def compressed_products(rhs: RHS, t: torch.Tensor, u: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """(colors, *batch, n): df/du @ seed for every seed."""
    user = rhs.problem.jvp
    if user is not None:
        return torch.stack([user(u, rhs.p, t, v) for v in seeds.unbind(0)])

    def product(v: torch.Tensor) -> torch.Tensor:
        return jvp(lambda x: rhs.f(x, rhs.p, t), (u,), (v,))[1]

    if not getattr(rhs, _LOOP_ATTR, False):
        try:
            return vmap(product)(seeds)
        except Exception:  # f cannot be vmapped: one product at a time
            setattr(rhs, _LOOP_ATTR, True)
    return torch.stack([product(v) for v in seeds.unbind(0)])


def colored_jacobian(rhs: RHS, t: torch.Tensor, u: torch.Tensor, pattern: Pattern,
                     create_graph: bool = False) -> torch.Tensor:
    """df/du on ``pattern``: values of shape (*batch, nnz); ``create_graph`` keeps them differentiable."""
    with torch.set_grad_enabled(create_graph):
        products = compressed_products(rhs, t, u, _seeds(pattern, u))
    _, color = pattern.coloring
    rows, cols = pattern.rows.to(u.device), pattern.cols.to(u.device)
    flat = products.movedim(0, -2).reshape(u.shape[:-1] + (-1,))  # (*batch, colors * n)
    return flat[..., color.to(u.device)[cols] * pattern.n + rows]
