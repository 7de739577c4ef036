"""Peers' method names as registered sciode solver names: one table per peer, as data."""
from __future__ import annotations

from collections.abc import Mapping

from ..errors import ProblemError
from ..registry import solvers

__all__ = ["SCIPY", "TORCHDIFFEQ", "MethodTable"]


class MethodTable:
    """``same``: peer name -> the sciode solver with the same method. ``missing``: peer name -> the
    nearest sciode solver and why, for methods sciode does not have. Any registered sciode solver
    name is accepted as it is (e.g. ``rodas4``, ``tsit5``)."""

    def __init__(self, peer: str, same: Mapping[str, str], missing: Mapping[str, tuple[str, str]]) -> None:
        self.peer, self.same, self.missing = peer, dict(same), dict(missing)

    def solver(self, method: str) -> str:
        """The registered sciode solver name for ``method``, or a ProblemError naming the nearest one."""
        if not isinstance(method, str):
            raise ProblemError(f"method must be a {self.peer} method name or a sciode solver name (a string); "
                               f"got {type(method).__name__}")
        if method in self.missing:
            nearest, why = self.missing[method]
            raise ProblemError(f"method={method!r}: {self.peer}'s {method} is not available in sciode; "
                               f"the nearest available is {nearest!r} ({why})")
        name = self.same.get(method, method)
        registered = solvers()
        if name not in registered:
            known = sorted(set(self.same) | set(registered))
            raise ProblemError(f"method={method!r} is neither a {self.peer} method sciode maps nor a registered "
                               f"sciode solver; choose one of {known}")
        return name


TORCHDIFFEQ = MethodTable(
    "torchdiffeq",
    same={"dopri5": "dopri5", "bosh3": "bosh3", "rk4": "rk4", "euler": "euler", "midpoint": "midpoint",
          "heun2": "heun"},
    missing={
        "dopri8": ("dopri5", "Dormand-Prince 5(4); or 'tsit5', both order 5: tighten rtol for accuracy"),
        "fehlberg2": ("bosh3", "adaptive, order 3(2)"),
        "adaptive_heun": ("bosh3", "adaptive, order 3(2); sciode's 'heun' is fixed-step"),
        "heun3": ("rk4", "fixed step, order 4"),
        "explicit_adams": ("rk4", "fixed step, order 4; sciode has no multistep Adams methods"),
        "implicit_adams": ("rk4", "fixed step, order 4; for stiff problems 'rodas4'"),
        "fixed_adams": ("rk4", "fixed step, order 4; for stiff problems 'rodas4'"),
        "scipy_solver": ("scipy_lsoda", "also 'scipy_bdf' and 'scipy_radau': scipy's integrators as sciode solvers"),
    },
)

SCIPY = MethodTable(
    "scipy",
    same={"RK45": "dopri5", "RK23": "bosh3", "Radau": "scipy_radau", "BDF": "scipy_bdf", "LSODA": "scipy_lsoda"},
    missing={"DOP853": ("dopri5", "Dormand-Prince 5(4), or 'tsit5': order 5; tighten rtol for accuracy")},
)
