"""Events on a batch: an SIR epidemic for 16 reproduction numbers, each member stopping at its own time.

Run:  python examples/threshold_batch.py [--members 16] [--output-dir examples/output]
Each member records the peak of infections (a non-terminal event: I' changes sign from
+ to -) and stops when the infected fraction falls below a threshold (a terminal event)
with stepping="per_member", so every member ends at its own time while the others go on.
Members with R0 < 1 never peak: their peak is NaN and their count 0. Writes
threshold_batch.png (infections, peaks and stops) and threshold_batch.nc (the labelled
trajectories with the events as variables, as Solution.to_xarray writes them).
Quick check:  python examples/threshold_batch.py --members 4
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import sciode

GAMMA = 0.1  # recovery rate, 1/day
THRESHOLD = 1e-4  # the epidemic counts as over below this infected fraction


def sir(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Fractions [S, I, R]; p = beta, one per member (shape (members, 1))."""
    s, i = u[..., :1], u[..., 1:2]
    infection = p * s * i
    return torch.cat([-infection, infection - GAMMA * i, GAMMA * i], dim=-1)


def growth(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """I' / I = beta S - gamma: positive while the epidemic grows, negative after the peak."""
    return p[..., 0] * u[..., 0] - GAMMA


def infected_above_threshold(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return u[..., 1] - THRESHOLD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)

    r0 = torch.linspace(0.8, 4.0, args.members, dtype=torch.float64)[:, None]
    i0 = 1e-3
    u0 = torch.tensor([[1 - i0, i0, 0.0]], dtype=torch.float64).repeat(args.members, 1)
    prob = sciode.ODEProblem(sir, u0, (0.0, 1000.0), r0 * GAMMA, state_names=["S", "I", "R"], time_units="days")
    events = [sciode.Event(growth, direction=-1, name="peak"),
              sciode.Event(infected_above_threshold, direction=-1, terminal=True, name="over")]
    sol = sciode.solve(prob, "tsit5", events=events, stepping="per_member", saveat=500, rtol=1e-8, atol=1e-10)
    peak, over = sol.events["peak"], sol.events["over"]
    for m in range(args.members):
        peak_t = float(peak.t[0, m])
        print(f"R0 = {float(r0[m]):.2f}: peak at day {peak_t:7.2f} ({float(peak.u[0, m, 1]):.3f} infected), "
              f"over at day {float(over.t[0, m]):7.2f}, {sol.member_retcode(m).name}")

    ds = sol.to_xarray()
    ds = ds.assign_coords(R0=("member", r0[:, 0].numpy()))
    nc_path = args.output_dir / "threshold_batch.nc"
    ds.to_netcdf(nc_path)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_i, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.viridis(torch.linspace(0, 1, args.members).numpy())
    for m in range(args.members):
        ax_i.plot(sol.t, sol.u[:, m, 1], color=colors[m], lw=1)
        ax_i.plot(peak.t[0, m], peak.u[0, m, 1], "o", color=colors[m], ms=4)
        ax_i.plot(over.t[0, m], over.u[0, m, 1], "x", color=colors[m], ms=5)
    ax_i.set(yscale="log", ylim=(THRESHOLD / 3, 1), xlabel="time (days)", ylabel="infected fraction",
             title="Infections: o peak, x stop (terminal event)")
    ax_t.plot(r0[:, 0], peak.t[0], "o-", label="peak")
    ax_t.plot(r0[:, 0], over.t[0], "x-", label="below threshold (stop)")
    ax_t.set(xlabel="R0", ylabel="day", title="Event times per member")
    ax_t.legend()
    fig.tight_layout()
    png_path = args.output_dir / "threshold_batch.png"
    fig.savefig(png_path, dpi=120)
    print(f"wrote {png_path} and {nc_path}")


if __name__ == "__main__":
    main()
