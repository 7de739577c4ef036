"""Tensor leaves of nested containers (parameters ``p``, solver states, dense payloads).

Sensitivities need the floating tensors inside a structure (to differentiate with
respect to them) and the same structure with those tensors swapped (detached
copies, leaves that require grad). Non-tensor leaves, integer tensors and None are
carried through unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["float_leaves", "map_float_leaves", "replace_float_leaves"]


def _is_float(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


def float_leaves(tree: Any) -> list[torch.Tensor]:
    """The floating tensors of ``tree`` in a fixed (depth-first) order."""
    out: list[torch.Tensor] = []

    def visit(x: Any) -> None:
        if _is_float(x):
            out.append(x)
        elif isinstance(x, Mapping):
            for v in x.values():
                visit(v)
        elif isinstance(x, (tuple, list)):
            for v in x:
                visit(v)

    visit(tree)
    return out


def map_float_leaves(tree: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``tree`` with every floating tensor ``x`` replaced by ``fn(x)``."""
    if _is_float(tree):
        return fn(tree)
    if isinstance(tree, Mapping):
        return type(tree)((k, map_float_leaves(v, fn)) for k, v in tree.items())
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a NamedTuple
        return type(tree)(*(map_float_leaves(v, fn) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_float_leaves(v, fn) for v in tree)
    return tree


def replace_float_leaves(tree: Any, leaves: list[torch.Tensor]) -> Any:
    """``tree`` with its floating tensors replaced, in order, by ``leaves``."""
    it = iter(leaves)
    out = map_float_leaves(tree, lambda _: next(it))
    return out
