"""Differentiable events (issue 11 item 3): gradients of the event time and of the state at the event.

The problem: x' = -k x, y' = -b y from (x0, y0); the event x = c (terminal) happens at
t* = log(x0 / c) / k, where y(t*) = y0 exp(-b t*) and x(t*) = c whatever the inputs
(so its gradient is zero: the implicit-function correction dt*/dtheta = -(dg/dtheta) /
(dg/dt) must cancel the direct term). Gradients of ``sol.events[name].t`` and ``.u``
w.r.t. u0, p and nn.Module parameters are compared with central finite differences
(float64) and, where there is one, with the closed form.
"""
import math

import pytest
import torch

import sciode

F64 = torch.float64
C = 0.5
EPS = 1e-4  # central differences: truncation ~EPS^2, the root finder's 1e-12 noise / EPS ~1e-8
TOL = dict(rtol=1e-12, atol=1e-14)
SOLVERS = {"tsit5": TOL, "rodas4": dict(rtol=1e-11, atol=1e-13)}
#: the Rosenbrock runs take ~20 s each (a Jacobian per step, and 17 solves for the differences)
SOLVER_PARAMS = [pytest.param("tsit5"), pytest.param("rodas4", marks=pytest.mark.slow)]
SENSEALGS = ("backprop", "checkpointed")


def two_decays(u, p, t):
    return -p * u


def crossing(u, p, t):
    return u[..., 0] - C


def event_outputs(u0, p, solver, sensealg, f=two_decays):
    """(t*, x(t*), y(t*)) of the terminal event 'cross'."""
    prob = sciode.ODEProblem(f, u0, (0.0, 5.0), p)
    event = sciode.Event(crossing, terminal=True, direction=-1, name="cross")
    sol = sciode.solve(prob, solver, events=event, sensealg=sensealg, **SOLVERS[solver])
    assert sol.retcode is sciode.ReturnCode.TERMINATED, sol.message
    hit = sol.events["cross"]
    assert int(hit.count) == 1
    return hit.t[0], hit.u[0, 0], hit.u[0, 1]


def central_difference(fn, x):
    """d fn / d x for every entry of x (fn: tensor -> tuple of scalar tensors), without autograd."""
    grads = None
    flat = x.detach().reshape(-1)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += EPS
        down[i] -= EPS
        with torch.no_grad():
            hi, lo = fn(up.view_as(x)), fn(down.view_as(x))
        column = [(float(a) - float(b)) / (2 * EPS) for a, b in zip(hi, lo)]
        grads = [[] for _ in column] if grads is None else grads
        for g, value in zip(grads, column):
            g.append(value)
    return [torch.tensor(g, dtype=F64).view_as(x) for g in grads]


def closed_form(u0, p):
    x0, y0 = u0.tolist()
    k, b = p.tolist()
    t = math.log(x0 / C) / k
    y = y0 * math.exp(-b * t)
    dt = torch.tensor([[1 / (k * x0), 0.0], [-t / k, 0.0]], dtype=F64)  # rows: d/du0, d/dp
    dy = torch.tensor([[-b * y / (k * x0), math.exp(-b * t)], [b * t * y / k, -t * y]], dtype=F64)
    return dt, dy


def gradients(outputs, inputs):
    return [torch.autograd.grad(out, inputs, retain_graph=True, allow_unused=True) for out in outputs]


@pytest.mark.parametrize("solver", SOLVER_PARAMS)
@pytest.mark.parametrize("sensealg", SENSEALGS)
def test_event_time_and_state_gradients_wrt_u0_and_p(sensealg, solver):
    u0 = torch.tensor([2.0, 1.5], dtype=F64, requires_grad=True)
    p = torch.tensor([0.7, 1.3], dtype=F64, requires_grad=True)
    t_star, x_star, y_star = event_outputs(u0, p, solver, sensealg)
    (dt_du0, dt_dp), (dx_du0, dx_dp), (dy_du0, dy_dp) = gradients((t_star, x_star, y_star), (u0, p))
    fd_du0 = central_difference(lambda x: event_outputs(x, p.detach(), solver, None), u0)
    fd_dp = central_difference(lambda x: event_outputs(u0.detach(), x, solver, None), p)
    for got, want in ((dt_du0, fd_du0[0]), (dt_dp, fd_dp[0]), (dy_du0, fd_du0[2]), (dy_dp, fd_dp[2])):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)  # exact zeros come out as ~1e-10
    # x(t*) = c for every input: the correction cancels the direct sensitivity
    for got in (dx_du0, dx_dp):
        torch.testing.assert_close(got, torch.zeros(2, dtype=F64), rtol=0, atol=1e-8)
    # and the finite differences themselves agree with the closed form
    dt, dy = closed_form(u0.detach(), p.detach())
    # finite differences carry ~1e-10 noise
    torch.testing.assert_close(torch.stack([fd_du0[0], fd_dp[0]]), dt, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(torch.stack([fd_du0[2], fd_dp[2]]), dy, rtol=1e-6, atol=1e-9)


class LinearField(torch.nn.Module):
    """f(u) = W u + b, a module whose parameters count as parameters of the problem."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2).to(F64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[-0.8, 0.1], [0.05, -0.6]], dtype=F64))
            self.lin.bias.copy_(torch.tensor([0.02, -0.01], dtype=F64))

    def forward(self, u, p, t):
        return self.lin(u)


@pytest.mark.parametrize("solver", SOLVER_PARAMS)
@pytest.mark.parametrize("sensealg", SENSEALGS)
def test_event_gradients_wrt_module_parameters(sensealg, solver):
    field = LinearField()
    u0 = torch.tensor([2.0, 1.5], dtype=F64)
    t_star, _, y_star = event_outputs(u0, None, solver, sensealg, f=field)
    weight, bias = field.lin.weight, field.lin.bias
    (dt_w, dt_b), (dy_w, dy_b) = gradients((t_star, y_star), (weight, bias))

    def perturbed(parameter):
        def fn(value):
            saved = parameter.detach().clone()
            with torch.no_grad():
                parameter.copy_(value)
            try:
                return event_outputs(u0, None, solver, None, f=field)
            finally:
                with torch.no_grad():
                    parameter.copy_(saved)
        return fn

    fd_w = central_difference(perturbed(weight), weight)
    fd_b = central_difference(perturbed(bias), bias)
    for got, want in ((dt_w, fd_w[0]), (dt_b, fd_b[0]), (dy_w, fd_w[2]), (dy_b, fd_b[2])):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)  # exact zeros come out as ~1e-10


def test_adjoint_with_events_is_right_or_names_checkpointed():
    u0 = torch.tensor([2.0, 1.5], dtype=F64, requires_grad=True)
    p = torch.tensor([0.7, 1.3], dtype=F64, requires_grad=True)
    try:
        t_star, _, y_star = event_outputs(u0, p, "tsit5", "adjoint")
        (dt_du0, dt_dp), (dy_du0, dy_dp) = gradients((t_star, y_star), (u0, p))
    except sciode.ProblemError as exc:
        assert "checkpointed" in str(exc)
        return
    dt, dy = closed_form(u0.detach(), p.detach())
    torch.testing.assert_close(torch.stack([dt_du0, dt_dp]), dt, rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(torch.stack([dy_du0, dy_dp]), dy, rtol=1e-6, atol=1e-10)
