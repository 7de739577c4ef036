"""The peer-case machinery of benchmarks/peers.py: sides timed round-robin, tables, time at matched accuracy."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from _common import interleaved_medians, table


@dataclasses.dataclass
class Outcome:
    """What one run of one side produced: the values its error is measured on, and its work."""

    u: np.ndarray
    iterations: int | None  # loop iterations paid for (attempted steps; for per-member runs the longest member)
    nfe: int | None = None


@dataclasses.dataclass
class OdeCase:
    """One problem, several sides (rtol -> Outcome); sides named "sciode ..." are ours, the rest peers."""

    title: str
    sides: dict[str, Callable[[float], Outcome]]
    rtol: float
    reference: np.ndarray
    error: Callable[[np.ndarray, np.ndarray], float]
    ladder: tuple[float, ...] = ()  # further rtols, for the time at matched accuracy
    compile_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    scale: dict[str, float] = dataclasses.field(default_factory=dict)  # sides timed on a subset: time factor
    repeats: int = 5
    ladder_repeats: int | None = None  # rounds at each further rtol (default: half of ``repeats``)


#: one side's run at one rtol: median CPU and wall seconds and its last outcome
Timed = tuple[float, float, Outcome]


class Point(NamedTuple):
    """One side at one rtol, for the matched-accuracy search."""

    rtol: float
    cpu: float
    error: float
    iterations: int | None


def measure(case: OdeCase, rtol: float, repeats: int) -> dict[str, Timed]:
    """Every side at ``rtol``, ``repeats`` round-robin rounds after one untimed call each.

    The untimed call is where a compiled side compiles (its tolerances are constants of its
    graphs, so each rtol compiles anew) and where first calls warm up autograd, linalg and
    jit dispatch: none of that is in the medians.
    """
    last: dict[str, Outcome] = {}

    def runner(name: str, fn: Callable[[float], Outcome]) -> Callable[[], None]:
        return lambda: last.__setitem__(name, fn(rtol))

    times = interleaved_medians({name: runner(name, fn) for name, fn in case.sides.items()}, repeats, warmup=1)
    return {name: (cpu * case.scale.get(name, 1.0), wall * case.scale.get(name, 1.0), last[name])
            for name, (cpu, wall) in times.items()}


def run_ode_case(case: OdeCase) -> str:
    """The case's table at its rtol, then the matched-accuracy comparison over the ladder."""
    main = measure(case, case.rtol, case.repeats)
    base = next(iter(main.values()))[0]
    rows = []
    for name, (cpu, wall, out) in main.items():
        per = f"{cpu / out.iterations * 1e3:.4f}" if out.iterations else "-"
        rows.append([name, f"{cpu * 1e3:.1f}", f"{wall * 1e3:.1f}", out.iterations or "-", per, out.nfe or "-",
                     f"{case.error(out.u, case.reference):.1e}", f"{cpu / base:.2f}",
                     f"{case.compile_seconds[name]:.1f}" if name in case.compile_seconds else "-"])
    text = [f"### {case.title}\n", table(["side", "CPU ms (median)", "wall ms", "loop iterations", "CPU ms / iteration",
                                         "NFE", "error", "CPU / first row", "compile s"], rows)]
    if case.ladder:
        text.append("\n" + matched_accuracy(case, main))
    return "\n".join(text)


def matched_accuracy(case: OdeCase, main: dict[str, Timed]) -> str:
    """Every side again at each rtol of the ladder, then for each (peer, sciode side): (a) the cheapest sciode
    run at least as accurate as the peer at the case's rtol, (b) the cheapest peer run at least as accurate
    as sciode there; each pair found is timed again head to head, round-robin, for its ratio. ``main``: the
    sides' runs at the case's rtol (from :func:`measure`)."""
    if all(name.startswith("sciode") for name in main):
        return "(no peer installed: no matched-accuracy comparison)"
    points = {name: [Point(case.rtol, cpu, case.error(out.u, case.reference), out.iterations)]
              for name, (cpu, _, out) in main.items()}
    rounds = case.ladder_repeats or max(1, case.repeats // 2)
    for rtol in case.ladder:
        for name, (cpu, _, out) in measure(case, rtol, rounds).items():
            points[name].append(Point(rtol, cpu, case.error(out.u, case.reference), out.iterations))
    ours = [n for n in points if n.startswith("sciode")]
    rows = []
    for peer in (n for n in points if not n.startswith("sciode")):
        for name in ours:
            rows.append([peer, name, *_matched(case, points, peer, name, rounds),
                         *_matched(case, points, name, peer, rounds)])
    rungs = sorted((case.rtol, *case.ladder))
    ladder = [[name, *(f"{p.error:.1e}, {_work(p.cpu, p)}" for p in sorted(side))] for name, side in points.items()]
    return "\n".join([
        f"Every side at each rtol ({rounds} rounds at each further rtol): error, CPU ms (median), loop iterations.\n",
        table(["side", *(f"rtol {r:g}" for r in rungs)], ladder),
        f"\nAt matched accuracy. (a): the peer at rtol {case.rtol:g} and the cheapest sciode run at least as accurate; "
        f"(b): sciode at rtol {case.rtol:g} and the cheapest peer run at least as accurate. The cheapest run is the "
        "one with the fewest loop iterations, the most accurate of those (picking by time would pick the machine's "
        f"noise). Each pair is then timed head to head ({rounds} round-robin rounds, medians): those are the times "
        "shown and their ratio, sciode CPU time / peer CPU time; it.: loop iterations.\n",
        table(["peer", "sciode side", "(a) peer: error, CPU ms, it.", "(a) cheapest sciode: rtol, CPU ms, it., "
               "ms / it.", "(a) ratio", "(b) sciode: error, CPU ms, it.", "(b) cheapest peer: rtol, CPU ms, it., "
               "ms / it.", "(b) ratio"], rows)])


def _work(cpu: float, p: Point) -> str:
    return f"{cpu * 1e3:.1f} ms" + (f", {p.iterations} it." if p.iterations else "")


def _matched(case: OdeCase, points: dict[str, list[Point]], target: str, candidate: str, rounds: int) -> list[str]:
    """[``target`` at the case's rtol, the cheapest ``candidate`` run at least as accurate, sciode / peer time].

    Cheapest: the fewest loop iterations, and of those the most accurate run (runs of equal work differ in time
    only by the machine's noise, which a choice by time would pick up); sides without an iteration count: by time.
    The two runs are then timed head to head. ``points[name]`` starts with the case's rtol.
    """
    goal = points[target][0]
    enough = [p for p in points[candidate] if p.error <= goal.error]
    if not enough:
        return [f"{goal.error:.1e}, {_work(goal.cpu, goal)}", "not reached", "-"]
    best = min(enough, key=lambda p: (p.iterations, p.error) if p.iterations else (0, p.cpu))
    runs = {target: lambda: case.sides[target](goal.rtol), candidate: lambda: case.sides[candidate](best.rtol)}
    times = {name: cpu * case.scale.get(name, 1.0) for name, (cpu, _) in interleaved_medians(runs, rounds).items()}
    per = f", {times[candidate] / best.iterations * 1e3:.3f}" if best.iterations else ""
    ratio = times[candidate] / times[target] if candidate.startswith("sciode") else times[target] / times[candidate]
    return [f"{goal.error:.1e}, {_work(times[target], goal)}", f"{best.rtol:g}: {_work(times[candidate], best)}{per}",
            f"{ratio:.2f}"]
