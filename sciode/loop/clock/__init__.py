"""Clocks: where each member is in time, how far its next step may go, and what to commit.

Three clocks share one interface, so the loop body in ``run.py`` is the same for
every stepping mode:

* ``SharedClock`` - adaptive, one step for the whole batch, time and step size kept
  in Python floats (one host transfer per step: the error norm and a finiteness probe);
* ``MemberClock`` - adaptive, each member with its own time and step as ``(*batch, 1)``
  tensors, finished members stepping with ``dt = 0``;
* ``FixedClock`` - a fixed grid, built lazily one block of steps at a time (memory
  stays flat however small ``dt`` is), no host transfer per step.

A clock steps towards its *target*: the next of ``tstops``, a terminal event's
landing time and ``t1``. A member whose state turns non-finite is frozen as UNSTABLE
and leaves the error norm, so the others continue exactly as they would have without
it: with a shared clock at once (the step is retried for the rest), with per-member
clocks after ``FREEZE_AFTER`` smaller retries in a row (its own step goes back to
what it was). A step that fails for every member is retried smaller like any rejection.
"""

from __future__ import annotations

from ...problems import ODEProblem
from ...solver import RHS, Solver
from ..options import LoopOptions
from .base import FREEZE_AFTER, _Clock, tree_where
from .fixed import FixedClock
from .member import MemberClock
from .shared import SharedClock

__all__ = ["FREEZE_AFTER", "FixedClock", "MemberClock", "SharedClock", "make_clock", "tree_where"]


def make_clock(problem: ODEProblem, solver: Solver, opts: LoopOptions, rhs: RHS) -> _Clock:
    """The clock for this solve's stepping mode."""
    adaptive = opts.adaptive and solver.adaptive
    if not adaptive:
        return FixedClock(problem, solver, opts, rhs)
    if opts.per_member and len(problem.batch_shape) > 0:
        return MemberClock(problem, solver, opts, rhs)
    return SharedClock(problem, solver, opts, rhs)
