"""FFJORD training iteration: sciode vs a reference-style torchdiffeq implementation.

The same concat-squash network (2-64-64-64-2, tanh), the same initial weights, the same
batches (2-D toy, batch 512), dopri5 at rtol = atol = 1e-5, adjoint gradients, Rademacher
Hutchinson noise. The torchdiffeq side follows the FFJORD reference code's structure
(state tuple (z, logp), divergence by one autograd.grad per evaluation, odeint_adjoint).
Iterations alternate between the two libraries so load on the machine hits both alike.
The network is first trained briefly (``--pretrain``) so the dynamics are not trivial.
The libraries' step-size controllers differ, so their NFE differ; the comparison at
equal NFE is the time per function evaluation (forward + backward) of each.

    python benchmarks/ffjord_training.py [--iters 20] [--pretrain 100] [--dataset 8gaussians]
"""
from __future__ import annotations

import argparse
import copy
import pathlib
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import table  # noqa: E402

import sciode  # noqa: E402
from sciode_models import FFJORD, ConcatSquashMLP, standard_normal_log_prob, toy_sample  # noqa: E402


class CountedField(nn.Module):
    """The shared network, counting its calls (NFE) whoever calls it (not inside a compiled graph: see
    ``_common.Counted``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.calls = 0

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            self.calls += 1
        return self.net(u, p, t)


class ReferenceFFJORD(nn.Module):
    """Reference-style FFJORD on torchdiffeq: tuple state, noise fixed per odeint call."""

    def __init__(self, field: CountedField, tol: float) -> None:
        super().__init__()
        self.field = field
        self.tol = tol
        self.noise: torch.Tensor | None = None

    def dynamics(self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z = state[0]
        with torch.enable_grad():
            z.requires_grad_(True)
            dz = self.field(z, None, t)
            e_dz = torch.autograd.grad(dz, z, self.noise, create_graph=True)[0]
        return dz, -(e_dz * self.noise).sum(-1, keepdim=True)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        from torchdiffeq import odeint_adjoint

        self.noise = torch.randint_like(x, 0, 2) * 2 - 1
        t = torch.tensor([0.0, 1.0], dtype=x.dtype)
        func = _Dynamics(self)
        z, dlogp = odeint_adjoint(func, (x, x.new_zeros(x.shape[0], 1)), t, rtol=self.tol, atol=self.tol,
                                  method="dopri5", adjoint_params=tuple(self.field.parameters()))
        return standard_normal_log_prob(z[-1]) - dlogp[-1].squeeze(-1)


class _Dynamics(nn.Module):
    def __init__(self, owner: ReferenceFFJORD) -> None:
        super().__init__()
        self.owner = [owner]  # not a submodule: odeint_adjoint gets the parameters explicitly

    def forward(self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.owner[0].dynamics(t, state)


def pretrained_field(dataset: str, batch: int, iters: int, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> ConcatSquashMLP:
    """The FFJORD toy network (2-64-64-64-2, tanh) after ``iters`` cheap iterations, so the flow is not trivial."""
    torch.manual_seed(0)
    net = ConcatSquashMLP(2, (64, 64, 64), "tanh").to(dtype)
    warm = FFJORD(net, 2, rtol=1e-3, atol=1e-3)
    opt = torch.optim.Adam(warm.parameters(), lr=3e-3)
    for _ in range(iters):
        loss = -warm.log_prob(toy_sample(dataset, batch, generator, dtype)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def one_iteration(model: nn.Module, field: CountedField, opt: torch.optim.Optimizer, x: torch.Tensor) -> dict:
    start_calls = field.calls
    start = time.perf_counter()
    loss = -model.log_prob(x).mean()
    forward_calls = field.calls - start_calls
    opt.zero_grad()
    loss.backward()
    opt.step()
    elapsed = time.perf_counter() - start
    backward_calls = field.calls - start_calls - forward_calls
    return dict(time=elapsed, nfe_f=forward_calls, nfe_b=backward_calls, loss=float(loss.detach()))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--pretrain", type=int, default=100)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--dataset", default="8gaussians")
    ap.add_argument("--sensealg", default="adjoint")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1)
    net = pretrained_field(args.dataset, args.batch, args.pretrain, gen)
    fields = {"sciode": CountedField(copy.deepcopy(net)), "torchdiffeq": CountedField(copy.deepcopy(net))}
    models = {"sciode": FFJORD(fields["sciode"], 2, solver="dopri5", sensealg=args.sensealg, rtol=args.tol,
                               atol=args.tol),
              "torchdiffeq": ReferenceFFJORD(fields["torchdiffeq"], args.tol)}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    records: dict[str, list[dict]] = {k: [] for k in models}
    print(f"FFJORD {args.dataset}, batch {args.batch}, dopri5, rtol=atol={args.tol:g}, sensealg {args.sensealg}; "
          f"{args.pretrain} warm-up iterations, then {args.iters} timed iterations per library (alternating)")
    for it in range(args.iters + 1):  # iteration 0 warms both libraries up and is not timed
        x = toy_sample(args.dataset, args.batch, gen)
        for name in models:
            torch.manual_seed(1000 + it)  # the same Hutchinson noise draw for both
            rec = one_iteration(models[name], fields[name], opts[name], x)
            if it:
                records[name].append(rec)
    summary = {}
    for name, recs in records.items():
        t = statistics.median(r["time"] for r in recs)
        nfe_f = statistics.mean(r["nfe_f"] for r in recs)
        nfe_b = statistics.mean(r["nfe_b"] for r in recs)
        per_nfe = statistics.median(r["time"] / (r["nfe_f"] + r["nfe_b"]) for r in recs)
        summary[name] = dict(time=t, nfe_f=nfe_f, nfe_b=nfe_b, per_nfe=per_nfe, loss=recs[-1]["loss"])
    ref = summary["torchdiffeq"]
    rows = [[name, f"{s['time'] * 1e3:.0f}", f"{s['nfe_f']:.1f}", f"{s['nfe_b']:.1f}", f"{s['per_nfe'] * 1e3:.2f}",
             f"{s['time'] / ref['time']:.2f}", f"{s['per_nfe'] / ref['per_nfe']:.2f}"] for name, s in summary.items()]
    print(table(["library", "ms/iter (median)", "NFE fwd", "NFE bwd", "ms/NFE (median)", "time ratio",
                 "ratio at equal NFE"], rows))
    print(f"torch {torch.__version__}, sciode {sciode.__version__}")
    return summary


if __name__ == "__main__":
    main()
