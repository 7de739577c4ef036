"""sciode.compat.torchdiffeq against the real torchdiffeq: the same calls, the same answers."""
from __future__ import annotations

import math

import pytest
import torch

import sciode
from sciode.compat import torchdiffeq as front

torchdiffeq = pytest.importorskip("torchdiffeq")

A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)


def spiral(t, y):
    return y @ A


def exact_spiral(y0, t):
    return torch.stack([y0 @ torch.linalg.matrix_exp(A * float(ti - t[0])) for ti in t])


class Field(torch.nn.Module):
    """A small non-linear neural field, as in torchdiffeq's examples."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).to(dtype)

    def forward(self, t, y):
        return self.net(y ** 3) + 0.1 * torch.sin(t) * y


Y0 = torch.tensor([[2.0, 0.0], [0.5, 1.0]], dtype=torch.float64)
T = torch.linspace(0.0, 2.0, 21, dtype=torch.float64)


@pytest.mark.parametrize("t", [T, T.flip(0)], ids=["increasing", "decreasing"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dopri5_outputs_shapes_and_dtypes_match(t, dtype):
    y0, times = Y0.to(dtype), t.to(dtype)
    def f(s, y):
        return y @ A.to(dtype)

    ours, theirs = front.odeint(f, y0, times), torchdiffeq.odeint(f, y0, times)
    assert ours.shape == theirs.shape == (len(times), *y0.shape)
    assert ours.dtype == theirs.dtype == dtype
    exact = exact_spiral(Y0, t)
    # both are within their tolerance (rtol 1e-7) of the exact solution, so within that of each other
    tol = 1e-6 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(ours.double(), exact, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.double(), theirs.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "heun2"])
@pytest.mark.parametrize("options", [None, {"step_size": 0.01}], ids=["grid-is-t", "step_size"])
def test_fixed_grid_methods_take_the_same_steps(method, options):
    ours = front.odeint(spiral, Y0, T, method=method, options=options)
    theirs = torchdiffeq.odeint(spiral, Y0, T, method=method, options=options)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_fixed_grid_on_an_uneven_t_steps_on_t():
    t = torch.tensor([0.0, 0.1, 0.3, 0.35, 1.0], dtype=torch.float64)
    ours, theirs = front.odeint(spiral, Y0, t, method="euler"), torchdiffeq.odeint(spiral, Y0, t, method="euler")
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["bosh3", "dopri5"])
def test_adaptive_methods_agree_within_tolerance(method):
    exact = exact_spiral(Y0, T)
    for odeint in (front.odeint, torchdiffeq.odeint):
        out = odeint(spiral, Y0, T, method=method, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(out, exact, rtol=1e-5, atol=1e-5)  # torchdiffeq's bosh3 is the looser one


def test_tuple_state_round_trips_with_shapes():
    def oscillator(t, state):
        x, v = state
        return v, -x

    y0 = (torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([0.0, 0.2], dtype=torch.float64))
    ours, theirs = front.odeint(oscillator, y0, T), torchdiffeq.odeint(oscillator, y0, T)
    assert isinstance(ours, tuple) and len(ours) == 2
    for a, b, start in zip(ours, theirs, y0):
        assert a.shape == b.shape == (len(T), *start.shape)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[0], y0[0] * torch.cos(T)[:, None] + y0[1] * torch.sin(T)[:, None],
                               rtol=1e-6, atol=1e-6)


def test_tuple_state_of_different_shapes_and_gradients():
    w = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def field(t, state):
        a, b = state
        return -w * a, a.sum() * torch.ones_like(b)

    y0 = (torch.ones(3, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64))
    grads = []
    for odeint in (front.odeint, torchdiffeq.odeint):
        a, b = odeint(field, y0, T, rtol=1e-10, atol=1e-10)
        assert a.shape == (len(T), 3) and b.shape == (len(T), 2, 2)
        grads.append(torch.autograd.grad(b[-1].sum(), w)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def _gradients(odeint, func, y0, t, **kwargs):
    y0 = y0.clone().requires_grad_(True)
    out = odeint(func, y0, t, **kwargs)
    loss = (out ** 2).sum() + out[len(t) // 2].sum()
    return torch.autograd.grad(loss, [y0, *func.parameters()])


@pytest.mark.parametrize("t", [T, T.flip(0)], ids=["increasing", "decreasing"])
def test_odeint_adjoint_gradients_equal_torchdiffeq(t):
    """Both solve the same continuous adjoint at rtol = atol = 1e-10: equal to 1e-6 (relative to the gradient)."""
    func = Field()
    kwargs = dict(rtol=1e-10, atol=1e-10)
    ours = _gradients(front.odeint_adjoint, func, Y0, t, **kwargs)
    theirs = _gradients(torchdiffeq.odeint_adjoint, func, Y0, t, **kwargs)
    scale = max(float(g.abs().max()) for g in theirs)
    assert scale > 1.0  # a gradient worth comparing
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * scale)


def test_odeint_gradients_match_odeint_adjoint_and_torchdiffeq():
    func = Field()
    ours = _gradients(front.odeint, func, Y0, T, rtol=1e-10, atol=1e-10)
    theirs = _gradients(torchdiffeq.odeint, func, Y0, T, rtol=1e-10, atol=1e-10)
    scale = max(float(g.abs().max()) for g in theirs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * scale)


def test_adjoint_params_are_the_tensors_that_get_gradients():
    """A plain function closing over w: adjoint_params=(w,) reaches it; a tensor left out gets none."""
    w = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    v = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def decay(t, y):
        return -w * y + v

    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    results = []
    for odeint_adjoint in (front.odeint_adjoint, torchdiffeq.odeint_adjoint):
        out = odeint_adjoint(decay, y0, T, adjoint_params=(w,), rtol=1e-10, atol=1e-10)
        results.append(torch.autograd.grad(out.sum(), [y0, w, v], allow_unused=True))
    for a, b in zip(results[0][:2], results[1][:2]):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    assert results[0][2] is None and results[1][2] is None
    exact = torch.autograd.grad(front.odeint(decay, y0, T, rtol=1e-10, atol=1e-10).sum(), w)[0]
    torch.testing.assert_close(results[0][1], exact, rtol=1e-7, atol=1e-9)


def test_adjoint_seminorm_and_a_different_adjoint_method():
    func = Field()
    reference = _gradients(torchdiffeq.odeint_adjoint, func, Y0, T, rtol=1e-10, atol=1e-10)
    semi = _gradients(front.odeint_adjoint, func, Y0, T, rtol=1e-10, atol=1e-10,
                      adjoint_options={"norm": "seminorm"})
    other = _gradients(front.odeint_adjoint, func, Y0, T, rtol=1e-10, atol=1e-10, adjoint_method="tsit5")
    scale = max(float(g.abs().max()) for g in reference)
    for grads in (semi, other):
        for a, b in zip(grads, reference):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * scale)


def test_per_element_atol_and_tuple_tolerances_match_torchdiffeq():
    """A slow decay held to atol 1e-10 beside a small fast oscillation left at atol 1e-2."""
    def field(t, y):
        return torch.stack([-y[0], 10 * y[2], -10 * y[1]])

    y0 = torch.tensor([1.0, 1e-3, 0.0], dtype=torch.float64)
    t = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    atol = torch.tensor([1e-10, 1e-2, 1e-2], dtype=torch.float64)
    ours = front.odeint(field, y0, t, rtol=1e-8, atol=atol)
    theirs = torchdiffeq.odeint(field, y0, t, rtol=1e-8, atol=atol)
    error = (ours - torchdiffeq.odeint(field, y0, t, rtol=1e-12, atol=1e-14)).abs().max(0).values
    assert float(error[0]) < 1e-8  # a scalar atol of 1e-2 misses this (2e-5)
    assert float(error[1:].min()) > 1e-7  # a scalar atol of 1e-10 controls the oscillation too (1e-9)
    torch.testing.assert_close(ours, theirs, rtol=0.0, atol=5e-5)

    def pair(t, state):
        return state[1], -state[0]

    y0 = (torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    ours = front.odeint(pair, y0, T, rtol=(1e-8, 1e-8), atol=(1e-10, 1e-4))
    theirs = torchdiffeq.odeint(pair, y0, T, rtol=(1e-8, 1e-8), atol=(1e-10, 1e-4))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_options_that_map():
    calls = []

    def norm(x):
        calls.append(x.shape)
        return x.abs().max()

    options = dict(first_step=1e-3, max_num_steps=10_000, norm=norm, safety=0.8, ifactor=5.0, dfactor=0.3,
                   dtype=torch.float64)
    ours = front.odeint(spiral, Y0, T, options=options)
    theirs = torchdiffeq.odeint(spiral, Y0, T, options=options)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    assert calls and all(s == Y0.shape for s in calls)  # the norm sees the state's shape


def test_sciode_solver_names_work_as_methods():
    exact = exact_spiral(Y0, T)
    for method in ("tsit5", "rodas4"):
        out = front.odeint(spiral, Y0, T, method=method, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(out, exact, rtol=1e-6, atol=1e-6)


def test_a_single_time_returns_y0():
    out = front.odeint(spiral, Y0, T[:1])
    assert torch.equal(out, torchdiffeq.odeint(spiral, Y0, T[:1]))


def test_failure_raises_as_torchdiffeq_does():
    def blow_up(t, y):
        return y ** 2

    y0 = torch.ones(1, dtype=torch.float64)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)  # blows up at t = 1
    with pytest.raises(AssertionError):
        torchdiffeq.odeint(blow_up, y0, t)
    with pytest.raises(front.SolveFailedError, match="DT_TOO_SMALL|UNSTABLE") as info:
        front.odeint(blow_up, y0, t)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, sciode.SciodeError)
    with pytest.raises(front.SolveFailedError, match="MAX_STEPS"):
        front.odeint(spiral, Y0, T, options={"max_num_steps": 3})


def test_per_element_rtol_matches_torchdiffeq():
    rtol = torch.tensor([1e-10, 1e-4, 1e-10, 1e-4], dtype=torch.float64)
    y0 = Y0.reshape(-1)

    def field(t, y):
        return (y.reshape(2, 2) @ A).reshape(-1)

    ours = front.odeint(field, y0, T, rtol=rtol, atol=1e-12)
    theirs = torchdiffeq.odeint(field, y0, T, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_step_bounds_and_step_times_match_torchdiffeq():
    """max_step bounds the steps, step_t forces steps onto given times: the same answers either way."""
    steps = []

    def field(t, y):
        steps.append(float(t))
        return y @ A

    stops = torch.tensor([0.37, 1.41], dtype=torch.float64)
    options = dict(max_step=0.05, min_step=1e-6, step_t=stops)
    theirs = torchdiffeq.odeint(field, Y0, T, options=options)
    steps.clear()
    ours = front.odeint(field, Y0, T, options=options)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    starts = sorted(set(steps))
    assert all(b - a <= 0.05 + 1e-12 for a, b in zip(starts, starts[1:]) if b - a > 1e-9) or len(starts) > 40
    assert any(abs(s - 0.37) < 1e-12 for s in steps) and any(abs(s - 1.41) < 1e-12 for s in steps)


def _falling_ball(g):
    def field(t, state):
        x, v = state
        return v, -g * torch.ones_like(x)

    def ground(t, state):
        return state[0]

    return field, ground


@pytest.mark.parametrize("interface", ["odeint", "odeint_adjoint"])
def test_odeint_event_time_state_and_gradients_equal_torchdiffeq(interface):
    """A ball dropped from x0 lands at t* = sqrt(2 x0 / g): both fronts find it and differentiate it."""
    results = []
    for lib in (front, torchdiffeq):
        g = torch.tensor(9.8, dtype=torch.float64, requires_grad=True)
        x0 = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        field, ground = _falling_ball(g)
        kwargs = {} if interface == "odeint" else {"adjoint_params": (g,)}
        t_event, (x, v) = lib.odeint_event(field, (x0, torch.zeros(1, dtype=torch.float64)),
                                           torch.tensor(0.0, dtype=torch.float64), event_fn=ground,
                                           odeint_interface=getattr(lib, interface), rtol=1e-10, atol=1e-12,
                                           **kwargs)
        assert x.shape == v.shape == (2, 1)
        grads = torch.autograd.grad(t_event + 0.1 * v[-1].sum(), [x0, g])
        results.append((t_event.detach(), v[-1].detach(), *grads))
    exact = math.sqrt(2 * 1.0 / 9.8)
    assert abs(float(results[0][0]) - exact) < 1e-10
    assert abs(float(results[1][0]) - exact) < 1e-8  # torchdiffeq bisects the event time to atol in t
    for a, b in zip(results[0], results[1]):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8)
    dt_dx0 = 1.0 / math.sqrt(2 * 1.0 * 9.8)  # d/dx0 sqrt(2 x0 / g); v(t*) = -sqrt(2 g x0)
    torch.testing.assert_close(results[0][2], torch.tensor([dt_dx0 - 0.1 * math.sqrt(9.8 / 2.0)],
                                                           dtype=torch.float64), rtol=1e-7, atol=1e-9)


def test_reverse_time_events_and_several_event_outputs():
    """y' = -y from 1: backwards in time it grows to 2 at t = -log 2; of two outputs, the first to cross wins."""
    def field(t, y):
        return -y

    def events(t, y):
        return torch.stack([y[0] - 2.0, y[0] - 3.0])

    y0 = torch.ones(1, dtype=torch.float64)
    t0 = torch.tensor(0.0, dtype=torch.float64)
    for lib in (front, torchdiffeq):
        t_event, y = lib.odeint_event(field, y0, t0, event_fn=events, reverse_time=True, rtol=1e-10, atol=1e-12)
        assert abs(float(t_event) + math.log(2.0)) < 1e-8 and y.shape == (2, 1)
        torch.testing.assert_close(y[-1], torch.tensor([2.0], dtype=torch.float64), rtol=1e-7, atol=1e-7)
    t_event, y = front.odeint(field, y0, torch.tensor([0.0, 1.0], dtype=torch.float64),
                              event_fn=lambda t, y: y[0] - 0.5)
    assert abs(float(t_event) - math.log(2.0)) < 1e-6


def test_fixed_step_events_with_step_size():
    def field(t, y):
        return -y

    def half(t, y):
        return y[0] - 0.5

    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ours = front.odeint(field, torch.ones(1, dtype=torch.float64), t, method="rk4", options={"step_size": 0.01},
                        event_fn=half)
    theirs = torchdiffeq.odeint(field, torch.ones(1, dtype=torch.float64), t, method="rk4",
                                options={"step_size": 0.01}, event_fn=half)
    assert abs(float(ours[0]) - math.log(2.0)) < 1e-8  # rk4's continuous extension
    assert abs(float(ours[0]) - float(theirs[0])) < 1e-4  # torchdiffeq interpolates linearly within the step


def test_jump_t_resolves_a_discontinuity_like_torchdiffeq():
    """y' = -y before t = 1 and +1 after: with the jump announced, both land on it and restart."""
    def field(t, y):
        return torch.where(t < 1.0, -y, torch.ones_like(y))

    y0 = torch.ones(1, dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    options = {"jump_t": torch.tensor([1.0], dtype=torch.float64)}
    ours = front.odeint(field, y0, t, rtol=1e-9, atol=1e-12, options=options)
    theirs = torchdiffeq.odeint(field, y0, t, rtol=1e-9, atol=1e-12, options=options)
    exact = torch.tensor([[1.0], [math.exp(-0.5)], [math.exp(-1.0)], [math.exp(-1.0) + 1.0]], dtype=torch.float64)
    torch.testing.assert_close(ours, exact, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-8)


def test_complex_states_and_their_gradients_match_torchdiffeq():
    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def rotate(t, y):
        return 1j * w * y

    y0 = torch.tensor([1.0 + 0.5j, 2.0], dtype=torch.complex128)
    results = []
    for odeint in (front.odeint, torchdiffeq.odeint):
        out = odeint(rotate, y0, T, rtol=1e-10, atol=1e-12)
        assert out.dtype == torch.complex128 and out.shape == (len(T), 2)
        results.append((out.detach(), torch.autograd.grad(out.real.sum(), w)[0]))
    torch.testing.assert_close(results[0][0], y0 * torch.exp(0.3j * T)[:, None], rtol=1e-8, atol=1e-9)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8)
