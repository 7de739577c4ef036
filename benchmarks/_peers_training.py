"""The training cases of benchmarks/peers.py: one iteration (loss + gradient) of two neural-ODE models.

spiral: torchdiffeq's ode_demo model f(y) = MLP(y^3), MLP 2-50-2 (tanh), a minibatch of 20
starting points and 10 output times on [0, 2.25] (benchmarks/sensitivity_speed.py's data),
dopri5 at rtol 1e-6, atol = rtol / 100, loss = mean |pred - data|. ffjord: FFJORD on 8 Gaussians,
concat-squash 2-64-64-64-2 (tanh, briefly pretrained), batch 512, dopri5 at rtol = atol =
1e-5, Rademacher noise drawn from the same seed for every side, adjoint gradients.

Each side computes the loss and the gradient of the same parameters at the same point: the
optimizer update (identical work on every side) is left out so each repeat does the same work.
Sides of one method are compared, one table each: backprop (sciode backprop, torchdiffeq odeint,
diffrax RecursiveCheckpointAdjoint: all differentiate the discrete solve) and adjoint (sciode
adjoint, torchdiffeq odeint_adjoint, diffrax BacksolveAdjoint: the continuous adjoint). Sides
marked "I-controller" run sciode with torchdiffeq's integral controller (``PIController(1.0, 0.0)``)
instead of sciode's default PI controller, which takes more, smaller steps at the same rtol.

Accuracy. An iteration is there to deliver the loss L and its gradient g, so a side's error is

    error = max(|L - L*| / |L*|, ||g - g*||_2 / ||g*||_2)

(the worse of the loss's relative error and the flattened gradient's relative 2-norm error;
both are in the tables), against L*, g* from sciode dopri5 backprop at rtol 1e-11 (atol scaled as
the case scales it), float64, the same parameters, data and noise. As rtol -> 0 every method's
gradient (backprop's of the discrete solve, the adjoint's) tends to the gradient of the
continuous loss, so one reference serves both methods. Where torchdiffeq is installed, its dopri5
at rtol 1e-11 checks the reference, and the error measure between the two is printed: it
bounds the reference's own error, which should be far below the errors compared.

Time at matched accuracy (``_ode_case.matched_accuracy``): every side runs again at each rtol of
a ladder (atol scaled with rtol), round-robin with the others; for each peer and sciode side,
(a) the cheapest sciode run at least as accurate as the peer at the case's rtol, and (b) the
cheapest peer run at least as accurate as sciode there. A compiled sciode side compiles anew at
each rtol (the tolerances are constants of its graphs): in an untimed first call at each rtol,
whose time is the "compile s" column at the case's rtol and is noted under the table for the
other rtols. At the case's rtol that warm-up goes on until the side's solves have taken
``BLOCK_AFTER_SOLVES`` steps, so the timed rounds see a training loop's steady state, with its
steps in compiled blocks (``FirstCalls``). diffrax's rtol and atol are traced arguments of one
jitted function (one compile).

Steps are the attempted steps of the forward solve (sciode's count, diffrax's ``num_steps``,
torchdiffeq's (NFE - 2) / 6 for dopri5) and, where counted, of the adjoint's backward solve;
"CPU ms / step" is the whole iteration's time over the forward steps. NFE inside a compiled
graph are sciode's own count; its backward NFE there are not counted ("-").
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from _common import Counted, table
from _jax_peers import MISSING, compiled, concat_squash_mlp, diffrax, jax, jnp, linear_params, mlp, to_jax
from _ode_case import OdeCase, Outcome, matched_accuracy, measure

import sciode
from sciode.loop.compiled import BLOCK_AFTER_SOLVES

try:
    import torchdiffeq
except ImportError:
    torchdiffeq = None

SPIRAL_RTOL, FFJORD_RTOL = 1e-6, 1e-5
SPIRAL_ATOL, FFJORD_ATOL = (lambda rtol: rtol * 1e-2), (lambda rtol: rtol)  # atol as a function of rtol
#: further rtols for the time at matched accuracy: looser ones for (a), tighter ones for (b)
SPIRAL_LADDER = (1e-8, 3e-8, 1e-7, 3e-7, 2e-6, 4e-6, 8e-6, 1.5e-5, 3e-5, 6e-5, 1.2e-4, 2.5e-4, 5e-4, 1e-3, 2e-3)
FFJORD_LADDER = (1e-8, 1e-7, 1e-6, 3e-5, 6e-5, 1.2e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3)
REFERENCE_RTOL = 1e-11
METHODS = ("backprop", "adjoint")

#: sides with ``PIController(1.0, 0.0)``, the integral controller torchdiffeq uses (sciode's default for dopri5,
#: Hairer's PI coefficients, takes a few more steps at the same rtol and lands below the peers' errors)
I_CONTROLLER = "I-controller"


@dataclasses.dataclass
class Trained(Outcome):
    """One iteration: ``u`` = [loss, *flattened gradient]; ``iterations`` / ``nfe``: the forward solve's attempted
    steps and f evaluations; the backward solve's where counted."""

    backward_steps: int | None = None
    backward_nfe: int | None = None


def trained(loss: torch.Tensor | float, grads: list | tuple, steps: int, nfe: int | None = None,
            backward_steps: int | None = None, backward_nfe: int | None = None) -> Trained:
    flat = np.concatenate([np.asarray(g).reshape(-1) for g in grads])
    return Trained(np.concatenate([[float(loss)], flat]), steps, nfe, backward_steps, backward_nfe)


def dopri5_steps(nfe: int, solves: int = 1) -> int:
    """Attempted dopri5 steps from an NFE count: 2 evaluations per solve for the first step size, then 6 per step."""
    return (nfe - 2 * solves) // 6


def loss_error(u: np.ndarray, ref: np.ndarray) -> float:
    return float(abs(u[0] - ref[0]) / abs(ref[0]))


def grad_error(u: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(u[1:] - ref[1:]) / np.linalg.norm(ref[1:]))


def training_error(u: np.ndarray, ref: np.ndarray) -> float:
    """The module docstring's error: the worse of the loss's and the gradient's relative errors."""
    return max(loss_error(u, ref), grad_error(u, ref))


@dataclasses.dataclass
class Side:
    method: str  # "backprop" or "adjoint": sides of one method are compared
    run: Callable[[float], Trained]  # rtol -> one iteration (atol scaled with rtol)
    compiles: bool = False  # sciode compile=True: its first call at each rtol compiles


class FirstCalls:
    """Times each compiled side's first call at each rtol: where it compiles, apart from the timed rounds.

    At the case's own rtol the side then runs on until its solves have taken ``BLOCK_AFTER_SOLVES``
    steps, as a training loop's first iterations do: from there on its steps run in compiled blocks
    (sciode/loop/compiled.py), and the timed rounds measure that steady state. The block's compile is
    part of the "compile s" figure. The tolerances are inputs of sciode's graphs, so the further rtols
    of the ladder reuse the graphs and the block (their first calls compile nothing new)."""

    def __init__(self, steady_rtol: float) -> None:
        self.seconds: dict[str, dict[float, float]] = {}
        self.steady_rtol = steady_rtol

    def wrap(self, name: str, run: Callable[[float], Trained]) -> Callable[[float], Trained]:
        seen = self.seconds.setdefault(name, {})

        def timed(rtol: float) -> Trained:
            if rtol in seen:
                return run(rtol)
            start = time.perf_counter()
            out = run(rtol)
            if rtol == self.steady_rtol:
                for _ in range(math.ceil(BLOCK_AFTER_SOLVES / max(out.iterations, 1))):
                    out = run(rtol)
            seen[rtol] = time.perf_counter() - start
            return out
        return timed

    def note(self, rtol: float) -> str:
        """The recompiles at the other rtols, one line."""
        others = {name: [s for r, s in by.items() if r != rtol] for name, by in self.seconds.items()}
        parts = [f"{name} {min(s):.1f}-{max(s):.1f}" for name, s in others.items() if s]
        return ("First calls of the compiled sides at the further rtols (not in the medians), seconds: "
                f"{'; '.join(parts)}.") if parts else ""


def report(title: str, sides: dict[str, Side], rtol: float, ladder: tuple[float, ...], reference: np.ndarray,
           checked: str, repeats: int, jit_seconds: dict[str, float]) -> Iterator[str]:
    """Per method: the table at ``rtol`` (errors against ``reference``), then the matched-accuracy table."""
    for method in METHODS:
        first = FirstCalls(rtol)
        group = {name: (first.wrap(name, s.run) if s.compiles else s.run)
                 for name, s in sides.items() if s.method == method}
        if not group:
            continue
        case = OdeCase(f"{title}, {method}", group, rtol, reference, training_error, ladder, repeats=repeats,
                       ladder_repeats=repeats)
        main = measure(case, rtol, repeats)
        peers = {lib: next((n for n in group if n.startswith(lib)), None) for lib in ("torchdiffeq", "diffrax")}
        rows = []
        for name, (cpu, wall, out) in main.items():
            ratios = [f"{cpu / main[p][0]:.2f}" if p else "-" for p in peers.values()]
            compile_s = first.seconds[name][rtol] if name in first.seconds else jit_seconds.get(name)
            rows.append([name, f"{cpu * 1e3:.1f}", f"{wall * 1e3:.1f}", *ratios,
                         f"{out.iterations} / {_count(out.backward_steps)}",
                         f"{_count(out.nfe)} / {_count(out.backward_nfe)}", f"{cpu / out.iterations * 1e3:.3f}",
                         f"{out.u[0]:.8f}", f"{loss_error(out.u, reference):.1e}",
                         f"{grad_error(out.u, reference):.1e}",
                         f"{compile_s:.1f}" if compile_s is not None else "-"])
        text = [f"### {case.title}\n", checked + "\n", table(
            ["side", "CPU ms (median)", "wall ms", "/ torchdiffeq", "/ diffrax", "steps fwd / bwd", "NFE fwd / bwd",
             "CPU ms / step", "loss", "loss rel. error", "grad rel. error", "compile s"], rows),
            "", matched_accuracy(case, main)]
        note = first.note(rtol)
        yield "\n".join(text + ([note] if note else []))


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def reference_text(what: str, reference: np.ndarray, check: Trained | None, check_what: str) -> str:
    line = f"Reference: {what} (loss {reference[0]:.10f}, |g| {np.linalg.norm(reference[1:]):.4e})"
    if check is None:
        return line + f"; not checked ({check_what} needs torchdiffeq)."
    return line + f"; {check_what} differs from it by {training_error(check.u, reference):.1e} (error measure)."


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

    def sciode_run(sensealg: str, **options: object) -> Callable[[float], Trained]:
        def run(rtol: float) -> Trained:
            sol = sciode.solve(prob, "dopri5", sensealg=sensealg, saveat=batch_t, rtol=rtol, atol=SPIRAL_ATOL(rtol),
                               **options)
            loss = (sol.u - batch_y).abs().mean()
            grads = torch.autograd.grad(loss, params)
            s = sol.stats  # backward: the adjoint's solve; backprop's VJPs through f (absent when compiled)
            return trained(loss.detach(), grads, s.get("iterations", s["nsteps"]), s["nfe"], s.get("backward_nsteps"),
                           s.get("backward_nfe"))
        return run

    def torchdiffeq_run(adjoint: bool) -> Callable[[float], Trained]:
        field = PeerField(net)

        def run(rtol: float) -> Trained:
            net.calls = 0
            if adjoint:
                pred = torchdiffeq.odeint_adjoint(field, batch_y0, batch_t, rtol=rtol, atol=SPIRAL_ATOL(rtol),
                                                  method="dopri5", adjoint_params=params)
            else:
                pred = torchdiffeq.odeint(field, batch_y0, batch_t, rtol=rtol, atol=SPIRAL_ATOL(rtol), method="dopri5")
            loss = (pred - batch_y).abs().mean()
            forward, net.calls = net.calls, 0
            grads = torch.autograd.grad(loss, params)
            if not adjoint:  # backprop: autograd's VJPs do not call the net
                return trained(loss.detach(), grads, dopri5_steps(forward), forward)
            intervals = len(batch_t) - 1  # the backward pass solves each output interval on its own
            return trained(loss.detach(), grads, dopri5_steps(forward), forward, dopri5_steps(net.calls, intervals),
                           net.calls)
        return run

    reference = sciode_run("backprop")(REFERENCE_RTOL).u
    checked = reference_text(f"sciode dopri5 backprop, rtol {REFERENCE_RTOL:g}, atol {SPIRAL_ATOL(REFERENCE_RTOL):g}",
                             reference, torchdiffeq_run(False)(REFERENCE_RTOL),
                             "torchdiffeq dopri5 at the same tolerances")
    sides = {"sciode backprop": Side("backprop", sciode_run("backprop")),
             "sciode adjoint": Side("adjoint", sciode_run("adjoint"))}
    if compiles:
        for method in METHODS:
            sides[f"sciode {method} compile=True"] = Side(method, sciode_run(method, compile=True), True)
            # torchdiffeq's controller: the same step counts as torchdiffeq (its graphs are the default side's)
            sides[f"sciode {method} compile=True, {I_CONTROLLER}"] = Side(method, sciode_run(
                method, compile=True, controller=sciode.PIController(1.0, 0.0)), True)
    sides["torchdiffeq odeint"] = Side("backprop", torchdiffeq_run(False))
    sides["torchdiffeq odeint_adjoint"] = Side("adjoint", torchdiffeq_run(True))
    jit_seconds: dict[str, float] = {}
    if MISSING:
        yield MISSING
    else:
        jparams = linear_params([net.net[0], net.net[2]])
        ts, y0, ys = to_jax(batch_t), to_jax(batch_y0), to_jax(batch_y)
        term = diffrax.ODETerm(lambda t, y, p: mlp(p, y ** 3))
        for method, adjoint in zip(METHODS, (diffrax.RecursiveCheckpointAdjoint(), diffrax.BacksolveAdjoint())):
            def loss_fn(p, rtol, atol, adjoint=adjoint):
                sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), ts[0], ts[-1], None, y0, p,
                                          saveat=diffrax.SaveAt(ts=ts), adjoint=adjoint,
                                          stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol))
                return jnp.abs(sol.ys - ys).mean(), sol.stats["num_steps"]

            name = f"diffrax {type(adjoint).__name__}"
            call, jit_seconds[name] = compiled(jax.value_and_grad(loss_fn, has_aux=True), jparams,
                                               jnp.float64(SPIRAL_RTOL), jnp.float64(SPIRAL_ATOL(SPIRAL_RTOL)))

            def run(rtol: float, call=call) -> Trained:
                (loss, steps), grads = call(jparams, jnp.float64(rtol), jnp.float64(SPIRAL_ATOL(rtol)))
                return trained(loss, [g for layer in grads for g in layer], int(steps))

            sides[name] = Side(method, run)
    yield from report("Spiral neural ODE (torchdiffeq ode_demo), one training iteration: loss on 10 outputs of 20 "
                      "trajectories + gradient, dopri5 rtol 1e-6 atol 1e-8, float64", sides, SPIRAL_RTOL,
                      SPIRAL_LADDER, reference, checked, repeats, jit_seconds)


# -- FFJORD ----------------------------------------------------------------------------------------------
def ffjord(quick: bool, repeats: int, compiles: bool) -> Iterator[str]:
    from ffjord_training import CountedField, ReferenceFFJORD, pretrained_field

    from sciode_models import FFJORD, toy_sample

    dtype, batch, seed = torch.float64, (64 if quick else 512), 1234
    gen = torch.Generator().manual_seed(1)
    net = pretrained_field("8gaussians", batch, 5 if quick else 30, gen, dtype)
    x = toy_sample("8gaussians", batch, gen, dtype)

    def iteration(model: torch.nn.Module, field: CountedField) -> tuple[torch.Tensor, tuple, int, int]:
        """Loss and gradient with the same Rademacher draw for every side; the net's calls forward and backward."""
        torch.manual_seed(seed)
        field.calls = 0
        loss = -model.log_prob(x).mean()
        forward, field.calls = field.calls, 0
        grads = torch.autograd.grad(loss, list(field.parameters()))
        return loss.detach(), grads, forward, field.calls

    def sciode_run(sensealg: str = "adjoint", **options: object) -> Callable[[float], Trained]:
        field = CountedField(copy.deepcopy(net))
        model = FFJORD(field, 2, solver="dopri5", sensealg=sensealg, **options)

        def run(rtol: float) -> Trained:
            model.solve_options.update(rtol=rtol, atol=FFJORD_ATOL(rtol))
            loss, grads, _, backward = iteration(model, field)
            eager = not options.get("compile")  # calls inside a compiled graph are not counted: sciode's own nfe
            return trained(loss, grads, dopri5_steps(model.nfe), model.nfe, None,
                           backward if eager and sensealg == "adjoint" else None)
        return run

    def torchdiffeq_run() -> Callable[[float], Trained]:
        field = CountedField(copy.deepcopy(net))
        model = ReferenceFFJORD(field, FFJORD_RTOL)

        def run(rtol: float) -> Trained:
            assert FFJORD_ATOL(rtol) == rtol  # ReferenceFFJORD takes one tolerance for both
            model.tol = rtol
            loss, grads, forward, backward = iteration(model, field)
            return trained(loss, grads, dopri5_steps(forward), forward, dopri5_steps(backward), backward)
        return run

    reference = sciode_run("backprop")(REFERENCE_RTOL).u
    check_what = "torchdiffeq (odeint_adjoint, dopri5) at the same tolerances"
    checked = reference_text(f"sciode dopri5 backprop, rtol = atol = {REFERENCE_RTOL:g}", reference,
                             torchdiffeq_run()(REFERENCE_RTOL) if torchdiffeq else None, check_what)
    sides: dict[str, Side] = {"sciode adjoint": Side("adjoint", sciode_run())}
    if compiles:
        sides["sciode adjoint compile=True"] = Side("adjoint", sciode_run(compile=True), True)
        sides[f"sciode adjoint compile=True, {I_CONTROLLER}"] = Side(
            "adjoint", sciode_run(compile=True, controller=sciode.PIController(1.0, 0.0)), True)
    if torchdiffeq is None:
        yield "torchdiffeq peer skipped: not installed (pip install -e '.[bench]')"
    else:
        sides["torchdiffeq odeint_adjoint"] = Side("adjoint", torchdiffeq_run())
    jit_seconds: dict[str, float] = {}
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

        def loss_fn(p, rtol, atol):
            sol = diffrax.diffeqsolve(diffrax.ODETerm(dynamics), diffrax.Dopri5(), 0.0, 1.0, None,
                                      (xj, jnp.zeros(batch)), p, adjoint=diffrax.BacksolveAdjoint(),
                                      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol))
            z, dlogp = sol.ys[0][-1], sol.ys[1][-1]
            log_prob = -0.5 * (z ** 2).sum(-1) - np.log(2 * np.pi) - dlogp  # log N(z; 0, I) in 2-D
            return -log_prob.mean(), sol.stats["num_steps"]

        name = "diffrax BacksolveAdjoint"
        call, jit_seconds[name] = compiled(jax.value_and_grad(loss_fn, has_aux=True), jparams,
                                           jnp.float64(FFJORD_RTOL), jnp.float64(FFJORD_ATOL(FFJORD_RTOL)))

        def run(rtol: float) -> Trained:
            (loss, steps), grads = call(jparams, jnp.float64(rtol), jnp.float64(FFJORD_ATOL(rtol)))
            return trained(loss, [g for (w, b), (a, c), d in grads for g in (w, b, a, c, d)], int(steps))

        sides[name] = Side("adjoint", run)
    yield from report(f"FFJORD, 8 Gaussians, batch {batch}, one training iteration: -log-likelihood + gradient, "
                      "dopri5 rtol = atol = 1e-5, Rademacher noise, float64", sides, FFJORD_RTOL, FFJORD_LADDER,
                      reference, checked, repeats, jit_seconds)
