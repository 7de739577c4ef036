"""The ODE-case machinery of benchmarks/peers.py: sides timed round-robin, tables, time at matched accuracy."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

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


def _measure(case: OdeCase, rtol: float, repeats: int) -> dict[str, tuple[float, float, Outcome]]:
    last: dict[str, Outcome] = {}

    def runner(name: str, fn: Callable[[float], Outcome]) -> Callable[[], None]:
        return lambda: last.__setitem__(name, fn(rtol))

    times = interleaved_medians({name: runner(name, fn) for name, fn in case.sides.items()}, repeats, warmup=0)
    return {name: (cpu * case.scale.get(name, 1.0), wall * case.scale.get(name, 1.0), last[name])
            for name, (cpu, wall) in times.items()}


def run_ode_case(case: OdeCase) -> str:
    """The case's table at its rtol, then the matched-accuracy comparison over the ladder."""
    for fn in case.sides.values():  # warm-up (first calls of autograd, linalg, jit dispatch)
        fn(case.rtol)
    main = _measure(case, case.rtol, case.repeats)
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
        points = {name: [(case.rtol, cpu, case.error(out.u, case.reference))] for name, (cpu, _, out) in main.items()}
        for rtol in case.ladder:
            for name, (cpu, _, out) in _measure(case, rtol, max(1, case.repeats // 2)).items():
                points[name].append((rtol, cpu, case.error(out.u, case.reference)))
        ours = [n for n in points if n.startswith("sciode")]
        rows = []
        for peer in (n for n in points if not n.startswith("sciode")):
            for name in ours:
                a, b = _cheapest(points[name], points[peer]), _cheapest(points[peer], points[name], reverse=True)
                rows.append([peer, name, *a, *b])
        rungs = ", ".join(f"{r:g}" for r in (case.rtol, *case.ladder))
        text += [f"\nAt matched accuracy (rtols tried: {rungs}). (a): the peer's error at rtol {case.rtol:g} and the "
                 "cheapest sciode run at least as accurate; (b): sciode's error at that rtol and the cheapest peer run "
                 "at least as accurate. Ratios are sciode CPU time / peer CPU time.\n",
                 table(["peer", "sciode side", "(a) peer error", "(a) sciode CPU ms at rtol", "(a) ratio",
                        "(b) sciode error", "(b) peer CPU ms at rtol", "(b) ratio"], rows)]
    return "\n".join(text)


def _cheapest(candidates: list[tuple[float, float, float]], target: list[tuple[float, float, float]],
              reverse: bool = False) -> list[str]:
    """[target's error at the main rtol, the cheapest candidate run at least as accurate, its time ratio].

    Points are (rtol, CPU seconds, error), the main rtol first. The ratio is always sciode / peer:
    candidate / target, or target / candidate when the candidates are the peer's (``reverse``).
    """
    _, t_target, e_target = target[0]
    enough = [(t, r) for r, t, e in candidates if e <= e_target]
    if not enough:
        return [f"{e_target:.1e}", "not reached", "-"]
    t, r = min(enough)
    ratio = t_target / t if reverse else t / t_target
    return [f"{e_target:.1e}", f"{t * 1e3:.1f} at {r:g}", f"{ratio:.2f}"]
