"""The drop-in fronts against the libraries they stand in for: the same calls, timed side by side.

(a) torchdiffeq's ode_demo training step (float32, a batch of 20 spirals over 10 times, MLP
    2-50-2 on y**3, dopri5, RMSprop): ``odeint`` and ``odeint_adjoint``, torchdiffeq vs
    ``sciode.compat.torchdiffeq``; ms per step and NFE per step (forward and backward).
(b) scipy's documented ``solve_ivp`` examples (NumPy in, NumPy out), scipy vs
    ``sciode.compat.scipy``; ms per call and nfev.

One process, the sides interleaved, CPU time of the process, best and median of the repeats.
"""
from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import torch
import torchdiffeq
from _common import Counted, mlp, table
from scipy.integrate import solve_ivp as scipy_solve_ivp

from sciode.compat import torchdiffeq as front
from sciode.compat.scipy import solve_ivp as front_solve_ivp

REPEATS = 7


class Field(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = Counted(mlp(50, 2, seed=0))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y ** 3)


def spiral_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    t = torch.linspace(0.0, 25.0, 1000)
    with torch.no_grad():
        true_y = torchdiffeq.odeint(lambda s, y: torch.mm(y ** 3, A), torch.tensor([[2.0, 0.0]]), t)
    rng = np.random.default_rng(0)
    s = torch.from_numpy(rng.choice(np.arange(990), 20, replace=False))
    return true_y[s], t[:10], torch.stack([true_y[s + i] for i in range(10)])


def training_step(odeint, func: Field, optimizer, y0, t, target) -> None:
    optimizer.zero_grad()
    loss = torch.mean(torch.abs(odeint(func, y0, t) - target))
    loss.backward()
    optimizer.step()


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return out


def bench_training() -> None:
    y0, t, target = spiral_batch()
    rows = []
    for name in ("odeint", "odeint_adjoint"):
        sides = {"torchdiffeq": getattr(torchdiffeq, name), "sciode front": getattr(front, name)}
        runs = {}
        for label, odeint in sides.items():
            func = Field()
            runs[label] = (odeint, func, torch.optim.RMSprop(func.parameters(), lr=1e-3))
            training_step(odeint, func, runs[label][2], y0, t, target)  # warm-up
        times = {label: [] for label in sides}
        nfe = {}
        for _ in range(REPEATS):  # interleaved: each repeat times both sides, 10 steps each
            for label, (odeint, func, optimizer) in runs.items():
                func.net.calls = 0
                times[label] += timed(lambda: training_step(odeint, func, optimizer, y0, t, target), 10)
                nfe[label] = func.net.calls / 10
        reference = statistics.median(times["torchdiffeq"])
        for label in sides:
            best, median = min(times[label]), statistics.median(times[label])
            rows.append([name, label, f"{1e3 * best:.1f}", f"{1e3 * median:.1f}", f"{nfe[label]:.0f}",
                         f"{median / reference:.2f}"])
    print(table(["call", "library", "ms/step (best)", "ms/step (median)", "NFE/step", "median / torchdiffeq"],
                rows))


def exponential_decay(t, y):
    return -0.5 * y


def lotkavolterra(t, z, a, b, c, d):
    x, y = z
    return [a * x - b * x * y, -c * y + d * x * y]


def bench_solve_ivp() -> None:
    cases = {
        "exponential decay (RK45)": (exponential_decay, [0, 10], [2, 4, 8], {}),
        "Lotka-Volterra (RK45, dense)": (lotkavolterra, [0, 15], [10, 5], dict(args=(1.5, 1, 3, 1), dense_output=True)),
        "Lotka-Volterra (RK45, rtol 1e-8)": (lotkavolterra, [0, 15], [10, 5],
                                             dict(args=(1.5, 1, 3, 1), rtol=1e-8, atol=1e-10)),
    }
    rows = []
    for case, (fun, span, y0, kwargs) in cases.items():
        times = {"scipy": [], "sciode front": []}
        nfev = {}
        for _ in range(REPEATS):
            for label, solve_ivp in (("scipy", scipy_solve_ivp), ("sciode front", front_solve_ivp)):
                result = []
                times[label] += timed(lambda: result.append(solve_ivp(fun, span, y0, **kwargs)), 1)
                nfev[label] = result[-1].nfev
        reference = statistics.median(times["scipy"])
        for label in times:
            best, median = min(times[label]), statistics.median(times[label])
            rows.append([case, label, f"{1e3 * best:.2f}", f"{1e3 * median:.2f}", nfev[label],
                         f"{median / reference:.2f}"])
    print(table(["example", "library", "ms (best)", "ms (median)", "nfev", "median / scipy"], rows))


if __name__ == "__main__":
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)  # float32 at torchdiffeq's rtol=1e-7: sciode warns it is round-off
    bench_training()
    print()
    bench_solve_ivp()
