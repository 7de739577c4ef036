"""Continuous normalising flows: CNF (exact trace) and FFJORD (Hutchinson trace).

A flow maps data x at t0 to a latent z at t1 by dz/dt = f(z, p, t). Along the way
d(log-det)/dt = tr(df/dz), so ``log_prob(x) = log N(z(t1); 0, I) + int tr(df/dz) dt``
(Chen et al. 2018; Grathwohl et al. 2019). The augmented state ``[z, logdet, regs]``
is one tensor concatenated on the last dim, because the core loop integrates tensors
and every solver and sensitivity then works unchanged. Optional RNODE regularisers
(Finlay et al. 2020) are extra integrated states: the kinetic energy int |f|^2 dt and
the Jacobian Frobenius norm int |df/dz|_F^2 dt.

``f`` may be a list of vector fields: the blocks are applied one after another, each
over ``tspan`` (a multi-block stack, as in FFJORD's multiscale toy models).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import sciode

from ._solving import configure_solve, solve_to_end

__all__ = ["CNF", "FFJORD", "standard_normal_log_prob"]

NOISE_TYPES = ("rademacher", "gaussian")
DEFAULT_TOLERANCES = dict(rtol=1e-5, atol=1e-5)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))


class _Function(nn.Module):
    """Holds a plain callable vector field so blocks can live in one ModuleList."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        return self.fn(u, p, t)


class _Latent(nn.Module):
    """dz/dt = f(z, None, t) alone: for ``forward`` and ``sample`` (no trace needed)."""

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        return self.f(u, None, t)


class _Augmented(nn.Module):
    """d/dt [z, logdet, kinetic?, jacobian?] = [f, tr(df/dz), |f|^2, |df/dz|_F^2].

    Built once per solve, so FFJORD's noise sample stays fixed for the whole solve
    (and for an adjoint's backward solve of the same problem).
    """

    def __init__(self, f: nn.Module, dim: int, flow: "CNF", noise: torch.Tensor | None) -> None:
        super().__init__()
        self.f = f
        self.dim = dim
        self.trace_and_frobenius = flow.trace_and_frobenius
        self.kinetic = flow.kinetic_energy > 0
        self.jacobian = flow.jacobian_norm > 0
        self.noise = noise

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        create_graph = torch.is_grad_enabled()
        z = u[..., : self.dim]
        if torch.compiler.is_compiling():  # inside solve(compile=True): autograd.grad would break the graph
            dz, vjp_fn = torch.func.vjp(lambda zz: self.f(zz, None, t), z)
            trace, frob = self.trace_and_frobenius(lambda v: vjp_fn(v)[0], z, self.noise, self.jacobian)
        else:
            with torch.enable_grad():
                if not z.requires_grad:
                    z = z.detach().requires_grad_(True)
                dz = self.f(z, None, t)
                trace, frob = self.trace_and_frobenius(lambda v: _vjp(dz, z, v, create_graph), z, self.noise,
                                                       self.jacobian)
        parts = [dz, trace.unsqueeze(-1)]
        if self.kinetic:
            parts.append(dz.square().sum(-1, keepdim=True))
        if self.jacobian:
            parts.append(frob.unsqueeze(-1))
        out = torch.cat(parts, dim=-1)
        return out if create_graph else out.detach()


def _vjp(dz: torch.Tensor, z: torch.Tensor, v: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """v^T (df/dz), zeros where f does not depend on z."""
    (g,) = torch.autograd.grad(dz, z, v, create_graph=create_graph, retain_graph=True, allow_unused=True)
    return torch.zeros_like(z) if g is None else g


class CNF(nn.Module):
    """A continuous normalising flow with the exact trace (one autograd row per dim).

    ``f(u, p, t)``: the vector field (an ``nn.Module`` ignores ``p``), or a list of
    them for a multi-block stack. ``solver``/``sensealg``: any registered name or
    instance; ``solve_options`` go to ``sciode.solve`` (default rtol = atol = 1e-5).
    ``kinetic_energy`` / ``jacobian_norm``: RNODE weights; when positive, the
    integrals are extra states and ``regularization_loss`` holds their weighted batch
    mean after each ``log_prob`` call. The base distribution is N(0, I).
    """

    name = "cnf"

    def __init__(self, f: Any, dim: int, tspan: tuple[float, float] = (0.0, 1.0), solver: Any = "dopri5",
                 sensealg: Any = None, *, kinetic_energy: float = 0.0, jacobian_norm: float = 0.0,
                 **solve_options: Any) -> None:
        super().__init__()
        blocks = list(f) if isinstance(f, (list, tuple, nn.ModuleList)) else [f]
        if not blocks:
            raise sciode.ProblemError("f must be a vector field f(u, p, t) or a non-empty list of them; "
                                      "got an empty list")
        for i, b in enumerate(blocks):
            if not callable(b):
                raise sciode.ProblemError(f"f must be callable as f(u, p, t); block {i} is {type(b).__name__}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise sciode.ProblemError(f"dim must be a positive int (the data dimension); got {dim!r}")
        for label, w in (("kinetic_energy", kinetic_energy), ("jacobian_norm", jacobian_norm)):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise sciode.ProblemError(f"{label} must be a finite number >= 0 (a regularisation weight); got {w!r}")
        configure_solve(self, tspan, solver, sensealg, DEFAULT_TOLERANCES, solve_options)
        self.blocks = nn.ModuleList(b if isinstance(b, nn.Module) else _Function(b) for b in blocks)
        self.dim = dim
        self.kinetic_energy = float(kinetic_energy)
        self.jacobian_norm = float(jacobian_norm)
        self.nfe = 0  #: evaluations of the augmented field in the last call (all blocks)
        self.regularization: dict[str, torch.Tensor] = {}
        self.regularization_loss: torch.Tensor | float = 0.0

    # -- the trace estimator: the one thing CNF and FFJORD differ in -------------------
    def trace_and_frobenius(self, vjp: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                            noise: torch.Tensor | None, frobenius: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Exact tr(df/dz), one vector-Jacobian product ``vjp(v) = v^T df/dz`` per row, and |df/dz|_F^2 from
        the same rows."""
        trace = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        frob = torch.zeros_like(trace) if frobenius else None
        for i in range(self.dim):
            basis = torch.zeros_like(z)  # fresh each row: with create_graph the graph keeps it
            basis[..., i] = 1.0
            row = vjp(basis)
            trace = trace + row[..., i]
            if frobenius:
                frob = frob + row.square().sum(-1)
        return trace, frob

    def draw_noise(self, z: torch.Tensor) -> torch.Tensor | None:
        """The per-solve noise of a stochastic trace estimator (none for the exact trace)."""
        return None

    # -- input checks ------------------------------------------------------------------
    def _check(self, x: Any, argument: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise sciode.ProblemError(f"{argument} must be a tensor of shape (batch, {self.dim}); "
                                      f"got {type(x).__name__}")
        if not x.is_floating_point():
            raise sciode.ProblemError(f"{argument} must have a floating dtype; got {x.dtype}")
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise sciode.ProblemError(f"{argument} must have shape (batch, {self.dim}) (last dim = dim = {self.dim}); "
                                      f"got {tuple(x.shape)}")
        return x

    # -- flows ---------------------------------------------------------------------------
    def _span(self, reverse: bool) -> tuple[float, float]:
        return (self.tspan[1], self.tspan[0]) if reverse else self.tspan

    def transform(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Map data to latent (or latent to data with ``reverse=True``) without the log-det."""
        x = self._check(x, "x" if not reverse else "z")
        blocks = list(self.blocks)[::-1] if reverse else list(self.blocks)
        self.nfe = 0
        for block in blocks:
            x, stats = solve_to_end(_Latent(block), x, self._span(reverse), self.solver, self.sensealg,
                                    self.solve_options, f"{self.name} transform")
            self.nfe += stats["nfe"]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The latent z(t1) of data x(t0)."""
        return self.transform(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """The data point x(t0) of a latent z(t1) (the reverse solve)."""
        return self.transform(z, reverse=True)

    def transform_with_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z(t1), int tr(df/dz) dt summed over blocks); also updates ``regularization``."""
        x = self._check(x, "x")
        n_reg = int(self.kinetic_energy > 0) + int(self.jacobian_norm > 0)
        logdet = x.new_zeros(x.shape[:-1])
        regs = x.new_zeros(x.shape[:-1] + (n_reg,))
        self.nfe = 0
        z = x
        for block in self.blocks:
            u0 = torch.cat([z, x.new_zeros(x.shape[:-1] + (1 + n_reg,))], dim=-1)
            field = _Augmented(block, self.dim, self, self.draw_noise(z))
            u1, stats = solve_to_end(field, u0, self.tspan, self.solver, self.sensealg, self.solve_options,
                                     f"{self.name} log_prob")
            self.nfe += stats["nfe"]
            z, logdet, regs = u1[..., : self.dim], logdet + u1[..., self.dim], regs + u1[..., self.dim + 1:]
        self._set_regularization(regs)
        return z, logdet

    def _set_regularization(self, regs: torch.Tensor) -> None:
        self.regularization, loss, k = {}, 0.0, 0
        for label, weight in (("kinetic_energy", self.kinetic_energy), ("jacobian_norm", self.jacobian_norm)):
            if weight > 0:
                self.regularization[label] = regs[..., k].mean()
                loss = loss + weight * self.regularization[label]
                k += 1
        self.regularization_loss = loss

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log N(z(t1)) + int tr(df/dz) dt, one value per member of the batch."""
        z, logdet = self.transform_with_logdet(x)
        return standard_normal_log_prob(z) + logdet

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples: z ~ N(0, I) at t1, solved back to t0."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise sciode.ProblemError(f"n must be a positive int (the number of samples); got {n!r}")
        param = next(self.parameters(), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        device = param.device if param is not None else None
        z = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        return self.inverse(z)

    def extra_repr(self) -> str:
        solver = getattr(self.solver, "name", self.solver)
        sens = getattr(self.sensealg, "name", self.sensealg)
        return f"dim={self.dim}, tspan={self.tspan}, blocks={len(self.blocks)}, solver={solver!r}, sensealg={sens!r}"


class FFJORD(CNF):
    """A CNF with Hutchinson's trace estimator: tr(J) ~ e^T J e, one e per solve.

    ``noise``: "rademacher" (entries +-1, lowest variance) or "gaussian". One
    vector-Jacobian product per evaluation, whatever the dimension; the Frobenius
    regulariser reuses it as |e^T J|^2 (an unbiased estimate of |J|_F^2).
    """

    name = "ffjord"

    def __init__(self, f: Any, dim: int, tspan: tuple[float, float] = (0.0, 1.0), solver: Any = "dopri5",
                 sensealg: Any = None, *, noise: str = "rademacher", kinetic_energy: float = 0.0,
                 jacobian_norm: float = 0.0, **solve_options: Any) -> None:
        if noise not in NOISE_TYPES:
            raise sciode.ProblemError(f"noise must be one of {NOISE_TYPES}; got {noise!r}")
        super().__init__(f, dim, tspan, solver, sensealg, kinetic_energy=kinetic_energy,
                         jacobian_norm=jacobian_norm, **solve_options)
        self.noise = noise

    def draw_noise(self, z: torch.Tensor) -> torch.Tensor:
        if self.noise == "gaussian":
            return torch.randn_like(z)
        return torch.randint_like(z, 0, 2).mul_(2).sub_(1)

    def trace_and_frobenius(self, vjp: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                            noise: torch.Tensor | None, frobenius: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        row = vjp(noise)
        return (row * noise).sum(-1), (row.square().sum(-1) if frobenius else None)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", noise={self.noise!r}"
