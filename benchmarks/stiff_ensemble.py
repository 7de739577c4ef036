"""Stiff ensemble: 1024 Robertson members, sciode's batched Rosenbrock vs scipy solve_ivp loops.

    python benchmarks/stiff_ensemble.py [--members 1024] [--scipy-members 64] [--repeats 3]
    python benchmarks/stiff_ensemble.py --ops [--solver rodas4]   # aten ops and time per loop iteration

Robertson's kinetics with k1 spread +-10% over the members (k2 = 3e7, k3 = 1e4), rtol 1e-6,
atol 1e-10, to t = 1e5. sciode: ``rodas4`` with per-member stepping (every member has its
own t, dt and accept/reject) on the whole batch at once, with the Problem's analytic
Jacobian and, second, with the autodiff Jacobian. scipy: solve_ivp LSODA, BDF and Radau,
looping over members, given a plain NumPy right-hand side and the analytic Jacobian (their
fastest configuration). scipy's per-member time is measured on ``--scipy-members`` members
and multiplied by the ensemble size (stated in the table). Accuracy: every method's final
state against scipy Radau at rtol 1e-10 / atol 1e-14 on a subset of members. Finally the
cost of sciode's solve at 1, 16, 256, 1024 and 4096 members. Times are CPU seconds of this
process (time.process_time, torch on one thread), which a busy machine distorts least.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

import sciode
from sciode_implicit import stiff_problems

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, table  # noqa: E402

RTOL, ATOL, T1 = 1e-6, 1e-10, 1e5


def rate_constants(members: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    k = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64).repeat(members, 1)
    k[:, 0] *= 1 + 0.1 * (2 * torch.rand(members, generator=gen, dtype=torch.float64) - 1)
    return k


def numpy_robertson(k: np.ndarray):
    k1, k2, k3 = k

    def f(t, y):
        return np.array([-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] ** 2 - k3 * y[1] * y[2], k2 * y[1] ** 2])

    def jac(t, y):
        return np.array([[-k1, k3 * y[2], k3 * y[1]], [k1, -2 * k2 * y[1] - k3 * y[2], -k3 * y[1]],
                         [0.0, 2 * k2 * y[1], 0.0]])

    return f, jac


def scipy_solve(k: torch.Tensor, method: str, rtol: float = RTOL, atol: float = ATOL) -> tuple[np.ndarray, int]:
    """Final states (members, 3) and total accepted steps, one solve_ivp call per member."""
    out, steps = [], 0
    for row in k.numpy():
        f, jac = numpy_robertson(row)
        res = solve_ivp(f, (0.0, T1), [1.0, 0.0, 0.0], method=method, rtol=rtol, atol=atol, jac=jac)
        assert res.status == 0, res.message
        out.append(res.y[:, -1])
        steps += res.t.size - 1
    return np.array(out), steps


def sciode_solve(k: torch.Tensor, analytic_jac: bool = True, rtol: float = RTOL) -> sciode.Solution:
    prob = stiff_problems.robertson((0.0, T1), k, analytic_jac=analytic_jac)
    sol = sciode.solve(prob, "rodas4", rtol=rtol, atol=ATOL, stepping="per_member", saveat=[0.0, T1])
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    return sol


def relative_error(values: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Worst relative error of (y1, y3) and of y2 (the tiny intermediate, ~1e-7 at t = 1e5)."""
    rel = np.abs(values - ref) / np.abs(ref)
    return float(rel[:, [0, 2]].max()), float(rel[:, 1].max())


def op_counts(solver: str, repeats: int) -> None:
    """Dispatched aten ops per loop iteration and CPU time per iteration (1 and 256 members)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    for m in (1, 256):
        prob = stiff_problems.robertson((0.0, T1), rate_constants(m))
        run = lambda: sciode.solve(prob, solver, rtol=RTOL, atol=ATOL, stepping="per_member",  # noqa: E731
                                   saveat=[0.0, T1])
        run()
        Count.ops = 0
        with Count():
            sol = run()
        seconds = best_time(run, repeats=repeats, warmup=0)
        steps = sol.stats["nsteps"]
        print(f"{solver}, {m} member(s): {steps} loop iterations, njac {sol.stats['njac']}, "
              f"{Count.ops / steps:.1f} aten ops per iteration, {1e3 * seconds / steps:.3f} ms per iteration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1024)
    parser.add_argument("--scipy-members", type=int, default=64, help="members timed per scipy method")
    parser.add_argument("--reference-members", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ops", action="store_true", help="only count ops and time per loop iteration")
    parser.add_argument("--solver", default="rodas4", help="the solver for --ops")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.ops:
        op_counts(args.solver, args.repeats)
        return
    k = rate_constants(args.members)
    sub = k[: args.scipy_members]
    ref_idx = torch.linspace(0, args.members - 1, args.reference_members).round().long()
    reference, _ = scipy_solve(k[ref_idx], "Radau", rtol=1e-10, atol=1e-14)

    rows, results = [], {}
    sciode_solve(k[:2])  # warm-up (first autograd/linalg calls)
    variants = (("sciode rodas4, per-member, analytic jac", True), ("sciode rodas4, per-member, autodiff jac", False))
    for label, analytic in variants:
        sol = sciode_solve(k, analytic)
        seconds = best_time(lambda: sciode_solve(k, analytic), repeats=args.repeats, warmup=0)
        err = relative_error(sol.u[-1, ref_idx].numpy(), reference)
        per_member = sol.member_stats.get("naccepted") if getattr(sol, "member_stats", None) else None
        steps = "-" if per_member is None else f"{float(per_member.double().mean()):.0f} (max {int(per_member.max())})"
        results[label] = seconds
        rows.append([label, f"{seconds:.3f}", "measured", f"{1e3 * seconds / args.members:.3f}", steps,
                     sol.stats["nsteps"], f"{err[0]:.1e}", f"{err[1]:.1e}"])
    for method in ("LSODA", "BDF", "Radau"):
        start = time.process_time()
        values, steps = scipy_solve(sub, method)
        elapsed = time.process_time() - start
        seconds = elapsed / len(sub) * args.members
        common = [int(i) for i in ref_idx if i < len(sub)]
        picked = [j for j, i in enumerate(ref_idx) if i < len(sub)]
        err = relative_error(values[common], reference[picked]) if common else (float("nan"),) * 2
        results[f"scipy {method}"] = seconds
        scale = args.members // len(sub) if args.members % len(sub) == 0 else args.members / len(sub)
        rows.append([f"scipy solve_ivp {method}, loop, analytic jac", f"{seconds:.3f}",
                     f"{len(sub)} members x {scale:g}", f"{1e3 * elapsed / len(sub):.3f}", f"{steps / len(sub):.0f}",
                     "-", f"{err[0]:.1e}", f"{err[1]:.1e}"])
    # matched accuracy: the loosest rtol at which sciode is still at least as accurate as the fastest scipy method
    lsoda_err = [float(x) for x in rows[2][-2:]]
    for rtol in (1e-4, 1e-5):
        sol = sciode_solve(k, True, rtol)
        err = relative_error(sol.u[-1, ref_idx].numpy(), reference)
        if err[0] <= lsoda_err[0] and err[1] <= lsoda_err[1]:
            seconds = best_time(lambda: sciode_solve(k, True, rtol), repeats=args.repeats, warmup=0)
            results["matched"] = seconds
            rows.insert(2, [f"sciode rodas4 at rtol {rtol:g} (error <= LSODA's at 1e-6)", f"{seconds:.3f}", "measured",
                            f"{1e3 * seconds / args.members:.3f}", "-", sol.stats["nsteps"], f"{err[0]:.1e}",
                            f"{err[1]:.1e}"])
            break
    print(f"\n{args.members} Robertson members, k1 = 0.04 +-10%, rtol {RTOL:g}, atol {ATOL:g}, t1 = {T1:g}; "
          f"errors vs scipy Radau rtol 1e-10 on {args.reference_members} members\n")
    print(table(["method", "seconds", "timed on", "ms / member", "steps / member", "loop iterations",
                 "rel. err y1,y3", "rel. err y2"], rows))
    fastest = min(("scipy LSODA", "scipy BDF", "scipy Radau"), key=results.get)
    best = results["sciode rodas4, per-member, analytic jac"]
    print(f"\nfastest scipy method: {fastest}, {results[fastest]:.3f} s; sciode rodas4 (analytic jac) is "
          f"{results[fastest] / best:.1f}x faster (autodiff jac: "
          f"{results[fastest] / results['sciode rodas4, per-member, autodiff jac']:.1f}x)"
          + (f"; at matched accuracy {results[fastest] / results['matched']:.1f}x" if "matched" in results else ""))

    scale_rows = []
    for m in (1, 16, 256, 1024, 4096):
        km = rate_constants(m, seed=1)
        sol = sciode_solve(km)
        seconds = best_time(lambda: sciode_solve(km), repeats=args.repeats if m <= 1024 else 1, warmup=0)
        scipy_equiv = results[fastest] / args.members * m
        scale_rows.append([m, f"{seconds:.3f}", f"{1e3 * seconds / m:.3f}", sol.stats["nsteps"],
                           f"{scipy_equiv:.3f}", f"{scipy_equiv / seconds:.1f}x"])
    print(f"\nScaling of sciode rodas4 (per-member, analytic jac) with the ensemble size; {fastest} at its "
          "per-member cost\n")
    print(table(["members", "seconds", "ms / member", "loop iterations", f"{fastest} seconds", "speed-up"], scale_rows))


if __name__ == "__main__":
    main()
