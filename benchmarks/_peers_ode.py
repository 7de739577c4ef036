"""The ODE cases of benchmarks/peers.py: Van der Pol, Robertson, Lotka-Volterra, each side as rtol -> Outcome."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from _jax_peers import MISSING, compiled, diffrax, jax, jnp, to_jax
from _ode_case import OdeCase, Outcome
from batch_lotka_volterra import members
from scipy.integrate import solve_ivp
from stiff_ensemble import rate_constants, relative_error, scipy_solve

import sciode
from sciode_implicit import stiff_problems

try:
    import torchdiffeq
except ImportError:
    torchdiffeq = None
TORCHDIFFEQ_MISSING = "torchdiffeq peer skipped: not installed (pip install -e '.[bench]')"


def max_abs_error(u: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(u - ref).max())


def robertson_error(u: np.ndarray, ref: np.ndarray) -> float:
    """The worse of the relative errors of (y1, y3) and of the tiny y2 (see benchmarks/stiff_ensemble.py)."""
    return max(relative_error(u, ref))


def sciode_side(prob: sciode.ODEProblem, solver: str, atol: Callable[[float], float], saveat: object,
                stepping: str, compile_seconds: dict[str, float] | None = None, name: str = "",
                **options: object) -> Callable[[float], Outcome]:
    """sciode.solve as a side; ``compile_seconds`` collects sol.stats['compile_time'] of compiled runs."""

    def run(rtol: float) -> Outcome:
        with torch.no_grad():
            sol = sciode.solve(prob, solver, rtol=rtol, atol=atol(rtol), saveat=saveat, stepping=stepping, **options)
        assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
        if compile_seconds is not None and sol.stats.get("compile_time"):
            compile_seconds[name] = max(compile_seconds.get(name, 0.0), sol.stats["compile_time"])
        u = sol.u[-1] if isinstance(saveat, list) and len(saveat) == 2 else sol.u  # [t0, t1]: the end state
        return Outcome(u.numpy(), sol.stats.get("iterations", sol.stats["nsteps"]), sol.stats["nfe"])

    return run


def add_sciode_sides(case_sides: dict, prob: sciode.ODEProblem, solver: str, atol: Callable[[float], float],
                     saveat: object, modes: tuple[str, ...], compiles: bool, compile_seconds: dict[str, float]) -> None:
    for stepping in modes:
        case_sides[f"sciode {solver} {stepping}"] = sciode_side(prob, solver, atol, saveat, stepping)
        if compiles:
            name = f"sciode {solver} {stepping} compile=True"
            case_sides[name] = sciode_side(prob, solver, atol, saveat, stepping, compile_seconds, name, compile=True)


def torchdiffeq_side(f: Callable, u0: torch.Tensor, times: torch.Tensor, method: str,
                     atol: Callable[[float], float], final_only: bool) -> Callable[[float], Outcome]:
    calls = [0]

    def counted(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return f(t, y)

    def run(rtol: float) -> Outcome:
        calls[0] = 0
        with torch.no_grad():
            u = torchdiffeq.odeint(counted, u0, times, rtol=rtol, atol=atol(rtol), method=method)
        steps = (calls[0] - 2) // 6  # dopri5: 2 evaluations for the initial step, then 6 per step (FSAL)
        return Outcome((u[-1] if final_only else u).numpy(), steps, calls[0])

    return run


def diffrax_side(f: Callable, solver: object, y0: np.ndarray, args: object, t1: float, saveat: object,
                 atol: Callable[[float], float], per_member: bool, compile_seconds: dict[str, float], name: str,
                 max_steps: int = 16_384) -> Callable[[float], Outcome]:
    """diffeqsolve, jitted once (rtol is a traced argument, so the ladder does not recompile)."""
    term = diffrax.ODETerm(f)

    def one(y, a, rtol, atol_):
        controller = diffrax.PIDController(rtol=rtol, atol=atol_)
        sol = diffrax.diffeqsolve(term, solver, 0.0, t1, None, y, a, saveat=saveat, stepsize_controller=controller,
                                  max_steps=max_steps)
        return sol.ys, sol.stats["num_steps"]

    fn = jax.vmap(one, in_axes=(0, 0, None, None)) if per_member else one
    y0j, argsj = to_jax(y0), args
    call, seconds = compiled(fn, y0j, argsj, jnp.float64(1e-6), jnp.float64(1e-9))
    compile_seconds[name] = seconds

    def run(rtol: float) -> Outcome:
        ys, steps = call(y0j, argsj, jnp.float64(rtol), jnp.float64(atol(rtol)))
        ys = np.asarray(ys)
        if per_member:  # (members, T, n) -> (T, members, n), as sciode and torchdiffeq return it
            ys = np.moveaxis(ys, 0, 1)
        return Outcome(ys[-1] if ys.shape[0] == 1 else ys, int(np.max(steps)))

    return run


# -- Van der Pol -------------------------------------------------------------------------------------------
def vdp_torch(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x, y = u.unbind(-1)
    return torch.stack([y, p * (1 - x * x) * y - x], -1)


def vdp_jax(t, u, mu):
    x, y = u[..., 0], u[..., 1]
    return jnp.stack([y, mu * (1 - x * x) * y - x], -1)


def van_der_pol(quick: bool, repeats: int, compiles: bool) -> Iterator[OdeCase | str]:
    batch, t1, mu = (32 if quick else 256), 10.0, 1.0
    u0 = torch.randn(batch, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = torch.tensor(mu, dtype=torch.float64)
    prob = sciode.ODEProblem(vdp_torch, u0, (0.0, t1), p)
    atol = lambda r: r * 1e-3  # noqa: E731
    compile_seconds: dict[str, float] = {}
    sides: dict[str, Callable[[float], Outcome]] = {}
    add_sciode_sides(sides, prob, "dopri5", atol, [0.0, t1], ("shared", "per_member"), compiles, compile_seconds)
    if torchdiffeq is None:
        yield TORCHDIFFEQ_MISSING
    else:
        sides["torchdiffeq dopri5 (batch as one system)"] = torchdiffeq_side(
            lambda t, y: vdp_torch(y, p, t), u0, torch.tensor([0.0, t1], dtype=torch.float64), "dopri5", atol, True)
    if MISSING:
        yield MISSING
    else:
        final = diffrax.SaveAt(t1=True)
        sides["diffrax Dopri5 vmap (per member)"] = diffrax_side(
            vdp_jax, diffrax.Dopri5(), u0.numpy(), jnp.full(batch, mu), t1, final, atol, True, compile_seconds,
            "diffrax Dopri5 vmap (per member)")
        sides["diffrax Dopri5 (batch as one system)"] = diffrax_side(
            vdp_jax, diffrax.Dopri5(), u0.numpy(), jnp.float64(mu), t1, final, atol, False, compile_seconds,
            "diffrax Dopri5 (batch as one system)")
    flat = lambda t, y: vdp_numpy(y.reshape(batch, 2), mu).reshape(-1)  # noqa: E731
    ref = solve_ivp(flat, (0.0, t1), u0.numpy().reshape(-1), method="DOP853", rtol=1e-13, atol=1e-15)
    yield OdeCase(f"Van der Pol mu={mu:g}, {batch} members, dopri5, rtol 1e-5, atol 1e-8, t in [0, {t1:g}]; "
                  "error: max abs error at t1 vs scipy DOP853 at rtol 1e-13", sides, 1e-5,
                  ref.y[:, -1].reshape(batch, 2), max_abs_error, ladder=(1e-4, 1e-6, 1e-7),
                  compile_seconds=compile_seconds, repeats=repeats)


def vdp_numpy(u: np.ndarray, mu: float) -> np.ndarray:
    x, y = u[:, 0], u[:, 1]
    return np.stack([y, mu * (1 - x * x) * y - x], -1)


# -- Robertson ---------------------------------------------------------------------------------------------
def robertson_jax(t, y, k):
    y1, y2, y3 = y[0], y[1], y[2]
    a, b, c = k[0] * y1, k[1] * y2 * y2, k[2] * y2 * y3
    return jnp.stack([c - a, a - b - c, b])


def robertson(quick: bool, repeats: int, compiles: bool) -> Iterator[OdeCase | str]:
    t1, atol_value, reference_members, scipy_members = 1e5, 1e-10, 32, 64
    atol = lambda r: atol_value  # noqa: E731
    for count in ((128,) if quick else (1024, 4096)):
        k = rate_constants(count)
        prob = stiff_problems.robertson((0.0, t1), k)
        compile_seconds: dict[str, float] = {}
        sides: dict[str, Callable[[float], Outcome]] = {}
        add_sciode_sides(sides, prob, "rodas4", atol, [0.0, t1], ("shared", "per_member"), compiles, compile_seconds)
        first = slice(0, reference_members)
        wrap = {name: (lambda fn: lambda r: _subset(fn(r), first))(fn) for name, fn in sides.items()}
        label = f"scipy LSODA loop, analytic jac ({scipy_members} members, time x{count / scipy_members:g})"
        wrap[label] = lambda r: Outcome(scipy_solve(k[:scipy_members], "LSODA", r, atol_value)[0][first], None)
        scale = {label: count / scipy_members}
        if MISSING:
            yield MISSING
        else:
            y0 = np.tile([1.0, 0.0, 0.0], (count, 1))
            name = "diffrax Kvaerno5 vmap (per member)"
            fn = diffrax_side(robertson_jax, diffrax.Kvaerno5(), y0, to_jax(k), t1, diffrax.SaveAt(t1=True), atol,
                              True, compile_seconds, name)
            wrap[name] = lambda r, fn=fn: _subset(fn(r), first)
        reference, _ = scipy_solve(k[first], "Radau", rtol=1e-10, atol=1e-14)
        large = count > 1024  # diffrax takes seconds per run here: fewer repeats, no ladder
        yield OdeCase(f"Robertson, {count} members (k1 = 0.04 +-10%), rtol 1e-6, atol 1e-10, to t = 1e5; error: "
                      f"worst relative error of y1, y2, y3 at t1 on {reference_members} members vs scipy Radau "
                      "rtol 1e-10", wrap, 1e-6, reference, robertson_error, ladder=() if large else (1e-4, 1e-5, 1e-8),
                      compile_seconds=compile_seconds, scale=scale, repeats=max(1, repeats // 2) if large else repeats)


def _subset(out: Outcome, members: slice) -> Outcome:
    return Outcome(out.u[members], out.iterations, out.nfe)


# -- Lotka-Volterra ----------------------------------------------------------------------------------------
def lv_torch(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x, y = u[..., 0], u[..., 1]
    alpha, beta, delta, gamma = p.unbind(-1)
    return torch.stack([alpha * x - beta * x * y, delta * x * y - gamma * y], -1)


def lv_jax(t, u, p):
    x, y = u[..., 0], u[..., 1]
    return jnp.stack([p[..., 0] * x - p[..., 1] * x * y, p[..., 2] * x * y - p[..., 3] * y], -1)


def lv_numpy(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    x, y = u[..., 0], u[..., 1]
    return np.stack([p[..., 0] * x - p[..., 1] * x * y, p[..., 2] * x * y - p[..., 3] * y], -1)


def scipy_lv_loop(p: np.ndarray, u0: np.ndarray, grid: np.ndarray, method: str, rtol: float, atol: float) -> np.ndarray:
    """solve_ivp member by member on the saved grid: (T, members, 2)."""
    out = np.empty((grid.size, len(p), 2))
    for i in range(len(p)):
        res = solve_ivp(lambda t, y: lv_numpy(y, p[i]), (grid[0], grid[-1]), u0[i], method=method, t_eval=grid,
                        rtol=rtol, atol=atol)
        out[:, i] = res.y.T
    return out


def lotka_volterra(quick: bool, repeats: int, compiles: bool) -> Iterator[OdeCase | str]:
    count, t1, saves, checked, scipy_members = (500 if quick else 10_000), 50.0, 100, 256, 50
    ds = members(count, t1)
    p = torch.tensor(np.stack([ds[v].values for v in ("alpha", "beta", "delta", "gamma")], -1))
    u0 = torch.tensor(np.stack([ds["prey0"].values, ds["predator0"].values], -1))
    prob = sciode.ODEProblem(lv_torch, u0, (0.0, t1), p)
    grid = np.linspace(0.0, t1, saves + 1)
    atol = lambda r: r * 1e-3  # noqa: E731
    compile_seconds: dict[str, float] = {}
    sides: dict[str, Callable[[float], Outcome]] = {}
    add_sciode_sides(sides, prob, "tsit5", atol, saves, ("per_member",), compiles, compile_seconds)
    if MISSING:
        yield MISSING
    else:
        name = "diffrax Tsit5 vmap (per member)"
        sides[name] = diffrax_side(lv_jax, diffrax.Tsit5(), u0.numpy(), to_jax(p), t1,
                                   diffrax.SaveAt(ts=jnp.asarray(grid)), atol, True, compile_seconds, name)
    if torchdiffeq is None:
        yield TORCHDIFFEQ_MISSING
    else:
        sides["torchdiffeq dopri5 (batch as one system)"] = torchdiffeq_side(
            lambda t, y: lv_torch(y, p, t), u0, torch.tensor(grid), "dopri5", atol, False)
    first = slice(0, checked)
    wrap = {name: (lambda fn: lambda r: _saved_subset(fn(r), first))(fn) for name, fn in sides.items()}
    label = f"scipy LSODA loop ({scipy_members} members, time x{count / scipy_members:g})"
    wrap[label] = lambda r: Outcome(scipy_lv_loop(p.numpy()[:scipy_members], u0.numpy()[:scipy_members], grid,
                                                  "LSODA", r, atol(r))[:, : min(checked, scipy_members)], None)
    ref = solve_ivp(lambda t, y: lv_numpy(y.reshape(checked, 2), p.numpy()[first]).reshape(-1), (0.0, t1),
                    u0.numpy()[first].reshape(-1), method="DOP853", t_eval=grid, rtol=1e-13, atol=1e-13)
    reference = ref.y.T.reshape(grid.size, checked, 2)
    yield OdeCase(f"Lotka-Volterra, {count} members, t in [0, {t1:g}], rtol 1e-6, atol 1e-9, {saves + 1} saved "
                  f"times; error: max abs error over all saves on the first {checked} members vs scipy DOP853 rtol "
                  "1e-13 (scipy LSODA: on its first members)", wrap, 1e-6, reference, _lv_error, ladder=(1e-5, 1e-7),
                  compile_seconds=compile_seconds, scale={label: count / scipy_members},
                  repeats=max(1, repeats // 2))


def _saved_subset(out: Outcome, first: slice) -> Outcome:
    return Outcome(out.u[:, first], out.iterations, out.nfe)


def _lv_error(u: np.ndarray, ref: np.ndarray) -> float:
    return max_abs_error(u, ref[:, : u.shape[1]])

