"""Large stiff systems: sciode's structured solvers vs scipy solve_ivp with jac_sparsity.

    python benchmarks/large_stiff.py [--repeats 3] [--quick]

1. The 1-D Brusselator (Hairer & Wanner II, IV.1; alpha = 0.02, t in [0, 10]) with N = 500 and 2000
   (1000 and 4000 states), rtol = atol = 1e-6: sciode ``bdf`` and ``rodas5p`` with the banded pattern
   (``jac_prototype=sciode.Banded(2, 2)``; colored Jacobians) and ``linsolve="banded"`` / ``"sparse"``,
   against ``solve_ivp`` BDF and Radau given a NumPy right-hand side and ``jac_sparsity``.
2. The 2-D Brusselator on a periodic 64 x 64 grid (8192 states, the SciML/SUNDIALS form), rtol 1e-6,
   atol 1e-6, t in [0, 11.5]: sciode ``bdf`` with ``linsolve="sparse"``, ``"gmres"`` with
   ``preconditioner="ilu"`` (and, with ``--gmres``, unpreconditioned) and ``rodas5p`` vs solve_ivp BDF.
3. A batch of 64 1-D Brusselators (N = 500) with diffusion constants 0.01 .. 0.04: one batched sciode
   solve against 64 solve_ivp BDF calls (scipy timed on ``--scipy-members`` members, scaled to 64).

Every configuration runs in a fresh child process (so its peak RSS, ru_maxrss, is its own), and
the repeats interleave the configurations; times are the median CPU seconds (time.process_time,
torch and BLAS on one thread). sciode's times are of a second solve in the child: the first solve
in a fresh process pays torch's one-time op initialisation (0.7 s of a 1.1 s solve at N=500),
which a script solving many problems pays once; the 1-D table also lists that cold first solve.
Accuracy: the final state against scipy Radau at rtol 1e-10 (2-D: 1e-9).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

RTOL = ATOL = 1e-6


# -- NumPy right-hand sides for scipy (the same equations as sciode_implicit.stiff_problems) ---------------
def numpy_brusselator_1d(n: int, alpha: float):
    c = alpha * (n + 1) ** 2

    def f(t, y):
        y = y.reshape(n, 2)
        padded = np.vstack([[1.0, 3.0], y, [1.0, 3.0]])
        lap = padded[:-2] - 2 * y + padded[2:]
        r = y[:, 0] ** 2 * y[:, 1]
        out = np.empty_like(y)
        out[:, 0] = 1 + r - 4 * y[:, 0]
        out[:, 1] = 3 * y[:, 0] - r
        return (out + c * lap).ravel()

    return f


def numpy_brusselator_2d(n: int):
    x = np.linspace(0, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    disk = (((X - 0.3) ** 2 + (Y - 0.6) ** 2) <= 0.01).astype(float)
    a = 10.0 * (n - 1) ** 2

    def f(t, y):
        y = y.reshape(n, n, 2)
        lap = np.roll(y, 1, 0) + np.roll(y, -1, 0) + np.roll(y, 1, 1) + np.roll(y, -1, 1) - 4 * y
        u, v = y[..., 0], y[..., 1]
        r = u * u * v
        out = np.empty_like(y)
        out[..., 0] = 1.0 + r - 4.4 * u + 5.0 * disk * (t >= 1.1)
        out[..., 1] = 3.4 * u - r
        return (out + a * lap).ravel()

    return f


def _problem(kind: str, n: int, members: int = 0):
    import torch

    from sciode_implicit import stiff_problems

    if kind == "1d":
        alpha = torch.linspace(0.01, 0.04, members, dtype=torch.float64) if members else 0.02
        return stiff_problems.brusselator_1d(n, alpha)
    return stiff_problems.brusselator_2d(n)


def _sparsity(prob):
    from sciode_scipy.member import sparsity

    return sparsity(prob.jac_prototype, prob.state_size)


def run_config(config: dict) -> dict:
    """One measurement in this (child) process: CPU seconds, peak RSS, final state, stats."""
    import torch

    import sciode

    torch.set_num_threads(1)
    kind, n, members = config["kind"], config["n"], config.get("members", 0)
    prob = _problem(kind, n, members)
    t1 = prob.tspan[1]
    if config["side"] == "sciode":
        extra = {"preconditioner": config["preconditioner"]} if "preconditioner" in config else {}

        def run():
            return sciode.solve(prob, config["solver"], linsolve=config["linsolve"], rtol=RTOL, atol=ATOL,
                                saveat=[0.0, t1], **extra)

        if config.get("warmup", True):
            run()  # first calls of torch ops and of LAPACK/SuperLU: measured separately, see the module docstring
        start = time.process_time()
        sol = run()
        seconds = time.process_time() - start
        assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
        final, stats = sol.u[-1].numpy(), dict(sol.stats)
    else:
        from scipy.integrate import solve_ivp

        sparsity = _sparsity(prob)
        u0 = prob.u0.numpy()
        alphas = (torch.linspace(0.01, 0.04, members, dtype=torch.float64).tolist() if members else [0.02])
        count = config.get("scipy_members", len(alphas)) if members else 1
        finals, steps, nfev = [], 0, 0
        start = time.process_time()
        for i in range(count):
            f = numpy_brusselator_1d(n, alphas[i]) if kind == "1d" else numpy_brusselator_2d(n)
            y0 = u0[i] if members else u0
            res = solve_ivp(f, (0.0, t1), y0, method=config["solver"], rtol=config.get("rtol", RTOL),
                            atol=config.get("atol", ATOL), jac_sparsity=sparsity)
            assert res.status == 0, res.message
            finals.append(res.y[:, -1])
            steps += res.t.size - 1
            nfev += res.nfev
        seconds = (time.process_time() - start) * (len(alphas) / count)
        final = np.array(finals) if members else finals[0]
        stats = dict(nsteps=steps, nfe=nfev, timed_members=count)
    return dict(seconds=seconds, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, final=final,
                stats=stats)


def measure(configs: list[dict], repeats: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    results = [dict(config=c, seconds=[], rss_mb=[]) for c in configs]
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for _ in range(repeats):
            for r in results:  # interleave the sides
                out = pool.apply(run_config, (r["config"],))
                r["seconds"].append(out["seconds"])
                r["rss_mb"].append(out["rss_mb"])
                r.update(final=out["final"], stats=out["stats"])
    return results


def label(c: dict) -> str:
    if c["side"] == "sciode":
        cold = " (cold: first solve in the process)" if not c.get("warmup", True) else ""
        pre = f", preconditioner={c['preconditioner']}" if "preconditioner" in c else ""
        return f"sciode {c['solver']}, linsolve={c['linsolve']}{pre}{cold}"
    return f"scipy solve_ivp {c['solver']}, jac_sparsity"


def report(title: str, results: list[dict], reference: np.ndarray, baseline: str) -> None:
    rows, base = [], None
    for r in results:
        med = statistics.median(r["seconds"])
        if label(r["config"]) == baseline:
            base = med
    for r in results:
        med = statistics.median(r["seconds"])
        err = float(np.max(np.abs(r["final"] - reference) / np.abs(reference)))
        rows.append([label(r["config"]), f"{med:.2f}", f"{base / med:.2f}x" if base else "-",
                     f"{max(r['rss_mb']):.0f}", r["stats"].get("nsteps"), r["stats"].get("njac", "-"),
                     r["stats"].get("nkrylov", "-"), f"{err:.1e}"])
    print(f"\n{title}\n")
    print(table(["method", "CPU s (median)", f"speed vs {baseline.split(',')[0]}", "peak RSS MB", "steps", "njac",
                 "krylov its", "rel. err vs reference"], rows))


def reference(kind: str, n: int, members: int = 0, count: int | None = None) -> np.ndarray:
    tol = 1e-10 if kind == "1d" else 1e-9
    c = dict(side="scipy", solver="Radau", kind=kind, n=n, members=members, rtol=tol, atol=tol)
    if count is not None:
        c["scipy_members"] = count
    return run_config(c)["final"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scipy-members", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="only the 1-D problem at N=500")
    parser.add_argument("--sections", default="500,2000,2d,batch", help="comma-separated subset of 500,2000,2d,batch")
    parser.add_argument("--reference-2d", action="store_true", help="2-D errors against Radau at rtol 1e-9 (slow); "
                        "default: against scipy BDF at rtol 1e-6")
    parser.add_argument("--gmres", action="store_true", help="also bdf with unpreconditioned gmres on the 2-D "
                        "problem (about 150 s per run)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sections = {"500"} if args.quick else set(args.sections.split(","))
    for n in [n for n in (500, 2000) if str(n) in sections]:
        configs = [dict(side="sciode", solver="bdf", linsolve="banded", kind="1d", n=n, warmup=False),
                   dict(side="sciode", solver="bdf", linsolve="banded", kind="1d", n=n),
                   dict(side="sciode", solver="bdf", linsolve="sparse", kind="1d", n=n),
                   dict(side="sciode", solver="rodas5p", linsolve="banded", kind="1d", n=n),
                   dict(side="scipy", solver="BDF", kind="1d", n=n),
                   dict(side="scipy", solver="Radau", kind="1d", n=n)]
        report(f"1-D Brusselator N={n} ({2 * n} states), rtol=atol={RTOL:g}, t in [0, 10]",
               measure(configs, args.repeats), reference("1d", n), "scipy solve_ivp BDF, jac_sparsity")
    if "2d" in sections:
        two_d(args)
    if "batch" in sections:
        batch(args)


def two_d(args: argparse.Namespace) -> None:
    configs = [dict(side="sciode", solver="bdf", linsolve="sparse", kind="2d", n=64),
               dict(side="sciode", solver="bdf", linsolve="gmres", preconditioner="ilu", kind="2d", n=64),
               dict(side="sciode", solver="rodas5p", linsolve="sparse", kind="2d", n=64),
               dict(side="scipy", solver="BDF", kind="2d", n=64)]
    if args.gmres:
        configs.insert(3, dict(side="sciode", solver="bdf", linsolve="gmres", kind="2d", n=64))
    results = measure(configs, args.repeats)
    ref = reference("2d", 64) if args.reference_2d else results[-1]["final"]
    what = "Radau rtol 1e-9" if args.reference_2d else "scipy BDF (rtol 1e-6): the error column is a difference"
    report(f"2-D Brusselator 64 x 64 (8192 states), rtol=atol=1e-6, t in [0, 11.5]; reference {what}",
           results, ref, "scipy solve_ivp BDF, jac_sparsity")


def batch(args: argparse.Namespace) -> None:
    m = 64
    configs = [dict(side="sciode", solver="bdf", linsolve="banded", kind="1d", n=500, members=m),
               dict(side="scipy", solver="BDF", kind="1d", n=500, members=m, scipy_members=args.scipy_members)]
    results = measure(configs, args.repeats)
    ref = reference("1d", 500, m, args.scipy_members)
    for r in results:  # compare on the members scipy solved
        r["final"] = r["final"][: args.scipy_members]
    report(f"A batch of {m} 1-D Brusselators, N=500, alpha = 0.01 .. 0.04 (scipy: {args.scipy_members} members "
           f"timed, scaled to {m})", results, ref, "scipy solve_ivp BDF, jac_sparsity")
    sciode_s = statistics.median(results[0]["seconds"])
    scipy_s = statistics.median(results[1]["seconds"])
    print(f"\nper member: sciode {1e3 * sciode_s / m:.1f} ms, scipy BDF {1e3 * scipy_s / m:.1f} ms")


if __name__ == "__main__":
    main()
