"""Shared helpers for the benchmark scripts: timing, counting, printing tables."""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch


def best_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Minimum CPU time of this process over ``repeats`` runs (after ``warmup``): robust to a busy machine."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def interleaved_medians(runs: Mapping[str, Callable[[], object]], repeats: int,
                        warmup: int = 1) -> dict[str, tuple[float, float]]:
    """Median (CPU, wall) seconds of each run over ``repeats`` round-robin rounds, after ``warmup`` calls each.

    Round-robin puts every side under the same machine load; the CPU time of this process
    (``time.process_time``) is what a busy shared machine disturbs least.
    """
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in runs}


def thread_cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) each live thread of this process has used so far; empty where /proc is missing."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    seconds = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return seconds
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (stat fields 14, 15)
    return seconds


def busy_threads(fn: Callable[[], object], share: float = 0.05) -> int:
    """How many threads of this process did at least ``share`` of the CPU work while ``fn()`` ran (0 without /proc).

    Checks that a side said to run on one thread does: a thread pool shows as more than one."""
    before = thread_cpu_seconds()
    fn()
    used = {tid: t - before.get(tid, 0.0) for tid, t in thread_cpu_seconds().items()}
    total = sum(used.values())
    return sum(1 for t in used.values() if total > 0 and t >= share * total)


class Counted(torch.nn.Module):
    """Wraps a module and counts its forward calls (NFE), whatever library calls it.

    Calls traced into a ``torch.compile`` graph are not counted (a Python int changed inside
    a graph would recompile it on every call); compiled sides read sciode's own ``nfe``."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.calls = 0

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            self.calls += 1
        return self.net(u)


def mlp(width: int = 50, dim: int = 2, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(dim, width), torch.nn.Tanh(), torch.nn.Linear(width, dim)).to(dtype)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])
