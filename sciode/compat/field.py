"""A peer's vector field ``func(t, y, *args)`` in sciode's ``f(u, p, t)`` form."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch

from .state import FlatState

__all__ = ["PeerField"]


class PeerField(torch.nn.Module):
    """``func(t, y, *args)`` on sciode's flat state, divided elementwise by ``scale`` when given.

    An nn.Module holding ``func`` as an attribute, so a Module ``func`` is a submodule and
    :func:`sciode.parameter_tensors` (hence every sensitivity) finds its parameters. ``owned``
    replaces that list with explicit tensors (torchdiffeq's ``adjoint_params``): the adjoint
    then differentiates exactly those. ``scale`` is a per-element absolute tolerance: solving
    for ``u / scale`` with ``atol = 1`` is the same error control (see ``tolerances.py``).
    """

    def __init__(self, func: Callable[..., Any], state: FlatState, *, scale: torch.Tensor | None = None,
                 args: Sequence[Any] = (), owned: Iterable[torch.Tensor] | None = None) -> None:
        super().__init__()
        self.func = func
        self.state = state
        self.scale = scale
        self.args = tuple(args)
        self.owned = None if owned is None else list(owned)

    def peer_state(self, u: torch.Tensor, lead: Sequence[int] = ()) -> Any:
        """The peer's y (a tensor or a tuple, unscaled) from sciode's u of shape (*lead, n)."""
        return self.state.unpack(u if self.scale is None else u * self.scale, lead)

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        flat = self.state.pack(self.func(t, self.peer_state(u), *self.args))
        return flat if self.scale is None else flat / self.scale

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        if self.owned is None:
            return super().parameters(recurse)
        return iter(self.owned)
