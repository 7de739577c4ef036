"""Compaction: with per-member stepping, finished members stop costing work.

When the running fraction of the batch the loop steps falls below ``LoopOptions.compact``,
the loop gathers the running members (flattened to a 1-D batch) and steps only them: the
per-member fields of the ``LoopState`` (t, dt, controller memory, status, counters), the
solver state, and the per-member parts of ``p``. The rule for ``p`` lives here, in
:func:`member_leaves`: a tensor whose leading dims equal the batch shape is per member (it is
gathered with the same index as ``u``), anything else is shared. The full-size state is
scattered back when the loop ends. Gather and scatter are copies, so every member's floats are
the ones the uncompacted run computes, and they are differentiable, so backprop keeps its
gradients. The saver records the compacted steps with the members they belong to
(``StepChunk.members``), so ``saveat``, dense output and ``member_stats`` see every member.

Compaction stays off (``plan`` says why) where a smaller batch would change a member's floats or
where the loop's callers need full-size steps:

* the solver state has leaves that are not per-member tensors (``bdf``'s order and its
  factorization, the theta methods' Jacobian-refresh flag): those are decisions the whole batch
  shares, so the remaining members would step differently;
* the solver says its step couples members (``couples_members(problem)``, e.g. a sparse LU or
  GMRES over the whole batch);
* events (the tracker keeps per-member condition values, counts and landings of the full batch);
* ``on_step`` (checkpointing replays full-size steps; ``checkpointed`` refuses per-member stepping
  anyway, and the adjoint's backward solve steps shared, while its forward solve compacts);
* ``compile`` (a new batch size would recompile the step's graph);
* ``f`` does not take a compacted batch (it closes over per-member tensors instead of taking them
  through ``p``): a probe call at the first compaction finds this, and the solve goes on
  uncompacted after one ``CompactionWarning``.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ProblemError
from .state import LoopState

__all__ = ["CompactionWarning", "Compactor", "gather_tree", "make_compactor", "member_leaves", "plan", "threshold"]

#: LoopState fields that hold one value per member (leading dims = the batch shape)
MEMBER_FIELDS = ("t", "dt", "u", "err_prev", "status", "t_stop", "nonfinite_streak", "dt_before_streak",
                 "frozen_members", "accepted", "rejected")


class CompactionWarning(UserWarning):
    """The solve could not be compacted after all (``f`` rejected a compacted batch); it ran uncompacted."""


def member_leaves(tree: Any, batch: torch.Size) -> bool | None:
    """True when every leaf of ``tree`` is None or a tensor whose leading dims equal ``batch``
    (a splittable solver state); None when some leaf is not (a state shared by the batch)."""
    if tree is None:
        return True
    if isinstance(tree, torch.Tensor):
        return True if tree.shape[:len(batch)] == batch else None
    if isinstance(tree, Mapping):
        tree = list(tree.values())
    if isinstance(tree, (tuple, list)):
        return True if all(member_leaves(x, batch) for x in tree) else None
    return None


def gather_tree(tree: Any, batch: torch.Size, index: torch.Tensor, strict: bool) -> Any:
    """The members ``index`` (flat indices into ``batch``) of every per-member tensor leaf,
    flattened to a 1-D batch. ``strict``: every leaf is per member (a solver state); otherwise
    (``p``) leaves whose leading dims are not ``batch`` are shared and stay as they are."""
    if isinstance(tree, torch.Tensor):
        if tree.shape[:len(batch)] != batch:
            if strict:
                raise ValueError("a solver-state leaf is not per member")
            return tree
        return tree.reshape((-1,) + tree.shape[len(batch):]).index_select(0, index)
    if isinstance(tree, Mapping):
        return type(tree)({k: gather_tree(v, batch, index, strict) for k, v in tree.items()})
    if isinstance(tree, (tuple, list)):
        return type(tree)(gather_tree(x, batch, index, strict) for x in tree)
    return tree


def _scatter(full: torch.Tensor, batch: torch.Size, index: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``full`` with the members ``index`` replaced by ``part`` (out of place: autograd sees both)."""
    flat = full.reshape((-1,) + full.shape[len(batch):])
    return flat.index_copy(0, index, part.to(flat.dtype)).reshape(full.shape)


def make_compactor(opts: Any, solver: Any, problem: Any, clock: Any, rhs: Any, saver: Any,
                   solver_state: Any) -> Compactor | None:
    """The run's compactor: only per-member clocks compact, and only where ``plan`` finds no reason not to."""
    if not clock.per_member or not opts.compact or plan(opts, solver, problem, solver_state) is not None:
        return None
    return Compactor(float(opts.compact), clock, rhs, saver, problem.batch_shape)


def plan(opts: Any, solver: Any, problem: Any, solver_state: Any) -> str | None:
    """Why this run cannot be compacted, or None when it can."""
    if opts.events:
        return "events keep per-member records of the full batch"
    if opts.on_step is not None:
        return "on_step receives full-size steps"
    if opts.compile is not None:
        return "a compiled step would recompile for each batch size"
    if member_leaves(solver_state, problem.batch_shape) is None:
        return f"the solver state of {solver.name!r} has leaves the whole batch shares"
    couples = getattr(solver, "couples_members", None)
    return couples(problem) if couples is not None else None


@dataclasses.dataclass
class Compactor:
    """Gathers the running members when they fall below ``threshold`` of the stepped batch, and
    scatters them back into the full-size state at the end."""

    threshold: float
    clock: Any
    rhs: Any
    saver: Any
    batch: torch.Size  # the full batch shape
    index: torch.Tensor | None = None  # flat indices of the stepped members; None: all of them
    full: LoopState | None = None  # the full-size state while compacted
    off: bool = False

    def __call__(self, st: LoopState) -> LoopState:
        """The state the next pass steps: ``st``, or its running members when few enough are left."""
        if self.off:
            return st
        size = st.status.numel()
        count = self.clock.running_count  # counted in the clock's one host transfer of this pass
        if count == 0 or count >= self.threshold * size:
            return st
        shape = st.status.shape
        if member_leaves(st.solver_state, shape) is None:  # the state grew a shared leaf after the first steps
            self.off = True
            return st
        local = st.running.reshape(-1).nonzero()[:, 0]
        index = local if self.index is None else self.index.index_select(0, local)
        # p is always gathered from the problem's own p against the full batch, so a shared tensor
        # never passes for a per-member one when its length happens to match a compacted batch
        p = gather_tree(self.clock.problem.p, self.batch, index, strict=False)
        if self.full is None and not self._f_takes(st, local, p):
            return st
        self.full = self._merge(st)
        compact = dataclasses.replace(st, solver_state=gather_tree(st.solver_state, shape, local, strict=True),
                                      **{name: gather_tree(getattr(st, name), shape, local, strict=True)
                                         for name in MEMBER_FIELDS})
        self.index, self.rhs.p = index, p
        self._resize(torch.Size([count]))
        self.saver.compact(index)
        return compact

    def finish(self, st: LoopState) -> LoopState:
        """The full-size state after the loop (every member's last values)."""
        if self.full is None:
            return st
        full = self._merge(st)
        self._resize(self.batch)
        self.rhs.p = self.clock.problem.p
        return full

    # -- parts ---------------------------------------------------------------------------------
    def _merge(self, st: LoopState) -> LoopState:
        """The full-size state with the stepped members' current values written in."""
        if self.full is None:
            return st
        full = dataclasses.replace(self.full, iterations=st.iterations, frozen_any=st.frozen_any)
        for name in MEMBER_FIELDS:
            setattr(full, name, _scatter(getattr(self.full, name), self.batch, self.index, getattr(st, name)))
        full.solver_state = None  # the loop is over for the members that left: no solver state is kept for them
        return full

    def _resize(self, shape: torch.Size) -> None:
        """The clock and the norm work on the stepped batch's shape."""
        self.clock.batch_shape = shape
        self.rhs.norm = self.clock.batch_norm_fn(None)

    def _f_takes(self, st: LoopState, local: torch.Tensor, p: Any) -> bool:
        """Probe (uncounted) that f maps a compacted batch to one of the same shape."""
        shape = st.status.shape
        u, t = (gather_tree(x.detach(), shape, local, strict=True) for x in (st.u, st.t))
        try:
            with torch.no_grad():
                value = self.rhs.f(u, p, t)
        except Exception as exc:  # f's own error: the uncompacted run is the answer (and raises it if it is real)
            why = f"{type(exc).__name__}: {exc}"
        else:
            if isinstance(value, torch.Tensor) and value.shape == u.shape:
                return True
            why = f"it returned shape {tuple(getattr(value, 'shape', ()))} for u of shape {tuple(u.shape)}"
        self.off = True
        warnings.warn("per-member compaction is off for this solve: f does not take a compacted batch of the running "
                      f"members ({why}); pass per-member values through p (a tensor whose leading dims are the batch "
                      "shape), or solve(..., compact=None)", CompactionWarning, stacklevel=5)  # the caller of solve
        return False


def threshold(value: Any) -> float | None:
    """``compact`` as the loop takes it: None/0 disables, else a fraction in (0, 1]."""
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1 or math.isnan(value):
        raise ProblemError(f"compact must be None, 0 or a fraction in (0, 1]; got {value!r}")
    return float(value)
