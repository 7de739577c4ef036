"""Bad input raises a sciode.ProblemError at once, naming the argument and what was expected."""
import math

import pytest
import torch

import sciode


def f(u, p, t):
    return -u


U0 = torch.ones(2, dtype=torch.float64)


def ok_problem():
    return sciode.ODEProblem(f, U0, (0.0, 1.0))


def sde_problem():
    return sciode.SDEProblem(f, lambda u, p, t: 0.5 * torch.ones_like(u), U0, (0.0, 1.0))


CASES = [
    ("f not callable", lambda: sciode.ODEProblem(3.0, U0, (0, 1)), "f must be callable"),
    ("u0 non-finite", lambda: sciode.ODEProblem(f, torch.tensor([1.0, math.nan]), (0, 1)), "u0 must be finite"),
    ("u0 integer dtype", lambda: sciode.ODEProblem(f, torch.tensor([1, 2]), (0, 1)), "u0 must have a floating dtype"),
    ("u0 zero-dimensional", lambda: sciode.ODEProblem(f, torch.tensor(1.0), (0, 1)),
     "u0 must have at least one dimension"),
    ("u0 empty", lambda: sciode.ODEProblem(f, torch.ones(3, 0), (0, 1)), "u0 must not be empty"),
    ("empty tspan", lambda: sciode.ODEProblem(f, U0, (1.0, 1.0)), "tspan is empty"),
    ("tspan wrong length", lambda: sciode.ODEProblem(f, U0, (0.0, 1.0, 2.0)), "tspan must be a pair"),
    ("tspan non-finite", lambda: sciode.ODEProblem(f, U0, (0.0, math.inf)), "tspan t1 must be finite"),
    ("tspan not numbers", lambda: sciode.ODEProblem(f, U0, ("a", 1.0)), "tspan t0 must be a real number"),
    ("p of wrong type", lambda: sciode.ODEProblem(f, U0, (0, 1), p="fast"), "p must be None, a tensor"),
    ("state_names wrong length", lambda: sciode.ODEProblem(f, U0, (0, 1), state_names=["x"]), "state_names must be 2"),
    ("state_names not unique", lambda: sciode.ODEProblem(f, U0, (0, 1), state_names=["x", "x"]),
     "state_names must be unique"),
    ("jac not callable", lambda: sciode.ODEProblem(f, U0, (0, 1), jac=1), "jac must be callable"),
    ("v0/u0 shape mismatch", lambda: sciode.SecondOrderODEProblem(f, torch.ones(2), torch.ones(3), (0, 1)),
     "v0 and u0 must have the same shape"),
    ("SDE noise type", lambda: sciode.SDEProblem(f, f, U0, (0, 1), noise="pink"), "noise must be one of"),
    ("remake unknown field", lambda: sciode.remake(ok_problem(), u1=U0), "remake got unknown field"),
    ("problem not a Problem", lambda: sciode.solve("not a problem"), "problem must be a sciode Problem"),
    ("unknown solver name", lambda: sciode.solve(ok_problem(), "rk99"), "unknown solver 'rk99'"),
    ("solver not a name or Solver", lambda: sciode.solve(ok_problem(), 42), "solver must be a registered name"),
    ("unknown solver option", lambda: sciode.solve(ok_problem(), "tsit5", newton_tol=1e-3), "unknown argument"),
    ("options with a Solver instance", lambda: sciode.solve(ok_problem(), sciode.solvers()["rk4"](), dt=0.1, foo=1),
     "pass them to its constructor"),
    ("solver for another problem type", lambda: sciode.solve(ok_problem(), "verlet", dt=0.1),
     "solver 'verlet' solves SecondOrderODEProblem"),
    ("saveat outside tspan", lambda: sciode.solve(ok_problem(), saveat=[0.0, 2.0]),
     "saveat times must lie within tspan"),
    ("saveat not monotonic", lambda: sciode.solve(ok_problem(), saveat=[0.0, 0.7, 0.3]),
     "saveat times must be strictly increasing"),
    ("saveat backwards wrong order", lambda: sciode.solve(sciode.ODEProblem(f, U0, (1.0, 0.0)), saveat=[0.2, 0.8]),
     "strictly decreasing"),
    ("saveat zero intervals", lambda: sciode.solve(ok_problem(), saveat=0),
     "saveat as a number of intervals must be >= 1"),
    ("saveat with NaN", lambda: sciode.solve(ok_problem(), saveat=[0.0, math.nan]), "saveat must hold finite times"),
    ("saveat 2-D", lambda: sciode.solve(ok_problem(), saveat=torch.zeros(2, 2)), "saveat must be a non-empty 1-D"),
    ("negative dt", lambda: sciode.solve(ok_problem(), "rk4", dt=-0.1), "dt must be a positive finite number"),
    ("fixed-step solver without dt", lambda: sciode.solve(ok_problem(), "rk4"), "dt is required"),
    ("adaptive=True on fixed-step solver", lambda: sciode.solve(ok_problem(), "rk4", dt=0.1, adaptive=True),
     "has no error estimate"),
    ("rtol negative", lambda: sciode.solve(ok_problem(), rtol=-1e-6), "rtol must be a positive finite number"),
    ("atol NaN", lambda: sciode.solve(ok_problem(), atol=math.nan), "atol must be a positive finite number"),
    ("max_steps zero", lambda: sciode.solve(ok_problem(), max_steps=0), "max_steps must be a positive int"),
    ("stepping unknown", lambda: sciode.solve(ok_problem(), stepping="async"), "stepping must be one of"),
    ("sensealg unknown", lambda: sciode.solve(ok_problem(), sensealg="magic"),
     "unknown sensitivity 'magic' for sensealg"),
    ("norm not callable", lambda: sciode.solve(ok_problem(), norm="rms"), "norm must be callable"),
    ("f returns wrong shape", lambda: sciode.solve(sciode.ODEProblem(lambda u, p, t: u[:1], U0, (0, 1))),
     "f returned shape (1,); expected the shape of u0, (2,)"),
    ("f returns wrong dtype", lambda: sciode.solve(sciode.ODEProblem(lambda u, p, t: u.float(), U0, (0, 1))),
     "f returned dtype torch.float32"),
    ("f returns non-tensor", lambda: sciode.solve(sciode.ODEProblem(lambda u, p, t: [1.0, 2.0], U0, (0, 1))),
     "f must return a tensor"),
    ("dense output outside tspan", lambda: sciode.solve(ok_problem())(5.0), "t must lie within tspan"),
    ("SDEProblem with an ODE solver", lambda: sciode.solve(sde_problem(), "tsit5"),
     "solver 'tsit5' is an ODE solver: it would drop the noise g of this SDEProblem"),
    ("SDEProblem with the default solver", lambda: sciode.solve(sde_problem()), "would drop the noise"),
    ("SDEProblem with a fixed-step ODE solver", lambda: sciode.solve(sde_problem(), "euler", dt=0.1),
     "solver 'euler' is an ODE solver"),
    ("ODE solver for an ODE problem given an SDE solver", lambda: sciode.solve(ok_problem(), "euler_maruyama", dt=0.1),
     "solver 'euler_maruyama' solves SDEProblem, not ODEProblem"),
    ("max_steps a bool", lambda: sciode.solve(ok_problem(), max_steps=True),
     "max_steps must be a positive int; got True"),
    ("max_steps a float", lambda: sciode.solve(ok_problem(), max_steps=10.5), "max_steps must be a positive int"),
    ("rtol a string", lambda: sciode.solve(ok_problem(), rtol="1e-6"), "rtol must be a positive finite number"),
    ("atol zero", lambda: sciode.solve(ok_problem(), atol=0.0), "atol must be a positive finite number; got 0.0"),
    ("dt infinite", lambda: sciode.solve(ok_problem(), "rk4", dt=math.inf), "dt must be a positive finite number"),
    ("dt a 2-element tensor", lambda: sciode.solve(ok_problem(), "rk4", dt=torch.tensor([0.1, 0.2])),
     "dt must be a positive finite number"),
    ("progress not a bool", lambda: sciode.solve(ok_problem(), progress="yes"), "progress must be True or False"),
    ("controller of the wrong type", lambda: sciode.solve(ok_problem(), controller="pi"),
     "controller must be a sciode.PIController"),
    ("saveat a string", lambda: sciode.solve(ok_problem(), saveat="10"), "saveat must be None, a number of intervals"),
    ("saveat of non-numbers", lambda: sciode.solve(ok_problem(), saveat=[0.0, "x"]), "saveat must hold real numbers"),
    ("sensealg of the wrong type", lambda: sciode.solve(ok_problem(), sensealg=3), "sensealg must be None"),
]


@pytest.mark.parametrize("label,call,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_problem_error(label, call, message):
    with pytest.raises(sciode.ProblemError) as info:
        call()
    assert message in str(info.value), f"{label}: message was {info.value}"


def test_problem_error_is_a_value_error():
    assert issubclass(sciode.ProblemError, ValueError)
    assert len(CASES) >= 30
