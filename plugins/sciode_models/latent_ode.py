"""Latent ODE for irregularly sampled time series (Rubanova, Chen & Duvenaud 2019) and its baselines.

Data convention: a batch of series shares one sorted grid of times ``t`` (T,);
``x`` is (B, T, D) and ``mask`` (B, T, D) marks which entries were observed (1) or
missing (0). A series is irregular because its mask keeps only some grid times;
values under mask 0 are never read (they may be NaN).

* ``LatentODE``: an ODE-RNN reads the observations backwards in time and gives
  q(z0 | x); a latent ODE dz/dt = f(z) carries z0 to any query time and a linear
  decoder maps z to x. Trained by the ELBO: Gaussian log-likelihood of the
  observed entries minus KL(q(z0) || N(0, I)).
* ``ODERNN``: the ODE-RNN as a forecaster: between observations the hidden state
  follows an ODE, at an observation a GRU updates it; predictions read the hidden
  state just before each query time.
* ``RNNBaseline``: the same recurrence without the ODE: a GRU whose input carries
  the time since the last observation, and a readout given the time elapsed.

Every ODE is solved by ``sciode.solve`` with a solver (and sensitivity) given by
registered name, so any installed solver drives these models.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

import sciode

__all__ = ["LatentODE", "ODERNN", "RNNBaseline", "ODERNNCell", "GRUDeltaCell", "MLPField", "gaussian_nll", "scan"]

LOG_2PI = math.log(2 * math.pi)


class MLPField(nn.Module):
    """An autonomous vector field f(u, p, t) = MLP(u) (``p`` and ``t`` are ignored)."""

    def __init__(self, dim: int, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        widths = [dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*blocks, nn.Linear(widths[-1], dim))

    def forward(self, u: torch.Tensor, p: Any = None, t: Any = None) -> torch.Tensor:
        return self.net(u)


def _check_series(t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, dim: int) -> None:
    if t.ndim != 1 or t.numel() < 1:
        raise sciode.ProblemError(f"t_obs must be a 1-D tensor of times; got shape {tuple(t.shape)}")
    if t.numel() > 1 and not bool((t[1:] > t[:-1]).all()):
        raise sciode.ProblemError("t_obs must be strictly increasing (one grid shared by the batch; use mask for gaps)")
    if x.ndim != 3 or x.shape[1] != t.numel() or x.shape[2] != dim:
        raise sciode.ProblemError(f"x_obs must have shape (batch, {t.numel()}, {dim}); got {tuple(x.shape)}")
    if mask.shape != x.shape:
        raise sciode.ProblemError(f"mask must have the shape of x_obs {tuple(x.shape)}; got {tuple(mask.shape)}")


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, mask: torch.Tensor, std: float) -> torch.Tensor:
    """Negative log-likelihood of the observed entries under N(mean, std^2), summed per series: shape (B,)."""
    observed = mask > 0
    z = torch.where(observed, x, mean) - mean
    nll = 0.5 * (z / std) ** 2 + math.log(std) + 0.5 * LOG_2PI
    return torch.where(observed, nll, torch.zeros_like(nll)).flatten(1).sum(1)


def _solve_to(f: nn.Module, h: torch.Tensor, t0: float, t1: float, solver: sciode.Solver, options: dict[str, Any],
              sensealg: Any = None) -> torch.Tensor:
    """h(t1) from h(t0) under dh/dt = f(h); fixed-step solvers without a dt take one step."""
    if t0 == t1:
        return h
    opts = dict(options)
    if "dt" not in opts and not solver.adaptive:
        opts["dt"] = abs(t1 - t0)
    sol = sciode.solve(sciode.ODEProblem(f, h, (t0, t1)), solver, saveat=[t1], dense=False, sensealg=sensealg, **opts)
    return sol.u[-1]


class ODERNNCell(nn.Module):
    """ODE-RNN recurrence: ``evolve`` follows dh/dt = f(h) between times, ``update`` is a GRU at observations."""

    def __init__(self, obs_dim: int, hidden_dim: int = 32, ode_hidden: int = 32, solver: str = "euler",
                 **solve_options: Any) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.field = MLPField(hidden_dim, ode_hidden)
        self.gru = nn.GRUCell(2 * obs_dim, hidden_dim)
        # an instance, made once: this cell solves one short ODE per observation gap
        self.solver, self.solve_options = sciode.lookup("solver", solver, "encoder solver")(), solve_options

    def evolve(self, h: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        return _solve_to(self.field, h, t0, t1, self.solver, self.solve_options)

    def update(self, h: torch.Tensor, x: torch.Tensor, m: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        return self.gru(torch.cat([x, m], -1), h)


class GRUDeltaCell(nn.Module):
    """A plain GRU over observations whose input includes the time since the series' last observation."""

    def __init__(self, obs_dim: int, hidden_dim: int = 32) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.gru = nn.GRUCell(2 * obs_dim + 1, hidden_dim)

    def evolve(self, h: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        return h

    def update(self, h: torch.Tensor, x: torch.Tensor, m: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        return self.gru(torch.cat([x, m, since], -1), h)


def scan(cell: nn.Module, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, t_query: torch.Tensor | None = None,
         readout: Any = None, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``cell`` over the observation grid, forwards or backwards in time.

    At each time of the merged grid (observation and query times) the hidden state is
    first evolved to it; at a query time ``readout(h, since)`` is recorded (before
    any update at that time, so a prediction never sees its own value); at an
    observation time members with an observed entry get the cell's update.
    ``since`` is each member's time since its last update. Returns the final hidden
    state and the readouts (B, Q, ...) in the order of ``t_query``, or None.
    """
    batch = x.shape[0]
    h = x.new_zeros(batch, cell.hidden_dim)
    grid_list = t.tolist()
    query_list = [] if t_query is None else t_query.tolist()
    times = sorted(set(grid_list) | set(query_list), reverse=reverse)
    obs_index = {v: i for i, v in enumerate(grid_list)}
    query_slots: dict[float, list[int]] = {}
    for j, v in enumerate(query_list):
        query_slots.setdefault(v, []).append(j)
    outputs: list[torch.Tensor | None] = [None] * len(query_list)
    last = x.new_full((batch, 1), times[0])
    x_clean = torch.where(mask > 0, x, torch.zeros_like(x))
    prev = times[0]
    for now in times:
        h = cell.evolve(h, prev, now)
        prev = now
        if now in query_slots:
            out = readout(h, (now - last).abs())
            for j in query_slots[now]:
                outputs[j] = out
        if now in obs_index:
            i = obs_index[now]
            m = mask[:, i]
            seen = (m > 0).any(-1, keepdim=True)
            h = torch.where(seen, cell.update(h, x_clean[:, i], m, (now - last).abs()), h)
            last = torch.where(seen, torch.full_like(last, now), last)
    preds = torch.stack(outputs, 1) if query_list else None  # type: ignore[arg-type]
    return h, preds


class _Forecaster(nn.Module):
    """Shared training/prediction for the recurrent baselines: one-step-ahead Gaussian likelihood."""

    cell: nn.Module
    obs_std: float

    def readout(self, h: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, t_obs: torch.Tensor, x_obs: torch.Tensor, mask: torch.Tensor,
                t_query: torch.Tensor) -> torch.Tensor:
        """Predictions (B, Q, D) at ``t_query`` from the observations strictly before each query time."""
        _check_series(t_obs, x_obs, mask, self.obs_dim)
        t_query = torch.as_tensor(t_query, dtype=t_obs.dtype).reshape(-1)
        return scan(self.cell, t_obs, x_obs, mask, t_query, self.readout)[1]

    def loss(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, *,
             target_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over series of the NLL of the entries under ``target_mask`` (default ``mask``) after the first
        grid time, each predicted from the observations under ``mask`` strictly before it."""
        _check_series(t, x, mask, self.obs_dim)
        target = mask if target_mask is None else target_mask
        preds = self.predict(t, x, mask, t[1:])
        count = mask.new_tensor(x.shape[0])
        return gaussian_nll(x[:, 1:], preds, target[:, 1:], self.obs_std).sum() / count


class ODERNN(_Forecaster):
    """ODE-RNN forecaster (Rubanova et al. 2019): hidden ODE between observations, GRU at observations."""

    name = "ode_rnn"

    def __init__(self, obs_dim: int, hidden_dim: int = 32, *, ode_hidden: int = 32, solver: str = "euler",
                 obs_std: float = 0.1, **solve_options: Any) -> None:
        super().__init__()
        self.obs_dim, self.obs_std = obs_dim, obs_std
        self.cell = ODERNNCell(obs_dim, hidden_dim, ode_hidden, solver, **solve_options)
        self.out = nn.Linear(hidden_dim, obs_dim)

    def readout(self, h: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        return self.out(h)


class RNNBaseline(_Forecaster):
    """GRU baseline with time gaps as input: the readout sees the time since the last observation."""

    name = "rnn"

    def __init__(self, obs_dim: int, hidden_dim: int = 32, *, obs_std: float = 0.1) -> None:
        super().__init__()
        self.obs_dim, self.obs_std = obs_dim, obs_std
        self.cell = GRUDeltaCell(obs_dim, hidden_dim)
        self.out = nn.Sequential(nn.Linear(hidden_dim + 1, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, obs_dim))

    def readout(self, h: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([h, since], -1))


class LatentODE(nn.Module):
    """Latent ODE with an ODE-RNN encoder: q(z0 | observations), dz/dt = f(z), x ~ N(decoder(z), obs_std^2).

    ``f`` is the latent vector field f(z, p, t) (default: an MLP on ``latent_dim``);
    ``solver``/``sensealg``/``solve_options`` drive the latent ODE, ``encoder_solver``
    (default one Euler step per gap, as in the paper's code) the encoder's hidden ODE.
    z0 lives at the first grid time ``t_obs[0]``.
    """

    name = "latent_ode"

    def __init__(self, f: nn.Module | None, obs_dim: int, latent_dim: int = 4, *, hidden_dim: int = 32,
                 rec_dim: int = 32, solver: str = "dopri5", sensealg: Any = None, obs_std: float = 0.1,
                 encoder_solver: str = "euler", **solve_options: Any) -> None:
        super().__init__()
        if obs_std <= 0:
            raise sciode.ProblemError(f"obs_std must be positive; got {obs_std}")
        self.obs_dim, self.latent_dim, self.obs_std = obs_dim, latent_dim, obs_std
        self.f = f if f is not None else MLPField(latent_dim, hidden_dim)
        self.encoder = ODERNNCell(obs_dim, rec_dim, rec_dim, encoder_solver)
        self.to_posterior = nn.Sequential(nn.Linear(rec_dim, rec_dim), nn.Tanh(), nn.Linear(rec_dim, 2 * latent_dim))
        self.decoder = nn.Linear(latent_dim, obs_dim)
        self.solver, self.sensealg = solver, sensealg
        self.solve_options = solve_options or ({"rtol": 1e-4, "atol": 1e-5} if solver == "dopri5" else {})

    def encode(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of q(z0 | x), each (B, latent_dim), from the ODE-RNN run backwards."""
        _check_series(t, x, mask, self.obs_dim)
        seen = (mask > 0).flatten(2).any(-1).any(0).nonzero()
        last = int(seen[-1, 0]) + 1 if seen.numel() else 1  # start the backward run at the last observation
        h, _ = scan(self.encoder, t[:last], x[:, :last], mask[:, :last], reverse=True)
        mean, raw = self.to_posterior(h).chunk(2, -1)
        return mean, nn.functional.softplus(raw) + 1e-4

    def decode(self, z0: torch.Tensor, t0: float, t_query: torch.Tensor) -> torch.Tensor:
        """x at ``t_query`` (any order, repeats allowed): shape (*z0 batch, Q, obs_dim).

        The latent ODE runs forwards from t0 to later queries and backwards to earlier ones.
        """
        times, inverse = torch.unique(t_query, sorted=True, return_inverse=True)
        parts = []
        before, after = times[times < t0], times[times > t0]
        if before.numel():
            parts.append(self._latent_path(z0, t0, before.flip(0)).flip(0))
        if bool((times == t0).any()):
            parts.append(z0.unsqueeze(0))
        if after.numel():
            parts.append(self._latent_path(z0, t0, after))
        return self.decoder(torch.cat(parts, 0)).movedim(0, -2)[..., inverse, :]

    def _latent_path(self, z0: torch.Tensor, t0: float, saveat: torch.Tensor) -> torch.Tensor:
        """z at ``saveat`` (monotonic away from t0), shape (len(saveat), *z0.shape)."""
        problem = sciode.ODEProblem(self.f, z0, (t0, float(saveat[-1])))
        return sciode.solve(problem, self.solver, saveat=saveat, sensealg=self.sensealg, dense=False,
                            **self.solve_options).u

    def elbo(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, *, kl_weight: float = 1.0,
             target_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over series of E_q[log p(x | z0)] - kl_weight * KL(q(z0) || N(0, I)), one z0 sample per series.

        The encoder reads the entries under ``mask``; the likelihood scores those under
        ``target_mask`` (default ``mask``), e.g. a whole series encoded from its first half.
        """
        mean, std = self.encode(t, x, mask)
        z0 = mean + std * torch.randn_like(std)
        x_hat = self.decode(z0, float(t[0]), t)
        target = mask if target_mask is None else target_mask
        loglik = -gaussian_nll(x, x_hat, target, self.obs_std)
        kl = (0.5 * (mean**2 + std**2 - 1) - torch.log(std)).sum(-1)
        return (loglik - kl_weight * kl).mean()

    def loss(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, *, kl_weight: float = 1.0,
             target_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The negative ELBO (what training minimises)."""
        return -self.elbo(t, x, mask, kl_weight=kl_weight, target_mask=target_mask)

    def predict(self, t_obs: torch.Tensor, x_obs: torch.Tensor, mask: torch.Tensor, t_query: torch.Tensor, *,
                samples: int | None = None) -> torch.Tensor:
        """Interpolate/extrapolate: (B, Q, D) from the posterior mean of z0, or (samples, B, Q, D) sampled."""
        mean, std = self.encode(t_obs, x_obs, mask)
        t_query = torch.as_tensor(t_query, dtype=t_obs.dtype).reshape(-1)
        if samples is None:
            return self.decode(mean, float(t_obs[0]), t_query)
        z0 = mean + std * torch.randn(samples, *std.shape, dtype=std.dtype)
        return self.decode(z0, float(t_obs[0]), t_query)
