"""A peer's state (one tensor of any shape, or a tuple of tensors) as sciode's flat 1-D state, and back."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ProblemError

__all__ = ["FlatState"]


class FlatState:
    """The layout of a tensor or a tuple of tensors, concatenated flat (torchdiffeq's tuple packing)."""

    def __init__(self, y0: Any, argument: str = "y0") -> None:
        self.is_tuple = isinstance(y0, tuple)
        parts = y0 if self.is_tuple else (y0,)
        if not parts or not all(isinstance(x, torch.Tensor) for x in parts):
            raise ProblemError(f"{argument} must be a tensor or a non-empty tuple of tensors; got {_describe(y0)}")
        dtypes = {x.dtype for x in parts}
        if len(dtypes) > 1:
            raise ProblemError(f"the tensors of a tuple {argument} must share one dtype; "
                               f"got {sorted(map(str, dtypes))}")
        if not (parts[0].is_floating_point() or parts[0].is_complex()):
            raise ProblemError(f"{argument} must have a floating or complex dtype; got {parts[0].dtype}")
        self.argument = argument
        self.shapes = [x.shape for x in parts]
        self.sizes = [math.prod(s) for s in self.shapes]

    def pack(self, value: Any, lead: Sequence[int] = ()) -> torch.Tensor:
        """Concatenate ``value`` (shaped like the state, after ``lead`` dims) into shape (*lead, n)."""
        parts = value if self.is_tuple else (value,)
        if self.is_tuple != isinstance(value, tuple) or len(parts) != len(self.shapes):
            raise ProblemError(f"func must return what {self.argument} is: {self._expected()}; got {_describe(value)}")
        flat = []
        for x, shape in zip(parts, self.shapes):
            if not isinstance(x, torch.Tensor) or x.shape != (*lead, *shape):
                raise ProblemError(f"func must return {self._expected()}; got {_describe(value)}")
            flat.append(x.reshape(*lead, -1))
        return flat[0] if len(flat) == 1 else torch.cat(flat, dim=-1)

    def unpack(self, flat: torch.Tensor, lead: Sequence[int] = ()) -> Any:
        """The state back from ``flat`` of shape (*lead, n): a tensor or a tuple, as given."""
        parts = tuple(chunk.reshape(*lead, *shape) for chunk, shape in zip(flat.split(self.sizes, dim=-1), self.shapes))
        return parts if self.is_tuple else parts[0]

    def components(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The flat chunks of each tensor of the state (one chunk for a plain tensor)."""
        return tuple(flat.split(self.sizes, dim=-1))

    def _expected(self) -> str:
        shapes = [tuple(s) for s in self.shapes]
        return f"a tuple of tensors of shapes {shapes}" if self.is_tuple else f"a tensor of shape {shapes[0]}"


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return "a tuple of (" + ", ".join(_describe(x) for x in value) + ")"
    return type(value).__name__
