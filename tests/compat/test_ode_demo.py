"""torchdiffeq's examples/ode_demo.py spiral fit, run with torchdiffeq and with the sciode front.

The training loop below is written as torchdiffeq's example writes it (same data, model,
initialisation, optimiser, batches and solver calls); only ``odeint`` differs between the
two runs, the data included. Measured on this setup over 60 iterations: the training
losses agree to ~3e-7 (float64) and ~2e-6 (float32, where the example's rtol=1e-7 is at
round-off); the test losses (over the whole 25-time-unit trajectory, each run against its own
data) to ~3e-5. A float32 continuous adjoint is looser: torchdiffeq's own float32
odeint_adjoint and odeint part by 7e-3 in the test loss. Training amplifies the solvers'
~1e-8 gradient differences, so later iterations drift further apart (1e-6 by iteration 80,
1e-3 by 150 for the adjoint), which is why N is 60.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn, optim

from sciode.compat import torchdiffeq as front

torchdiffeq = pytest.importorskip("torchdiffeq")

DATA_SIZE, BATCH_TIME, BATCH_SIZE = 1000, 10, 20
TRUE_A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])


class Lambda(nn.Module):
    def forward(self, t, y):
        return torch.mm(y ** 3, TRUE_A.to(y.dtype))


class ODEFunc(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 2))
        for m in self.net.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0, std=0.1)
                nn.init.constant_(m.bias, val=0)

    def forward(self, t, y):
        return self.net(y ** 3)


def ode_demo(odeint, niters: int, test_freq: int) -> tuple[list[float], list[float]]:
    """The example's main loop; returns the training losses and the test losses every ``test_freq``."""
    torch.manual_seed(0)
    np.random.seed(0)
    true_y0 = torch.tensor([[2.0, 0.0]])
    t = torch.linspace(0.0, 25.0, DATA_SIZE)
    with torch.no_grad():
        true_y = odeint(Lambda(), true_y0, t, method="dopri5")

    def get_batch():
        s = torch.from_numpy(np.random.choice(np.arange(DATA_SIZE - BATCH_TIME, dtype=np.int64), BATCH_SIZE,
                                              replace=False))
        batch_y0 = true_y[s]  # (M, 1, D)
        batch_t = t[:BATCH_TIME]  # (T)
        batch_y = torch.stack([true_y[s + i] for i in range(BATCH_TIME)], dim=0)  # (T, M, 1, D)
        return batch_y0, batch_t, batch_y

    func = ODEFunc()
    optimizer = optim.RMSprop(func.parameters(), lr=1e-3)
    train, test = [], []
    for itr in range(1, niters + 1):
        optimizer.zero_grad()
        batch_y0, batch_t, batch_y = get_batch()
        pred_y = odeint(func, batch_y0, batch_t)
        loss = torch.mean(torch.abs(pred_y - batch_y))
        loss.backward()
        optimizer.step()
        train.append(loss.item())
        if itr % test_freq == 0:
            with torch.no_grad():
                pred_y = odeint(func, true_y0, t)
                test.append(torch.mean(torch.abs(pred_y - true_y)).item())
    return train, test


@pytest.fixture
def default_dtype(request):
    before = torch.get_default_dtype()
    torch.set_default_dtype(request.param)
    yield request.param
    torch.set_default_dtype(before)


@pytest.mark.slow
@pytest.mark.parametrize("default_dtype, name, train_rtol, test_rtol", [
    (torch.float32, "odeint", 2e-5, 2e-4),  # the example as it is
    (torch.float32, "odeint_adjoint", 5e-3, 2e-2),  # a float32 adjoint at rtol=1e-7 works at round-off
    (torch.float64, "odeint", 2e-6, 2e-4),
    (torch.float64, "odeint_adjoint", 2e-6, 2e-4),
], indirect=["default_dtype"])
def test_ode_demo_losses_match_torchdiffeq(default_dtype, name, train_rtol, test_rtol):
    niters, test_freq = 60, 30
    theirs = ode_demo(getattr(torchdiffeq, name), niters, test_freq)
    ours = ode_demo(getattr(front, name), niters, test_freq)
    train_theirs, train_ours = np.array(theirs[0]), np.array(ours[0])
    assert train_theirs[-10:].mean() < 0.5 * train_theirs[:10].mean()  # the fit makes progress: a loss worth comparing
    np.testing.assert_allclose(train_ours, train_theirs, rtol=train_rtol)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=test_rtol)
