"""sciode.compat.scipy.solve_ivp against scipy.integrate.solve_ivp on scipy's documented examples."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp as scipy_solve_ivp

import sciode
from sciode.compat.scipy import solve_ivp


def exponential_decay(t, y):
    return -0.5 * y


def lotkavolterra(t, z, a, b, c, d):
    x, y = z
    return [a * x - b * x * y, -c * y + d * x * y]


LV = dict(t_span=[0, 15], y0=[10, 5], args=(1.5, 1, 3, 1))


def robertson(t, y):
    y1, y2, y3 = y
    return [-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 ** 2, 3e7 * y2 ** 2]


def robertson_jac(t, y):
    y1, y2, y3 = y
    return [[-0.04, 1e4 * y3, 1e4 * y2], [0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2], [0.0, 6e7 * y2, 0.0]]


def test_exponential_decay_takes_scipys_steps():
    """Same method (Dormand-Prince), same error norm, same step rule: the same accepted steps."""
    ours = solve_ivp(exponential_decay, [0, 10], [2, 4, 8])
    theirs = scipy_solve_ivp(exponential_decay, [0, 10], [2, 4, 8])
    assert isinstance(ours.t, np.ndarray) and isinstance(ours.y, np.ndarray)
    assert ours.y.shape == theirs.y.shape == (3, len(theirs.t))
    np.testing.assert_allclose(ours.t, theirs.t, rtol=1e-8)
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-8)
    assert (ours.status, ours.success, ours.sol) == (theirs.status, theirs.success, theirs.sol) == (0, True, None)
    assert ours.nfev == theirs.nfev and ours.njev == theirs.njev == 0 and ours.nlu == theirs.nlu == 0
    assert ours.t_events is None and ours.y_events is None
    assert ours.message == theirs.message


def test_exponential_decay_at_t_eval():
    t_eval = [0, 1, 2, 4, 10]
    ours = solve_ivp(exponential_decay, [0, 10], [2, 4, 8], t_eval=t_eval)
    theirs = scipy_solve_ivp(exponential_decay, [0, 10], [2, 4, 8], t_eval=t_eval)
    np.testing.assert_array_equal(ours.t, theirs.t)
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-8)
    exact = np.array([2.0, 4.0, 8.0])[:, None] * np.exp(-0.5 * np.asarray(t_eval, dtype=float))
    np.testing.assert_allclose(ours.y, exact, rtol=1e-2)  # scipy's own error at rtol=1e-3 is 2e-3 at t = 10


def test_lotka_volterra_dense_output():
    t = np.linspace(0, 15, 300)
    ours = solve_ivp(lotkavolterra, **LV, dense_output=True, rtol=1e-8, atol=1e-10)
    theirs = scipy_solve_ivp(lotkavolterra, **LV, dense_output=True, rtol=1e-8, atol=1e-10)
    reference = scipy_solve_ivp(lotkavolterra, **LV, dense_output=True, rtol=1e-12, atol=1e-12).sol(t)
    z = ours.sol(t)
    assert z.shape == (2, 300) and ours.sol(3.0).shape == (2,)
    np.testing.assert_allclose(z, reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z, theirs.sol(t), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.sol(ours.t), ours.y, rtol=1e-12, atol=1e-12)
    assert ours.status == theirs.status == 0


@pytest.mark.parametrize("method", ["RK23", "Radau", "BDF", "LSODA"])
def test_other_methods_on_lotka_volterra(method):
    t = np.linspace(0, 15, 50)
    ours = solve_ivp(lotkavolterra, **LV, method=method, t_eval=t, rtol=1e-7, atol=1e-9)
    theirs = scipy_solve_ivp(lotkavolterra, **LV, method=method, t_eval=t, rtol=1e-7, atol=1e-9)
    if method == "RK23":
        reference = scipy_solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=1e-12, atol=1e-12).y
        np.testing.assert_allclose(ours.y, reference, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-4, atol=1e-4)
    else:  # scipy's own integrator behind sciode's scipy_* solvers: the very same numbers and counts
        np.testing.assert_array_equal(ours.y, theirs.y)
        assert (ours.nfev, ours.njev, ours.nlu) == (theirs.nfev, theirs.njev, theirs.nlu)


@pytest.mark.parametrize("method", ["Radau", "rodas4"])
def test_stiff_robertson_with_jac(method):
    t = np.logspace(-5, 5, 11)
    ours = solve_ivp(robertson, [0, 1e5], [1, 0, 0], method=method, jac=robertson_jac, t_eval=t, rtol=1e-6, atol=1e-10)
    theirs = scipy_solve_ivp(robertson, [0, 1e5], [1, 0, 0], method="Radau", jac=robertson_jac, t_eval=t,
                             rtol=1e-6, atol=1e-10)
    assert ours.success and ours.njev > 0
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-4, atol=1e-8)


def test_per_element_atol_matches_scipy():
    """A loose atol on the predator: the same error control as scipy's, so about the same work and error.

    The step sequences part after the first rejected step: scipy does not let the step grow
    right after a rejection, sciode's controller does not keep that memory.
    """
    t = np.linspace(0, 15, 50)
    reference = scipy_solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=1e-12, atol=1e-12).y
    ours = solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=1e-6, atol=[1e-9, 1e-2])
    theirs = scipy_solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=1e-6, atol=[1e-9, 1e-2])
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-4, atol=1e-4)
    assert abs(ours.nfev - theirs.nfev) <= 0.05 * theirs.nfev
    assert ours.nfev < solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=1e-6, atol=1e-9).nfev  # the loose atol counts
    error_ours, error_theirs = np.abs(ours.y - reference).max(), np.abs(theirs.y - reference).max()
    assert 0.2 < error_ours / error_theirs < 5.0


def test_first_step_and_max_step():
    ours = solve_ivp(lotkavolterra, **LV, method="LSODA", first_step=1e-3, max_step=0.1)
    theirs = scipy_solve_ivp(lotkavolterra, **LV, method="LSODA", first_step=1e-3, max_step=0.1)
    np.testing.assert_array_equal(ours.t, theirs.t)
    assert np.diff(ours.t).max() <= 0.1 + 1e-12
    ours = solve_ivp(exponential_decay, [0, 10], [2, 4, 8], first_step=1e-3)
    theirs = scipy_solve_ivp(exponential_decay, [0, 10], [2, 4, 8], first_step=1e-3)
    np.testing.assert_allclose(ours.t[:3], theirs.t[:3], rtol=1e-10)


def test_backwards_in_time():
    ours = solve_ivp(exponential_decay, [10, 0], [2, 4, 8], t_eval=[10, 5, 0])
    theirs = scipy_solve_ivp(exponential_decay, [10, 0], [2, 4, 8], t_eval=[10, 5, 0])
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-6)


def test_failure_returns_status_minus_one():
    def blow_up(t, y):
        return y ** 2

    ours, theirs = solve_ivp(blow_up, [0, 2], [1.0]), scipy_solve_ivp(blow_up, [0, 2], [1.0])
    assert ours.status == theirs.status == -1
    assert ours.success is theirs.success is False
    assert "DT_TOO_SMALL" in ours.message or "UNSTABLE" in ours.message
    assert 0.9 < ours.t[-1] < 1.0 + 1e-6 and ours.y.shape == (1, len(ours.t))


def test_torch_in_torch_out_with_gradients():
    k = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([2.0, 4.0, 8.0], dtype=torch.float64, requires_grad=True)
    t_eval = torch.tensor([0.0, 1.0, 2.0, 4.0, 10.0], dtype=torch.float64)
    result = solve_ivp(lambda t, y: -k * y, [0, 10], y0, t_eval=t_eval, rtol=1e-10, atol=1e-12)
    assert isinstance(result.y, torch.Tensor) and result.y.shape == (3, 5) and result.y.requires_grad
    torch.testing.assert_close(result.y, y0.detach()[:, None] * torch.exp(-0.5 * t_eval), rtol=1e-8, atol=1e-10)
    gy0, gk = torch.autograd.grad(result.y[:, -1].sum(), [y0, k])
    torch.testing.assert_close(gy0, torch.full((3,), np.exp(-5.0), dtype=torch.float64), rtol=1e-7, atol=0.0)
    torch.testing.assert_close(gk, torch.tensor(-10.0 * 14.0 * np.exp(-5.0), dtype=torch.float64), rtol=1e-7, atol=0.0)


def test_numpy_fun_with_an_autodiff_jacobian_is_a_clear_error():
    with pytest.raises(sciode.ProblemError, match="jac="):
        solve_ivp(robertson, [0, 1.0], [1, 0, 0], method="rodas4")


def test_jac_with_an_explicit_method_warns_as_scipy_does():
    with pytest.warns(UserWarning, match="jac"):
        scipy_solve_ivp(exponential_decay, [0, 1], [1.0], jac=[[-0.5]])
    with pytest.warns(UserWarning, match="jac"):
        solve_ivp(exponential_decay, [0, 1], [1.0], jac=[[-0.5]])


def upward_cannon(t, y):
    return [y[1], -0.5]


def hit_ground(t, y):
    return y[0]


hit_ground.terminal = True
hit_ground.direction = -1


def apex(t, y):
    return y[1]


@pytest.mark.parametrize("events", [hit_ground, (hit_ground, apex)], ids=["hit_ground", "hit_ground+apex"])
def test_cannon_ball_events(events):
    """scipy's documented example: fired upwards at 10, falling at 0.5; apex at t = 20, ground at t = 40."""
    ours = solve_ivp(upward_cannon, [0, 100], [0, 10], events=events, dense_output=True)
    theirs = scipy_solve_ivp(upward_cannon, [0, 100], [0, 10], events=events, dense_output=True)
    assert ours.status == theirs.status == 1 and ours.success and ours.message == theirs.message
    assert len(ours.t_events) == len(theirs.t_events)
    for a, b, exact in zip(ours.t_events, theirs.t_events, [40.0, 20.0]):
        np.testing.assert_allclose(a, b, rtol=1e-10)
        np.testing.assert_allclose(a, [exact], rtol=1e-12)
    for a, b in zip(ours.y_events, theirs.y_events):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    assert ours.t[-1] == pytest.approx(40.0, rel=1e-12) and ours.y[0, -1] == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(ours.sol(np.array([10.0, 30.0])), theirs.sol(np.array([10.0, 30.0])), rtol=1e-10)


def test_terminal_event_with_t_eval_keeps_the_times_before_it():
    t_eval = [0, 10, 20, 30, 45, 60]
    ours = solve_ivp(upward_cannon, [0, 100], [0, 10], events=hit_ground, t_eval=t_eval)
    theirs = scipy_solve_ivp(upward_cannon, [0, 100], [0, 10], events=hit_ground, t_eval=t_eval)
    np.testing.assert_array_equal(ours.t, theirs.t)  # [0, 10, 20, 30]: 45 and 60 lie past the landing
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-10, atol=1e-10)
    assert ours.status == theirs.status == 1


def test_non_terminal_events_count_every_crossing_in_the_asked_direction():
    def oscillator(t, y):
        return [y[1], -y[0]]

    def upward(t, y):
        return y[0]

    upward.direction = 1

    def either(t, y):
        return y[0]

    def twice(t, y):
        return y[1] - 0.25

    twice.terminal = 2
    span, y0 = [0, 20], [0.5, 0.0]
    ours = solve_ivp(oscillator, span, y0, events=[upward, either, twice], rtol=1e-10, atol=1e-12)
    theirs = scipy_solve_ivp(oscillator, span, y0, events=[upward, either, twice], rtol=1e-10, atol=1e-12)
    assert ours.status == theirs.status == 1  # twice: the second time y' = 0.25 (t = 11 pi / 6) ends it
    for a, b in zip(ours.t_events, theirs.t_events):
        np.testing.assert_allclose(a, b, rtol=1e-8)
    # y = 0.5 cos t: zeros at pi/2 (falling) and 3 pi/2 (rising); y' = -0.5 sin t = 0.25 at 7 pi/6, 11 pi/6
    np.testing.assert_allclose(ours.t_events[0], [1.5 * np.pi], rtol=1e-9)
    np.testing.assert_allclose(ours.t_events[1], [0.5 * np.pi, 1.5 * np.pi], rtol=1e-9)
    np.testing.assert_allclose(ours.t_events[2], [7 * np.pi / 6, 11 * np.pi / 6], rtol=1e-9)


def test_events_in_torch_give_event_time_gradients():
    """Fired upwards at v0 under g = 0.5, the ball lands at t* = 4 v0: dt*/dv0 = 4."""
    v0 = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    y0 = torch.stack([torch.zeros((), dtype=torch.float64), v0])
    result = solve_ivp(lambda t, y: torch.stack([y[1], torch.full_like(y[0], -0.5)]), [0, 100], y0,
                       events=hit_ground, rtol=1e-10, atol=1e-12)
    (t_land,) = result.t_events
    assert isinstance(t_land, torch.Tensor) and result.status == 1
    torch.testing.assert_close(t_land, torch.tensor([40.0], dtype=torch.float64), rtol=1e-10, atol=0.0)
    (grad,) = torch.autograd.grad(t_land.sum(), v0)
    torch.testing.assert_close(grad, torch.tensor(4.0, dtype=torch.float64), rtol=1e-8, atol=0.0)


def test_max_step_with_sciodes_own_solvers():
    ours = solve_ivp(lotkavolterra, **LV, max_step=0.05)
    theirs = scipy_solve_ivp(lotkavolterra, **LV, max_step=0.05)
    assert np.diff(ours.t).max() <= 0.05 * (1 + 1e-12)
    assert abs(len(ours.t) - len(theirs.t)) <= 0.05 * len(theirs.t)


def test_per_element_rtol_matches_scipy():
    t = np.linspace(0, 15, 50)
    ours = solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=[1e-9, 1e-4], atol=1e-12)
    theirs = scipy_solve_ivp(lotkavolterra, **LV, t_eval=t, rtol=[1e-9, 1e-4], atol=1e-12)
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-5, atol=1e-5)


def test_complex_state_matches_scipy():
    def rotate(t, y):
        return 1j * y

    t_eval = np.linspace(0, 5, 11)
    kwargs = dict(t_eval=t_eval, dense_output=True, rtol=1e-9, atol=1e-12)
    ours = solve_ivp(rotate, [0, 5], [1.0 + 0.5j, 2.0], **kwargs)
    theirs = scipy_solve_ivp(rotate, [0, 5], [1.0 + 0.5j, 2.0], **kwargs)
    assert ours.y.dtype == theirs.y.dtype == np.complex128 and ours.status == theirs.status == 0
    exact = np.array([1.0 + 0.5j, 2.0])[:, None] * np.exp(1j * t_eval)
    np.testing.assert_allclose(ours.y, exact, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours.sol(2.0), theirs.sol(2.0), rtol=1e-7, atol=1e-8)
