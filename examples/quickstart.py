"""The main example: solve Lotka-Volterra for a batch of parameters, plot it, save it to netCDF.

Run:  python examples/quickstart.py [--output-dir examples/output]
Writes quickstart.png (trajectories and phase portrait) and quickstart.nc (labelled trajectories).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import sciode


def lotka_volterra(u: torch.Tensor, p: dict[str, torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """Predator-prey dynamics; every parameter has one value per member (shape (members, 1))."""
    prey, predator = u[..., :1], u[..., 1:]
    return torch.cat([p["alpha"] * prey - p["beta"] * prey * predator,
                      -p["gamma"] * predator + p["delta"] * prey * predator], dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)

    members = 4
    alpha = torch.linspace(1.0, 1.6, members, dtype=torch.float64)[:, None]
    p = {"alpha": alpha, "beta": torch.full_like(alpha, 1.0), "gamma": torch.full_like(alpha, 3.0),
         "delta": torch.full_like(alpha, 1.0)}
    u0 = torch.tensor([[1.0, 1.0]], dtype=torch.float64).repeat(members, 1)
    prob = sciode.ODEProblem(lotka_volterra, u0, (0.0, 15.0), p, state_names=["prey", "predator"],
                             name="Lotka-Volterra", time_units="days")

    # members have independent dynamics: let each take its own steps
    sol = sciode.solve(prob, "tsit5", rtol=1e-8, atol=1e-10, saveat=600, stepping="per_member")
    print(sol)
    print("retcodes:", [sciode.ReturnCode(int(c)).name for c in sol.retcodes])
    print("stats:", sol.stats)

    ds = sol.to_xarray()
    ds = ds.assign_coords(alpha=("member", alpha[:, 0].numpy()))
    nc_path = args.output_dir / "quickstart.nc"
    ds.to_netcdf(nc_path)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_phase) = plt.subplots(1, 2, figsize=(11, 4))
    for m in range(members):
        label = f"alpha = {float(alpha[m]):.2f}"
        ax_t.plot(ds.time, ds.u.isel(member=m).sel(state="prey"), label=label)
        ax_phase.plot(ds.u.isel(member=m).sel(state="prey"), ds.u.isel(member=m).sel(state="predator"), label=label)
    ax_t.set(xlabel="time (days)", ylabel="prey", title="Prey population")
    ax_phase.set(xlabel="prey", ylabel="predator", title="Phase portrait")
    ax_t.legend()
    fig.tight_layout()
    png_path = args.output_dir / "quickstart.png"
    fig.savefig(png_path, dpi=120)
    print(f"wrote {png_path} and {nc_path}")


if __name__ == "__main__":
    main()
