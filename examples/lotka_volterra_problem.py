"""A problem script for ``sciode run``: Lotka-Volterra predator-prey, one member per parameter set.

``sciode run`` calls ``problem(inputs)`` with one chunk of members at a time;
each input tensor's leading dim is the chunk's members. The input dataset
(see examples/batch_sweep.py) has variables alpha, beta, delta, gamma, prey0, predator0 on dim "member".
"""
from __future__ import annotations

import torch

import sciode


def lotka_volterra(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """du/dt for u = (prey, predator); p = (alpha, beta, delta, gamma) per member, shape (members, 4)."""
    x, y = u[..., 0], u[..., 1]
    alpha, beta, delta, gamma = p.unbind(-1)
    return torch.stack([alpha * x - beta * x * y, delta * x * y - gamma * y], dim=-1)


def problem(inputs: dict[str, torch.Tensor]) -> sciode.ODEProblem:
    p = torch.stack([inputs["alpha"], inputs["beta"], inputs["delta"], inputs["gamma"]], dim=-1)
    u0 = torch.stack([inputs["prey0"], inputs["predator0"]], dim=-1)
    t1 = float(inputs["t1"]) if "t1" in inputs else 20.0
    return sciode.ODEProblem(lotka_volterra, u0, (0.0, t1), p, state_names=["prey", "predator"],
                             state_units="1", state_long_names=["prey population", "predator population"],
                             time_units="1", name="Lotka-Volterra sweep")
