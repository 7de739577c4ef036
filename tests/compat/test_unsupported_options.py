"""Every option the fronts cannot honour is a ProblemError naming it, raised before any solving."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp as scipy_solve_ivp

import sciode
from sciode.compat import torchdiffeq as front
from sciode.compat.scipy import solve_ivp

Y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
T = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)


def decay(t, y):
    return -y


class Decay(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rate = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, y):
        return -self.rate * y


@pytest.mark.parametrize("options, named", [
    ({"grid_constructor": lambda f, y0, t: t}, "grid_constructor"),
    ({"interp": "cubic"}, "interp"),
    ({"solver": "LSODA"}, "solver"),
    ({"step_size": 0.1}, "step_size"),  # an adaptive method takes no step_size
    ({"dtype": torch.float32}, "dtype"),
    ({"norm": "seminorm"}, "seminorm"),
    ({"not_an_option": 1}, "not_an_option"),
])
def test_odeint_options(options, named):
    with pytest.raises(sciode.ProblemError, match=re.escape(named)):
        front.odeint(decay, Y0, T, options=options)


@pytest.mark.parametrize("options, named", [
    ({"perturb": True}, "perturb"),
    ({"first_step": 0.1}, "first_step"),
    ({"max_num_steps": 10}, "max_num_steps"),
])
def test_fixed_grid_options(options, named):
    with pytest.raises(sciode.ProblemError, match=re.escape(named)):
        front.odeint(decay, Y0, T, method="rk4", options=options)


@pytest.mark.parametrize("method, nearest", [
    ("dopri8", "dopri5"), ("fehlberg2", "bosh3"), ("adaptive_heun", "bosh3"), ("heun3", "rk4"),
    ("explicit_adams", "rk4"), ("implicit_adams", "rk4"), ("fixed_adams", "rk4"), ("scipy_solver", "scipy_lsoda"),
])
def test_torchdiffeq_methods_sciode_lacks_name_the_nearest(method, nearest):
    with pytest.raises(sciode.ProblemError, match=rf"{method}.*nearest available is '{nearest}'"):
        front.odeint(decay, Y0, T, method=method)


def test_unknown_method_lists_the_choices():
    with pytest.raises(sciode.ProblemError, match=r"method='nope'.*dopri5.*tsit5"):
        front.odeint(decay, Y0, T, method="nope")


def test_odeint_bad_inputs():
    with pytest.raises(sciode.NotDifferentiableError, match="t requires grad"):
        front.odeint(decay, Y0, T.clone().requires_grad_(True))
    with pytest.raises(sciode.ProblemError, match="strictly increasing or strictly decreasing"):
        front.odeint(decay, Y0, torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64))
    with pytest.raises(sciode.ProblemError, match=r"rtol must be a number or hold one value per element"):
        front.odeint(decay, Y0, T, rtol=torch.tensor([1e-6, 1e-3, 1e-3], dtype=torch.float64))
    with pytest.raises(sciode.ProblemError, match="y0 must be a tensor or a non-empty tuple"):
        front.odeint(decay, [1.0, 2.0], T)
    with pytest.raises(sciode.ProblemError, match=r"func must return .*shape \(2,\)"):
        front.odeint(lambda t, y: y[:1], Y0, T)
    with pytest.raises(sciode.ProblemError, match="odeint_adjoint with a complex y0"):
        front.odeint_adjoint(decay, Y0.to(torch.complex128), T, adjoint_params=())
    with pytest.raises(sciode.ProblemError, match="options must be a dict"):
        front.odeint(decay, Y0, T, options=[("first_step", 0.1)])

    def with_callback(t, y):
        return -y

    with_callback.callback_step = lambda t0, y0, dt: None
    with pytest.raises(sciode.ProblemError, match="callback_step"):
        front.odeint(with_callback, Y0, T)


def test_odeint_adjoint_options():
    func = Decay()
    with pytest.raises(sciode.ProblemError, match="adjoint_params"):
        front.odeint_adjoint(decay, Y0, T)
    with pytest.raises(sciode.ProblemError, match="adjoint_options"):
        front.odeint_adjoint(func, Y0, T, options={"first_step": 0.1}, adjoint_method="tsit5")
    with pytest.raises(sciode.ProblemError, match=r"adjoint_options\['norm'\]"):
        front.odeint_adjoint(func, Y0, T, adjoint_options={"norm": lambda x: x.abs().max()})
    with pytest.raises(sciode.ProblemError, match=r"adjoint_options \['first_step'\]"):
        front.odeint_adjoint(func, Y0, T, adjoint_options={"first_step": 0.1})
    with pytest.raises(sciode.ProblemError, match="adjoint_atol must be one number"):
        front.odeint_adjoint(func, Y0, T, adjoint_atol=torch.tensor([1e-9, 1e-3], dtype=torch.float64))
    with pytest.raises(sciode.ProblemError, match="adjoint_rtol must be one number"):
        front.odeint_adjoint(func, Y0, T, rtol=torch.tensor([1e-9, 1e-3], dtype=torch.float64))
    with pytest.raises(sciode.ProblemError, match="nearest available is 'dopri5'"):
        front.odeint_adjoint(func, Y0, T, adjoint_method="dopri8")


def test_event_arguments():
    func = Decay()
    t2 = T[[0, -1]]

    def crossing(t, y):
        return y[0] - 0.5

    with pytest.raises(sciode.ProblemError, match="t must hold 2 times with event_fn"):
        front.odeint(decay, Y0, T, event_fn=crossing)
    with pytest.raises(sciode.ProblemError, match="step_size"):
        front.odeint(decay, Y0, t2, method="rk4", event_fn=crossing)
    with pytest.raises(sciode.ProblemError, match="adjoint_rtol, adjoint_method: with event_fn"):
        front.odeint_adjoint(func, Y0, t2, event_fn=crossing, adjoint_rtol=1e-6, adjoint_method="rk4")
    with pytest.raises(sciode.ProblemError, match="event_fn must be callable"):
        front.odeint(decay, Y0, t2, event_fn=3.0)
    with pytest.raises(sciode.ProblemError, match="t0 must be a torch.Tensor"):
        front.odeint_event(decay, Y0, 0.0, event_fn=crossing)
    with pytest.raises(sciode.NotDifferentiableError, match="t requires grad"):
        front.odeint_event(decay, Y0, torch.tensor(0.0, dtype=torch.float64, requires_grad=True), event_fn=crossing)


def test_solve_ivp_events_arguments():
    def event(t, y):
        return y[0] - 0.5

    event.terminal = -1
    with pytest.raises(sciode.ProblemError, match=r"events\[0\].terminal"):
        solve_ivp(decay, [0, 1], [1.0], events=event)
    event.terminal, event.direction = True, "down"
    with pytest.raises(sciode.ProblemError, match=r"events\[0\].direction"):
        solve_ivp(decay, [0, 1], [1.0], events=event)
    with pytest.raises(sciode.ProblemError, match=r"events\[1\] must be callable"):
        solve_ivp(decay, [0, 1], [1.0], events=[lambda t, y: y[0], 2.0])
    event.direction = -1
    # the scipy bridge hands events on to scipy itself
    ours = solve_ivp(decay, [0, 1], [1.0], method="Radau", events=event)
    theirs = scipy_solve_ivp(decay, [0, 1], [1.0], method="Radau", events=event)
    assert ours.status == theirs.status == 1
    np.testing.assert_allclose(ours.t_events[0], theirs.t_events[0], rtol=1e-9)


@pytest.mark.parametrize("options, named", [
    ({"jac_sparsity": np.eye(3)}, "jac_sparsity must have shape (2, 2)"),
    ({"lband": -1}, "lband must be a non-negative int"),
    ({"lband": 1, "jac_sparsity": np.eye(2)}, "either jac_sparsity or lband/uband"),
    ({"min_step": 1e-3}, "min_step"),
    ({"not_an_option": 1}, "not_an_option"),
    ({"rtol": [1e-3, 1e-6, 1e-6]}, "rtol must be a number or hold one value per element"),
])
def test_solve_ivp_options(options, named):
    with pytest.raises(sciode.ProblemError, match=re.escape(named)):
        solve_ivp(decay, [0, 1], [1.0, 2.0], **options)


@pytest.mark.parametrize("method, structure", [("BDF", {"jac_sparsity": np.eye(3)}),
                                               ("Radau", {"jac_sparsity": np.eye(3)}),
                                               ("LSODA", {"lband": 0, "uband": 0}),
                                               ("rodas4", {"jac_sparsity": np.eye(3)})])  # rodas4: torch y0
def test_solve_ivp_jacobian_structure_is_used(method, structure):
    """jac_sparsity / lband-uband become the Problem's jac_prototype: scipy gets them back, sciode colors."""
    y0 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) if method == "rodas4" else [1.0, 2.0, 3.0]
    ours = solve_ivp(decay, [0, 1], y0, method=method, rtol=1e-8, atol=1e-10, **structure)
    assert ours.success
    np.testing.assert_allclose(np.asarray(ours.y[:, -1]), np.exp(-1.0) * np.array([1.0, 2.0, 3.0]), rtol=1e-6)
    if method != "rodas4":
        theirs = scipy_solve_ivp(decay, [0, 1], [1.0, 2.0, 3.0], method=method, rtol=1e-8, atol=1e-10, **structure)
        assert ours.nfev == theirs.nfev


def test_solve_ivp_methods_and_inputs():
    from scipy.integrate import RK45

    with pytest.raises(sciode.ProblemError, match="DOP853.*nearest available is 'dopri5'"):
        solve_ivp(decay, [0, 1], [1.0], method="DOP853")
    with pytest.raises(sciode.ProblemError, match="OdeSolver classes"):
        solve_ivp(decay, [0, 1], [1.0], method=RK45)
    with pytest.raises(sciode.ProblemError, match="does not integrate complex states"):
        solve_ivp(decay, [0, 1], [1.0 + 1j], method="rodas4")
    with pytest.raises(sciode.ProblemError, match="y0 must be 1-dimensional"):
        solve_ivp(decay, [0, 1], [[1.0, 2.0]])
    with pytest.raises(sciode.ProblemError, match="args must be a tuple"):
        solve_ivp(decay, [0, 1], [1.0], args=2.0)
    with pytest.raises(sciode.ProblemError, match="t_eval values must lie within t_span"):
        solve_ivp(decay, [0, 1], [1.0], t_eval=[0.5, 2.0])
    with pytest.raises(sciode.ProblemError, match="t_eval values must be strictly increasing"):
        solve_ivp(decay, [0, 1], [1.0], t_eval=[0.5, 0.2])
    with pytest.raises(sciode.ProblemError, match=r"jac must return an \(1, 1\) matrix"):
        solve_ivp(decay, [0, 1], [1.0], method="rodas4", jac=lambda t, y: np.eye(2))
