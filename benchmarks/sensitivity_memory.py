"""Peak tensor memory of one gradient of an MLP neural ODE at 100, 1,000 and 10,000 fixed steps.

Model: f(u) = MLP 2-32-2 (tanh), batch of 128, float32, rk4 at a fixed step over
t in [0, 1], loss on the end state. For each sensitivity algorithm (and torchdiffeq's
odeint / odeint_adjoint on the same module, for reference) one forward + backward pass
runs inside ``LiveTensorBytes``, a TorchDispatchMode that sees every tensor an ATen op
creates (forward and backward), counts the bytes of each new storage while any tensor
referencing it is alive (weakref finalizers; PyTorch keeps a tensor's Python object alive
while autograd still holds it) and records the peak. What is measured: bytes of tensor
storage allocated during the gradient computation, above what existed before it (model
parameters, u0). Not measured: Python objects, autograd node bookkeeping, allocator
slack. CPU only; every configuration is measured once (the count is deterministic).

Run:  python benchmarks/sensitivity_memory.py [--steps 100 1000 10000]
"""
from __future__ import annotations

import argparse
import sys
import weakref
from typing import Any

import torch
from _common import table
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import sciode


class LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storage alive (created inside the mode) and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key not in self.refs:
                    self.refs[key] = 0
                    self.sizes[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                self.refs[key] += 1
                weakref.finalize(t, self._release, key)
        return out


class Field(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))

    def forward(self, u: torch.Tensor, p: object, t: torch.Tensor) -> torch.Tensor:
        return self.net(u)


def peak_bytes(run) -> int:
    with LiveTensorBytes() as tracker:
        run()
    return tracker.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args()
    torch.set_num_threads(1)
    f = Field()
    params = list(f.parameters())
    u0 = torch.randn(128, 2, generator=torch.Generator().manual_seed(1))

    def ours(sens):
        def run(n: int) -> None:
            prob = sciode.ODEProblem(f, u0, (0.0, 1.0))
            sol = sciode.solve(prob, "rk4", dt=1.0 / n, saveat=[1.0], sensealg=sens)
            torch.autograd.grad(sol.u[-1].square().sum(), params)
        return run

    def peer(adjoint: bool):
        import torchdiffeq

        def run(n: int) -> None:
            func = lambda t, y: f.net(y)  # noqa: E731
            t = torch.tensor([0.0, 1.0])
            options = dict(step_size=1.0 / n)
            if adjoint:
                y = torchdiffeq.odeint_adjoint(func, u0, t, method="rk4", options=options, adjoint_params=params,
                                               adjoint_options=options)
            else:
                y = torchdiffeq.odeint(func, u0, t, method="rk4", options=options)
            torch.autograd.grad(y[-1].square().sum(), params)
        return run

    runs = {"backprop": ours("backprop"), "adjoint": ours("adjoint"), "checkpointed (every step)": ours("checkpointed"),
            "checkpointed (n_checkpoints=100)": ours(sciode.sensitivities()["checkpointed"](n_checkpoints=100))}
    try:
        import torchdiffeq  # noqa: F401

        runs.update({"torchdiffeq odeint": peer(False), "torchdiffeq odeint_adjoint": peer(True)})
    except ImportError:
        pass
    peaks: dict[str, list[int]] = {}
    for name, run in runs.items():
        peaks[name] = []
        for n in args.steps:
            peaks[name].append(peak_bytes(lambda: run(n)))
            print(f"  measured {name} at {n} steps: {peaks[name][-1] / 2**20:.3f} MiB", file=sys.stderr,
                  flush=True)
    rows = [[name] + [f"{b / 2**20:.3f}" for b in values] + [f"{values[-1] / values[0]:.2f}"]
            for name, values in peaks.items()]
    header = ["peak tensor MiB"] + [f"{n} steps" for n in args.steps] + [f"{args.steps[-1]} / {args.steps[0]}"]
    print(table(header, rows))
    adj = peaks["adjoint"]
    ck = peaks["checkpointed (n_checkpoints=100)"]
    print(f"\nadjoint {args.steps[-1]} vs {args.steps[0]} steps: {adj[-1] / adj[0]:.2f}x (goal <= 1.2)")
    ratios = ", ".join(f"{n}: {c / a:.2f}x" for n, c, a in zip(args.steps, ck, adj))
    print(f"checkpointed(n_checkpoints=100) / adjoint: {ratios} (goal <= 2)")
    bp = peaks["backprop"]
    print("backprop growth: " + ", ".join(f"{n}: {b / bp[0]:.1f}x" for n, b in zip(args.steps, bp)) + " of the first")


if __name__ == "__main__":
    main()
