"""A small neural SDE learns a double-well process from samples of its marginal distributions.

Data: paths of du = (u - u^3) dt + 0.7 dW from u(0) = 0, which split between the
wells at -1 and +1; only the values across paths at a few times are used (no
path pairing). Model: du = f(u) dt + g(u) dW with f and g small MLPs (g > 0 via
softplus), Stratonovich, solved by the stochastic midpoint method with
``sensealg="adjoint"`` (torchsde's stochastic adjoint: memory independent of the
number of steps). Reversible Heun, whose adjoint is exact, is not used here: it is
unstable on dissipative dynamics over long horizons (see docs/sde.md). Loss: at every observation
time the 1-D Wasserstein-2 distance between model and data samples (mean squared
difference of the sorted samples). Writes a figure and the model paths (netCDF).

    python examples/neural_sde.py            # full run
    python examples/neural_sde.py --quick    # smoke run
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

import sciode


class MLP(nn.Module):
    """A scalar field of a scalar state: u (*, 1) -> (*, 1); ``positive`` adds a softplus."""

    def __init__(self, hidden: int, positive: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))
        self.positive = positive

    def forward(self, u: torch.Tensor, p: Any = None, t: Any = None) -> torch.Tensor:
        out = self.net(u)
        return nn.functional.softplus(out) + 1e-3 if self.positive else out


def double_well(u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
    return u - u**3


def wasserstein(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared 1-D Wasserstein-2 distance between equal-size samples along dim 1, averaged over dim 0."""
    return ((a.sort(dim=1).values - b.sort(dim=1).values) ** 2).mean()


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--paths", type=int, default=512)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outdir", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    if args.quick:
        args.paths, args.iters, args.hidden = 32, 2, 8
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t1, saveat = 3.0, torch.linspace(0.0, 3.0, 7)
    u0 = torch.zeros(1)
    truth = sciode.SDEProblem(double_well, lambda u, p, t: 0.7 * torch.ones_like(u), u0, (0.0, t1),
                              noise="additive", state_names=["u"])  # additive noise: Ito = Stratonovich
    data = sciode.solve(truth, "srk", dt=args.dt / 5, saveat=saveat, seed=args.seed, samples=args.paths)
    target = data.u[1:, :, 0]

    drift, diffusion = MLP(args.hidden), MLP(args.hidden, positive=True)
    model = sciode.SDEProblem(drift, diffusion, u0, (0.0, t1), sde_type="stratonovich", state_names=["u"],
                              name="neural SDE")
    params = [*drift.parameters(), *diffusion.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)

    def loss_at(seed: int) -> tuple[torch.Tensor, sciode.Solution]:
        sol = sciode.solve(model, "sde_midpoint", dt=args.dt, saveat=saveat, seed=seed, samples=args.paths,
                           sensealg="adjoint")
        return wasserstein(sol.u[1:, :, 0], target), sol

    with torch.no_grad():
        initial = float(loss_at(10_000)[0])
    for it in range(args.iters):
        loss, _ = loss_at(args.seed + 1 + it)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final, sol = loss_at(20_000)  # fresh noise: not a path seen in training
    results = {"w2_initial": initial, "w2_final": float(final)}
    print(f"squared W2 between model and data marginals: {initial:.4f} before, {float(final):.4f} after "
          f"{args.iters} adjoint steps")

    args.outdir.mkdir(parents=True, exist_ok=True)
    ds = sol.to_xarray()  # u on dims (sample, time, state)
    ds["data"] = (("time", "sample", "state"), data.u.numpy())
    ds.attrs.update(w2_initial=initial, w2_final=float(final))
    ds.to_netcdf(args.outdir / "neural_sde.nc")
    plot(saveat, data.u[..., 0], sol.u[..., 0], drift, diffusion, args.outdir / "neural_sde.png")
    return results


def plot(t: torch.Tensor, data: torch.Tensor, model: torch.Tensor, drift: nn.Module, diffusion: nn.Module,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(t.numpy(), data[:, :20].numpy(), color="k", lw=0.6, alpha=0.6)
    axes[0].plot(t.numpy(), model[:, :20].numpy(), color="C3", lw=0.6, alpha=0.6)
    axes[0].set_title("paths: data (black), neural SDE (red)")
    axes[1].hist(data[-1].numpy(), bins=30, alpha=0.5, color="k", label="data", density=True)
    axes[1].hist(model[-1].numpy(), bins=30, alpha=0.5, color="C3", label="neural SDE", density=True)
    axes[1].set_title(f"u at t = {float(t[-1]):g}")
    axes[1].legend()
    grid = torch.linspace(-2, 2, 101).unsqueeze(-1)
    with torch.no_grad():
        axes[2].plot(grid.numpy(), (grid - grid**3).numpy(), "k--", label="true drift u - u^3")
        axes[2].plot(grid.numpy(), drift(grid).numpy(), "C3", label="learned drift")
        axes[2].plot(grid.numpy(), diffusion(grid).numpy(), "C0", label="learned diffusion (true 0.7)")
    axes[2].set_ylim(-3, 3)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
