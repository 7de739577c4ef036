"""The training cases of benchmarks/peers.py: one iteration (loss + gradient) of two neural-ODE models.

spiral: torchdiffeq's ode_demo model f(y) = MLP(y^3), MLP 2-50-2 (tanh), a minibatch of 20
starting points and 10 output times on [0, 2.25] (benchmarks/sensitivity_speed.py's data),
dopri5 at rtol 1e-6, atol 1e-8, loss = mean |pred - data|. ffjord: FFJORD on 8 Gaussians,
concat-squash 2-64-64-64-2 (tanh, briefly pretrained), batch 512, dopri5 at rtol = atol =
1e-5, Rademacher noise drawn from the same seed for every side, adjoint gradients.

Each side computes the loss and the gradient of the same parameters at the same point: the
optimizer update (identical work on every side) is left out so each repeat does the same work.
Sides of one method are compared: backprop (sciode backprop, torchdiffeq odeint, diffrax
RecursiveCheckpointAdjoint: all differentiate the discrete solve) and adjoint (sciode adjoint,
torchdiffeq odeint_adjoint, diffrax BacksolveAdjoint: the continuous adjoint). Sides marked
"I-controller" run sciode with torchdiffeq's integral controller (``PIController(1.0, 0.0)``):
sciode's default PI controller takes more, smaller steps at the same rtol, so these sides show
the time per step at the peer's step count. A compile=True side's first call (compiling its
forward and backward graphs) is timed apart, in the "compile s" column.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from _common import Counted, interleaved_medians, table
from _jax_peers import MISSING, compiled, concat_squash_mlp, diffrax, jax, jnp, linear_params, mlp, to_jax

import sciode

try:
    import torchdiffeq
except ImportError:
    torchdiffeq = None

SPIRAL_RTOL, SPIRAL_ATOL, FFJORD_TOL = 1e-6, 1e-8, 1e-5

#: sides with ``PIController(1.0, 0.0)``, the integral controller torchdiffeq uses (sciode's default PI controller
#: takes more, smaller steps at the same rtol and lands below the peers' errors)
I_CONTROLLER = "I-controller"


@dataclasses.dataclass
class Trained:
    """One side's loss, flattened gradient and work (NFE counted by a wrapper, or the solver's steps)."""

    loss: float
    grad: np.ndarray
    work: str


@dataclasses.dataclass
class Side:
    method: str  # "backprop" or "adjoint": sides of one method are compared
    run: Callable[[], Trained]
    compile_seconds: float | None = None


def _flat(grads: tuple[torch.Tensor, ...] | list) -> np.ndarray:
    return np.concatenate([np.asarray(g).reshape(-1) for g in grads])


def report(title: str, sides: dict[str, Side], repeats: int) -> str:
    for name, side in sides.items():  # sciode's compile=True compiles in its first call (forward and backward)
        if "compile=True" in name:
            start = time.perf_counter()
            side.run()
            side.compile_seconds = time.perf_counter() - start
    times = interleaved_medians({name: side.run for name, side in sides.items()}, repeats)
    results = {name: side.run() for name, side in sides.items()}
    rows = []
    for name, side in sides.items():
        cpu, wall = times[name]
        res = results[name]
        peers = {lib: next((n for n, s in sides.items() if n.startswith(lib) and s.method == side.method), None)
                 for lib in ("torchdiffeq", "diffrax")}
        ratios = [f"{cpu / times[p][0]:.2f}" if p else "-" for p in peers.values()]
        ref = peers["torchdiffeq"]
        diff = (float(np.abs(res.grad - results[ref].grad).max() / np.abs(results[ref].grad).max())
                if ref else float("nan"))
        rows.append([name, side.method, f"{cpu * 1e3:.1f}", f"{wall * 1e3:.1f}", *ratios, res.work,
                     f"{res.loss:.6f}", f"{diff:.1e}",
                     f"{side.compile_seconds:.1f}" if side.compile_seconds is not None else "-"])
    return f"### {title}\n\n" + table(
        ["side", "method", "CPU ms (median)", "wall ms", "/ torchdiffeq (same method)", "/ diffrax (same method)",
         "work (NFE fwd / bwd, or steps)", "loss", "grad rel. diff vs torchdiffeq",
         "compile s (sciode: first call)"], rows)


# -- spiral ----------------------------------------------------------------------------------------------
def spiral(quick: bool, repeats: int, compiles: bool) -> Iterator[str]:
    if torchdiffeq is None:
        yield "spiral case skipped: its data come from torchdiffeq's ode_demo script, and torchdiffeq is not installed"
        return
    from sensitivity_speed import PeerField, SciodeField, spiral_data

    dtype = torch.float64
    batch_t, batch_y0, batch_y = spiral_data(dtype)
    torch.manual_seed(0)
    net = Counted(torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2)).to(dtype))
    params = list(net.parameters())
    prob = sciode.ODEProblem(SciodeField(net), batch_y0, (0.0, float(batch_t[-1])))

    def sciode_run(sensealg: str, **options: object) -> Callable[[], Trained]:
        def run() -> Trained:
            net.calls = 0
            sol = sciode.solve(prob, "dopri5", sensealg=sensealg, saveat=batch_t, rtol=SPIRAL_RTOL, atol=SPIRAL_ATOL,
                               **options)
            loss = (sol.u - batch_y).abs().mean()
            forward, net.calls = net.calls, 0
            grads = torch.autograd.grad(loss, params)
            backward = sol.stats.get("backward_nfe", "-")  # backprop: the VJPs through f (none counted compiled)
            if options.get("compile"):  # calls inside a compiled graph are not counted: sciode's own count
                forward = sol.stats["nfe"]
            return Trained(float(loss.detach()), _flat(grads), f"{forward} / {backward}")
        return run

    def torchdiffeq_run(adjoint: bool) -> Callable[[], Trained]:
        field = PeerField(net)

        def run() -> Trained:
            net.calls = 0
            if adjoint:
                pred = torchdiffeq.odeint_adjoint(field, batch_y0, batch_t, rtol=SPIRAL_RTOL, atol=SPIRAL_ATOL,
                                                  method="dopri5", adjoint_params=params)
            else:
                pred = torchdiffeq.odeint(field, batch_y0, batch_t, rtol=SPIRAL_RTOL, atol=SPIRAL_ATOL, method="dopri5")
            loss = (pred - batch_y).abs().mean()
            forward, net.calls = net.calls, 0
            grads = torch.autograd.grad(loss, params)
            return Trained(float(loss.detach()), _flat(grads), f"{forward} / {net.calls}")
        return run

    sides = {"sciode backprop": Side("backprop", sciode_run("backprop")),
             "sciode adjoint": Side("adjoint", sciode_run("adjoint"))}
    if compiles:
        sides["sciode backprop compile=True"] = Side("backprop", sciode_run("backprop", compile=True))
        sides["sciode adjoint compile=True"] = Side("adjoint", sciode_run("adjoint", compile=True))
        for method in ("backprop", "adjoint"):  # torchdiffeq's controller: the same step counts as torchdiffeq
            sides[f"sciode {method} compile=True, {I_CONTROLLER}"] = Side(method, sciode_run(
                method, compile=True, controller=sciode.PIController(1.0, 0.0)))
    sides["torchdiffeq odeint"] = Side("backprop", torchdiffeq_run(False))
    sides["torchdiffeq odeint_adjoint"] = Side("adjoint", torchdiffeq_run(True))
    if MISSING:
        yield MISSING
    else:
        jparams = linear_params([net.net[0], net.net[2]])
        ts, y0, ys = to_jax(batch_t), to_jax(batch_y0), to_jax(batch_y)
        term = diffrax.ODETerm(lambda t, y, p: mlp(p, y ** 3))
        for method, adjoint in (("backprop", diffrax.RecursiveCheckpointAdjoint()),
                                ("adjoint", diffrax.BacksolveAdjoint())):
            def loss_fn(p, adjoint=adjoint):
                sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), ts[0], ts[-1], None, y0, p,
                                          saveat=diffrax.SaveAt(ts=ts), adjoint=adjoint,
                                          stepsize_controller=diffrax.PIDController(rtol=SPIRAL_RTOL, atol=SPIRAL_ATOL))
                return jnp.abs(sol.ys - ys).mean(), sol.stats["num_steps"]

            call, seconds = compiled(jax.value_and_grad(loss_fn, has_aux=True), jparams)

            def run(call=call) -> Trained:
                (loss, steps), grads = call(jparams)
                return Trained(float(loss), _flat([g for layer in grads for g in layer]), f"{int(steps)} steps")

            sides[f"diffrax {type(adjoint).__name__}"] = Side(method, run, seconds)
    yield report("Spiral neural ODE (torchdiffeq ode_demo), one training iteration: loss on 10 outputs of 20 "
                 "trajectories + gradient, dopri5 rtol 1e-6 atol 1e-8, float64", sides, repeats)


# -- FFJORD ----------------------------------------------------------------------------------------------
def ffjord(quick: bool, repeats: int, compiles: bool) -> Iterator[str]:
    from ffjord_training import CountedField, ReferenceFFJORD, pretrained_field

    from sciode_models import FFJORD, toy_sample

    dtype, batch, seed = torch.float64, (64 if quick else 512), 1234
    gen = torch.Generator().manual_seed(1)
    net = pretrained_field("8gaussians", batch, 5 if quick else 30, gen, dtype)
    x = toy_sample("8gaussians", batch, gen, dtype)

    def torch_run(model: torch.nn.Module, field: CountedField) -> Callable[[], Trained]:
        params = list(field.parameters())
        compiled = getattr(model, "solve_options", {}).get("compile", False)

        def run() -> Trained:
            torch.manual_seed(seed)  # the same Rademacher draw for every side
            field.calls = 0
            loss = -model.log_prob(x).mean()
            forward, field.calls = field.calls, 0
            grads = torch.autograd.grad(loss, params)
            work = f"{model.nfe} / -" if compiled else f"{forward} / {field.calls}"  # no count inside a graph
            return Trained(float(loss.detach()), _flat(grads), work)
        return run

    def sciode_side(name: str, **options: object) -> None:
        field = CountedField(copy.deepcopy(net))
        model = FFJORD(field, 2, solver="dopri5", sensealg="adjoint", rtol=FFJORD_TOL, atol=FFJORD_TOL, **options)
        sides[name] = Side("adjoint", torch_run(model, field))

    sides: dict[str, Side] = {}
    sciode_side("sciode adjoint")
    if compiles:
        sciode_side("sciode adjoint compile=True", compile=True)
        sciode_side(f"sciode adjoint compile=True, {I_CONTROLLER}", compile=True,
                    controller=sciode.PIController(1.0, 0.0))
    if torchdiffeq is None:
        yield "torchdiffeq peer skipped: not installed (pip install -e '.[bench]')"
    else:
        theirs = CountedField(copy.deepcopy(net))
        sides["torchdiffeq odeint_adjoint"] = Side("adjoint", torch_run(ReferenceFFJORD(theirs, FFJORD_TOL), theirs))
    if MISSING:
        yield MISSING
    else:
        torch.manual_seed(seed)
        noise = to_jax(torch.randint_like(x, 0, 2) * 2 - 1)
        jparams = [(*linear_params([layer.linear, layer.gate]), to_jax(layer.shift.weight)) for layer in net.layers]
        xj = to_jax(x)

        def dynamics(t, state, p):
            z, _ = state
            dz, vjp = jax.vjp(lambda z_: concat_squash_mlp(p, t, z_), z)
            (e_dz,) = vjp(noise)
            return dz, -(e_dz * noise).sum(-1)

        def loss_fn(p):
            sol = diffrax.diffeqsolve(diffrax.ODETerm(dynamics), diffrax.Dopri5(), 0.0, 1.0, None,
                                      (xj, jnp.zeros(batch)), p, adjoint=diffrax.BacksolveAdjoint(),
                                      stepsize_controller=diffrax.PIDController(rtol=FFJORD_TOL, atol=FFJORD_TOL))
            z, dlogp = sol.ys[0][-1], sol.ys[1][-1]
            log_prob = -0.5 * (z ** 2).sum(-1) - np.log(2 * np.pi) - dlogp  # log N(z; 0, I) in 2-D
            return -log_prob.mean(), sol.stats["num_steps"]

        call, seconds = compiled(jax.value_and_grad(loss_fn, has_aux=True), jparams)

        def run() -> Trained:
            (loss, steps), grads = call(jparams)
            flat = [g for (w, b), (a, c), d in grads for g in (w, b, a, c, d)]
            return Trained(float(loss), _flat(flat), f"{int(steps)} steps")

        sides["diffrax BacksolveAdjoint"] = Side("adjoint", run, seconds)
    yield report(f"FFJORD, 8 Gaussians, batch {batch}, one training iteration: -log-likelihood + gradient, "
                 "dopri5 rtol = atol = 1e-5, adjoint, Rademacher noise, float64", sides, repeats)
