"""``TorchsdeSolver``: an owns-loop Solver that hands an SDEProblem to torchsde.

``run`` validates the problem against the method, builds the Brownian motion
(seeded, with the Levy area the method needs), calls ``torchsde.sdeint`` or
``torchsde.sdeint_adjoint`` (chosen from the sensitivity's *name*, so this plugin
does not depend on the sensitivity plugin) and packs the result into a
``sciode.Solution``. One class per row of ``methods.METHODS`` is generated.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import torch
import torchsde

import sciode

from .adapter import CountingBrownian, TorchsdeSDE, brownian_size, check_vector_fields
from .methods import BY_NAME, METHODS, SDEMethod

__all__ = ["TorchsdeSolver", "SDE_SOLVERS"]

SENSEALGS = (None, "backprop", "adjoint")


def _member_dim_names(batch_ndim: int) -> tuple[str, ...]:
    """Default member dim names (as ``Solution.to_xarray`` uses them)."""
    return ("member",) if batch_ndim == 1 else tuple(f"member_{i}" for i in range(batch_ndim))


class TorchsdeSolver(sciode.Solver):
    """Base of the SDE solvers; subclasses set ``method`` (a row of ``methods.METHODS``).

    Options: ``seed`` (int; the same seed gives the same Brownian path, default: drawn
    from torch's global generator), ``levy_area`` ("none", "space-time", "davie",
    "foster"; default: the least the method needs), ``samples`` (int: solve that many
    independent paths of the problem, adding a leading ``sample`` dim), ``brownian``
    (a torchsde Brownian object of shape (members, m) to share one path between solves),
    ``adjoint_solver`` (the sciode SDE solver name used backwards under
    ``sensealg="adjoint"``; default: torchsde's choice, the exact adjoint for
    ``reversible_heun``).
    """

    method: ClassVar[SDEMethod]
    owns_loop = True
    adaptive = False
    dense_output = False
    problem_types = (sciode.SDEProblem,)

    def __init__(self, *, seed: int | None = None, levy_area: str | None = None, samples: int | None = None,
                 brownian: Any = None, adjoint_solver: str | None = None) -> None:
        m = self.method
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise sciode.ProblemError(f"seed must be a non-negative int or None; got {seed!r}")
        if levy_area is not None and levy_area not in m.levy_areas:
            raise sciode.ProblemError(f"levy_area for solver {m.name!r} must be one of {m.levy_areas}; "
                                      f"got {levy_area!r}")
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise sciode.ProblemError(f"samples must be a positive int or None; got {samples!r}")
        if brownian is not None and not isinstance(brownian, torchsde.BaseBrownian):
            raise sciode.ProblemError(f"brownian must be a torchsde Brownian object (e.g. torchsde.BrownianInterval); "
                                      f"got {type(brownian).__name__}")
        if adjoint_solver is not None and adjoint_solver not in BY_NAME:
            raise sciode.ProblemError(f"adjoint_solver must be one of {sorted(BY_NAME)}; got {adjoint_solver!r}")
        self.seed, self.levy_area, self.samples = seed, levy_area or m.levy_areas[0], samples
        self.brownian, self.adjoint_solver = brownian, adjoint_solver

    def method_options(self) -> dict[str, Any]:
        """torchsde ``options=`` for the method (subclasses add theirs)."""
        return {}

    # -- validation ---------------------------------------------------------------------------
    def _check(self, problem: sciode.SDEProblem, options: sciode.LoopOptions, sensealg: Any) -> str | None:
        m = self.method
        if problem.sde_type not in m.sde_types:
            fits = sorted(x.name for x in METHODS if problem.sde_type in x.sde_types)
            raise sciode.ProblemError(f"solver {m.name!r} solves {' and '.join(m.sde_types)} SDEs; the problem has "
                                      f"sde_type={problem.sde_type!r} (solvers for it: {fits})")
        if problem.noise not in m.noise:
            raise sciode.ProblemError(f"solver {m.name!r} supports noise {m.noise}; "
                                      f"the problem has noise={problem.noise!r}")
        if options.dt is None:
            raise sciode.ProblemError(f"dt is required by the fixed-step SDE solver {m.name!r}: "
                                      "pass solve(..., dt=...)")
        if problem.direction < 0:
            raise sciode.ProblemError(f"tspan must run forward in time for SDE solvers; got {problem.tspan}")
        if options.events:
            raise sciode.ProblemError(f"events are not available for the SDE solver {m.name!r}: torchsde has no event "
                                      "location; solve to a saveat grid and find crossings in sol.u, or drop the noise")
        for option in ("max_step", "min_step", "tstops"):
            if getattr(options, option) is not None:
                raise sciode.ProblemError(f"{option} is not available for the fixed-step SDE solver {m.name!r}: its "
                                          "steps are the dt grid; choose dt instead")
        if options.per_member:
            raise sciode.ProblemError("stepping='per_member' is not available for SDE solvers: torchsde steps all "
                                      "members together; use stepping='shared'")
        name = getattr(sensealg, "name", None) if sensealg is not None else None
        if name not in SENSEALGS:
            raise sciode.ProblemError(f"sensealg {name!r} is not available for SDE solvers; use None or 'backprop' "
                                      "(autograd through the steps) or 'adjoint' (torchsde's stochastic adjoint)")
        return name

    def _times(self, problem: sciode.SDEProblem, options: sciode.LoopOptions) -> tuple[torch.Tensor, bool, float]:
        """The times torchsde reports (starting at t0), whether t0 was added, and the last time reached.

        The step grid is built with torchsde's own arithmetic (t + dt, clipped at t1)
        so that ``saveat=None`` saves exactly the steps torchsde takes; a last step
        shorter than 1e-6 dt (rounding in t + dt + ...) is taken but not saved twice.
        """
        t0, t1 = problem.tspan
        dtype, device = problem.u0.dtype, problem.u0.device
        t, end = torch.tensor(t0, dtype=dtype), torch.tensor(t1, dtype=dtype)
        grid = [t]
        while bool(t < end) and len(grid) <= options.max_steps:
            t = min(t + options.dt, end)
            grid.append(t)
        reached = float(t)
        if options.saveat is None:
            if len(grid) > 2 and float(grid[-1] - grid[-2]) <= 1e-6 * options.dt:
                del grid[-2]
            return torch.stack(grid).to(device), False, reached
        ts = options.saveat.to(dtype=dtype, device=device)
        added = bool(ts[0] > t0)
        if added:
            ts = torch.cat([ts.new_tensor([t0]), ts])
        if reached < t1:
            ts = ts[ts <= t.to(device)]
        return ts, added, reached

    def _brownian(self, problem: sciode.SDEProblem, t_end: float, members: int, options: sciode.LoopOptions) -> Any:
        m = brownian_size(problem.noise, problem.state_size, problem.noise_dim)
        u0 = problem.u0
        if self.brownian is not None:
            if tuple(self.brownian.shape) != (members, m):
                raise sciode.ProblemError(f"brownian has shape {tuple(self.brownian.shape)}; expected ({members}, {m}) "
                                          f"(members, Brownian motions) for this problem")
            return self.brownian
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        return torchsde.BrownianInterval(t0=problem.tspan[0], t1=t_end, size=(members, m), dtype=u0.dtype,
                                         device=u0.device, entropy=seed, dt=options.dt,
                                         levy_area_approximation=self.levy_area)

    # -- the solve ----------------------------------------------------------------------------
    def run(self, problem: sciode.SDEProblem, options: sciode.LoopOptions, sensealg: Any) -> sciode.Solution:
        sens_name = self._check(problem, options, sensealg)
        u0 = problem.u0
        if self.samples is not None:
            u0 = u0.expand(self.samples, *u0.shape)
        check_vector_fields(problem, u0)
        member_shape = tuple(u0.shape[:-1]) or (1,)
        members = math.prod(member_shape)
        ts, added_t0, reached = self._times(problem, options)
        sde = TorchsdeSDE(problem, member_shape)
        bm = CountingBrownian(self._brownian(problem, problem.tspan[1], members, options))
        y0 = u0.reshape(members, problem.state_size)
        kwargs = dict(method=self.method.torchsde, dt=options.dt, options=self.method_options())
        counts: dict[str, int] = {}
        if len(ts) < 2:  # max_steps ended the solve before the first output time
            ys = y0.unsqueeze(0).expand(len(ts), *y0.shape)
        elif sens_name == "adjoint":
            adjoint = self.adjoint_solver and BY_NAME[self.adjoint_solver].torchsde
            if adjoint is None and self.method.name == "reversible_heun":
                adjoint = "adjoint_reversible_heun"
            params = [x for x in sciode.parameter_tensors(problem) if x.requires_grad]
            ys = self._call(torchsde.sdeint_adjoint, sde, y0, ts, counts, bm,
                            adjoint_method=adjoint, adjoint_params=params, **kwargs)
        else:
            ys = self._call(torchsde.sdeint, sde, y0, ts, counts, bm, **kwargs)
        if not (y0.requires_grad or any(x.requires_grad for x in sciode.parameter_tensors(problem))):
            ys = ys.detach()  # derivative-using Milstein builds a graph internally even when nothing needs it
        if added_t0:
            ts, ys = ts[1:], ys[1:]
        u = ys.reshape(ys.shape[0], *u0.shape)
        return self._solution(problem, ts, u, counts, reached, options, sensealg)

    def _call(self, fn: Any, sde: TorchsdeSDE, y0: torch.Tensor, ts: torch.Tensor, counts: dict[str, int],
              bm: CountingBrownian, **kwargs: Any) -> torch.Tensor:
        """Run torchsde; record the forward pass's counts before any backward pass adds to them."""
        try:
            ys = fn(sde, y0, ts, bm=bm, **kwargs)
        except ValueError as exc:
            if isinstance(exc, sciode.ProblemError):
                raise
            raise sciode.ProblemError(f"torchsde rejected the solve with solver {self.method.name!r}: {exc}") from exc
        counts.update(nfe=sde.nfe, nfe_g=sde.nfe_g, nsteps=bm.calls)
        return ys

    def _solution(self, problem: sciode.SDEProblem, t: torch.Tensor, u: torch.Tensor, counts: dict[str, int],
                  reached: float, options: sciode.LoopOptions, sensealg: Any) -> sciode.Solution:
        batch = tuple(u.shape[1:-1])
        finite = torch.isfinite(u.detach()).all(-1)  # (T, *batch)
        bad = ~finite.all(0)
        codes = torch.full(batch, int(sciode.ReturnCode.SUCCESS), dtype=torch.int8)
        message = "SUCCESS"
        if reached < problem.tspan[1]:
            codes.fill_(int(sciode.ReturnCode.MAX_STEPS))
            message = (f"MAX_STEPS: stopped at t={reached} after max_steps={options.max_steps} steps of "
                       f"dt={options.dt} before reaching t1={problem.tspan[1]}")
        if bool(bad.any()):
            codes[bad.cpu()] = int(sciode.ReturnCode.UNSTABLE)
            flat = finite.reshape(finite.shape[0], -1)
            first_bad = int((~flat).any(1).nonzero()[0, 0])
            alive = flat.any(1)
            keep = int(alive.nonzero()[-1, 0]) + 2 if bool(alive.any()) else 1
            keep = min(keep, t.shape[0])
            t, u = t[:keep], u[:keep]
            count = int(bad.sum())
            message = (f"UNSTABLE: the state became non-finite (NaN or inf) at t={float(t[min(first_bad, keep - 1)])}"
                       f" in {count} of {max(1, bad.numel())} members")
        nsteps = counts.get("nsteps", 0)
        stats = dict(nfe=counts.get("nfe", 0), nfe_g=counts.get("nfe_g", 0), njac=0, nlinsolve=0,
                     nsteps=nsteps, naccepted=nsteps, nrejected=0)
        opts = dict(dt=options.dt, seed=self.seed, samples=self.samples, levy_area=self.levy_area,
                    stepping="shared")
        sol = sciode.Solution(problem, t, u, codes, message, stats, solver=self, sensealg=sensealg, options=opts)
        if self.samples is not None:
            sol.member_dims = ("sample", *_member_dim_names(len(batch) - 1)) if len(batch) > 1 else ("sample",)
        return sol


class _DerivativeFree(TorchsdeSolver):
    """Milstein's extra option: replace g' by a finite difference (no autograd inside a step)."""

    def __init__(self, *, derivative_free: bool = False, seed: int | None = None, levy_area: str | None = None,
                 samples: int | None = None, brownian: Any = None, adjoint_solver: str | None = None) -> None:
        super().__init__(seed=seed, levy_area=levy_area, samples=samples, brownian=brownian,
                         adjoint_solver=adjoint_solver)
        if not isinstance(derivative_free, bool):
            raise sciode.ProblemError(f"derivative_free must be True or False; got {derivative_free!r}")
        self.derivative_free = derivative_free

    def method_options(self) -> dict[str, Any]:
        return {"grad_free": self.derivative_free}


def _solver_class(method: SDEMethod) -> type[TorchsdeSolver]:
    base = _DerivativeFree if method.name == "milstein" else TorchsdeSolver
    doc = (f"{method.summary}.\n\nSolves {' and '.join(method.sde_types)} SDEs with {', '.join(method.noise)} noise; "
           f"a fixed step ``dt`` is required. Reference: {method.reference}.\n\n"
           + inspect.cleandoc(TorchsdeSolver.__doc__ or "").split("\n\n", 1)[1])
    attrs = dict(method=method, name=method.name, order=method.order, summary=method.summary,
                 reference=method.reference, __doc__=doc)
    cls_name = "".join(part.capitalize() for part in method.name.split("_"))
    return type(cls_name, (base,), attrs)


SDE_SOLVERS: tuple[type[TorchsdeSolver], ...] = tuple(_solver_class(m) for m in METHODS)
