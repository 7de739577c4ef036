"""One gradient of the spiral MLP neural ODE: sciode's sensitivities vs torchdiffeq, in one process.

The model and data of torchdiffeq's ode_demo: the spiral dy/dt = (y^3) A with
A = [[-0.1, 2], [-2, -0.1]] sampled on t = linspace(0, 25, 1000); the model is
f(y) = MLP(y^3) with an MLP 2-50-2 (tanh); a minibatch of 20 starting points and 10
output times spanning 2.25 time units; loss = mean |pred - data| over the whole
minibatch trajectory. A second scenario integrates the same minibatch to t = 10 with a
loss on the end point only (one backward segment, where step-size control of the
backward pass, and so the seminorm, matters most). dopri5 at rtol 1e-6, atol 1e-8,
float64, one thread. Timing: all runs of one table are interleaved (round-robin,
after a warm-up) and each gets the minimum over the rounds of its CPU time
(``time.process_time``, robust to other processes on a shared machine) and of its wall time. Each row is
the best of several forward+backward runs; NFE counted by a wrapper around the MLP.
Gradients of matching methods are compared (max relative difference over all
parameters): backprop/checkpointed vs odeint, adjoint vs odeint_adjoint.

Run:  python benchmarks/sensitivity_speed.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import time

import torch
from _common import Counted, table

import sciode
from sciode_sensitivity import Adjoint, Checkpointed

RTOL, ATOL = 1e-6, 1e-8


class SciodeField(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, u: torch.Tensor, p: object, t: torch.Tensor) -> torch.Tensor:
        return self.net(u ** 3)


class PeerField(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y ** 3)


def spiral_data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torchdiffeq

    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=dtype)
    t = torch.linspace(0.0, 25.0, 1000, dtype=dtype)
    with torch.no_grad():
        true_y = torchdiffeq.odeint(lambda t, y: (y ** 3) @ A, torch.tensor([[2.0, 0.0]], dtype=dtype), t,
                                    method="dopri5")
    gen = torch.Generator().manual_seed(0)
    start = torch.randperm(1000 - 100, generator=gen)[:20]
    batch_t = t[:100:10]
    batch_y0 = true_y[start, 0]  # (20, 2)
    batch_y = torch.stack([true_y[start + i, 0] for i in range(0, 100, 10)])  # (10, 20, 2)
    return batch_t, batch_y0, batch_y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)

    dtype = torch.float64
    batch_t, batch_y0, batch_y = spiral_data(dtype)
    torch.manual_seed(0)
    net = Counted(torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2)).to(dtype))
    params = list(net.parameters())
    ours, peer = SciodeField(net), PeerField(net)
    scenarios = [("trajectory: 10 outputs on [0, 2.25]", batch_t, lambda u: (u - batch_y).abs().mean()),
                 ("end point: t = 10", torch.tensor([0.0, 10.0], dtype=dtype), lambda u: u[-1].abs().mean())]
    for title, times, loss_fn in scenarios:
        print(f"\n### {title}\n")
        print(scenario(net, params, ours, peer, batch_y0, times, loss_fn, args.repeats))


def interleaved(runs: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Minimum CPU and wall time of each run over ``repeats`` round-robin rounds (after one warm-up each)."""
    for fn in runs.values():
        fn()
    cpu = {name: float("inf") for name in runs}
    wall = dict(cpu)
    for _ in range(repeats):
        for name, fn in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[name] = min(cpu[name], time.process_time() - c0)
            wall[name] = min(wall[name], time.perf_counter() - w0)
    return cpu, wall


def scenario(net, params, ours, peer, y0, times, loss_fn, repeats: int) -> str:
    import torchdiffeq

    prob = sciode.ODEProblem(ours, y0, (float(times[0]), float(times[-1])))
    saveat = times if times.shape[0] > 2 else times[-1:]

    def sciode_run(sens):
        def run():
            sol = sciode.solve(prob, "dopri5", sensealg=sens, saveat=saveat, rtol=RTOL, atol=ATOL)
            u = sol.u if times.shape[0] > 2 else torch.cat([y0.unsqueeze(0), sol.u])
            loss = loss_fn(u)
            net.calls = 0
            grads = torch.autograd.grad(loss, params)
            return grads, sol.stats["nfe"], net.calls
        return run

    def peer_run(adjoint: bool, seminorm: bool = False):
        def run():
            net.calls = 0
            if adjoint:
                options = dict(norm="seminorm") if seminorm else None
                pred = torchdiffeq.odeint_adjoint(peer, y0, times, rtol=RTOL, atol=ATOL, method="dopri5",
                                                  adjoint_params=params, adjoint_options=options)
            else:
                pred = torchdiffeq.odeint(peer, y0, times, rtol=RTOL, atol=ATOL, method="dopri5")
            loss = loss_fn(pred)
            forward = net.calls
            net.calls = 0
            grads = torch.autograd.grad(loss, params)
            return grads, forward, net.calls
        return run

    cases = [
        ("backprop", sciode_run("backprop"), "odeint", peer_run(False)),
        ("checkpointed", sciode_run("checkpointed"), "odeint", peer_run(False)),
        ("checkpointed (n_checkpoints=4)", sciode_run(Checkpointed(n_checkpoints=4)), "odeint", peer_run(False)),
        ("adjoint", sciode_run("adjoint"), "odeint_adjoint", peer_run(True)),
        ("adjoint (seminorm)", sciode_run(Adjoint(seminorm=True)), "odeint_adjoint (seminorm)", peer_run(True, True)),
    ]
    runs: dict[str, object] = {}
    for name, run, peer_name, prun in cases:
        runs[name] = run
        runs.setdefault(peer_name, prun)
    cpu, wall = interleaved(runs, repeats)
    rows = []
    backward_nfe: dict[str, tuple[int, int]] = {}
    for name, run, peer_name, prun in cases:
        grads, nfe, back_calls = run()
        pgrads, pnfe, pback = prun()
        diff = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(grads, pgrads))
        backward_nfe[name] = (back_calls, pback)
        rows.append([name, f"{cpu[name] * 1e3:.1f}", f"torchdiffeq {peer_name}", f"{cpu[peer_name] * 1e3:.1f}",
                     f"{cpu[name] / cpu[peer_name]:.2f}", f"{wall[name] / wall[peer_name]:.2f}",
                     f"{nfe} / {back_calls}", f"{pnfe} / {pback}", f"{diff:.1e}"])
    out = table(["sciode sensealg", "CPU ms", "peer", "peer CPU ms", "ratio (CPU)", "ratio (wall)", "NFE fwd / bwd",
                 "peer NFE fwd / bwd", "grad rel. diff"], rows)
    (plain, pplain), (semi, psemi) = backward_nfe["adjoint"], backward_nfe["adjoint (seminorm)"]
    return out + (f"\n\nseminorm backward NFE: sciode {semi} vs {plain} ({100 * (1 - semi / plain):.0f}% fewer); "
                  f"torchdiffeq {psemi} vs {pplain} ({100 * (1 - psemi / pplain):.0f}% fewer)")


if __name__ == "__main__":
    main()
