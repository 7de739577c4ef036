"""The result of a solve: trajectory, return codes, stats and dense output."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .errors import ProblemError
from .retcode import ReturnCode

__all__ = ["ReturnCode", "Solution"]


class Solution:
    """A solved trajectory.

    ``t`` (T,), ``u`` (T, *batch, n); ``retcode`` summarises the batch (SUCCESS
    only if every member succeeded) and ``retcodes`` keeps one code per member
    (an int8 tensor of ReturnCode values, shape ``batch``). ``stats`` counts work:
    nfe, njac, nlinsolve, nsteps, naccepted, nrejected. Call ``sol(t)`` for dense
    output where the solver has an interpolant and dense output was kept.
    """

    #: Names of the member (batch) dims for ``to_xarray``, one per batch dim, e.g.
    #: ``("sample",)`` for an ensemble of SDE paths; None keeps the I/O layer's defaults.
    member_dims: tuple[str, ...] | None = None

    def __init__(self, problem: Any, t: torch.Tensor, u: torch.Tensor, retcodes: torch.Tensor, message: str,
                 stats: Mapping[str, int], *, solver: Any = None, sensealg: Any = None,
                 options: Mapping[str, Any] | None = None, interpolator: Any = None,
                 member_stats: Mapping[str, torch.Tensor] | None = None,
                 events: Mapping[str, Any] | None = None) -> None:
        self.problem = problem
        self.t = t
        self.u = u
        self.retcodes = retcodes
        self.message = message
        self.stats = dict(stats)
        self.solver = solver
        self.sensealg = sensealg
        self.options = dict(options or {})
        self._interpolator = interpolator
        #: per-member counters (int64 tensors of the batch shape) when members stepped independently
        self.member_stats = dict(member_stats or {})
        #: per event name, an EventRecord: every occurrence's ``t`` (K, *batch), ``u`` (K, *batch, n),
        #: NaN-padded past each member's ``count`` (batch)
        self.events = dict(events or {})

    @property
    def retcode(self) -> ReturnCode:
        """The code of the first member that failed; else TERMINATED if any member stopped at a
        terminal event; else SUCCESS."""
        codes = self.retcodes.reshape(-1)
        failed = (codes != ReturnCode.SUCCESS) & (codes != ReturnCode.TERMINATED)
        if bool(failed.any()):
            return ReturnCode(int(codes[torch.nonzero(failed)[0, 0]]))
        return ReturnCode.TERMINATED if bool((codes == ReturnCode.TERMINATED).any()) else ReturnCode.SUCCESS

    @property
    def successful(self) -> bool:
        """True when every member reached t1 or stopped at a terminal event."""
        return self.retcode.successful

    def member_retcode(self, index: int | tuple[int, ...]) -> ReturnCode:
        """The ReturnCode of one member of the batch (by its batch index)."""
        return ReturnCode(int(self.retcodes[index]))

    @property
    def has_dense_output(self) -> bool:
        return self._interpolator is not None

    def __call__(self, t: Any) -> torch.Tensor:
        """Dense output: u at time(s) ``t`` within tspan, shape (*batch, n) or (K, *batch, n)."""
        if self._interpolator is None:
            raise ProblemError(
                "this Solution has no dense output: solve with dense=True (the default when saveat is None) "
                f"and a solver with an interpolant (solver {getattr(self.solver, 'name', self.solver)!r})"
            )
        times = torch.as_tensor(t, dtype=self.t.dtype, device=self.u.device)
        scalar = times.ndim == 0
        values = self._interpolator(times.reshape(-1))
        return values[0] if scalar else values

    def to_xarray(self, *, times: Any = None, members: Any = None, attrs: Mapping[str, Any] | None = None) -> Any:
        """Labelled copy as an xarray.Dataset: ``u`` on ("time", *member dims, "state").

        The copy is detached (no gradients flow through it). ``times``: a grid to
        evaluate dense output on; ``members``: labels for the member dims; ``attrs``:
        extra global attributes. See ``sciode.io.solution_to_dataset``.
        """
        from .io.xarray import solution_to_dataset

        return solution_to_dataset(self, times=times, members=members, attrs=attrs)  # honours member_dims

    def plot(self, **kwargs: Any) -> Any:
        """Plot the trajectories (or a phase portrait with ``phase=("x", "y")``); returns the matplotlib Figure.

        Keyword arguments go to ``sciode.plot.plot_dataset`` (``members``, ``phase``, ``states``, ``output``).
        """
        from .plot import plot_dataset

        return plot_dataset(self.to_xarray(), **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.solver, "name", self.solver)
        return (f"Solution(retcode={self.retcode.name}, solver={name!r}, t: {tuple(self.t.shape)}, "
                f"u: {tuple(self.u.shape)}, nfe={self.stats.get('nfe')})")
