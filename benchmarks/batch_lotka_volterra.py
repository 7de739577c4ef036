"""Batch runs: 10,000 Lotka-Volterra members to t = 50 at rtol 1e-6, sciode vs a scipy loop.

Run:  python benchmarks/batch_lotka_volterra.py [--members 10000] [--scipy-members N] [--workers 2]

Cases, each ending with the trajectories written to netCDF (sciode.io.save, the same
writer for everyone): sciode run_batch in-process; sciode on a local dask cluster with
1 and N worker processes, once started by run_batch (workers=; the time includes starting
the cluster) and once on a cluster already running (scheduler=, as on a real cluster); scipy
solve_ivp RK45 and LSODA looping over members. --scipy-members < --members times the
scipy loops on the first members only and scales their time per member up, marked
"(scaled)" in the table. Wall and CPU time (of this process: for the in-process and scipy cases
that is all the work, and it is less disturbed by other load on a shared machine) are reported.
Also reports the largest difference from the RK45 result.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from scipy.integrate import solve_ivp

import sciode

sys.path.insert(0, str(Path(__file__).parent))
from _common import table  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "lotka_volterra_problem.py"


def members(n: int, t1: float, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    data = {name: ("member", rng.uniform(lo, hi, n)) for name, lo, hi in (
        ("alpha", 0.8, 1.6), ("beta", 0.3, 0.6), ("delta", 0.2, 0.4), ("gamma", 0.8, 1.2),
        ("prey0", 5.0, 15.0), ("predator0", 2.0, 8.0))}
    data["t1"] = ((), t1)  # shared by all members: the problem script reads it
    return xr.Dataset(data, coords={"member": np.arange(n)})


def _warm_up() -> None:
    import sciode.batch.chunk  # noqa: F401

    sciode.solvers()  # loads the plugin registry


def scipy_loop(ds: xr.Dataset, count: int, method: str, grid: np.ndarray, rtol: float, atol: float,
               out: Path) -> tuple[float, float]:
    """solve_ivp member by member, then the same netCDF output; returns (wall, CPU) seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    u = np.empty((count, grid.size, 2))
    codes = np.empty(count, dtype=np.int8)
    a, b, d, g = (ds[k].values for k in ("alpha", "beta", "delta", "gamma"))
    x0, y0 = ds["prey0"].values, ds["predator0"].values
    for i in range(count):
        ai, bi, di, gi = float(a[i]), float(b[i]), float(d[i]), float(g[i])

        def f(t: float, y: np.ndarray) -> list[float]:
            x, z = y
            return [ai * x - bi * x * z, di * x * z - gi * z]

        res = solve_ivp(f, (grid[0], grid[-1]), [x0[i], y0[i]], method=method, t_eval=grid, rtol=rtol, atol=atol)
        u[i] = res.y.T if res.success else np.nan
        codes[i] = 1 if res.success else 5
    result = xr.Dataset({"u": (("member", "time", "state"), u), "retcode": ("member", codes)},
                        coords={"member": ds["member"].values[:count], "time": grid, "state": ["prey", "predator"]})
    sciode.io.save(result, out)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--scipy-members", type=int, default=None, help="members the scipy loops solve (default all)")
    parser.add_argument("--t1", type=float, default=50.0)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=1e-9)
    parser.add_argument("--saveat", type=int, default=100,
                        help="equal intervals of the saved grid (run_batch's default)")
    parser.add_argument("--chunk", type=int, default=2500, help="members per batched solve (4 chunks for 10,000)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = args.members
    n_scipy = min(args.scipy_members or n, n)
    tmp = Path(tempfile.mkdtemp(prefix="sciode-batch-bench-"))
    path = tmp / "members.nc"
    sciode.io.save(members(n, args.t1), path)
    common = dict(saveat=args.saveat, rtol=args.rtol, atol=args.atol, chunk=args.chunk, progress=False, overwrite=True)

    rows, times, cpus = [], {}, {}

    def run_sciode(label: str, **kw: object) -> xr.Dataset:
        start, cpu = time.perf_counter(), time.process_time()
        ds = sciode.run_batch(SCRIPT, path, tmp / f"{label.replace(' ', '_').replace(',', '')}.nc", **common, **kw)
        times[label] = time.perf_counter() - start
        if "dask" not in label:  # on dask the work happens in the worker processes
            cpus[label] = time.process_time() - cpu
        print(f"{label}: {times[label]:.1f} s", flush=True)
        return ds

    ref = run_sciode("sciode in-process")
    for k in sorted({1, args.workers}):
        run_sciode(f"sciode dask {k} worker(s), with cluster start", workers=k)
    for k in sorted({1, args.workers}):  # a cluster already running, as with --scheduler on a real cluster
        from distributed import LocalCluster

        with LocalCluster(n_workers=k, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=40) as cluster, cluster.get_client() as client:
            client.run(_warm_up)  # workers have imported torch, sciode and the plugins
            run_sciode(f"sciode dask {k} worker(s), running cluster", scheduler=cluster.scheduler_address)
    grid = ref["time"].values
    ds = xr.load_dataset(path)
    for method in ("RK45", "LSODA"):
        label = f"scipy solve_ivp {method} loop"
        seconds, cpu = scipy_loop(ds, n_scipy, method, grid, args.rtol, args.atol, tmp / f"{method}.nc")
        times[label], cpus[label] = seconds * n / n_scipy, cpu * n / n_scipy
        print(f"{label}: {seconds:.1f} s for {n_scipy} members", flush=True)
        if method == "RK45":
            rk45 = sciode.io.load(tmp / "RK45.nc")["u"].values
            diff = np.abs(ref["u"].values[:n_scipy] - rk45) / (np.abs(rk45) + 1e-3)
    scaled = " (scaled)" if n_scipy < n else ""
    base = times["sciode in-process"]
    for label, seconds in times.items():
        mark = scaled if label.startswith("scipy") else ""
        cpu = f"{cpus[label]:.1f}{mark}" if label in cpus else "(workers)"
        rows.append([label, f"{seconds:.1f}{mark}", cpu, f"{seconds / n * 1e3:.2f}", f"{seconds / base:.2f}"])
    print()
    print(f"{n} Lotka-Volterra members, t in [0, {args.t1:g}], rtol {args.rtol:g}, atol {args.atol:g}, "
          f"{args.saveat + 1} saved times, chunk {args.chunk}, netCDF written in every case")
    print(table(["case", "wall s", "CPU s (this process)", "wall ms / member", "wall / sciode in-process"], rows))
    one = times["sciode dask 1 worker(s), running cluster"]
    many = times[f"sciode dask {args.workers} worker(s), running cluster"]
    cbase = cpus["sciode in-process"]
    for method in ("RK45", "LSODA"):
        label = f"scipy solve_ivp {method} loop"
        print(f"\n{label} / sciode in-process: wall {times[label] / base:.1f}x, CPU {cpus[label] / cbase:.1f}x", end="")
    print()
    print(f"running cluster, 1 worker / {args.workers} workers: {one / many:.2f}x")
    print(f"largest relative difference sciode tsit5 vs scipy RK45 (first {n_scipy} members): {diff.max():.2e}")


if __name__ == "__main__":
    main()
