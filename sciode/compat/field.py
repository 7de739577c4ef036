"""A peer's vector field ``func(t, y, *args)`` in sciode's ``f(u, p, t)`` form."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch

from .state import FlatState

__all__ = ["PeerField"]


class PeerField(torch.nn.Module):
    """``func(t, y, *args)`` on sciode's flat state.

    An nn.Module holding ``func`` as an attribute, so a Module ``func`` is a submodule and
    :func:`sciode.parameter_tensors` (hence every sensitivity) finds its parameters. ``owned``
    replaces that list with explicit tensors (torchdiffeq's ``adjoint_params``): the adjoint
    then differentiates exactly those.
    """

    def __init__(self, func: Callable[..., Any], state: FlatState, *, args: Sequence[Any] = (),
                 owned: Iterable[torch.Tensor] | None = None) -> None:
        super().__init__()
        self.func = func
        self.state = state
        self.args = tuple(args)
        self.owned = None if owned is None else list(owned)

    def peer_state(self, u: torch.Tensor, lead: Sequence[int] = ()) -> Any:
        """The peer's y (a tensor or a tuple) from sciode's u of shape (*lead, n)."""
        return self.state.unpack(u, lead)

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        return self.state.pack(self.func(t, self.peer_state(u), *self.args))

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        if self.owned is None:
            return super().parameters(recurse)
        return iter(self.owned)
