"""Fit the drift and diffusion of an Ornstein-Uhlenbeck process to sampled paths, with the stochastic adjoint.

    du = theta (mu - u) dt + sigma dW

"Data": paths simulated with the true (theta, mu, sigma), observed at a few times.
Model: the same SDE with unknown parameters; each step simulates fresh model paths
(reversible Heun; for additive noise the Ito and Stratonovich forms coincide) and
matches the mean and standard deviation of the data across paths at every
observation time. Gradients come from ``sensealg="adjoint"`` (torchsde's adjoint;
exact for reversible Heun). Writes the fitted parameters, a figure and the data set
(netCDF, with a ``sample`` dim).

    python examples/sde_ornstein_uhlenbeck.py            # full run
    python examples/sde_ornstein_uhlenbeck.py --quick    # smoke run
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import sciode

TRUE = {"theta": 1.5, "mu": 0.5, "sigma": 0.4}


def ou_problem(params: dict[str, torch.Tensor], u0: torch.Tensor, t1: float) -> sciode.SDEProblem:
    def drift(u: torch.Tensor, p: dict[str, torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        return p["theta"] * (p["mu"] - u)

    def diffusion(u: torch.Tensor, p: dict[str, torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        return p["sigma"] * torch.ones_like(u)

    return sciode.SDEProblem(drift, diffusion, u0, (0.0, t1), params, noise="additive", sde_type="stratonovich",
                             state_names=["u"], name="Ornstein-Uhlenbeck")


def positive(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """theta and sigma are fitted on a log scale so they stay positive."""
    return {"theta": raw["log_theta"].exp(), "mu": raw["mu"], "sigma": raw["log_sigma"].exp()}


def moments(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation across paths (dim 1) at each saved time."""
    return u.mean(dim=1), u.std(dim=1)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--paths", type=int, default=1000, help="number of observed (and of simulated) paths")
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--dt", type=float, default=0.02)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outdir", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    if args.quick:
        args.paths, args.iters = 64, 3
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t1, saveat = 2.0, torch.linspace(0.0, 2.0, 11, dtype=torch.float64)
    u0 = torch.full((1,), 2.0, dtype=torch.float64)
    true = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUE.items()}
    data = sciode.solve(ou_problem(true, u0, t1), "reversible_heun", dt=args.dt, saveat=saveat, seed=args.seed,
                        samples=args.paths)
    data_mean, data_std = moments(data.u)

    raw = {"log_theta": torch.tensor(0.0, dtype=torch.float64, requires_grad=True),
           "mu": torch.tensor(0.0, dtype=torch.float64, requires_grad=True),
           "log_sigma": torch.tensor(math.log(1.0), dtype=torch.float64, requires_grad=True)}
    opt = torch.optim.Adam(raw.values(), lr=args.lr)
    history = []
    for it in range(args.iters):
        sol = sciode.solve(ou_problem(positive(raw), u0, t1), "reversible_heun", dt=args.dt, saveat=saveat,
                           seed=args.seed + 1 + it, samples=args.paths, sensealg="adjoint")
        mean, std = moments(sol.u)
        loss = ((mean - data_mean) ** 2).mean() + ((std[1:] - data_std[1:]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    fitted = {k: float(v.detach()) for k, v in positive(raw).items()}
    for k in TRUE:
        print(f"{k:>6}: true {TRUE[k]:.3f}   fitted {fitted[k]:.3f}")
    print(f"final loss {history[-1]:.2e} after {args.iters} adjoint steps on {args.paths} paths")

    args.outdir.mkdir(parents=True, exist_ok=True)
    ds = data.to_xarray()
    ds.attrs.update(true_parameters=json.dumps(TRUE), fitted_parameters=json.dumps(fitted))
    ds.to_netcdf(args.outdir / "sde_ornstein_uhlenbeck.nc")
    fit = sciode.solve(ou_problem({k: torch.tensor(v, dtype=torch.float64) for k, v in fitted.items()}, u0, t1),
                       "reversible_heun", dt=args.dt, saveat=saveat, seed=args.seed + 10_000, samples=args.paths)
    plot(saveat, data.u, fit.u, history, args.outdir / "sde_ornstein_uhlenbeck.png")
    return fitted


def plot(t: torch.Tensor, data: torch.Tensor, fit: torch.Tensor, history: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    tt = t.numpy()
    ax.plot(tt, data[:, :30, 0].numpy(), color="0.75", lw=0.7)
    for u, color, label in ((data, "k", "data"), (fit, "C3", "fitted model")):
        mean, std = moments(u[..., 0])
        ax.plot(tt, mean.numpy(), color=color, label=f"{label}: mean")
        ax.fill_between(tt, (mean - 2 * std).numpy(), (mean + 2 * std).numpy(), color=color, alpha=0.12,
                        label=f"{label}: mean +/- 2 sd")
    ax.set_xlabel("t")
    ax.set_ylabel("u")
    ax.legend(fontsize=8)
    ax2.semilogy(history)
    ax2.set_xlabel("Adam step (adjoint gradients)")
    ax2.set_ylabel("moment-matching loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
