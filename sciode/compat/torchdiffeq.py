"""torchdiffeq's ``odeint``, ``odeint_adjoint`` and ``odeint_event`` on top of :func:`sciode.solve`.

Change ``from torchdiffeq import odeint`` to ``from sciode.compat.torchdiffeq import odeint``:
the signatures, defaults (rtol=1e-7, atol=1e-9, method "dopri5") and semantics are
torchdiffeq's (``func(t, y)``, tensor or tuple states, increasing or decreasing ``t``,
output ``(len(t), *y0.shape)``, an exception on failure). Methods map by name
(:data:`sciode.compat.methods.TORCHDIFFEQ`), and any registered sciode solver name works
too. Options sciode cannot honour raise a :class:`sciode.ProblemError` naming them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..errors import NotDifferentiableError, ProblemError, SciodeError
from ..loop import Event, PIController
from ..problems import ODEProblem
from ..registry import lookup
from ..retcode import ReturnCode
from ..sensitivity import Sensitivity
from ..solve import solve
from .field import PeerField
from .methods import TORCHDIFFEQ
from .state import FlatState
from .tolerances import flat_tolerance, is_scalar

__all__ = ["SolveFailedError", "odeint", "odeint_adjoint", "odeint_event"]

#: torchdiffeq's adaptive-solver options, each mapped onto a ``solve`` argument in ``_solve_options``
ADAPTIVE_OPTIONS = frozenset({"first_step", "max_num_steps", "norm", "safety", "ifactor", "dfactor", "dtype",
                              "min_step", "max_step", "step_t", "jump_t"})
#: torchdiffeq's fixed-grid options that map onto ``solve``
FIXED_OPTIONS = frozenset({"step_size", "perturb", "norm", "dtype"})
#: torchdiffeq options sciode does not offer, and why
UNSUPPORTED_OPTIONS = {
    "grid_constructor": "sciode's fixed grid is t0 + k*dt; pass options={'step_size': dt}",
    "interp": "sciode evaluates between grid points with the method's own continuous extension",
    "solver": "scipy's integrators are sciode solvers: method='scipy_lsoda', 'scipy_bdf' or 'scipy_radau'",
}
#: step callbacks torchdiffeq calls on ``func``; sciode has no per-step callbacks in solve
CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")
#: torchdiffeq's adjoint options that map onto sciode's ``adjoint`` sensitivity
ADJOINT_OPTIONS = frozenset({"norm", "step_size", "max_num_steps"})
#: the key of the event in ``sol.events``
EVENT = "event_fn"


class SolveFailedError(SciodeError, AssertionError):
    """The solve stopped before the last time in ``t`` (torchdiffeq raises an AssertionError there too)."""


def odeint(func: Callable[..., Any], y0: Any, t: torch.Tensor, *, rtol: Any = 1e-7, atol: Any = 1e-9,
           method: str | None = None, options: Mapping[str, Any] | None = None,
           event_fn: Callable[..., Any] | None = None) -> Any:
    """Solve dy/dt = func(t, y), y(t[0]) = y0 and return y at every time in ``t``.

    ``y0`` is a tensor or a tuple of tensors; the result has shape ``(len(t), *y0.shape)``
    (a tuple of such for a tuple ``y0``). Gradients flow by autograd through the solver.
    With ``event_fn(t, y)``, ``t`` holds the start and a second time giving the direction;
    the solve runs until ``event_fn`` changes sign and returns ``(event_t, y at [t0, event_t])``.
    """
    call = _Call.of(func, y0, t, rtol, atol, method, options, None)
    return call.run() if event_fn is None else call.until_event(event_fn)


def odeint_adjoint(func: Callable[..., Any], y0: Any, t: torch.Tensor, *, rtol: Any = 1e-7, atol: Any = 1e-9,
                   method: str | None = None, options: Mapping[str, Any] | None = None,
                   event_fn: Callable[..., Any] | None = None, adjoint_rtol: Any = None, adjoint_atol: Any = None,
                   adjoint_method: str | None = None, adjoint_options: Mapping[str, Any] | None = None,
                   adjoint_params: Iterable[torch.Tensor] | None = None) -> Any:
    """``odeint`` with gradients by the continuous adjoint (sciode's ``adjoint`` sensitivity).

    Gradients reach ``y0`` and ``adjoint_params`` (default: ``func.parameters()``, which
    needs ``func`` to be an nn.Module). ``adjoint_rtol``/``adjoint_atol``/``adjoint_method``
    default to the forward's, ``adjoint_options`` to ``options`` without ``norm``;
    ``adjoint_options={"norm": "seminorm"}`` leaves the parameter adjoints out of step control.
    With ``event_fn``, gradients come from sciode's ``checkpointed`` sensitivity (exact, bounded
    memory): the continuous adjoint does not carry the event time's dependence on the inputs.
    """
    if adjoint_params is None:
        if not isinstance(func, torch.nn.Module):
            raise ProblemError("func must be an nn.Module for odeint_adjoint to find the adjoint parameters; "
                               "or pass them as adjoint_params=(...) (adjoint_params=() when there are none)")
        adjoint_params = func.parameters()
    owned = _adjoint_tensors(adjoint_params)
    call = _Call.of(func, y0, t, rtol, atol, method, options, owned)
    if call.u0.is_complex():
        raise ProblemError("odeint_adjoint with a complex y0 is not supported (nor by torchdiffeq): the adjoint's "
                           "augmented state is real; use odeint, which differentiates complex solves by autograd")
    if event_fn is not None:
        given = [name for name, value in (("adjoint_rtol", adjoint_rtol), ("adjoint_atol", adjoint_atol),
                                          ("adjoint_method", adjoint_method), ("adjoint_options", adjoint_options))
                 if value is not None]
        if given:
            raise ProblemError(f"{', '.join(given)}: with event_fn, odeint_adjoint differentiates by sciode's "
                               "checkpointed sensitivity, which has no backward solve to configure")
        call.sensealg = lookup("sensitivity", "checkpointed")()
        return call.until_event(event_fn)
    method = method or "dopri5"
    adjoint_method = adjoint_method or method
    if adjoint_method != method and options is not None and adjoint_options is None:
        raise ProblemError("adjoint_options: with adjoint_method != method, adjoint_options cannot be inferred "
                           "from options; pass adjoint_options as well")
    explicit = adjoint_options is not None
    if adjoint_options is None:
        adjoint_options = {k: v for k, v in (options or {}).items() if k != "norm"}
    call.sensealg = _adjoint(call, adjoint_method, adjoint_rtol, adjoint_atol, dict(adjoint_options), explicit)
    return call.run()


def odeint_event(func: Callable[..., Any], y0: Any, t0: torch.Tensor, *, event_fn: Callable[..., Any],
                 reverse_time: bool = False, odeint_interface: Callable[..., Any] = odeint, **kwargs: Any) -> Any:
    """Solve from ``t0`` until ``event_fn(t, y)`` changes sign; returns ``(event_t, y at [t0, event_t])``.

    Gradients reach the event time and state through sciode's event-time correction
    (the implicit-function theorem, as torchdiffeq's own ``odeint_event`` applies).
    """
    if not isinstance(t0, torch.Tensor):
        raise ProblemError(f"t0 must be a torch.Tensor; got {type(t0).__name__}")
    start = t0.reshape(-1)
    t = torch.cat([start, start.detach() + (-1.0 if reverse_time else 1.0)])
    return odeint_interface(func, y0, t, event_fn=event_fn, **kwargs)


@dataclasses.dataclass
class _Call:
    """One validated odeint call: the field, the flat initial state and the keywords for ``solve``."""

    field: PeerField
    u0: torch.Tensor
    times: torch.Tensor
    solver: str
    rtol: Any
    atol: Any
    kwargs: dict[str, Any]
    method: str
    options: dict[str, Any]
    sensealg: Sensitivity | None = None

    @classmethod
    def of(cls, func: Any, y0: Any, t: Any, rtol: Any, atol: Any, method: str | None,
           options: Mapping[str, Any] | None, owned: list[torch.Tensor] | None) -> _Call:
        if not callable(func):
            raise ProblemError(f"func must be callable as func(t, y); got {type(func).__name__}")
        for name in CALLBACKS:
            if callable(getattr(func, name, None)):
                raise ProblemError(f"func.{name}: step callbacks are not supported by sciode's solve")
        state = FlatState(y0)
        u0 = state.pack(y0)
        times = _check_t(t)
        method = method or "dopri5"
        solver = TORCHDIFFEQ.solver(method)
        options = _check_options(options)
        kwargs = _solve_options(options, lookup("solver", solver).adaptive, state, u0.dtype, times)
        return cls(PeerField(func, state, owned=owned), u0, times, solver, flat_tolerance(rtol, "rtol", state),
                   flat_tolerance(atol, "atol", state), kwargs, method, options)

    def run(self) -> Any:
        n_times = self.times.shape[0]
        if n_times == 1:
            return self.field.peer_state(self.u0[None], (1,))
        if self.kwargs.get("adaptive", True) or "dt" in self.kwargs:
            u = self._solve(self.u0, self.times, saveat=self.times).u
        else:  # torchdiffeq's fixed grid is t itself: one step per interval
            pieces, u = [self.u0[None]], self.u0
            for i in range(1, n_times):
                segment = self.times[i - 1:i + 1]
                u = self._solve(u, segment, saveat=segment, dt=abs(float(segment[1] - segment[0]))).u[-1]
                pieces.append(u[None])
            u = torch.cat(pieces)
        return self.field.peer_state(u, (n_times,))

    def until_event(self, event_fn: Callable[..., Any]) -> tuple[torch.Tensor, Any]:
        """torchdiffeq's event mode: from t[0], in the direction of t[1], until event_fn changes sign.

        As torchdiffeq does, every output of ``event_fn`` is made positive at the start (times its
        initial sign) and the event is the first time their minimum falls to zero. sciode needs an
        end time: the solve runs towards the far end of the time dtype, bounded by max_num_steps.
        """
        if not callable(event_fn):
            raise ProblemError(f"event_fn must be callable as event_fn(t, y); got {type(event_fn).__name__}")
        if self.times.shape[0] != 2:
            raise ProblemError(f"t must hold 2 times with event_fn (the start, and a time giving the direction); "
                               f"got {self.times.shape[0]}")
        if not self.kwargs.get("adaptive", True) and "step_size" not in self.options:
            raise ProblemError("event_fn with a fixed-step method needs options={'step_size': ...}")
        t0 = self.times[0]
        with torch.no_grad():
            signs = torch.sign(torch.as_tensor(event_fn(t0, self.field.peer_state(self.u0))))
        if bool((signs == 0).any()):  # the event holds at t0: torchdiffeq returns at once
            return t0.clone(), self.field.peer_state(torch.stack([self.u0, self.u0]), (2,))

        def condition(u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
            return (torch.as_tensor(event_fn(t, self.field.peer_state(u))) * signs).min()

        direction = 1.0 if float(self.times[1]) > float(t0) else -1.0
        far = float(t0) + direction * torch.finfo(self.u0.dtype).max / 4
        sol = self._solve(self.u0, torch.stack([t0, t0.new_tensor(far)]), saveat=None,
                          events=Event(condition, terminal=True, direction=-1, name=EVENT))
        if sol.retcode is not ReturnCode.TERMINATED:
            raise SolveFailedError(f"odeint (method {self.method!r}): event_fn did not change sign: {sol.message}")
        record = sol.events[EVENT]
        solution = torch.stack([self.u0, record.u[0]])
        return record.t[0].to(self.times.dtype), self.field.peer_state(solution, (2,))

    def _solve(self, u0: torch.Tensor, times: torch.Tensor, **extra: Any) -> Any:
        problem = ODEProblem(self.field, u0, (float(times[0]), float(times[-1])))
        kwargs = {**self.kwargs, **extra}
        sol = solve(problem, self.solver, rtol=self.rtol, atol=self.atol, sensealg=self.sensealg, dense=False,
                    **kwargs)
        if not sol.successful:
            raise SolveFailedError(f"odeint (method {self.method!r}, sciode solver {self.solver!r}) failed: "
                                   f"{sol.message}")
        return sol


def _adjoint_tensors(params: Iterable[Any]) -> list[torch.Tensor]:
    """The adjoint parameters that require grad (torchdiffeq drops the others)."""
    params = list(params)
    for x in params:
        if not isinstance(x, torch.Tensor):
            raise ProblemError(f"adjoint_params must hold tensors; got {type(x).__name__}")
    return [x for x in params if x.requires_grad]


def _check_t(t: Any) -> torch.Tensor:
    """t: a 1-D floating tensor, strictly increasing or strictly decreasing, not requiring gradient."""
    if not isinstance(t, torch.Tensor):
        raise ProblemError(f"t must be a 1-D torch.Tensor of times; got {type(t).__name__}")
    if not t.is_floating_point():
        raise ProblemError(f"t must be a floating point tensor; got {t.dtype}")
    if t.ndim != 1 or t.numel() == 0:
        raise ProblemError(f"t must be a non-empty 1-D tensor of times; got shape {tuple(t.shape)}")
    if t.requires_grad and torch.is_grad_enabled():
        raise NotDifferentiableError("t requires grad: gradients with respect to the output times are not "
                                     "supported by sciode; detach t")
    diff = t[1:] - t[:-1]
    if not (bool((diff > 0).all()) or bool((diff < 0).all())):
        raise ProblemError("t must be strictly increasing or strictly decreasing")
    return t.detach()


def _check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ProblemError(f"options must be a dict; got {type(options).__name__}")
    for key in options:
        if key in UNSUPPORTED_OPTIONS:
            raise ProblemError(f"options[{key!r}] is not supported: {UNSUPPORTED_OPTIONS[key]}")
    return dict(options)


def _solve_options(options: dict[str, Any], adaptive: bool, state: FlatState, dtype: torch.dtype,
                   times: torch.Tensor) -> dict[str, Any]:
    """torchdiffeq's options as ``solve`` keywords."""
    allowed = ADAPTIVE_OPTIONS if adaptive else FIXED_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        kind = "adaptive" if adaptive else "fixed-step"
        raise ProblemError(f"options {unknown} do not apply to {kind} methods; they take {sorted(allowed)}")
    if "dtype" in options and options["dtype"] != dtype:
        raise ProblemError(f"options['dtype'] = {options['dtype']}: sciode keeps time in the state's dtype "
                           f"({dtype}); pass y0 in {options['dtype']} or drop the option")
    if options.get("perturb"):
        raise ProblemError("options['perturb'] = True is not supported: sciode does not evaluate func just "
                           "before or after grid points")
    kwargs: dict[str, Any] = {"norm": _norm(options.get("norm"), state)}
    if not adaptive:
        kwargs["adaptive"] = False
        if "step_size" in options:
            kwargs["dt"] = options["step_size"]
        else:
            spacing = (times[1:] - times[:-1]).abs()
            if times.numel() > 1 and bool(torch.allclose(spacing, spacing[0], rtol=1e-9, atol=0.0)):
                kwargs["dt"] = float(abs(times[-1] - times[0])) / (times.numel() - 1)
        return kwargs
    if options.get("first_step") is not None:
        kwargs["dt"] = float(options["first_step"])
    if "max_num_steps" in options:
        kwargs["max_steps"] = options["max_num_steps"]
    if options.get("min_step"):  # torchdiffeq's default 0 means no minimum
        kwargs["min_step"] = options["min_step"]
    if options.get("max_step") not in (None, float("inf")):
        kwargs["max_step"] = options["max_step"]
    stops = [torch.as_tensor(options[k]).reshape(-1) for k in ("step_t", "jump_t") if options.get(k) is not None]
    if stops:  # sciode lands on each and restarts just after it: f is never evaluated across a jump
        kwargs["tstops"] = torch.cat(stops)
    kwargs["controller"] = PIController(beta1=1.0, beta2=0.0, safety=float(options.get("safety", 0.9)),
                                        min_factor=float(options.get("dfactor", 0.2)),
                                        max_factor=float(options.get("ifactor", 10.0)))
    return kwargs


def _norm(norm: Any, state: FlatState) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """torchdiffeq's error norm: RMS for a tensor state, the largest RMS over the tensors of a tuple."""
    if norm is None and not state.is_tuple:
        return None  # sciode's default: RMS over the whole state
    if norm is None:
        return lambda x: torch.stack([c.square().mean().sqrt() for c in state.components(x)]).max()
    if norm == "seminorm":
        raise ProblemError("options['norm'] = 'seminorm' applies to the backward pass only: "
                           "pass it as adjoint_options={'norm': 'seminorm'} to odeint_adjoint")
    if not callable(norm):
        raise ProblemError(f"options['norm'] must be callable; got {type(norm).__name__}")
    return lambda x: torch.as_tensor(norm(state.unpack(x)), dtype=x.dtype)


def _adjoint(call: _Call, method: str, rtol: Any, atol: Any, options: dict[str, Any], explicit: bool) -> Sensitivity:
    """sciode's ``adjoint`` sensitivity configured as torchdiffeq's backward pass."""
    solver = TORCHDIFFEQ.solver(method)
    inherited = set() if explicit else ADAPTIVE_OPTIONS | FIXED_OPTIONS
    unknown = sorted(set(options) - ADJOINT_OPTIONS - inherited)
    if unknown:
        raise ProblemError(f"adjoint_options {unknown} are not supported; the adjoint takes {sorted(ADJOINT_OPTIONS)}")
    norm = options.get("norm")
    if norm is not None and norm != "seminorm":
        raise ProblemError("adjoint_options['norm'] must be 'seminorm' (or absent): sciode's adjoint uses a mixed "
                           "RMS norm over the state, its adjoint and each parameter's adjoint")
    state = call.field.state
    tolerances = {}
    for name, value, forward in (("adjoint_rtol", rtol, call.rtol), ("adjoint_atol", atol, call.atol)):
        value = forward if value is None else flat_tolerance(value, name, state)
        if not is_scalar(value):
            raise ProblemError(f"{name} must be one number: the adjoint's augmented state takes no per-element "
                               "tolerances (with a per-element rtol or atol, pass adjoint_rtol and adjoint_atol)")
        tolerances[name] = value
    step = options.get("step_size")
    return lookup("sensitivity", "adjoint")(solver=solver, rtol=tolerances["adjoint_rtol"],
                                            atol=tolerances["adjoint_atol"], seminorm=norm == "seminorm",
                                            dt=None if step is None else float(step),
                                            max_steps=options.get("max_num_steps"))
