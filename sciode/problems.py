"""Problem definitions: *what* to solve, independent of how it is stepped.

A Problem holds the vector field, the initial state, the time span and the
parameters, validated when it is built so that mistakes surface at the line that
made them, not deep inside a solve.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .errors import ProblemError
from .structure import check_mass_matrix, check_prototype

__all__ = ["ODEProblem", "SecondOrderODEProblem", "SDEProblem", "remake", "parameter_tensors"]


def _as_state(value: Any, argument: str) -> torch.Tensor:
    """Convert an initial state to a floating tensor of shape (*batch, n), or raise."""
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ProblemError(f"{argument} must be a tensor of shape (*batch, n); got {type(value).__name__}") from exc
    if not value.is_floating_point():
        raise ProblemError(f"{argument} must have a floating dtype (float32 or float64); got {value.dtype}")
    if value.ndim == 0:
        raise ProblemError(f"{argument} must have at least one dimension (the state); got a 0-d tensor")
    if value.shape[-1] == 0 or value.numel() == 0:
        raise ProblemError(f"{argument} must not be empty; got shape {tuple(value.shape)}")
    if not bool(torch.isfinite(value.detach()).all()):
        raise ProblemError(f"{argument} must be finite; it contains NaN or inf")
    return value


def _as_tspan(tspan: Any) -> tuple[float, float]:
    """Validate (t0, t1): two distinct finite real numbers."""
    if isinstance(tspan, torch.Tensor):
        if tspan.numel() != 2:
            raise ProblemError(f"tspan must hold two times (t0, t1); got a tensor of shape {tuple(tspan.shape)}")
        tspan = tspan.detach().flatten().tolist()
    if not isinstance(tspan, Sequence) or isinstance(tspan, str) or len(tspan) != 2:
        raise ProblemError(f"tspan must be a pair (t0, t1); got {tspan!r}")
    out = []
    for name, value in zip(("t0", "t1"), tspan):
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ProblemError(f"tspan {name} must be a scalar; got shape {tuple(value.shape)}")
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProblemError(f"tspan {name} must be a real number; got {value!r}")
        if not math.isfinite(value):
            raise ProblemError(f"tspan {name} must be finite; got {value}")
        out.append(float(value))
    if out[0] == out[1]:
        raise ProblemError(f"tspan is empty: t0 == t1 == {out[0]}; give two different times")
    return out[0], out[1]


def _check_parameters(p: Any) -> None:
    """p may be None, a tensor, a number, or a (nested) dict/tuple/list of those."""
    if p is None or isinstance(p, (torch.Tensor, int, float)):
        return
    if isinstance(p, Mapping):
        for v in p.values():
            _check_parameters(v)
        return
    if isinstance(p, (tuple, list)):
        for v in p:
            _check_parameters(v)
        return
    raise ProblemError(
        f"p must be None, a tensor, or a dict/tuple of tensors; got {type(p).__name__}"
    )


def parameter_tensors(problem: "ODEProblem") -> list[torch.Tensor]:
    """Every tensor gradients can reach: the leaves of ``p`` plus ``f``'s nn.Module parameters.

    Sensitivity algorithms use this to know which inputs need a gradient.
    """
    found: list[torch.Tensor] = []
    seen: set[int] = set()

    def visit(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            if id(x) not in seen:
                seen.add(id(x))
                found.append(x)
        elif isinstance(x, Mapping):
            for v in x.values():
                visit(v)
        elif isinstance(x, (tuple, list)):
            for v in x:
                visit(v)

    visit(problem.p)
    for fn in problem.vector_fields():
        if isinstance(fn, torch.nn.Module):
            for param in fn.parameters():
                visit(param)
    return found


def _check_names(names: Any, n: int, argument: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ProblemError(f"{argument} must be a sequence of {n} strings; got {names!r}")
    names = tuple(names)
    if len(names) != n or not all(isinstance(s, str) and s for s in names):
        raise ProblemError(f"{argument} must be {n} non-empty strings (one per state); got {names!r}")
    if len(set(names)) != n:
        raise ProblemError(f"{argument} must be unique; got {names!r}")
    return names


def _check_per_state(value: Any, n: int, argument: str) -> tuple[str, ...] | None:
    """CF-style per-state metadata: one string for all states or one per state."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,) * n
    return _check_names_loose(value, n, argument)


def _check_names_loose(value: Any, n: int, argument: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or len(value) != n or not all(isinstance(s, str) for s in value):
        raise ProblemError(f"{argument} must be a string or {n} strings (one per state); got {value!r}")
    return tuple(value)


@dataclasses.dataclass(eq=False)
class ODEProblem:
    """du/dt = f(u, p, t) on tspan = (t0, t1), starting from u0.

    ``u0`` has shape ``(*batch, n)``: leading dims are members solved together.
    ``f(u, p, t)`` returns a tensor shaped like ``u``. When members step
    independently (``solve(..., stepping="per_member")``) ``t`` has shape
    ``(*batch, 1)`` so it broadcasts against ``u``; otherwise it is a 0-d tensor.
    ``jac(u, p, t)``, if given, returns df/du with shape ``(*batch, n, n)`` (or, for large
    problems, a torch sparse tensor). ``jac_prototype`` gives the Jacobian's sparsity (a boolean
    (n, n) mask, a sparse tensor, or ``sciode.Banded(lower, upper)``): implicit solvers then build
    it from a few colored Jacobian-vector products and pick a structured linear solver.
    ``jvp(u, p, t, v)``, if given, returns df/du @ v (matrix-free use; default: forward-mode
    autodiff of f). ``mass_matrix`` (a constant (n, n) tensor) makes it M du/dt = f(u, p, t); a
    singular M (zero rows: algebraic equations) makes an index-1 DAE.
    CF metadata (``state_units``, ``state_long_names``, ``state_standard_names``,
    ``time_units``) is carried
    into ``Solution.to_xarray()``.
    """

    f: Callable[..., torch.Tensor]
    u0: torch.Tensor
    tspan: tuple[float, float]
    p: Any = None
    jac: Callable[..., torch.Tensor] | None = dataclasses.field(default=None, kw_only=True)
    jac_prototype: Any = dataclasses.field(default=None, kw_only=True)
    jvp: Callable[..., torch.Tensor] | None = dataclasses.field(default=None, kw_only=True)
    mass_matrix: torch.Tensor | None = dataclasses.field(default=None, kw_only=True)
    state_names: Sequence[str] | None = dataclasses.field(default=None, kw_only=True)
    name: str | None = dataclasses.field(default=None, kw_only=True)
    state_units: Sequence[str] | str | None = dataclasses.field(default=None, kw_only=True)
    state_long_names: Sequence[str] | str | None = dataclasses.field(default=None, kw_only=True)
    state_standard_names: Sequence[str] | str | None = dataclasses.field(default=None, kw_only=True)
    time_units: str | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not callable(self.f):
            raise ProblemError(f"f must be callable as f(u, p, t); got {type(self.f).__name__}")
        if self.jac is not None and not callable(self.jac):
            raise ProblemError(f"jac must be callable as jac(u, p, t) or None; got {type(self.jac).__name__}")
        if self.jvp is not None and not callable(self.jvp):
            raise ProblemError(f"jvp must be callable as jvp(u, p, t, v) or None; got {type(self.jvp).__name__}")
        self.u0 = _as_state(self.u0, "u0")
        self.tspan = _as_tspan(self.tspan)
        _check_parameters(self.p)
        n = self.u0.shape[-1]
        self.jac_prototype = check_prototype(self.jac_prototype, n)
        self.mass_matrix = check_mass_matrix(self.mass_matrix, self.u0)
        self.state_names = _check_names(self.state_names, n, "state_names")
        self.state_units = _check_per_state(self.state_units, n, "state_units")
        self.state_long_names = _check_per_state(self.state_long_names, n, "state_long_names")
        self.state_standard_names = _check_per_state(self.state_standard_names, n, "state_standard_names")
        if self.name is not None and not isinstance(self.name, str):
            raise ProblemError(f"name must be a string; got {self.name!r}")

    # -- conveniences used by the loop, sensitivities and I/O -------------------------
    @property
    def batch_shape(self) -> torch.Size:
        """Leading member dims of u0 (empty for a single system)."""
        return self.u0.shape[:-1]

    @property
    def state_size(self) -> int:
        return self.u0.shape[-1]

    @property
    def direction(self) -> float:
        """+1.0 forward in time, -1.0 when t1 < t0."""
        return 1.0 if self.tspan[1] > self.tspan[0] else -1.0

    def names(self) -> tuple[str, ...]:
        """State names, defaulting to u0, u1, ..."""
        return tuple(self.state_names) if self.state_names else tuple(f"u{i}" for i in range(self.state_size))

    def vector_fields(self) -> tuple[Callable, ...]:
        """The user callables whose nn.Module parameters count as parameters."""
        return (self.f,)


class SecondOrderODEProblem(ODEProblem):
    """u'' = f(v, u, p, t) with v = u', from velocity v0 and position u0.

    The state is the concatenation ``[v, u]`` along the last dim (size 2m), so any
    first-order solver can solve it; Nystrom and symplectic solvers use ``accel``
    directly. ``state_names``, if given, names the m positions; velocities get a
    ``d`` prefix.
    """

    def __init__(self, f: Callable[..., torch.Tensor], v0: Any, u0: Any, tspan: Any, p: Any = None, *,
                 state_names: Sequence[str] | None = None, name: str | None = None, **metadata: Any) -> None:
        if not callable(f):
            raise ProblemError(f"f must be callable as f(v, u, p, t); got {type(f).__name__}")
        v0 = _as_state(v0, "v0")
        u0 = _as_state(u0, "u0")
        if v0.shape != u0.shape:
            raise ProblemError(f"v0 and u0 must have the same shape; got v0 {tuple(v0.shape)} and u0 {tuple(u0.shape)}")
        if v0.dtype != u0.dtype or v0.device != u0.device:
            raise ProblemError(f"v0 and u0 must share dtype and device; got {v0.dtype}/{v0.device} and "
                               f"{u0.dtype}/{u0.device}")
        m = u0.shape[-1]
        names = _check_names(state_names, m, "state_names")
        full_names = None if names is None else tuple(f"d{s}" for s in names) + names
        self.accel = f
        self.position_size = m

        def first_order(state: torch.Tensor, params: Any, t: torch.Tensor) -> torch.Tensor:
            v, u = state[..., :m], state[..., m:]
            return torch.cat([f(v, u, params, t), v], dim=-1)

        super().__init__(first_order, torch.cat([v0, u0], dim=-1), tspan, p, state_names=full_names, name=name,
                         **metadata)
        self.state_names = self.state_names or tuple(f"v{i}" for i in range(m)) + tuple(f"u{i}" for i in range(m))

    @property
    def v0(self) -> torch.Tensor:
        return self.u0[..., : self.position_size]

    @property
    def x0(self) -> torch.Tensor:
        """Initial position (the ``u0`` argument of the constructor)."""
        return self.u0[..., self.position_size :]

    def vector_fields(self) -> tuple[Callable, ...]:
        return (self.accel,)

    def _remake_kwargs(self) -> dict[str, Any]:
        m = self.position_size
        return dict(f=self.accel, v0=self.v0, u0=self.x0, tspan=self.tspan, p=self.p,
                    state_names=self.state_names[m:], name=self.name)


_NOISE_TYPES = ("diagonal", "scalar", "additive", "general")
_SDE_TYPES = ("ito", "stratonovich")


class SDEProblem(ODEProblem):
    """du = f(u, p, t) dt + g(u, p, t) dW, solved through torchsde by the SDE plugin.

    ``noise`` says what ``g`` returns: "diagonal"/"additive" a tensor shaped like
    ``u``, "scalar" shape ``(*batch, n, 1)``, "general" shape ``(*batch, n, m)``
    with ``m = noise_dim`` Brownian motions.
    """

    def __init__(self, f: Callable, g: Callable, u0: Any, tspan: Any, p: Any = None, *,
                 noise: str = "diagonal", sde_type: str = "ito", noise_dim: int | None = None,
                 **kwargs: Any) -> None:
        if not callable(g):
            raise ProblemError(f"g must be callable as g(u, p, t); got {type(g).__name__}")
        if noise not in _NOISE_TYPES:
            raise ProblemError(f"noise must be one of {_NOISE_TYPES}; got {noise!r}")
        if sde_type not in _SDE_TYPES:
            raise ProblemError(f"sde_type must be one of {_SDE_TYPES}; got {sde_type!r}")
        if noise == "general" and (not isinstance(noise_dim, int) or noise_dim < 1):
            raise ProblemError(f"noise_dim must be a positive int for noise='general'; got {noise_dim!r}")
        self.g = g
        self.noise = noise
        self.sde_type = sde_type
        self.noise_dim = noise_dim if noise == "general" else (1 if noise == "scalar" else None)
        super().__init__(f, u0, tspan, p, **kwargs)

    def vector_fields(self) -> tuple[Callable, ...]:
        return (self.f, self.g)

    def _remake_kwargs(self) -> dict[str, Any]:
        kw = _dataclass_kwargs(self)
        kw.update(g=self.g, noise=self.noise, sde_type=self.sde_type, noise_dim=self.noise_dim)
        return kw


def _dataclass_kwargs(problem: ODEProblem) -> dict[str, Any]:
    return {f.name: getattr(problem, f.name) for f in dataclasses.fields(ODEProblem)}


def remake(problem: ODEProblem, **changes: Any) -> ODEProblem:
    """A copy of ``problem`` with some fields replaced (``u0=``, ``p=``, ``tspan=``, ...).

    The copy is validated like a new Problem. For a SecondOrderODEProblem, ``v0``
    and ``u0`` replace velocity and position.
    """
    if not isinstance(problem, ODEProblem):
        raise ProblemError(f"problem must be a sciode Problem; got {type(problem).__name__}")
    getter = getattr(problem, "_remake_kwargs", None)
    kwargs = getter() if getter else _dataclass_kwargs(problem)
    unknown = set(changes) - set(kwargs)
    if unknown:
        raise ProblemError(f"remake got unknown field(s) {sorted(unknown)}; known: {sorted(kwargs)}")
    kwargs.update(changes)
    return type(problem)(**kwargs)
