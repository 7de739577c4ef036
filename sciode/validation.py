"""Argument checks shared by ``solve``, batch runs and plugins, so each rule and its message exist once.

Every check raises :class:`sciode.ProblemError` naming the argument and what was
expected, and returns the value in its canonical type.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import ProblemError

__all__ = ["DEFAULT_RTOL", "DEFAULT_ATOL", "DEFAULT_MAX_STEPS", "DEFAULT_MAX_MEMORY_GIB", "positive_number",
           "positive_int", "tolerances"]

#: The tolerances and step limit ``solve`` uses when none are given (batch runs use the same ones).
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-9
DEFAULT_MAX_STEPS = 100_000
#: Memory a batch run's inputs plus output may take unless told otherwise (``--max-memory``), in GiB.
DEFAULT_MAX_MEMORY_GIB = 8.0


def positive_number(value: Any, argument: str, *, allow_none: bool = False) -> float | None:
    """A positive finite real (a one-element tensor counts); None passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)) and np.size(value) == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        expected = "a positive finite number or None" if allow_none else "a positive finite number"
        raise ProblemError(f"{argument} must be {expected}; got {value!r}")
    return float(value)


def positive_int(value: Any, argument: str, *, allow_none: bool = False) -> int | None:
    """An int >= 1 (NumPy integers count, bools do not); None passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        expected = "a positive int or None" if allow_none else "a positive int"
        raise ProblemError(f"{argument} must be {expected}; got {value!r}")
    return int(value)


def tolerances(rtol: Any = None, atol: Any = None, *, prefix: str = "") -> tuple[float, float]:
    """(rtol, atol), each a positive finite number; None takes the defaults of ``solve``."""
    r = DEFAULT_RTOL if rtol is None else positive_number(rtol, f"{prefix}rtol")
    a = DEFAULT_ATOL if atol is None else positive_number(atol, f"{prefix}atol")
    return float(r), float(a)  # type: ignore[arg-type]
