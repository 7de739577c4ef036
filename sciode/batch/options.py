"""The solve options of a batch run, checked once against the registry and then against the script's Problem."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import ProblemError
from ..validation import DEFAULT_ATOL, DEFAULT_MAX_STEPS, DEFAULT_RTOL, positive_int, positive_number, tolerances

__all__ = ["BatchOptions", "make_options"]


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How every chunk is solved (picklable: it travels to dask workers)."""

    solver: str = "tsit5"
    saveat: Any = 100
    dt: float | None = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    max_steps: int = DEFAULT_MAX_STEPS
    stepping: str = "per_member"

    def solve_kwargs(self) -> dict[str, Any]:
        return dict(saveat=self.saveat, dt=self.dt, rtol=self.rtol, atol=self.atol, max_steps=self.max_steps,
                    stepping=self.stepping)

    def fingerprint(self) -> str:
        return repr((self.solver, self.saveat, self.dt, self.rtol, self.atol, self.max_steps, self.stepping))

    def check_against(self, tspan: tuple[float, float]) -> None:
        """Explicit ``saveat`` times must lie in the script's ``tspan``, in the direction of integration."""
        if not isinstance(self.saveat, tuple):
            return
        t0, t1 = tspan
        lo, hi = min(t0, t1), max(t0, t1)
        outside = [t for t in self.saveat if not lo <= t <= hi]
        if outside:
            raise ProblemError(f"saveat: time {outside[0]:g} lies outside the script's tspan ({t0:g}, {t1:g})")
        steps = np.diff(np.asarray(self.saveat)) * (1.0 if t1 > t0 else -1.0)
        if (steps <= 0).any():
            order = "increasing" if t1 > t0 else "decreasing (the script's t1 < t0)"
            raise ProblemError(f"saveat: the times must be strictly {order}; got {list(self.saveat)}")


def _saveat(saveat: Any) -> int | tuple[float, ...]:
    """A number of equal intervals, or explicit times (as a tuple of floats, hashable and picklable)."""
    if isinstance(saveat, (list, tuple, np.ndarray)):
        values = list(saveat)
        if not values or not all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool)
                                 and np.isfinite(x) for x in values):
            raise ProblemError(f"saveat: give a number of intervals >= 1 or a non-empty list of finite times; "
                               f"got {values!r}")
        return tuple(float(x) for x in values)
    if isinstance(saveat, bool) or not isinstance(saveat, (int, np.integer)) or saveat < 1:
        raise ProblemError(f"saveat: give a number of intervals >= 1 or a list of times; got {saveat!r}")
    return int(saveat)


def make_options(solver: str, saveat: Any, dt: float | None, rtol: float, atol: float, max_steps: int) -> BatchOptions:
    """Validate the solve options: a registered solver, saveat, dt, tolerances, max_steps."""
    from ..registry import registry

    if not isinstance(solver, str):
        raise ProblemError(f"solver: give a registered solver name; got {type(solver).__name__}")
    cls = registry.get("solver", solver, "solver")  # unknown -> ProblemError, claimed twice -> PluginError
    times = _saveat(saveat)
    dt = positive_number(dt, "dt", allow_none=True)
    rtol, atol = tolerances(rtol, atol)
    if not cls.adaptive and dt is None:
        raise ProblemError(f"dt: solver {solver!r} takes fixed steps; give --dt / dt=")
    max_steps = positive_int(max_steps, "max_steps")
    stepping = "per_member" if cls.adaptive else "shared"
    return BatchOptions(solver, times, dt, rtol, atol, max_steps, stepping)
