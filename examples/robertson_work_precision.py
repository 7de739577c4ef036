"""Robertson's stiff chemical kinetics: a work-precision diagram of sciode against scipy.

Solves Robertson's problem on t in [0, 1e5] with sciode's stiff solvers and with
scipy's Radau, BDF and LSODA at a range of tolerances, measures the error against a
Radau solution at rtol 1e-12 (at 20 log-spaced times) and the CPU time and f
evaluations, and writes robertson_work_precision.png plus robertson.nc (the
trajectory on a log time grid).

Quick check: python examples/robertson_work_precision.py --rtols 1e-4 1e-6
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

import sciode
import sciode.io

TSPAN = (0.0, 1e5)
U0 = [1.0, 0.0, 0.0]


def robertson(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    y1, y2, y3 = u[..., 0], u[..., 1], u[..., 2]
    k1, k2, k3 = 0.04, 3e7, 1e4
    return torch.stack([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3, k2 * y2 * y2], dim=-1)


def numpy_robertson(t: float, y: np.ndarray) -> np.ndarray:
    return robertson(torch.from_numpy(y), None, torch.tensor(t)).numpy()


def relative_error(values: np.ndarray, reference: np.ndarray) -> float:
    """Largest error relative to each component's scale (y2 is ~1e-5 at most)."""
    scale = np.abs(reference).max(axis=0)
    return float((np.abs(values - reference) / scale).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtols", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8])
    parser.add_argument("--solvers", nargs="+", default=[s for s in ("rodas4", "rodas4p") if s in sciode.solvers()])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    times = np.concatenate([[0.0], np.logspace(-5, 5, 20)])
    ref = solve_ivp(numpy_robertson, TSPAN, U0, method="Radau", rtol=1e-12, atol=1e-16, t_eval=times).y.T
    prob = sciode.ODEProblem(robertson, torch.tensor(U0, dtype=torch.float64), TSPAN, state_names=["y1", "y2", "y3"],
                             name="Robertson")

    for name in args.solvers:  # warm-up: first calls pay one-off costs (torch.func tracing, allocations)
        sciode.solve(prob, name, rtol=1e-3, atol=1e-7, saveat=torch.tensor(times))
    results: dict[str, list[tuple[float, float, int]]] = {}
    for rtol in args.rtols:
        atol = rtol * 1e-4
        for name in args.solvers:
            start = time.process_time()
            sol = sciode.solve(prob, name, rtol=rtol, atol=atol, saveat=torch.tensor(times))
            elapsed = time.process_time() - start
            results.setdefault(f"sciode {name}", []).append(
                (relative_error(sol.u.numpy(), ref), elapsed, sol.stats["nfe"]))
        for method in ("Radau", "BDF", "LSODA"):
            start = time.process_time()
            out = solve_ivp(numpy_robertson, TSPAN, U0, method=method, rtol=rtol, atol=atol, t_eval=times)
            elapsed = time.process_time() - start
            results.setdefault(f"scipy {method}", []).append((relative_error(out.y.T, ref), elapsed, out.nfev))

    print(f"{'method':<16} {'rtol':>7} {'error':>9} {'CPU s':>8} {'nfe':>7}")
    for name, rows in results.items():
        for rtol, (err, secs, nfe) in zip(args.rtols, rows):
            print(f"{name:<16} {rtol:7.0e} {err:9.2e} {secs:8.3f} {nfe:7d}")

    best = sciode.solve(prob, args.solvers[0], rtol=1e-8, atol=1e-12, saveat=torch.tensor(times))
    sciode.io.save(best.to_xarray(), args.output_dir / "robertson.nc", overwrite=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_traj, ax_time, ax_nfe) = plt.subplots(1, 3, figsize=(15, 4))
    for i, label in enumerate(["y1", "y2 x 1e4", "y3"]):
        scale = 1e4 if i == 1 else 1.0
        ax_traj.semilogx(times[1:], best.u[1:, i].numpy() * scale, label=label)
    ax_traj.set(xlabel="t", title=f"Robertson ({args.solvers[0]}, rtol 1e-8)")
    ax_traj.legend()
    for name, rows in results.items():
        errs, secs, nfes = zip(*rows)
        style = "-o" if name.startswith("sciode") else "--s"
        ax_time.loglog(secs, errs, style, label=name)
        ax_nfe.loglog(nfes, errs, style, label=name)
    ax_time.set(xlabel="CPU time (s)", ylabel="max relative error", title="work-precision: time")
    ax_nfe.set(xlabel="f evaluations", title="work-precision: f evaluations")
    ax_time.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output_dir / "robertson_work_precision.png", dpi=120)
    print(f"wrote {args.output_dir / 'robertson_work_precision.png'} and {args.output_dir / 'robertson.nc'}")


if __name__ == "__main__":
    main()
