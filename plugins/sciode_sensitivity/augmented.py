"""The adjoint's augmented system [u, a, a_p] packed into one flat tensor.

The core loop integrates a tensor state, so the backward pass packs the state
``u``, its adjoint ``a = dL/du`` and the parameter adjoint ``a_p`` (one flat
vector over every parameter) into a single 1-D tensor and unpacks views of it in
the vector field. ``AugmentedField`` evaluates

    du/dt = f(u, p, t),   da/dt = -a^T df/du,   da_p/dt = -a^T df/dp

with one f evaluation and one ``torch.autograd.grad`` per call.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Packing", "AugmentedField", "channel_norm"]


class Packing:
    """Layout of [u, a, a_p] in one flat tensor: u and a shaped like the state, a_p per parameter."""

    def __init__(self, state_shape: torch.Size, param_shapes: list[torch.Size]) -> None:
        self.state_shape = torch.Size(state_shape)
        self.param_shapes = [torch.Size(s) for s in param_shapes]
        self.n_state = math.prod(self.state_shape)
        self.param_sizes = [math.prod(s) for s in self.param_shapes]
        self.n_params = sum(self.param_sizes)
        self.size = 2 * self.n_state + self.n_params

    def pack(self, u: torch.Tensor, a: torch.Tensor, a_p: list[torch.Tensor | None]) -> torch.Tensor:
        parts = [u.reshape(-1), a.reshape(-1)]
        parts += [(torch.zeros(n, dtype=u.dtype, device=u.device) if g is None else g.reshape(-1))
                  for g, n in zip(a_p, self.param_sizes)]
        return torch.cat(parts)

    def unpack(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        n = self.n_state
        u = y[:n].view(self.state_shape)
        a = y[n:2 * n].view(self.state_shape)
        flat = y[2 * n:].split(self.param_sizes) if self.param_sizes else ()
        return u, a, [g.view(s) for g, s in zip(flat, self.param_shapes)]


def channel_norm(packing: Packing, seminorm: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Mixed RMS norm: the largest RMS over the channels u, a and each parameter's adjoint.

    Each parameter tensor is its own channel (as in torchdiffeq's adjoint), so a large
    weight matrix does not drown a bias. With ``seminorm`` the parameter adjoints take
    no part in step-size control (Kidger, Chen & Lyons 2021): a_p is a pure quadrature,
    its error never feeds back into u or a, so the backward pass takes fewer steps.
    """
    n = packing.n_state
    sizes = packing.param_sizes if not seminorm else []

    def norm(x: torch.Tensor) -> torch.Tensor:
        sq = x.square()
        value = torch.maximum(sq[:n].mean(), sq[n:2 * n].mean())
        if sizes:
            means = torch.stack([chunk.mean() for chunk in sq[2 * n:].split(sizes)])
            value = torch.maximum(value, means.max())
        return value.sqrt()

    return norm


class AugmentedField:
    """The augmented vector field, called by the loop as f(y, p, t) on the packed state.

    ``params`` are the tensors to differentiate against: detached leaves of ``p``
    (found in the tree ``p`` by identity) and nn.Module parameters of ``f``. The
    default evaluation takes its VJPs with ``torch.autograd.grad`` (the fastest path).
    Solvers that push torch.func transforms through the vector field (implicit and
    Rosenbrock solvers build Jacobians with vmap/jvp, which cannot wrap
    ``autograd.grad``) get the same field with ``torch.func.vjp`` after
    :meth:`use_functional` (the adjoint switches on the first such failure).
    """

    def __init__(self, f: Callable[..., torch.Tensor], p: Any, params: list[torch.Tensor], packing: Packing) -> None:
        self.f, self.p, self.params, self.packing = f, p, params, packing
        self.functional = False

    def use_functional(self) -> None:
        self.functional = True
        from .trees import float_leaves

        p_ids = {id(x) for x in float_leaves(self.p)}
        module = self.f if isinstance(self.f, torch.nn.Module) else None
        names = {id(x): n for n, x in module.named_parameters()} if module is not None else {}
        self._slots = []
        for x in self.params:
            if id(x) in p_ids:
                self._slots.append(("p", id(x)))
            elif id(x) in names:
                self._slots.append(("module", names[id(x)]))
            else:
                raise TypeError("a parameter of f is neither a leaf of p nor a parameter of the nn.Module f; "
                                "the functional adjoint field cannot substitute it")

    def _call_with(self, u: torch.Tensor, values: tuple[torch.Tensor, ...], t: torch.Tensor) -> torch.Tensor:
        from .trees import map_float_leaves

        by_id = {key: v for (kind, key), v in zip(self._slots, values) if kind == "p"}
        p = map_float_leaves(self.p, lambda x: by_id.get(id(x), x))
        named = {key: v for (kind, key), v in zip(self._slots, values) if kind == "module"}
        if named:
            return torch.func.functional_call(self.f, named, (u, p, t), strict=False)
        return self.f(u, p, t)

    def __call__(self, y: torch.Tensor, _: Any, t: torch.Tensor) -> torch.Tensor:
        u, a, _ap = self.packing.unpack(y)
        if self.functional:
            fu, vjp = torch.func.vjp(lambda uu, *vals: self._call_with(uu, vals, t), u, *self.params)
            grads = vjp(-a)
            return self.packing.pack(fu, grads[0], list(grads[1:]))
        with torch.enable_grad():
            u = u.detach().requires_grad_(True)
            fu = self.f(u, self.p, t)
            if fu.requires_grad:
                grads = torch.autograd.grad(fu, [u, *self.params], -a, allow_unused=True)
            else:  # f depends on neither u nor the parameters
                grads = [None] * (1 + len(self.params))
        da = grads[0] if grads[0] is not None else torch.zeros_like(a)
        return self.packing.pack(fu.detach(), da, list(grads[1:]))
