"""Explicit solvers against torchdiffeq and torchode on the same MLP vector field, in one process.

(a) Loop overhead: fixed-step rk4, 1000 steps, MLP 2-50-2, batch 16, no grad, eager and
    compile=True. Reports the time relative to 4000 bare calls of the MLP (eager, and compiled
    with torch.compile), to a hand-written rk4 loop (the four calls and one tensor op per
    nonzero coefficient, seven, and nothing else: no loop can do less in eager PyTorch), and
    relative to torchdiffeq; all sides interleaved, medians.
(b) Work-precision: dopri5 / tsit5 at rtol 1e-3 .. 1e-8 on the same model (float64): NFE and
    achieved error against a tight reference, for sciode, torchdiffeq and torchode.

Run:  python benchmarks/explicit_vs_peers.py
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _common import Counted, interleaved_medians, mlp, table

import sciode


def hand_written_rk4(f: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor, dt: float, steps: int) -> list:
    """Classical rk4 as a person writes it for speed: one fused op per nonzero coefficient, every step kept."""
    kept = [u]
    for _ in range(steps):
        k1 = f(u)
        k2 = f(torch.add(u, k1, alpha=dt / 2))
        k3 = f(torch.add(u, k2, alpha=dt / 2))
        k4 = f(torch.add(u, k3, alpha=dt))
        u = torch.add(u, k1, alpha=dt / 6).add_(k2, alpha=dt / 3).add_(k3, alpha=dt / 3).add_(k4, alpha=dt / 6)
        kept.append(u)
    return kept


def overhead(repeats: int) -> str:
    net = mlp()
    u0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    prob = sciode.ODEProblem(lambda u, p, t: net(u), u0, (0.0, 1.0))
    grid = torch.linspace(0.0, 1.0, 1001)
    compiled_net = torch.compile(net, dynamic=False)
    runs = {"bare f x4000": lambda: [net(u0) for _ in range(4000)],
            "bare f compiled x4000": lambda: [compiled_net(u0) for _ in range(4000)],
            "hand-written rk4 loop": lambda: torch.stack(hand_written_rk4(net, u0, 1e-3, 1000)),
            "sciode rk4 (dense output kept)": lambda: sciode.solve(prob, "rk4", dt=1e-3),
            "sciode rk4 (dense=False)": lambda: sciode.solve(prob, "rk4", dt=1e-3, dense=False),
            "sciode rk4 (dense=False, compile=True)": lambda: sciode.solve(prob, "rk4", dt=1e-3, dense=False,
                                                                           compile=True)}
    try:
        import torchdiffeq

        runs["torchdiffeq rk4"] = lambda: torchdiffeq.odeint(lambda t, u: net(u), u0, grid, method="rk4")
    except ImportError:
        pass
    with torch.no_grad():  # the warm-up call of each side compiles the compiled ones
        times = {name: cpu for name, (cpu, _) in interleaved_medians(runs, repeats).items()}
    bare, bare_compiled, tdq = times["bare f x4000"], times["bare f compiled x4000"], times.get("torchdiffeq rk4")
    hand = times["hand-written rk4 loop"]
    rows = [[name, f"{t * 1e3:.1f}", f"{t / bare:.2f}", f"{t / bare_compiled:.2f}", f"{t / hand:.2f}",
             f"{t / tdq:.2f}" if tdq else "-"] for name, t in times.items()]
    return table(["(a) fixed-step rk4, 1000 steps", "CPU ms (median)", "/ bare f", "/ bare f compiled",
                  "/ hand-written loop", "/ torchdiffeq"], rows)


def work_precision(rtols: list[float]) -> str:
    net = mlp(dtype=torch.float64)
    u0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tspan = (0.0, 5.0)
    counted = Counted(net)
    prob = sciode.ODEProblem(lambda u, p, t: counted(u), u0, tspan)
    with torch.no_grad():
        reference = sciode.solve(prob, "dopri5", rtol=1e-13, atol=1e-15).u[-1]
    solvers = {"sciode dopri5": lambda r: sciode.solve(prob, "dopri5", rtol=r, atol=r * 1e-3).u[-1],
               "sciode tsit5": lambda r: sciode.solve(prob, "tsit5", rtol=r, atol=r * 1e-3).u[-1]}
    try:
        import torchdiffeq

        ts = torch.tensor(tspan, dtype=torch.float64)
        solvers["torchdiffeq dopri5"] = lambda r: torchdiffeq.odeint(lambda t, u: counted(u), u0, ts, rtol=r,
                                                                     atol=r * 1e-3, method="dopri5")[-1]
    except ImportError:
        pass
    try:
        import torchode as to

        def torchode_solve(method: type, r: float) -> torch.Tensor:
            term = to.ODETerm(lambda t, u: counted(u))
            solver = to.AutoDiffAdjoint(method(term=term), to.IntegralController(atol=r * 1e-3, rtol=r, term=term))
            t_eval = torch.tensor(tspan, dtype=torch.float64).repeat(u0.shape[0], 1)
            return solver.solve(to.InitialValueProblem(y0=u0, t_eval=t_eval)).ys[:, -1]

        solvers["torchode dopri5"] = lambda r: torchode_solve(to.Dopri5, r)
        solvers["torchode tsit5"] = lambda r: torchode_solve(to.Tsit5, r)
    except ImportError:
        pass
    points: dict[str, list[tuple[float, int, float]]] = {name: [] for name in solvers}
    for rtol in rtols:
        for name, fn in solvers.items():
            counted.calls = 0
            with torch.no_grad():
                err = float((fn(rtol) - reference).abs().max())
            points[name].append((rtol, counted.calls, err))
    rows = [[f"{r:.0e}", name, n, f"{e:.2e}"] for name, pts in points.items() for r, n, e in pts]
    out = table(["rtol", "(b) solver (atol = rtol/1000)", "NFE", "max error at t=5"],
                sorted(rows, key=lambda r: (float(r[0]), r[1]), reverse=True))
    # at matched accuracy: the fewest NFE each sciode method needs to be at least as accurate as a peer's run
    ours = [n for n in points if n.startswith("sciode")]
    matched = []
    for peer in (n for n in points if not n.startswith("sciode")):
        for r, n_peer, e_peer in points[peer]:
            row = [peer, f"{r:.0e}", f"{e_peer:.2e}", n_peer]
            for name in ours:
                enough = [n for _, n, e in points[name] if e <= e_peer]
                row.append(f"{min(enough)} ({min(enough) / n_peer:.2f}x)" if enough else "-")
            matched.append(row)
    header = ["peer run", "rtol", "peer error", "peer NFE", *(f"{n} NFE for <= error" for n in ours)]
    return out + "\n\n" + table(header, matched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(overhead(args.repeats))
    print()
    print(work_precision([1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]))


if __name__ == "__main__":
    main()
