"""Per-member compaction: the same per-member solves with and without it, interleaved in one process.

    python benchmarks/compaction.py [--members 10000] [--repeats 5]

  lv      Lotka-Volterra (the peers.py case): members to t = 50, tsit5, rtol 1e-6, atol 1e-9, 101 saves;
          the members' step counts differ by about 1.5x, so compaction helps only at the end
  spread  harmonic oscillators whose frequencies span 100x (1 to 100 rad/s), t in [0, 10], same
          tolerances and saves: most passes step a few fast members

For each case: median CPU and wall seconds over interleaved rounds, the loop's work
(``sol.stats["member_evaluations"]``: members stepped, summed over passes) and passes, and whether
the results are bitwise equal (``sol.u``, ``sol.retcodes``, per-member step counts).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import sciode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved_medians, table  # noqa: E402
from _peers_ode import lv_torch  # noqa: E402
from batch_lotka_volterra import members  # noqa: E402


def lotka_volterra(count: int) -> sciode.ODEProblem:
    ds = members(count, 50.0)
    p = torch.tensor(np.stack([ds[v].values for v in ("alpha", "beta", "delta", "gamma")], -1))
    u0 = torch.tensor(np.stack([ds["prey0"].values, ds["predator0"].values], -1))
    return sciode.ODEProblem(lv_torch, u0, (0.0, 50.0), p)


def oscillator(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[..., 0] * u[..., 1], -p[..., 0] * u[..., 0]], dim=-1)


def spread(count: int) -> sciode.ODEProblem:
    omega = torch.logspace(0, 2, count, dtype=torch.float64)[:, None]
    u0 = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(count, 2).clone()
    return sciode.ODEProblem(oscillator, u0, (0.0, 10.0), p=omega)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for case, prob in (("lv", lotka_volterra(args.members)), ("spread", spread(args.members))):
        def run(compact: float | None, prob: sciode.ODEProblem = prob) -> sciode.Solution:
            return sciode.solve(prob, "tsit5", stepping="per_member", rtol=1e-6, atol=1e-9, saveat=100,
                                compact=compact)

        sols = {compact: run(compact) for compact in (None, 0.5)}
        plain, packed = sols[None], sols[0.5]
        bitwise = (torch.equal(plain.u, packed.u) and torch.equal(plain.retcodes, packed.retcodes)
                   and all(torch.equal(plain.member_stats[k], packed.member_stats[k]) for k in plain.member_stats))
        times = interleaved_medians({"off": lambda: run(None), "0.5": lambda: run(0.5)}, args.repeats, warmup=0)
        for label, compact in (("off", None), ("0.5", 0.5)):
            sol, (cpu, wall) = sols[compact], times[label]
            rows.append([case, f"compact={label}", f"{cpu:.2f}", f"{wall:.2f}", f"{cpu / times['off'][0]:.2f}",
                         f"{sol.stats['member_evaluations']:,}", f"{sol.stats['iterations']:,}",
                         f"{int(sol.member_stats['nsteps'].min())}-{int(sol.member_stats['nsteps'].max())}",
                         "yes" if bitwise else "NO"])
    print(f"{args.members} members, tsit5 per_member, median of {args.repeats} interleaved rounds, one thread")
    print(table(["case", "side", "CPU s", "wall s", "CPU / off", "member evaluations", "passes",
                 "member nsteps", "bitwise equal"], rows))


if __name__ == "__main__":
    main()
