"""A parameter sweep as a batch run: members.nc in, trajectories.nc and a figure out.

Run:  python examples/batch_sweep.py [--output-dir examples/output] [--members 2000] [--workers N]
The same run from the command line, after this script has written members.nc:
    sciode run examples/lotka_volterra_problem.py --input examples/output/members.nc \
        --output examples/output/trajectories.nc --saveat 200 --overwrite
    sciode plot examples/output/trajectories.nc --phase prey predator
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

import sciode

HERE = Path(__file__).parent


def make_members(n: int, seed: int = 0) -> xr.Dataset:
    """A sweep over the prey growth rate alpha and predation rate beta, with random initial populations."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    alpha, beta = (g.ravel()[:n] for g in np.meshgrid(np.linspace(0.8, 1.6, side), np.linspace(0.3, 0.6, side)))
    return xr.Dataset(
        {
            "alpha": ("member", alpha, {"long_name": "prey growth rate", "units": "1"}),
            "beta": ("member", beta, {"long_name": "predation rate", "units": "1"}),
            "delta": ("member", np.full(n, 0.3), {"long_name": "predator growth per prey eaten", "units": "1"}),
            "gamma": ("member", np.full(n, 1.0), {"long_name": "predator death rate", "units": "1"}),
            "prey0": ("member", rng.uniform(5.0, 15.0, n), {"long_name": "initial prey"}),
            "predator0": ("member", rng.uniform(2.0, 8.0, n), {"long_name": "initial predators"}),
        },
        coords={"member": np.arange(n)},
        attrs={"title": "Lotka-Volterra parameter sweep"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=HERE / "output")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=None, help="run on a local dask cluster of N processes")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)

    members_path = args.output_dir / "members.nc"
    sciode.io.save(make_members(args.members), members_path)
    out_path = args.output_dir / "trajectories.nc"
    ds = sciode.run_batch(HERE / "lotka_volterra_problem.py", members_path, out_path, saveat=200, chunk=500,
                          workers=args.workers, overwrite=True)
    print(f"{ds.attrs['members']} members, {ds.attrs['failed_members']} failed; wrote {out_path}")

    import matplotlib

    matplotlib.use("Agg")
    from sciode.plot import plot_dataset

    # the peak prey population across the sweep, as a labelled-array one-liner
    peak = ds["u"].sel(state="prey").max("time")
    top = peak.idxmax("member")
    print(f"largest prey peak {float(peak.max()):.1f} at alpha={float(ds['alpha'].sel(member=top)):.3f}, "
          f"beta={float(ds['beta'].sel(member=top)):.3f}")
    png_path = args.output_dir / "batch_sweep.png"
    plot_dataset(ds, members=[0, args.members // 2, args.members - 1], phase=("prey", "predator"), output=png_path)
    print(f"wrote {png_path}")


if __name__ == "__main__":
    main()
