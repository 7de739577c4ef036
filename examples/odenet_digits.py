"""ODE-Net on scikit-learn's 8x8 digits, next to a ResNet of the same width and an MLP.

All three models are trained the same way (Adam, cosine schedule, same epochs, batch
and seed) on a fixed stratified split (1437 train / 360 test). Reports test accuracy,
parameter count, and the ODE block's NFE per batch (forward and backward); writes a
PNG of test accuracy and NFE per epoch.
Quick check:  python examples/odenet_digits.py --epochs 1 --train-limit 128
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import sciode
from sciode_models import MLPClassifier, ODENetClassifier, ResNetClassifier, load_digits_split, parameter_count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--res-blocks", type=int, default=6, help="residual blocks of the ResNet baseline")
    ap.add_argument("--solver", default="dopri5")
    ap.add_argument("--sensealg", default="none", help="a registered sensitivity name, or 'none' for plain autograd")
    ap.add_argument("--tol", type=float, default=1e-3, help="rtol = atol of the ODE block")
    ap.add_argument("--train-limit", type=int, default=None, help="use only this many training images (quick runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="odenet_digits.png")
    return ap.parse_args(argv)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(chunk).argmax(-1) for chunk in x.split(512)])
    model.train()
    return float((pred == y).float().mean())


def fit(name: str, model: nn.Module, data: tuple[torch.Tensor, ...], args: argparse.Namespace) -> dict:
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(args.seed)
    steps = args.epochs * ((len(x_tr) + args.batch - 1) // args.batch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(1, steps))
    block = getattr(model, "ode_block", None)
    record = dict(name=name, params=parameter_count(model), acc=[], nfe_f=[], nfe_b=[])
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x_tr))
        nfe_f = nfe_b = batches = 0
        for idx in order.split(args.batch):
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            batches += 1
            if block is not None:
                nfe_f += block.nfe_forward
                nfe_b += block.nfe_backward
        record["acc"].append(accuracy(model, x_te, y_te))
        record["nfe_f"].append(nfe_f / batches)
        record["nfe_b"].append(nfe_b / batches)
        extra = f"  NFE/batch forward {nfe_f / batches:.1f} backward {nfe_b / batches:.1f}" if block is not None else ""
        print(f"{name:8s} epoch {epoch + 1:3d}  test acc {record['acc'][-1]:.4f}{extra}"
              f"  {time.perf_counter() - start:.0f}s", flush=True)
    record["time"] = time.perf_counter() - start
    return record


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in records:
        a.plot(range(1, len(r["acc"]) + 1), r["acc"], label=f"{r['name']} ({r['params']:,} params)")
        if any(r["nfe_f"]):
            b.plot(range(1, len(r["nfe_f"]) + 1), r["nfe_f"], label=f"{r['name']} forward")
            b.plot(range(1, len(r["nfe_b"]) + 1), r["nfe_b"], label=f"{r['name']} backward")
    a.set_xlabel("epoch")
    a.set_ylabel("test accuracy")
    a.set_ylim(0.8, 1.0)
    a.legend()
    b.set_xlabel("epoch")
    b.set_ylabel("NFE per batch (ODE block)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    data = load_digits_split(seed=args.seed)
    if args.train_limit:
        data = (data[0][: args.train_limit], data[1][: args.train_limit], data[2], data[3])
    sensealg = None if args.sensealg == "none" else args.sensealg
    print(f"{len(data[0])} train / {len(data[2])} test images; solver {args.solver}, sensealg {args.sensealg}, "
          f"registered sensitivities: {list(sciode.sensitivities())}")
    builders = {
        "ODE-Net": lambda: ODENetClassifier(args.channels, solver=args.solver, sensealg=sensealg,
                                            rtol=args.tol, atol=args.tol),
        "ResNet": lambda: ResNetClassifier(args.channels, blocks=args.res_blocks),
        "MLP": lambda: MLPClassifier(64, 300),
    }
    records = []
    for name, build in builders.items():
        torch.manual_seed(args.seed)
        records.append(fit(name, build(), data, args))
    print("\nmodel     params   test acc   NFE/batch fwd  bwd   train time")
    for r in records:
        nfe = f"{r['nfe_f'][-1]:8.1f} {r['nfe_b'][-1]:5.1f}" if any(r["nfe_f"]) else f"{'-':>8s} {'-':>5s}"
        print(f"{r['name']:8s} {r['params']:7d}   {r['acc'][-1]:.4f}   {nfe}   {r['time']:6.0f}s")
    plot(records, args.out)
    print(f"wrote {args.out}")
    return records


if __name__ == "__main__":
    main()
