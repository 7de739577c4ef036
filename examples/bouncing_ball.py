"""A bouncing ball: a terminal event at the ground, then a restart with remake and the velocity reversed.

Run:  python examples/bouncing_ball.py [--bounces 10] [--restitution 0.8] [--output-dir examples/output]
Writes bouncing_ball.png (height against time, bounces marked) and bouncing_ball.nc (the
trajectory of every flight, with the bounce times and velocities). The bounce times are
checked against the closed form t_k = t_1 (1 + 2 e + ... + 2 e^(k-1)), t_1 = sqrt(2 h / g).
Quick check:  python examples/bouncing_ball.py --bounces 3
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import xarray as xr

import sciode

G = 9.81  # m/s^2


def free_fall(u: torch.Tensor, p: None, t: torch.Tensor) -> torch.Tensor:
    """State [height, velocity]: h' = v, v' = -g."""
    return torch.stack([u[..., 1], torch.full_like(u[..., 0], -G)], dim=-1)


def height(u: torch.Tensor, p: None, t: torch.Tensor) -> torch.Tensor:
    return u[..., 0]


def bounce(height0: float, restitution: float, bounces: int, t_end: float) -> tuple[list[sciode.Solution], list[float]]:
    """Solve flight after flight: each ends at the ground (a terminal, falling event) and restarts from there."""
    ground = sciode.Event(height, terminal=True, direction=-1, name="ground")
    prob = sciode.ODEProblem(free_fall, torch.tensor([height0, 0.0], dtype=torch.float64), (0.0, t_end),
                             state_names=["height", "velocity"], state_units=["m", "m/s"], time_units="s")
    flights, times = [], []
    for _ in range(bounces):
        sol = sciode.solve(prob, "tsit5", events=ground, saveat=None, rtol=1e-10, atol=1e-12)
        flights.append(sol)
        if sol.retcode is not sciode.ReturnCode.TERMINATED:  # t_end reached in the air
            break
        t_hit, u_hit = float(sol.events["ground"].t[0]), sol.events["ground"].u[0]
        times.append(t_hit)
        up = torch.stack([torch.zeros((), dtype=u_hit.dtype), -restitution * u_hit[1]])
        prob = sciode.remake(prob, u0=up, tspan=(t_hit, t_end))
    return flights, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bounces", type=int, default=10)
    parser.add_argument("--height", type=float, default=10.0, help="drop height (m)")
    parser.add_argument("--restitution", type=float, default=0.8)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)

    flights, times = bounce(args.height, args.restitution, args.bounces, t_end=100.0)
    t1, e = math.sqrt(2 * args.height / G), args.restitution
    for k, t in enumerate(times):
        exact = t1 * (1 + 2 * sum(e ** j for j in range(1, k + 1)))
        error = abs(t - exact) / exact
        print(f"bounce {k + 1}: t = {t:.12f} s   closed form {exact:.12f} s   relative error {error:.1e}")

    # one dataset: the flights one after another along time, plus the bounces on their own dimension
    pieces = [sol.to_xarray(times=torch.linspace(float(sol.t[0]), float(sol.t[-1]), 60, dtype=torch.float64))
              for sol in flights]
    # each flight starts where the previous one ended: drop the repeated instant
    ds = xr.concat([piece[["u"]].isel(time=slice(0 if k == 0 else 1, None)) for k, piece in enumerate(pieces)],
                   dim="time")
    ds["bounce_time"] = ("bounce", torch.tensor(times, dtype=torch.float64).numpy(), {"units": "s"})
    ds["impact_velocity"] = ("bounce", [float(sol.events["ground"].u[0, 1]) for sol in flights[:len(times)]],
                             {"units": "m/s"})
    ds.attrs.update(restitution=e, drop_height=args.height, solver="tsit5")
    nc_path = args.output_dir / "bouncing_ball.nc"
    ds.to_netcdf(nc_path)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(ds.time, ds.u.sel(state="height"), color="C0")
    ax.plot(times, [0.0] * len(times), "o", color="C3", label="bounce (terminal event)")
    ax.set(xlabel="time (s)", ylabel="height (m)", title=f"Bouncing ball, restitution {e}")
    ax.legend()
    fig.tight_layout()
    png_path = args.output_dir / "bouncing_ball.png"
    fig.savefig(png_path, dpi=120)
    print(f"wrote {png_path} and {nc_path}")


if __name__ == "__main__":
    main()
