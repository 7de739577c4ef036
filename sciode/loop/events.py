"""Events: sign changes of ``condition(u, p, t)`` located on each step's interpolant.

``Event`` is the user's description. ``EventTracker`` is the loop's part: after
each step it evaluates every condition at the step's end, finds the members whose
condition changed sign in the asked direction, and locates each root with a
batched Illinois (regula falsi) iteration on the solver's interpolant (a cubic
Hermite from f at both ends for solvers without one). A terminal root is not
accepted inside the step: the step is discarded and the clock lands on the root
with the next step, so saving, dense output and checkpointing only ever see
ordinary steps that end at it. ``finish`` stacks the occurrences per member and,
when gradients are recorded, adds the implicit-function correction of the event
time, dt*/dθ = -(∂g/∂θ) / (dg/dt along the solution).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import ProblemError
from ..problems import parameter_tensors

__all__ = ["Event", "EventRecord", "EventTracker", "Occurrence", "check_events", "event_state",
           "event_time_gradients"]

MAX_ROOT_ITERATIONS = 80


@dataclasses.dataclass(frozen=True)
class Event:
    """An event: a sign change of ``condition(u, p, t)`` (one value per member).

    direction: +1 rising (negative to non-negative), -1 falling, 0 both.
    terminal: False records every occurrence; True stops at the first; an int k
    stops after the k-th. With shared stepping the whole batch stops at the
    earliest terminal root; with ``stepping="per_member"`` each member at its own.
    name: the key in ``sol.events`` (default: the condition's ``__name__``).
    """

    condition: Callable[..., torch.Tensor]
    terminal: bool | int = False
    direction: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.condition):
            raise ProblemError(f"Event condition must be callable as condition(u, p, t); got "
                               f"{type(self.condition).__name__}")
        terminal = self.terminal
        if not isinstance(terminal, (bool, int)) or (not isinstance(terminal, bool) and terminal < 1):
            raise ProblemError(f"Event terminal must be True, False or a positive int (stop after that many "
                               f"occurrences); got {terminal!r}")
        if isinstance(self.direction, bool) or self.direction not in (-1, 0, 1):
            raise ProblemError(f"Event direction must be -1 (falling), 0 (both) or +1 (rising); got {self.direction!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise ProblemError(f"Event name must be a string or None; got {type(self.name).__name__}")

    @property
    def stop_after(self) -> int:
        """How many occurrences end the solve (0: never)."""
        if self.terminal is True:
            return 1
        return 0 if self.terminal is False else int(self.terminal)

    @property
    def label(self) -> str:
        return self.name or getattr(self.condition, "__name__", "event")


@dataclasses.dataclass
class Occurrence:
    """The members whose event occurred in accepted step ``step`` of the loop, at ``theta``
    (batch) within it, or at its end when ``theta`` is None; ``u`` is their state there."""

    members: torch.Tensor
    t: torch.Tensor
    step: int
    theta: torch.Tensor | None
    u: torch.Tensor


@dataclasses.dataclass
class EventRecord:
    """Every occurrence of one event: ``t`` (K, *batch), ``u`` (K, *batch, n), NaN-padded
    beyond each member's ``count`` (batch, int64). ``occurrences`` says which step each
    came from (checkpointed sensitivities replay them)."""

    t: torch.Tensor
    u: torch.Tensor
    count: torch.Tensor
    occurrences: list[Occurrence] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def stack(cls, occurrences: list[Occurrence], count: torch.Tensor, u_like: torch.Tensor) -> EventRecord:
        """Per member, its occurrences in order, NaN-padded to the largest count."""
        batch_shape = count.shape
        K = int(count.max()) if count.numel() else 0
        tdtype = u_like.real.dtype if u_like.is_complex() else u_like.dtype
        t_rows = [torch.full(batch_shape, math.nan, dtype=tdtype, device=u_like.device) for _ in range(K)]
        u_rows = [torch.full(tuple(u_like.shape), math.nan, dtype=u_like.dtype, device=u_like.device)
                  for _ in range(K)]
        seen = torch.zeros(batch_shape, dtype=torch.int64, device=u_like.device)
        for occ in occurrences:
            for j in range(K):
                put = occ.members & (seen == j)
                if bool(put.any()):
                    t_rows[j] = torch.where(put, occ.t.to(tdtype), t_rows[j])
                    u_rows[j] = torch.where(put[..., None], occ.u, u_rows[j])
            seen = seen + occ.members
        if K:
            t, u = torch.stack(t_rows), torch.stack(u_rows)
        else:
            t = torch.empty((0,) + tuple(batch_shape), dtype=tdtype, device=u_like.device)
            u = torch.empty((0,) + tuple(u_like.shape), dtype=u_like.dtype, device=u_like.device)
        return cls(t=t, u=u, count=count, occurrences=list(occurrences))

    def with_states(self, states: list[torch.Tensor]) -> EventRecord:
        """The same occurrences with new state tensors (e.g. ones that carry gradients)."""
        occurrences = [dataclasses.replace(o, u=u) for o, u in zip(self.occurrences, states)]
        return EventRecord.stack(occurrences, self.count, self.u[0] if self.u.shape[0] else states[0])


def check_events(events: Any) -> tuple[Event, ...]:
    """``solve(events=...)``: None, one Event, or a sequence of Events with distinct names."""
    if events is None:
        return ()
    items = (events,) if isinstance(events, Event) else events
    if not isinstance(items, (list, tuple)) or not all(isinstance(e, Event) for e in items):
        raise ProblemError("events must be a sciode.Event or a list of them; got "
                           f"{type(events).__name__}")
    labels = [e.label for e in items]
    if labels and (len(set(labels)) != len(labels) or "<lambda>" in labels):
        raise ProblemError(f"events need distinct names (give Event(..., name=...)); got {labels}")
    return tuple(items)


def hermite(theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
            f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
    """The cubic Hermite interpolant through (u0, f0) and (u1, f1) over a step of size h."""
    t2, t3 = theta * theta, theta * theta * theta
    return ((2 * t3 - 3 * t2 + 1) * u0 + (t3 - 2 * t2 + theta) * h * f0
            + (-2 * t3 + 3 * t2) * u1 + (t3 - t2) * h * f1)


def event_state(solver: Any, rhs: Any, theta: torch.Tensor, t: torch.Tensor, h: torch.Tensor, u0: torch.Tensor,
                res: Any) -> torch.Tensor:
    """u(t + theta h) within a step (theta: batch): the solver's interpolant, else a cubic Hermite
    from f at both ends. Differentiable in u0 and the step's results."""
    if solver.dense_output:
        return solver.interpolate(theta[..., None], h, u0, res.u, res.dense)
    f0 = rhs.f(u0, rhs.p, t)
    f1 = rhs.f(res.u, rhs.p, t + h)
    return hermite(theta[..., None], h, u0, res.u, f0, f1)


class EventTracker:
    """The loop's event state: last condition values, occurrence counts, landings, records."""

    def __init__(self, events: tuple[Event, ...], problem: Any, solver: Any, rhs: Any, clock: Any) -> None:
        self.events, self.problem, self.solver, self.rhs, self.clock = events, problem, solver, rhs, clock
        self.batch_shape = problem.batch_shape
        self.per_member = clock.per_member
        self.rows: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in events]
        self.pending: list[torch.Tensor] | None = None  # per event: members landing on its root
        self.terminated: torch.Tensor | None = None  # members stopped by a terminal event
        self.terminal_names: set[str] = set()

    # -- conditions -----------------------------------------------------------------------------
    def evaluate(self, k: int, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        event = self.events[k]
        value = event.condition(u, self.problem.p, t)
        if not isinstance(value, torch.Tensor):
            raise ProblemError(f"event {event.label!r}: condition must return a tensor with one value per member "
                               f"(shape {tuple(self.batch_shape)}); it returned {type(value).__name__}")
        if value.shape != self.batch_shape:
            if value.shape == self.batch_shape + (1,):
                value = value[..., 0]
            else:
                raise ProblemError(f"event {event.label!r}: condition returned shape {tuple(value.shape)}; expected "
                                   f"one value per member, shape {tuple(self.batch_shape)}")
        if value.is_complex():
            raise ProblemError(f"event {event.label!r}: condition must return real values")
        return value.detach()

    def start(self, t0: torch.Tensor, u0: torch.Tensor) -> None:
        with torch.no_grad():
            self.g = [self.evaluate(k, u0, t0) for k in range(len(self.events))]
        self.counts = [torch.zeros(self.batch_shape, dtype=torch.int64, device=u0.device) for _ in self.events]

    def crossing(self, k: int, g0: torch.Tensor, g1: torch.Tensor) -> torch.Tensor:
        d = self.events[k].direction
        rising = (g0 < 0) & (g1 >= 0)
        falling = (g0 > 0) & (g1 <= 0)
        return rising if d > 0 else falling if d < 0 else rising | falling

    # -- one step -------------------------------------------------------------------------------
    def check(self, st: Any, t: torch.Tensor, step: Any, res: Any, accepted: Any, last: Any, target: Any) -> Any:
        """Called for a step the controller accepted (``accepted``: True or a per-member mask).

        Returns the acceptance after the events: members whose step holds a terminal
        root are turned back (they land on it with the next step). Occurrences that
        stand are recorded (their states with autograd, as the loop runs); landings that
        completed terminate their members.
        """
        mask = st.running if not self.per_member else accepted[..., 0]
        with torch.no_grad():
            t1 = t + step
            landed = self._landed(mask, last, target)
            g1 = [self.evaluate(k, res.u, t1) for k in range(len(self.events))]
            crossings = []
            for k in range(len(self.events)):
                c = self.crossing(k, self.g[k], g1[k]) & mask
                if self.pending is not None:
                    c = c & ~self.pending[k]
                crossings.append(c if bool(c.any()) else None)
        if all(c is None for c in crossings) and landed is None:
            self._advance(g1, mask)
            return accepted
        h = self._step_tensor(step, res.u)
        with torch.no_grad():
            roots = [None if c is None else self.locate(k, c, t, h, st.u, res, self.g[k], g1[k])
                     for k, c in enumerate(crossings)]
            terminal, when = self._terminal_hits(crossings, roots)
        if terminal is not None:
            return self._turn_back(crossings, roots, terminal, when, accepted)
        for k, c in enumerate(crossings):
            if c is not None:
                t_root, theta = roots[k]
                self._record(k, c, t_root, self.value_at(theta, t, h, st.u, res), st, theta)
        if landed is not None:
            self._terminate(st, landed, res, target)
        self._advance(g1, mask)
        return accepted

    def _terminal_hits(self, crossings: list, roots: list) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Members whose crossing completes a terminal count, and their earliest root (elapsed time)."""
        d, t0 = self.clock.direction, self.clock.t0
        terminal, when = None, None
        for k, c in enumerate(crossings):
            n = self.events[k].stop_after
            if c is None or n == 0:
                continue
            hits = c & (self.counts[k] + 1 >= n)
            elapsed = (roots[k][0] - t0) * d
            if when is None:
                when = torch.full_like(elapsed, math.inf)
            when = torch.where(hits & (elapsed < when), elapsed, when)
            terminal = hits if terminal is None else terminal | hits
        if terminal is None or not bool(terminal.any()):
            return None, when
        return terminal, when

    def _step_tensor(self, step: Any, like: torch.Tensor) -> torch.Tensor:
        if isinstance(step, torch.Tensor):
            return step
        dtype = like.real.dtype if like.is_complex() else like.dtype
        return torch.full(self.batch_shape + (1,), step, dtype=dtype, device=like.device)

    def _landed(self, mask: torch.Tensor, last: Any, target: Any) -> torch.Tensor | None:
        """Members whose pending landing this step completes."""
        if self.pending is None:
            return None
        if self.per_member:
            landing = torch.zeros_like(mask)
            for p in self.pending:
                landing = landing | p
            reached = last[..., 0] & mask & landing & (target[..., 0] == self.clock.landing[..., 0])
            return reached if bool(reached.any()) else None
        landing = self.clock.landing
        return mask if last and landing is not None and target == landing else None

    def _advance(self, g1: list[torch.Tensor], mask: torch.Tensor) -> None:
        self.g = [torch.where(mask, new, old) for new, old in zip(g1, self.g)]

    def locate(self, k: int, members: torch.Tensor, t: torch.Tensor, h: torch.Tensor, u0: torch.Tensor,
               res: Any, g0: torch.Tensor, g1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Root time (batch) and theta (batch, 1) of event k in the step, for ``members``."""
        detached = res._replace(u=res.u.detach())

        def interpolate(theta: torch.Tensor) -> torch.Tensor:
            return event_state(self.solver, self.rhs, theta, t, h, u0.detach(), detached)

        t_b = t.expand(self.batch_shape + (1,)) if t.ndim else t.reshape(1).expand(self.batch_shape + (1,))
        tol = 4 * torch.finfo(h.dtype).eps * torch.maximum(t_b.abs(), (t_b + h).abs()).clamp_min(1e-300)
        tol_theta = (tol / h.abs().clamp_min(1e-300))[..., 0]
        lo = torch.zeros_like(g0, dtype=h.dtype)
        hi = torch.ones_like(lo)
        glo, ghi = g0.to(h.dtype), g1.to(h.dtype)
        side = torch.zeros_like(g0, dtype=torch.int8)
        active = members & (ghi != 0)
        for _ in range(MAX_ROOT_ITERATIONS):
            if not bool(active.any()):
                break
            denom = ghi - glo
            theta = torch.where(denom != 0, (lo * ghi - hi * glo) / torch.where(denom != 0, denom, 1), (lo + hi) / 2)
            theta = torch.minimum(torch.maximum(theta, lo), hi)
            g = self.evaluate(k, interpolate(theta), t_b + theta[..., None] * h).to(h.dtype)
            same_as_lo = (g * glo) > 0
            zero = g == 0
            move_lo = active & same_as_lo & ~zero
            move_hi = active & ~same_as_lo & ~zero
            # Illinois: when the same end moves twice in a row, halve the other end's value
            glo = torch.where(move_hi & (side == -1), glo / 2, glo)
            ghi = torch.where(move_lo & (side == 1), ghi / 2, ghi)
            lo, glo = torch.where(move_lo, theta, lo), torch.where(move_lo, g, glo)
            hi, ghi = torch.where(move_hi | (active & zero), theta, hi), torch.where(move_hi, g, ghi)
            side = torch.where(move_lo, 1, torch.where(move_hi, -1, side)).to(torch.int8)
            active = active & ~zero & ((hi - lo) > tol_theta)
        theta = hi  # the bracket end past the sign change (the root itself when it was hit exactly)
        t_root = (t_b + theta[..., None] * h)[..., 0]
        return t_root, theta

    def value_at(self, theta: torch.Tensor, t: torch.Tensor, h: torch.Tensor, u0: torch.Tensor,
                 res: Any) -> torch.Tensor:
        """The state at the root, computed with autograd when the loop records it."""
        return event_state(self.solver, self.rhs, theta, t, h, u0, res)

    # -- records and landings -------------------------------------------------------------------
    def _record(self, k: int, members: torch.Tensor, t_root: torch.Tensor, u: torch.Tensor, st: Any,
                theta: torch.Tensor | None) -> None:
        step = st.accepted if isinstance(st.accepted, int) else -1  # the index of this step among accepted ones
        self.rows[k].append(Occurrence(members, t_root, step, theta, u))
        self.counts[k] = self.counts[k] + members

    def _turn_back(self, crossings: list, roots: list, terminal: torch.Tensor, when: torch.Tensor,
                   accepted: Any) -> Any:
        """Discard the step for the members with a terminal root; the clock lands on it next."""
        d, t0 = self.clock.direction, self.clock.t0
        pending = []
        for k, c in enumerate(crossings):
            if c is None or self.events[k].stop_after == 0:
                pending.append(torch.zeros_like(terminal))
                continue
            hits = c & (self.counts[k] + 1 >= self.events[k].stop_after)
            pending.append(hits & ((roots[k][0] - t0) * d == when) & terminal)
        if self.per_member:
            landing = torch.where(terminal, t0 + d * when, math.nan)[..., None]
            old = self.clock.landing
            self.clock.landing = landing if old is None else torch.where(terminal[..., None], landing, old)
            self.pending = pending if self.pending is None else [a | b for a, b in zip(self.pending, pending)]
            return accepted & ~terminal[..., None]
        earliest = float(torch.where(terminal, when, math.inf).min())
        self.clock.landing = t0 + d * earliest
        self.pending = [p & ((when == earliest) | ~terminal) for p in pending]
        return False

    def _terminate(self, st: Any, landed: torch.Tensor, res: Any, target: Any) -> None:
        """A landing step ended on its root: record the occurrence at the landed state, stop the members."""
        if isinstance(target, torch.Tensor):
            t_end = target[..., 0]
        else:
            t_end = torch.full(self.batch_shape, target, dtype=st.t_stop.dtype, device=st.t_stop.device)
        for k, members in enumerate(self.pending):
            hit = members & landed
            if bool(hit.any()):
                self._record(k, hit, t_end, res.u, st, None)
                self.terminal_names.add(self.events[k].label)
        stop = landed if self.per_member else st.running
        self.terminated = stop if self.terminated is None else self.terminated | stop
        if self.per_member:
            self.pending = [p & ~landed for p in self.pending]
            self.clock.landing = torch.where(landed[..., None], math.nan, self.clock.landing)
        else:
            self.pending, self.clock.landing = None, None

    # -- the Solution's part --------------------------------------------------------------------
    def finish(self, u_like: torch.Tensor) -> dict[str, EventRecord]:
        """Stack every event's occurrences per member (NaN beyond each member's count)."""
        return {event.label: EventRecord.stack(self.rows[k], self.counts[k], u_like)
                for k, event in enumerate(self.events)}


def _row_time(t: torch.Tensor) -> torch.Tensor:
    return t[..., None] if t.ndim else t


def event_time_gradients(records: dict[str, EventRecord], events: tuple[Event, ...],
                         problem: Any) -> dict[str, EventRecord]:
    """Give event times and states their exact gradients (the implicit function theorem).

    The root t* solves g(u(t*; θ), θ, t*) = 0, so dt*/dθ = -(∂g/∂θ) / ġ with
    ġ = ∂g/∂t + ∂g/∂u · f, and the state there moves by f dt*/dθ. Both enter as terms
    whose value is zero and whose gradient is the correction: the numbers stay those
    the root finder found.
    """
    if not torch.is_grad_enabled():
        return records
    out = dict(records)
    for event in events:
        rec = records[event.label]
        if rec.t.numel() == 0 or not (rec.u.requires_grad or any(x.requires_grad for x in parameter_tensors(problem))):
            continue
        valid = torch.isfinite(rec.t)
        t_safe = torch.where(valid, rec.t, 0.0)
        u_safe = torch.where(valid[..., None], rec.u, 0.0)
        t_rows, u_rows = [], []
        for j in range(rec.t.shape[0]):
            tj = _row_time(t_safe[j])
            g = event.condition(u_safe[j], problem.p, tj).reshape(valid[j].shape)
            with torch.enable_grad():
                u_d = u_safe[j].detach().requires_grad_(True)
                t_d = tj.detach().clone().requires_grad_(True)
                g_d = event.condition(u_d, problem.p, t_d).reshape(valid[j].shape)
                g_u, g_t = torch.autograd.grad(g_d.sum(), [u_d, t_d], allow_unused=True)
            with torch.no_grad():
                f = problem.f(u_safe[j].detach(), problem.p, tj.detach()).detach()
                rate = (g_u * f).sum(-1) if g_u is not None else torch.zeros_like(g)
                if g_t is not None:
                    rate = rate + g_t.reshape(rate.shape) if g_t.numel() == rate.numel() else rate + g_t.sum()
                rate = torch.where(valid[j] & (rate != 0), rate, 1.0)
            shift = torch.where(valid[j], -(g - g.detach()) / rate, 0.0)
            t_rows.append(rec.t[j] + shift)
            u_rows.append(rec.u[j] + f * shift[..., None])
        out[event.label] = EventRecord(t=torch.stack(t_rows), u=torch.stack(u_rows), count=rec.count,
                                       occurrences=rec.occurrences)
    return out

