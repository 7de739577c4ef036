"""scipy's ``solve_ivp`` on top of :func:`sciode.solve`.

Change ``from scipy.integrate import solve_ivp`` to ``from sciode.compat.scipy import solve_ivp``:
the signature, defaults (RK45, rtol=1e-3, atol=1e-6) and result object are scipy's (``t``,
``y`` of shape ``(n, len(t))``, ``sol``, ``nfev``, ``njev``, ``nlu``, ``status``, ``message``,
``success``), and a failed solve returns ``status = -1`` rather than raising, as scipy does.
NumPy in, NumPy out; torch tensors in (``y0`` a tensor, ``fun`` working on tensors), torch
out, with gradients by autograd through the solver.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import OptimizeResult

from ..errors import ProblemError
from ..loop import Event, PIController
from ..problems import ODEProblem
from ..retcode import ReturnCode
from ..solution import Solution
from ..solve import solve
from ..structure import Banded
from .field import PeerField
from .methods import SCIPY
from .state import FlatState
from .tolerances import flat_tolerance

__all__ = ["DenseOutput", "OdeResult", "solve_ivp"]

#: scipy's explicit methods: a Jacobian has no effect on them (scipy warns, and so do we)
EXPLICIT = frozenset({"RK45", "RK23", "DOP853"})
#: the bridge solvers run scipy's own integrators, with scipy's own step control
BRIDGE = frozenset({"scipy_radau", "scipy_bdf", "scipy_lsoda"})
#: solve_ivp options sciode does not offer, and why
UNSUPPORTED_OPTIONS = {
    "min_step": "LSODA's min_step is not passed on by sciode's scipy_lsoda bridge",
}
#: the name of the i-th scipy event in ``sol.events``
EVENT_NAME = "event{}"


def _jac_prototype(sparsity: Any, lband: Any, uband: Any, n: int) -> Any:
    """scipy's Jacobian structure as sciode's ``jac_prototype``: a boolean mask, or sciode.Banded."""
    if lband is not None or uband is not None:
        if sparsity is not None:
            raise ProblemError("give either jac_sparsity or lband/uband, not both")
        for name, value in (("lband", lband), ("uband", uband)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 0):
                raise ProblemError(f"{name} must be a non-negative int; got {value!r}")
        return Banded(int(lband or 0), int(uband or 0))
    if sparsity is None:
        return None
    try:
        import scipy.sparse as sparse

        dense = sparsity.toarray() if sparse.issparse(sparsity) else np.asarray(sparsity)
    except (TypeError, ValueError) as exc:
        raise ProblemError("jac_sparsity must be an (n, n) array or sparse matrix; "
                           f"got {type(sparsity).__name__}") from exc
    if dense.shape != (n, n):
        raise ProblemError(f"jac_sparsity must have shape ({n}, {n}); got {dense.shape}")
    return torch.from_numpy(dense != 0)


class OdeResult(OptimizeResult):
    """scipy's result: a dict with attribute access (``t``, ``y``, ``sol``, ``status``, ...)."""


class DenseOutput:
    """scipy's ``OdeSolution`` interface on sciode's dense output: ``sol(t)`` is (n,) or (n, len(t))."""

    def __init__(self, solution: Solution, field: PeerField, numpy: bool) -> None:
        self._solution, self._field, self._numpy = solution, field, numpy
        self.t_min, self.t_max = sorted(solution.problem.tspan)

    def __call__(self, t: Any) -> Any:
        times = torch.as_tensor(np.asarray(t, dtype=np.float64) if self._numpy else t, dtype=torch.float64)
        values = self._solution(times.reshape(-1))  # (K, n)
        y = self._field.peer_state(values, (values.shape[0],)).T
        y = y[:, 0] if times.ndim == 0 else y
        return y.detach().cpu().numpy() if self._numpy else y


def solve_ivp(fun: Callable[..., Any], t_span: Sequence[float], y0: Any, method: str = "RK45", t_eval: Any = None,
              dense_output: bool = False, events: Any = None, vectorized: bool = False,
              args: Sequence[Any] | None = None, **options: Any) -> OdeResult:
    """Solve dy/dt = fun(t, y), y(t_span[0]) = y0, as ``scipy.integrate.solve_ivp`` does.

    ``method``: "RK45", "RK23", "Radau", "BDF", "LSODA" or any registered sciode solver name.
    ``options``: ``first_step``, ``max_step``, ``rtol``, ``atol`` (per-element arrays too),
    ``jac``. ``events``: callables ``event(t, y, *args)`` with scipy's optional ``terminal``
    and ``direction`` attributes. ``vectorized`` only tells scipy how to call ``fun`` for
    finite differences; sciode never needs that, so it has no effect.
    """
    numpy = not isinstance(y0, torch.Tensor)
    y0 = _initial_state(y0)
    if not callable(fun):
        raise ProblemError(f"fun must be callable as fun(t, y); got {type(fun).__name__}")
    if not isinstance(vectorized, bool):
        raise ProblemError(f"vectorized must be True or False; got {vectorized!r}")
    extra = _args(args)
    if not isinstance(method, str):
        raise ProblemError(f"method must be a name (e.g. 'RK45', 'Radau', or a sciode solver name); "
                           f"scipy OdeSolver classes are not supported; got {method!r}")
    solver = SCIPY.solver(method)
    rtol, atol = options.pop("rtol", 1e-3), options.pop("atol", 1e-6)
    first_step, max_step = options.pop("first_step", None), options.pop("max_step", np.inf)
    jac = options.pop("jac", None)
    prototype = _jac_prototype(options.pop("jac_sparsity", None), options.pop("lband", None),
                               options.pop("uband", None), y0.shape[0])
    _check_options(options)
    state = FlatState(y0)
    field = PeerField(_NumpyFunction(fun) if numpy else fun, state, args=extra)
    watched = _events(events, field, extra, numpy)
    problem = ODEProblem(field, y0, t_span, jac=_jacobian(jac, method, extra, numpy, y0.shape[0]),
                         jac_prototype=prototype)
    step_options: dict[str, Any] = {} if max_step is None or max_step == np.inf else {"max_step": max_step}
    if solver not in BRIDGE:  # scipy's step-size rule (safety 0.9, factors in [0.2, 10], no PI memory)
        step_options["controller"] = PIController(beta1=1.0, beta2=0.0, safety=0.9, min_factor=0.2, max_factor=10.0)
    with torch.no_grad() if numpy else torch.enable_grad():
        sol = solve(problem, solver, saveat=_t_eval(t_eval, problem.tspan), dt=first_step,
                    rtol=flat_tolerance(rtol, "rtol", state), atol=flat_tolerance(atol, "atol", state),
                    dense=bool(dense_output), events=list(watched) or None, **step_options)
    return _result(sol, field, numpy, bool(dense_output), watched if events is not None else None)


class _NumpyFunction:
    """A NumPy ``fun(t, y, *args)`` called on sciode's tensors: float t, a copy of y as a NumPy array."""

    def __init__(self, fun: Callable[..., Any]) -> None:
        self.fun = fun

    def __call__(self, t: torch.Tensor, y: torch.Tensor, *args: Any) -> torch.Tensor:
        if torch.is_grad_enabled() and (y.requires_grad or t.requires_grad):
            raise ProblemError("the solver differentiates fun to build its Jacobian, but fun works on NumPy arrays: "
                               "pass jac=..., use method='Radau', 'BDF' or 'LSODA', or give y0 as a torch tensor "
                               "and write fun with torch operations")
        value = np.asarray(self.fun(float(t), y.detach().cpu().numpy().copy(), *args),
                           dtype=np.complex128 if y.is_complex() else np.float64)
        return torch.as_tensor(value, dtype=y.dtype, device=y.device)


def _initial_state(y0: Any) -> torch.Tensor:
    """y0 as a 1-D floating or complex tensor (NumPy input becomes float64 or complex128, as scipy makes it)."""
    if isinstance(y0, torch.Tensor):
        value = y0 if y0.is_floating_point() or y0.is_complex() else y0.to(torch.get_default_dtype())
    else:
        array = np.asarray(y0)
        try:
            value = torch.as_tensor(array.astype(np.complex128 if np.iscomplexobj(array) else np.float64))
        except (TypeError, ValueError) as exc:
            raise ProblemError(f"y0 must be a 1-D array of numbers; got {y0!r}") from exc
    if value.ndim != 1:
        raise ProblemError(f"y0 must be 1-dimensional; got shape {tuple(value.shape)}")
    return value


def _args(args: Any) -> tuple[Any, ...]:
    if args is None:
        return ()
    if not isinstance(args, (tuple, list)):
        raise ProblemError(f"args must be a tuple of extra arguments for fun (e.g. args=(a,)); "
                           f"got {type(args).__name__}")
    return tuple(args)


def _check_options(options: dict[str, Any]) -> None:
    for key in options:
        if key in UNSUPPORTED_OPTIONS:
            raise ProblemError(f"{key} is not supported: {UNSUPPORTED_OPTIONS[key]}")
    if options:
        raise ProblemError(f"solve_ivp got unknown option(s) {sorted(options)}; sciode's front takes first_step, "
                           "max_step, rtol, atol and jac")


def _jacobian(jac: Any, method: str, args: tuple[Any, ...], numpy: bool, n: int) -> Callable[..., torch.Tensor] | None:
    """scipy's jac (a callable jac(t, y, *args) or a constant matrix) as the Problem's jac(u, p, t)."""
    if jac is None:
        return None
    if method in EXPLICIT:
        warnings.warn(f"The following arguments have no effect for a chosen solver: jac (method {method!r})",
                      stacklevel=3)
    if callable(jac):
        def evaluate(t: torch.Tensor, y: torch.Tensor) -> Any:
            if numpy:
                return jac(float(t), y.detach().cpu().numpy().copy(), *args)
            return jac(t, y, *args)
    else:
        constant = jac

        def evaluate(t: torch.Tensor, y: torch.Tensor) -> Any:
            return constant

    def jacobian(u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        value = evaluate(t, u)
        matrix = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float64))
        matrix = matrix.to(dtype=u.dtype, device=u.device)
        if matrix.shape != (n, n):
            raise ProblemError(f"jac must return an ({n}, {n}) matrix; got shape {tuple(matrix.shape)}")
        return matrix

    return jacobian


def _t_eval(t_eval: Any, tspan: tuple[float, float]) -> torch.Tensor | None:
    """t_eval: a 1-D sequence of times within t_span, sorted in the direction of integration."""
    if t_eval is None:
        return None
    times = t_eval.detach().double().cpu() if isinstance(t_eval, torch.Tensor) else torch.as_tensor(
        np.asarray(t_eval, dtype=np.float64))
    if times.ndim != 1:
        raise ProblemError(f"t_eval must be 1-dimensional; got shape {tuple(times.shape)}")
    lo, hi = min(tspan), max(tspan)
    if times.numel() and (float(times.min()) < lo or float(times.max()) > hi):
        raise ProblemError(f"t_eval values must lie within t_span {tspan}")
    steps = (times[1:] - times[:-1]) * (1.0 if tspan[1] > tspan[0] else -1.0)
    if bool((steps <= 0).any()):
        order = "increasing" if tspan[1] > tspan[0] else "decreasing"
        raise ProblemError(f"t_eval values must be strictly {order} (the direction of t_span)")
    return times


def _events(events: Any, field: PeerField, args: tuple[Any, ...], numpy: bool) -> tuple[Event, ...]:
    """scipy's event functions as sciode Events, reading ``terminal`` and ``direction`` as scipy does."""
    if events is None:
        return ()
    items = list(events) if isinstance(events, (list, tuple)) else [events]
    watched = []
    for i, event in enumerate(items):
        if not callable(event):
            raise ProblemError(f"events[{i}] must be callable as event(t, y); got {type(event).__name__}")
        terminal = getattr(event, "terminal", None)
        if terminal is None or terminal is False or (not isinstance(terminal, bool) and terminal == 0):
            terminal = False
        elif terminal is not True and (not isinstance(terminal, (int, np.integer)) or terminal < 0):
            raise ProblemError(f"events[{i}].terminal must be a boolean or a positive integer; got {terminal!r}")
        direction = getattr(event, "direction", 0)
        try:
            sign = int(np.sign(float(direction)))
        except (TypeError, ValueError) as exc:
            raise ProblemError(f"events[{i}].direction must be a number; got {direction!r}") from exc
        watched.append(Event(_condition(event, field, args, numpy), terminal=terminal if isinstance(terminal, bool)
                             else int(terminal), direction=sign, name=EVENT_NAME.format(i)))
    return tuple(watched)


def _condition(event: Callable[..., Any], field: PeerField, args: tuple[Any, ...],
               numpy: bool) -> Callable[..., torch.Tensor]:
    """``event(t, y, *args)`` as sciode's ``condition(u, p, t)``: one value for the (unbatched) system."""
    def condition(u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        y = field.peer_state(u)
        if numpy:
            value = float(event(float(t), y.detach().cpu().numpy().copy(), *args))
            return torch.tensor(value, dtype=u.dtype, device=u.device)
        return torch.as_tensor(event(t, y, *args), dtype=u.dtype, device=u.device).reshape(())

    return condition


def _result(sol: Solution, field: PeerField, numpy: bool, dense_output: bool,
            watched: tuple[Event, ...] | None) -> OdeResult:
    t = sol.t
    y = field.peer_state(sol.u, (sol.u.shape[0],)).T
    if sol.retcode is ReturnCode.TERMINATED:
        status, message = 1, "A termination event occurred."
    elif sol.successful:
        status, message = 0, "The solver successfully reached the end of the integration interval."
    else:
        status, message = -1, sol.message
    t_events = y_events = None
    if watched is not None:
        records = [sol.events[event.name] for event in watched]
        t_events = [r.t[:int(r.count)] for r in records]
        y_events = [r.u[:int(r.count)] for r in records]
    if numpy:
        t, y = t.detach().cpu().double().numpy(), y.detach().cpu().numpy()
        if watched is not None:
            t_events = [x.detach().cpu().numpy() for x in t_events]
            y_events = [x.detach().cpu().numpy() for x in y_events]
    dense = DenseOutput(sol, field, numpy) if dense_output and sol.has_dense_output else None
    return OdeResult(t=t, y=y, sol=dense, t_events=t_events, y_events=y_events, nfev=sol.stats["nfe"],
                     njev=sol.stats["njac"], nlu=sol.stats["nlinsolve"], status=status, message=message,
                     success=status >= 0)
