"""GPU check: a few solves and gradients on CUDA against the same on CPU, and eager vs compiled timings.

    python benchmarks/gpu_check.py [--repeats 5] [--device cuda]

For a machine with a CUDA GPU (this project's development machine has none): exits 0 with a
note where no GPU is present. Each check solves the same float64 problem on the CPU and on the
GPU at a tight rtol and compares them (the two devices round differently, so the adaptive step
sequences may differ slightly: the tolerance is far above rounding and far below a real bug):
explicit tsit5 (shared clock), rodas4 on Robertson (Rosenbrock, batched LU), tsit5 with
per-member stepping, and gradients of an MLP neural ODE under backprop and adjoint. Then each
solve is timed on the GPU eagerly and, where this sciode has it, with ``compile=True`` (CUDA
graphs, so a step is one graph launch), whose results must match the eager ones. Exits 1 on any
mismatch, listing them. ``--device cpu`` runs the same script CPU against CPU (a dry run of
the script itself on a machine without a GPU).
"""
from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from collections.abc import Callable

import torch

import sciode
from sciode_implicit import stiff_problems

RTOL, ATOL, MATCH = 1e-8, 1e-11, 1e-6  # solve tolerances; largest relative difference accepted between devices


def van_der_pol(device: str, members: int = 256) -> sciode.ODEProblem:
    u0 = torch.randn(members, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(device)

    def f(u, p, t):
        x, y = u.unbind(-1)
        return torch.stack([y, p * (1 - x * x) * y - x], -1)

    return sciode.ODEProblem(f, u0, (0.0, 10.0), torch.tensor(1.0, dtype=torch.float64, device=device))


def robertson(device: str, members: int = 256) -> sciode.ODEProblem:
    k = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64).repeat(members, 1)
    k[:, 0] *= torch.linspace(0.9, 1.1, members, dtype=torch.float64)
    prob = stiff_problems.robertson((0.0, 1e5), k)
    return sciode.remake(prob, u0=prob.u0.to(device), p=k.to(device))


class Spiral(torch.nn.Module):
    """torchdiffeq's ode_demo model f(y) = MLP(y^3), as a module so every sensitivity sees its parameters."""

    def __init__(self, device: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2)).double()
        self.to(device)

    def forward(self, u: torch.Tensor, p: object, t: torch.Tensor) -> torch.Tensor:
        return self.net(u ** 3)


def solves(device: str, **options: object) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a call returning the values compared across devices (end states, or a flat gradient)."""
    vdp, rob = van_der_pol(device), robertson(device)
    net = Spiral(device)
    y0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    neural = sciode.ODEProblem(net, y0, (0.0, 2.0))

    def gradient(sensealg: str) -> torch.Tensor:
        sol = sciode.solve(neural, "dopri5", sensealg=sensealg, saveat=10, rtol=RTOL, atol=ATOL, **options)
        grads = torch.autograd.grad(sol.u.abs().mean(), list(net.parameters()))
        return torch.cat([g.reshape(-1) for g in grads])

    def end(prob: sciode.ODEProblem, solver: str, **kw: object) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.no_grad():
                sol = sciode.solve(prob, solver, saveat=[prob.tspan[0], prob.tspan[1]], **kw, **options)
            if sol.retcode is not sciode.ReturnCode.SUCCESS:
                raise RuntimeError(f"{solver} on {device}: {sol.message}")
            return sol.u[-1]
        return run

    return {"tsit5, Van der Pol, shared": end(vdp, "tsit5", rtol=RTOL, atol=ATOL),
            "tsit5, Van der Pol, per-member": end(vdp, "tsit5", rtol=RTOL, atol=ATOL, stepping="per_member"),
            "rodas4, Robertson (256 members)": end(rob, "rodas4", rtol=1e-6, atol=1e-10),
            "backprop gradient, MLP neural ODE": lambda: gradient("backprop"),
            "adjoint gradient, MLP neural ODE": lambda: gradient("adjoint")}


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.cpu() - b.cpu()).abs().max() / b.abs().max().cpu().clamp_min(1e-300))


def median_seconds(fn: Callable[[], torch.Tensor], repeats: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda", help="the device checked against the CPU (default cuda)")
    args = parser.parse_args()
    device = args.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing to check")
            return 0
        print(f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(device)}")
    print(f"torch {torch.__version__}, sciode {sciode.__version__}, checking {device} against cpu")
    compiles = "compile" in inspect.signature(sciode.solve).parameters
    cpu, gpu = solves("cpu"), solves(device)
    gpu_compiled = solves(device, compile=True) if compiles else {}
    failures = []
    print(f"\n{'check':38s} {'vs CPU':>11s} {'eager ms':>9s} {'compiled ms':>12s} {'compiled vs eager':>18s}")
    for name, run in gpu.items():
        eager = run()
        diff = relative_difference(eager, cpu[name]())
        if not diff <= MATCH:
            failures.append(f"{name}: {device} differs from CPU by {diff:.1e} (relative; limit {MATCH:g})")
        eager_ms = median_seconds(run, args.repeats, device) * 1e3
        compiled_ms, compiled_diff = "-", "-"
        if compiles:
            out = gpu_compiled[name]()  # the first call compiles
            cdiff = relative_difference(out, eager)
            compiled_diff = f"{cdiff:.1e}"
            if not cdiff <= MATCH:
                failures.append(f"{name}: compile=True differs from eager by {cdiff:.1e} (relative; limit {MATCH:g})")
            compiled_ms = f"{median_seconds(gpu_compiled[name], args.repeats, device) * 1e3:.1f}"
        print(f"{name:38s} {diff:11.1e} {eager_ms:9.1f} {compiled_ms:>12s} {compiled_diff:>18s}")
    if not compiles:
        print("\nsolve(..., compile=True) is not available in this sciode: compiled timings skipped")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
