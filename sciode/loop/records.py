"""Step records: the accepted steps of a solve, evaluated at arbitrary times.

The loop appends one record per iteration (rejected or finished members get
``h = 0``) and stacks them in chunks. A chunk answers "what is u at these times?"
for every member at once with a searchsorted and a gather, so saving at many
``saveat`` times and dense output after the solve cost a few tensor ops per chunk
rather than Python work per step. Dense output (``Solution.__call__``) keeps the
chunks; a shared clock's ``saveat`` alone drops them once evaluated, bounding memory.
Per-member ``saveat`` needs no records: ``PerMemberSaves`` picks each pass's (member, save time)
pairs as the pass comes and evaluates them in batches.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

__all__ = ["PerMemberSaves", "StepChunk", "StepRecorder", "evaluate_chunks", "same_time_tolerance"]


def same_time_tolerance(dtype: torch.dtype, elapsed: Any) -> Any:
    """How far apart two times (elapsed from t0, a tensor or a float) may be and still count as one:
    64 ulps at their size. Saves, dense output, stop masks and the adjoint's output positions all use
    this one rule, so a save time at a step's end is read from the same step everywhere."""
    size = elapsed.abs() if isinstance(elapsed, torch.Tensor) else abs(elapsed)
    return 64 * torch.finfo(dtype).eps * (1 + size)


def join_tree(items: list[Any], join: Any = torch.stack) -> Any:
    """Join trees of records leaf by leaf along a new dim 0 (``torch.stack``: one record per
    iteration) or along dim 0 (``torch.cat``: records already stacked)."""
    first = items[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return join(items)
    if isinstance(first, (tuple, list)):
        return type(first)(join_tree([it[i] for it in items], join) for i in range(len(first)))
    raise TypeError(f"dense payload leaves must be tensors, tuples or None; got {type(first).__name__}")


def _gather(x: Any, index: torch.Tensor) -> Any:
    """Select along dim 0 per member: out[k, m...] = x[index[k, m...], m...]."""
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(_gather(leaf, index) for leaf in x)
    extra = x.ndim - index.ndim
    idx = index.reshape(index.shape + (1,) * extra).expand((index.shape[0],) + x.shape[1:])
    return torch.gather(x, 0, idx)


@dataclasses.dataclass
class StepChunk:
    """Stacked records of S consecutive loop iterations (dim 0 is the iteration)."""

    t_start: torch.Tensor  # (S, *clock)
    h: torch.Tensor  # (S, *clock), 0 where the member did not advance
    u0: torch.Tensor  # (S, *batch, n)
    u1: torch.Tensor
    dense: Any
    elapsed_end: torch.Tensor  # (M, S): direction * (t_start + h - t0), per flat member
    members: torch.Tensor | None = None  # flat indices of the members the rows hold (compaction); None: all

    def span(self) -> tuple[float, float]:
        """Smallest elapsed time at the chunk's start and largest at its end, over members."""
        h0 = self.h[0].reshape(-1)
        start = self.elapsed_end[:, 0] - h0.abs()
        return float(start.min()), float(self.elapsed_end[:, -1].max())

    def evaluate_at(self, solver: Any, q: torch.Tensor, times: torch.Tensor, member_shape: torch.Size) -> torch.Tensor:
        """u at per-member query times: ``q`` (elapsed) and ``times`` are (M, R); returns (R, *member_shape, ...)."""
        M, S = self.elapsed_end.shape
        R = q.shape[1]
        q = q.to(self.elapsed_end.dtype).contiguous()
        idx = torch.searchsorted(self.elapsed_end, q, side="left").clamp_max_(S - 1)
        index = idx.T.reshape((R,) + tuple(member_shape))
        t0g, hg = _gather(self.t_start, index), _gather(self.h, index)
        u0g, u1g = _gather(self.u0, index), _gather(self.u1, index)
        tq = times.T.to(t0g.dtype).reshape((R,) + tuple(member_shape))
        tq = tq.reshape(tq.shape + (1,) * (t0g.ndim - tq.ndim))
        safe_h = torch.where(hg == 0, 1.0, hg)
        theta = torch.where(hg == 0, 0.0, (tq - t0g) / safe_h)
        tol = same_time_tolerance(self.elapsed_end.dtype, q)
        at_end = (self.elapsed_end.gather(1, idx) - q).abs() <= tol
        theta_u = theta.reshape(theta.shape + (1,) * (u0g.ndim - theta.ndim))
        value = solver.interpolate(theta_u, hg.reshape(theta_u.shape), u0g, u1g, _gather(self.dense, index))
        end_mask = at_end.T.reshape((R,) + tuple(member_shape))
        end_mask = end_mask.reshape(end_mask.shape + (1,) * (u0g.ndim - end_mask.ndim))
        return torch.where(end_mask, u1g, torch.where(theta_u <= 0, u0g, value))

    def evaluate(self, solver: Any, elapsed: torch.Tensor, times: torch.Tensor,
                 member_shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """u at shared ``times`` (K,) for every member, and a (K, *member_shape) mask of which the chunk covers."""
        M, S = self.elapsed_end.shape
        K = elapsed.shape[0]
        q = elapsed.to(self.elapsed_end.dtype).expand(M, K).contiguous()
        idx = torch.searchsorted(self.elapsed_end, q, side="left").clamp_max_(S - 1)
        start = self.elapsed_end.gather(1, idx) - self.h.reshape(S, M).T.gather(1, idx).abs()
        tol = same_time_tolerance(self.elapsed_end.dtype, q)
        covered = (q >= start - tol) & (q <= self.elapsed_end[:, -1:] + tol)
        value = self.evaluate_at(solver, q, times.expand(M, K), member_shape)
        return value, covered.T.reshape((K,) + tuple(member_shape))


#: passes whose (member, save time) pairs are evaluated together
HOLD_PASSES = 16


class PerMemberSaves:
    """Saving at ``saveat`` when members step independently, one loop pass at a time.

    ``take`` keeps the pass's step and marks, per member, the save times it newly passed (no host
    sync); ``pending``, how many (member, save time) pairs that makes, rides on the clock's one
    host transfer per pass; ``settle`` picks those pairs' rows of the pass (its step's start,
    size, ends and dense payload: a few index ops on just those rows), and every ``HOLD_PASSES``
    passes that had pairs ``flush`` evaluates the picked pairs in one flat batch: each (member,
    save time) is evaluated once, on the step that covers it, and the fixed cost of that
    evaluation (a few dozen small ops) is paid once per ``HOLD_PASSES`` passes rather than every
    pass. A compacted pass steps only the members ``ids`` (flat indices); values land in their
    (save time, member) cells of one flat buffer."""

    def __init__(self, saveat: torch.Tensor, t0: float, direction: float, member_shape: torch.Size,
                 solver: Any) -> None:
        self.times, self.solver = saveat, solver
        self.t0, self.direction = t0, direction
        self.elapsed = ((saveat - t0) * direction).detach()
        #: the elapsed save times and one more, +inf: ``bound[k]`` is the k-th save time, or none left (k = K)
        self.bound = torch.cat([self.elapsed, self.elapsed.new_full((1,), math.inf)])
        self.member_shape = member_shape
        self.members = math.prod(member_shape)
        device = saveat.device
        # per stepped member (all of them, or ``ids``): the first save time not yet passed, and the furthest
        # elapsed time a step reached (a member that did not advance keeps it)
        self.next = torch.zeros(self.members, dtype=torch.long, device=device)
        self.end = torch.full((self.members,), -math.inf, dtype=saveat.dtype, device=device)
        self.ids: torch.Tensor | None = None  # the members the loop steps (compaction); None: all
        self.out: torch.Tensor | None = None  # (K * M, ...) values, NaN where never reached
        self.step: tuple | None = None  # the pass waiting for ``settle``
        self.limit: torch.Tensor | None = None  # its members' ends plus the same-time tolerance: saves up to it passed
        self.count: torch.Tensor | None = None
        self.held: list[tuple] = []  # the picked pairs of settled passes, waiting for ``flush``

    def use_members(self, ids: torch.Tensor) -> None:
        """From now on passes step only the members ``ids`` (compaction; a subset of the members stepped so far)."""
        self.settle_now()
        self.next, self.end = (self._regather(x, ids) for x in (self.next, self.end))
        self.ids = ids

    def _regather(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Values of the members stepped so far (``self.ids``) as values of the members ``ids``."""
        full = x if self.ids is None else x.new_zeros(self.members).index_copy(0, self.ids, x)
        return full.index_select(0, ids)

    def take(self, t_start: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor, dense: Any) -> None:
        """Keep one pass's step (``h`` is 0 where a member did not advance) until ``settle``.

        The save times a step newly passed are found by comparing with the member's next one (a
        gather), not by a search over all of them; ``pending`` also counts the members whose step
        passed more than one, for which ``settle`` searches (rare: a step longer than the saves' spacing)."""
        self.settle_now()
        ends = t_start + h
        if self.t0 != 0:  # x - 0 and x * 1 are x itself: forward solves from 0 skip the two ops
            ends = ends - self.t0
        if self.direction != 1:
            ends = ends * self.direction
        ends = torch.maximum(self.end, ends.detach().reshape(-1))
        self.end = ends
        limit = ends + same_time_tolerance(ends.dtype, ends)  # save times at most this far are passed
        bound = self.bound if self.bound.dtype == ends.dtype else self.bound.to(ends.dtype)
        start = self.next
        passed = bound.index_select(0, start) <= limit
        reached = start + passed
        self.next = reached
        self.step, self.limit = (t_start.detach(), h.detach(), u0, u1, dense, ends, start, reached), limit
        self.count = torch.stack([passed.sum(), (bound.index_select(0, reached) <= limit).sum()])

    def pending(self) -> torch.Tensor | None:
        """(pairs, members beyond): how many (member, save time) pairs the kept pass newly passed, and
        how many members passed more save times than those (a 1-D tensor); None when no pass is kept."""
        return self.count

    def settle_now(self) -> None:
        """Settle the kept pass with a host sync of its own (when no clock transfer brought ``pending``)."""
        if self.count is not None:
            self.settle(self.count.tolist())

    def settle(self, values: list[int]) -> None:
        """The kept pass newly passed ``values[0]`` (member, save time) pairs, or more where ``values[1]``
        members passed several save times: pick them."""
        (count, beyond), step, self.step, self.count = values, self.step, None, None
        t_start, h, u0, u1, dense, ends, start, reached = step
        if beyond:  # some step passed several save times: find them all
            reached = torch.maximum(start, torch.searchsorted(self.elapsed.to(self.limit.dtype), self.limit,
                                                              side="right"))
            self.next = reached
            count = int((reached - start).sum())
        if count == 0:
            return
        per_row = reached - start
        row = torch.repeat_interleave(per_row, output_size=count)  # the pass's row of each pair
        k = start.index_select(0, row)  # the pairs' save times, in order (a row's own ones follow each other)
        if beyond:
            first = torch.cumsum(per_row, 0).sub_(per_row)
            k = k + (torch.arange(count, device=k.device) - first.index_select(0, row))
        batch_dims = t_start.ndim - 1

        def pick(x: Any) -> Any:  # the rows' values for each pair, as a flat batch of ``count``
            if x is None:
                return None
            if isinstance(x, torch.Tensor):
                return (x if batch_dims == 1 else x.reshape((-1,) + x.shape[batch_dims:])).index_select(0, row)
            return type(x)(pick(leaf) for leaf in x)

        member = row if self.ids is None else self.ids.index_select(0, row)
        self.held.append((pick(t_start), pick(h), pick(u0), pick(u1), pick(dense), ends.index_select(0, row),
                          k, member))
        if len(self.held) >= HOLD_PASSES:
            self.flush()

    def flush(self) -> None:
        """Evaluate the picked (member, save time) pairs of the held passes on their steps' interpolants."""
        held, self.held = self.held, []
        if not held:
            return
        t0g, hg, u0g, u1g, dense, ends, k, member = held[0] if len(held) == 1 else join_tree(held, torch.cat)
        q = self.elapsed[k].to(ends.dtype)
        tq = self.times[k].to(t0g.dtype).reshape(t0g.shape)
        safe_h = torch.where(hg == 0, 1.0, hg)
        theta = torch.where(hg == 0, 0.0, (tq - t0g) / safe_h)
        tol = same_time_tolerance(ends.dtype, q)
        at_end = (ends - q).abs() <= tol
        theta_u = theta.reshape(theta.shape + (1,) * (u0g.ndim - theta.ndim))
        value = self.solver.interpolate(theta_u, hg.reshape(theta_u.shape), u0g, u1g, dense)
        end_mask = at_end.reshape(at_end.shape + (1,) * (u0g.ndim - at_end.ndim))
        value = torch.where(end_mask, u1g, torch.where(theta_u <= 0, u0g, value))
        cells = k * self.members + member
        if self.out is None:
            self.out = torch.full((self.times.shape[0] * self.members,) + value.shape[1:], math.nan,
                                  dtype=value.dtype, device=value.device)
        self.out.index_copy_(0, cells, value.to(self.out.dtype))  # in place: one buffer per solve

    def assemble(self, like: torch.Tensor) -> torch.Tensor:
        """(K, *batch, n): every member's values at every save time, NaN where it never got there."""
        self.settle_now()
        self.flush()
        K = self.times.shape[0]
        tail = tuple(like.shape[len(self.member_shape):])
        if self.out is None:
            return torch.full((K,) + tuple(self.member_shape) + tail, math.nan, dtype=like.dtype, device=like.device)
        return self.out.to(like.dtype).reshape((K,) + tuple(self.member_shape) + tail)


class StepRecorder:
    """Collects per-iteration records and stacks them into StepChunks."""

    def __init__(self, t0: float, direction: float) -> None:
        self.t0 = t0
        self.direction = direction
        self.pending: list[tuple] = []  # records of one iteration each
        self.parts: list[tuple] = []  # stacked records (t_start, h, u0, u1, dense), in order
        self.rows = 0
        #: the members the records hold (flat indices, set when the loop compacts); None: all
        self.members: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.rows

    def append(self, t_start: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor, dense: Any) -> None:
        self.pending.append((t_start, h, u0, u1, dense))
        self.rows += 1

    def append_block(self, t_start: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                     dense: Any) -> None:
        """Records of several iterations, already stacked on dim 0 (a compiled block of steps)."""
        self._stack_pending()
        self.parts.append((t_start, h, u0, u1, dense))
        self.rows += t_start.shape[0]

    def _stack_pending(self) -> None:
        if not self.pending:
            return
        cols = list(zip(*self.pending))
        self.pending = []
        t_start = torch.stack(cols[0])
        if isinstance(cols[1][0], float):
            h = torch.tensor(cols[1], dtype=t_start.dtype, device=t_start.device)
        else:
            h = torch.stack(cols[1])
        self.parts.append((t_start, h, torch.stack(cols[2]), torch.stack(cols[3]), join_tree(list(cols[4]))))

    def stack(self) -> StepChunk | None:
        self._stack_pending()
        if not self.parts:
            return None
        parts, self.parts, self.rows = self.parts, [], 0
        joined = parts[0] if len(parts) == 1 else (join_tree(list(col), torch.cat) for col in zip(*parts))
        t_start, h, u0, u1, dense = joined
        S = t_start.shape[0]
        elapsed_end = ((t_start + h - self.t0) * self.direction).detach().reshape(S, -1).T.contiguous()
        # a member that did not advance keeps its previous end, so each row is non-decreasing
        elapsed_end = torch.cummax(elapsed_end, dim=1).values
        return StepChunk(t_start.detach(), h.detach(), u0, u1, dense, elapsed_end, self.members)


def evaluate_chunks(chunks: list[StepChunk], solver: Any, t0: float, direction: float, times: torch.Tensor,
                    member_shape: torch.Size) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Evaluate sorted ``times`` against a list of chunks; per time, the value and coverage mask."""
    K = times.shape[0]
    values: list[torch.Tensor | None] = [None] * K
    masks: list[torch.Tensor | None] = [None] * K
    elapsed_all = (times - t0) * direction
    el = elapsed_all.tolist()
    for chunk in chunks:
        lo_t, hi_t = chunk.span()
        tol = same_time_tolerance(chunk.elapsed_end.dtype, hi_t)
        lo = _bisect(el, lo_t - tol, left=True)
        hi = _bisect(el, hi_t + tol, left=False)
        if hi <= lo:
            continue
        ids = chunk.members
        value, covered = chunk.evaluate(solver, elapsed_all[lo:hi], times[lo:hi],
                                        member_shape if ids is None else ids.shape)
        if ids is not None:
            value, covered = _widen(value, ids, member_shape), _widen(covered, ids, member_shape)
        for i, (v, c) in enumerate(zip(value.unbind(0), covered.unbind(0))):
            k = lo + i
            if values[k] is None:
                values[k], masks[k] = v, c
            else:
                cm = c.reshape(c.shape + (1,) * (v.ndim - c.ndim))
                values[k] = torch.where(cm, v, values[k])
                masks[k] = masks[k] | c
    return values, masks


def _widen(x: torch.Tensor, ids: torch.Tensor, member_shape: torch.Size) -> torch.Tensor:
    """(K, m, ...) values of members ``ids`` as (K, *member_shape, ...), zero (False) elsewhere."""
    members = math.prod(member_shape)
    full = x.new_zeros((x.shape[0], members) + x.shape[2:]).index_copy(1, ids, x)
    return full.reshape((x.shape[0],) + tuple(member_shape) + x.shape[2:])


def _bisect(sorted_values: list[float], x: float, left: bool) -> int:
    import bisect

    return bisect.bisect_left(sorted_values, x) if left else bisect.bisect_right(sorted_values, x)
