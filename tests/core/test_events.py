"""Events (issue 11): event times against closed forms, direction and terminal counts, batches, every solver family.

Layout pinned here (one helper, ``member_times``): ``sol.events[name].t`` has shape
``(K, *batch)`` (occurrences first, as ``sol.t`` comes first in ``sol.u``),
``.u`` has shape ``(K, *batch, n)``, both NaN past a member's ``.count`` (an integer
tensor of shape ``batch``). ``direction`` is the sign change of the condition in the
order the solve meets it (+1: negative to positive), backwards solves included.
"""
import math

import numpy as np
import pytest
import scipy.integrate
import torch

import sciode
from sciode import ReturnCode

G = 9.81
F64 = torch.float64


def member_times(event, member=()):
    """The times of one member's occurrences (the NaN padding cut off)."""
    n = int(event.count[member])
    return event.t[(slice(None), *member)][:n]


def fall(u, p, t):
    """Free fall, state [height, velocity]."""
    return torch.stack([u[..., 1], torch.full_like(u[..., 0], -G)], -1)


def height(u, p, t):
    return u[..., 0]


def oscillator(u, p, t):
    """x'' = -w^2 x with w = p (a scalar, or one value per member); state [x, v]."""
    return torch.stack([u[..., 1], -(p * p) * u[..., 0]], -1)


def position(u, p, t):
    return u[..., 0]


def decay(u, p, t):
    return -p * u


def below_half(u, p, t):
    return u[..., 0] - 0.5


TIGHT = dict(rtol=1e-10, atol=1e-12)


def ground(terminal=True):
    return sciode.Event(height, terminal=terminal, direction=-1, name="ground")


def test_bouncing_ball_bounce_times_with_restarts():
    h, e = 10.0, 0.8
    t_first = math.sqrt(2 * h / G)
    prob = sciode.ODEProblem(fall, torch.tensor([h, 0.0], dtype=F64), (0.0, 60.0))
    for bounce in range(6):
        sol = sciode.solve(prob, "tsit5", events=ground(), **TIGHT)
        assert sol.retcode is ReturnCode.TERMINATED, sol.message
        event = sol.events["ground"]
        assert int(event.count) == 1
        t_hit, u_hit = float(event.t[0]), event.u[0]
        expected = t_first * (1 + 2 * sum(e ** j for j in range(1, bounce + 1)))
        assert t_hit == pytest.approx(expected, rel=1e-10, abs=0)
        assert float(u_hit[1]) == pytest.approx(-G * t_first * e ** bounce, rel=1e-10)
        assert abs(float(u_hit[0])) <= 1e-10 * h
        prob = sciode.remake(prob, u0=torch.stack([torch.zeros((), dtype=F64), -e * u_hit[1]]), tspan=(t_hit, 60.0))


@pytest.mark.parametrize("direction, expected_k", [(-1, [0, 2, 4]), (1, [1, 3, 5]), (0, [0, 1, 2, 3, 4, 5])])
def test_oscillator_zero_crossings_by_direction(direction, expected_k):
    w = 2.0
    prob = sciode.ODEProblem(oscillator, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 3 * math.pi),
                             torch.tensor(w, dtype=F64))
    event = sciode.Event(position, direction=direction, name="zero")
    sol = sciode.solve(prob, "tsit5", events=event, rtol=1e-12, atol=1e-14)
    assert sol.retcode is ReturnCode.SUCCESS  # non-terminal events only record
    assert float(sol.t[-1]) == 3 * math.pi
    times = sol.events["zero"]
    assert int(times.count) == len(expected_k)
    expected = torch.tensor([(k + 0.5) * math.pi / w for k in expected_k], dtype=F64)
    torch.testing.assert_close(member_times(times), expected, rtol=1e-9, atol=0)
    # each recorded state lies on the root of the condition, to the root finder's accuracy
    assert times.u.shape == (len(expected_k), 2)
    assert float(times.u[:, 0].abs().max()) <= 1e-10


def test_exponential_decay_threshold_is_terminal():
    k = 1.3
    prob = sciode.ODEProblem(decay, torch.ones(1, dtype=F64), (0.0, 5.0), torch.tensor(k, dtype=F64))
    half = sciode.Event(below_half, terminal=True, name="half")
    sol = sciode.solve(prob, "tsit5", events=half, rtol=1e-12, atol=1e-14)
    t_star = math.log(2.0) / k
    assert sol.retcode is ReturnCode.TERMINATED
    assert "half" in sol.message
    assert float(sol.events["half"].t[0]) == pytest.approx(t_star, rel=1e-10)
    assert float(sol.t[-1]) == pytest.approx(t_star, rel=1e-10)
    assert float(sol.u[-1, 0]) == pytest.approx(0.5, abs=1e-12)
    assert torch.equal(sol.u[-1], sol.events["half"].u[0])


@pytest.mark.parametrize("terminal, direction, stop_k", [(3, 0, 2), (2, 1, 3), (True, -1, 0), (1, 0, 0)])
def test_terminal_k_stops_after_the_kth_occurrence(terminal, direction, stop_k):
    w = 2.0
    prob = sciode.ODEProblem(oscillator, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 10.0), torch.tensor(w, dtype=F64))
    event = sciode.Event(position, terminal=terminal, direction=direction, name="zero")
    sol = sciode.solve(prob, "tsit5", events=event, rtol=1e-12, atol=1e-14)
    t_stop = (stop_k + 0.5) * math.pi / w
    assert sol.retcode is ReturnCode.TERMINATED
    assert int(sol.events["zero"].count) == (1 if terminal is True else terminal)
    assert float(sol.t[-1]) == pytest.approx(t_stop, rel=1e-9)
    assert float(member_times(sol.events["zero"])[-1]) == pytest.approx(t_stop, rel=1e-9)


def test_per_member_terminal_events_each_member_its_own_time():
    k = torch.linspace(0.1, 5.0, 64, dtype=F64)[:, None]
    prob = sciode.ODEProblem(decay, torch.ones(64, 1, dtype=F64), (0.0, 3.0), k)
    saveat = torch.linspace(0.0, 3.0, 31, dtype=F64)
    event = sciode.Event(below_half, terminal=True, name="half")
    sol = sciode.solve(prob, "tsit5", events=event, stepping="per_member", saveat=saveat, rtol=1e-12, atol=1e-14)
    t_star = math.log(2.0) / k[:, 0]
    reaches = t_star < 3.0
    assert 0 < int(reaches.sum()) < 64  # some members stop early, the others run to t1
    counts = sol.events["half"].count
    assert counts.shape == (64,)
    assert torch.equal(counts.to(torch.int64), reaches.to(torch.int64))
    torch.testing.assert_close(sol.events["half"].t[0, reaches], t_star[reaches], rtol=1e-10, atol=0)
    assert bool(torch.isnan(sol.events["half"].t[0, ~reaches]).all())
    for i in range(64):
        expected = ReturnCode.TERMINATED if bool(reaches[i]) else ReturnCode.SUCCESS
        assert sol.member_retcode(i) is expected
    # saved values up to each member's event are right; past it there is nothing (NaN)
    before = saveat[:, None] <= t_star[None, :]
    exact = torch.exp(-k[None, :, 0] * saveat[:, None])
    torch.testing.assert_close(sol.u[..., 0][before], exact[before], rtol=1e-8, atol=1e-12)
    assert bool(torch.isnan(sol.u[..., 0][~before]).all())


def test_per_member_bounce_in_batch_of_64_heights():
    heights = torch.linspace(1.0, 30.0, 64, dtype=F64)
    u0 = torch.stack([heights, torch.zeros_like(heights)], -1)
    prob = sciode.ODEProblem(fall, u0, (0.0, 5.0))
    sol = sciode.solve(prob, "tsit5", events=ground(), stepping="per_member", **TIGHT)
    expected = torch.sqrt(2 * heights / G)
    assert bool((sol.events["ground"].count == 1).all())
    torch.testing.assert_close(sol.events["ground"].t[0], expected, rtol=1e-10, atol=0)
    assert all(sol.member_retcode(i) is ReturnCode.TERMINATED for i in range(64))


def test_shared_stepping_terminal_stops_the_batch_at_the_earliest_root():
    heights = torch.tensor([7.0, 3.0, 12.0, 5.0], dtype=F64)
    u0 = torch.stack([heights, torch.zeros_like(heights)], -1)
    sol = sciode.solve(sciode.ODEProblem(fall, u0, (0.0, 5.0)), "tsit5", events=ground(), **TIGHT)
    t_first = math.sqrt(2 * 3.0 / G)
    assert sol.retcode is ReturnCode.TERMINATED
    assert float(sol.t[-1]) == pytest.approx(t_first, rel=1e-10)
    assert float(sol.t.max()) <= t_first * (1 + 1e-12)
    event = sol.events["ground"]
    assert event.count.tolist() == [0, 1, 0, 0]
    assert float(event.t[0, 1]) == pytest.approx(t_first, rel=1e-10)
    assert bool(torch.isnan(event.t[0, [0, 2, 3]]).all())
    torch.testing.assert_close(sol.u[-1, :, 0], heights - 3.0, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("direction, fires", [(1, True), (-1, False), (0, True)])
def test_backwards_in_time(direction, fires):
    # u(t) = exp(2 - t) from t = 2 down to 0: u - 3 goes from negative to positive as the solve proceeds
    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1, dtype=F64), (2.0, 0.0))
    event = sciode.Event(lambda u, p, t: u[..., 0] - 3.0, direction=direction, terminal=True, name="three")
    sol = sciode.solve(prob, "tsit5", events=event, rtol=1e-12, atol=1e-14)
    if fires:
        assert sol.retcode is ReturnCode.TERMINATED
        assert float(sol.events["three"].t[0]) == pytest.approx(2.0 - math.log(3.0), rel=1e-10)
        assert float(sol.t.min()) >= (2.0 - math.log(3.0)) * (1 - 1e-12)
    else:
        assert sol.retcode is ReturnCode.SUCCESS
        assert int(sol.events["three"].count) == 0 and float(sol.t[-1]) == 0.0


# solver -> (solve options, relative accuracy of the first bounce time); free fall is a
# quadratic in t, which every method here of order >= 2 integrates (and interpolates) exactly
FIRST_ORDER_SOLVERS = {
    "tsit5": (TIGHT, 1e-10), "dopri5": (TIGHT, 1e-10), "bosh3": (TIGHT, 1e-10),
    "rk4": (dict(dt=0.1), 1e-10), "heun": (dict(dt=0.1), 1e-10), "midpoint": (dict(dt=0.1), 1e-10),
    "trapezoid": (dict(rtol=1e-8, atol=1e-10), 1e-10), "rodas4": (TIGHT, 1e-10), "rodas4p": (TIGHT, 1e-10),
    "implicit_euler": (dict(rtol=1e-6, atol=1e-8), 2e-3),
}


@pytest.mark.parametrize("solver", sorted(FIRST_ORDER_SOLVERS))
def test_event_through_each_solver_family(solver):
    options, tol = FIRST_ORDER_SOLVERS[solver]
    h = 10.0
    sol = sciode.solve(sciode.ODEProblem(fall, torch.tensor([h, 0.0], dtype=F64), (0.0, 3.0)), solver,
                       events=ground(), **options)
    assert sol.retcode is ReturnCode.TERMINATED, sol.message
    t_hit = float(sol.events["ground"].t[0])
    assert t_hit == pytest.approx(math.sqrt(2 * h / G), rel=tol)
    assert abs(float(sol.events["ground"].u[0, 0])) <= 1e-9 * h  # on the root of the solver's own trajectory
    assert float(sol.t[-1]) == t_hit


@pytest.mark.parametrize("solver", ["verlet", "rkn4"])
def test_event_on_second_order_problem(solver):
    h = 10.0
    prob = sciode.SecondOrderODEProblem(lambda v, u, p, t: torch.full_like(u, -G), torch.zeros(1, dtype=F64),
                                        torch.tensor([h], dtype=F64), (0.0, 3.0))
    # the state is [v, u]: the height is component 1
    event = sciode.Event(lambda s, p, t: s[..., 1], terminal=True, direction=-1, name="ground")
    sol = sciode.solve(prob, solver, dt=0.1, events=event)
    assert sol.retcode is ReturnCode.TERMINATED
    assert float(sol.events["ground"].t[0]) == pytest.approx(math.sqrt(2 * h / G), rel=1e-10)
    assert float(sol.events["ground"].u[0, 0]) == pytest.approx(-math.sqrt(2 * h * G), rel=1e-10)


def test_float32_event_time_within_a_few_ulps():
    h = G / 2  # lands at t = 1
    prob = sciode.ODEProblem(fall, torch.tensor([h, 0.0], dtype=torch.float32), (0.0, 2.0))
    sol = sciode.solve(prob, "tsit5", events=ground(), rtol=1e-4, atol=1e-6)
    t_hit = sol.events["ground"].t[0]
    assert t_hit.dtype == torch.float32 and sol.events["ground"].u.dtype == torch.float32
    assert abs(float(t_hit) - 1.0) <= 8 * torch.finfo(torch.float32).eps


def test_events_mapping_pads_ragged_counts_with_nan():
    w = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    u0 = torch.tensor([[1.0, 0.0]] * 3, dtype=F64)
    prob = sciode.ODEProblem(oscillator, u0, (0.0, 2 * math.pi + 0.1), w)
    sol = sciode.solve(prob, "tsit5", events=[sciode.Event(position, name="zero"), ground(terminal=False)],
                       rtol=1e-12, atol=1e-14)
    assert set(sol.events) == {"zero", "ground"}
    zero = sol.events["zero"]
    assert zero.count.tolist() == [2, 4, 6]
    assert not zero.count.dtype.is_floating_point
    assert zero.t.shape == (6, 3) and zero.u.shape == (6, 3, 2)
    for i, wi in enumerate(w.tolist()):
        n = zero.count.tolist()[i]
        expected = torch.tensor([(k + 0.5) * math.pi / wi for k in range(n)], dtype=F64)
        torch.testing.assert_close(member_times(zero, (i,)), expected, rtol=1e-9, atol=0)
        assert bool(torch.isnan(zero.t[n:, i]).all()) and bool(torch.isnan(zero.u[n:, i]).all())
        assert bool(torch.isfinite(zero.u[:n, i]).all())
    # the same condition under another name with direction -1: every other crossing
    assert sol.events["ground"].count.tolist() == [1, 2, 3]


def test_saved_output_never_past_a_terminal_event_and_dense_output_ends_there():
    k = 1.0
    t_star = math.log(2.0)
    prob = sciode.ODEProblem(decay, torch.ones(1, dtype=F64), (0.0, 3.0), torch.tensor(k, dtype=F64))
    event = sciode.Event(below_half, terminal=True, name="half")
    saved = sciode.solve(prob, "tsit5", events=event, saveat=torch.linspace(0, 3, 31, dtype=F64), **TIGHT)
    assert float(saved.t.max()) <= t_star * (1 + 1e-12)
    assert saved.t.shape[0] >= 7  # the save times before the event (0, 0.1, ..., 0.6) are all there
    torch.testing.assert_close(saved.u[:7, 0], torch.exp(-saved.t[:7]), rtol=1e-9, atol=0)
    dense = sciode.solve(prob, "tsit5", events=event, **TIGHT)
    assert float(dense.t[-1]) == pytest.approx(t_star, rel=1e-10)
    assert float(dense(t_star)[0]) == pytest.approx(0.5, rel=1e-10)
    try:
        past = dense(t_star + 0.5)
    except sciode.ProblemError:
        return
    assert bool(torch.isnan(past).all()), "dense output past a terminal event must not extrapolate"


def test_to_xarray_carries_events_as_labelled_variables(tmp_path):
    w = torch.tensor([1.0, 2.0], dtype=F64)
    prob = sciode.ODEProblem(oscillator, torch.tensor([[1.0, 0.0]] * 2, dtype=F64), (0.0, 2 * math.pi + 0.1), w,
                             state_names=["x", "v"])
    sol = sciode.solve(prob, "tsit5", events=sciode.Event(position, name="zero"), rtol=1e-10, atol=1e-12)
    ds = sol.to_xarray()
    variables = {name: ds[name] for name in ds.data_vars if "zero" in name}
    assert variables, f"no variable of event 'zero' in {list(ds.data_vars)}"
    zero = sol.events["zero"]

    def carried(expected):
        want = np.sort(np.asarray(expected, dtype=np.float64).ravel())
        def same(v):
            got = np.sort(v.values.astype(np.float64).ravel())
            return got.size == want.size and np.allclose(got, want, equal_nan=True)

        return [n for n, v in variables.items() if same(v)]

    assert carried(zero.t.detach()), "event times not in the dataset"
    assert carried(zero.count), "event counts not in the dataset"
    states = carried(zero.u.detach())
    assert states and "state" in ds[states[0]].dims
    assert list(ds[states[0]]["state"].values) == ["x", "v"]
    path = tmp_path / "events.nc"
    sciode.io.save(sol, path)
    back = sciode.io.load(path)
    for name in variables:
        np.testing.assert_array_equal(np.asarray(back[name].values), np.asarray(ds[name].values))


def test_sde_solvers_refuse_events():
    prob = sciode.SDEProblem(lambda u, p, t: -u, lambda u, p, t: 0.1 * torch.ones_like(u), torch.ones(1, dtype=F64),
                             (0.0, 1.0))
    with pytest.raises(sciode.ProblemError, match="event"):
        sciode.solve(prob, "euler_maruyama", dt=0.01, events=sciode.Event(lambda u, p, t: u[..., 0] - 0.5))


@pytest.mark.parametrize("solver, method", [("scipy_radau", "Radau"), ("scipy_bdf", "BDF"), ("scipy_lsoda", "LSODA")])
def test_scipy_solvers_agree_with_solve_ivp_event_times(solver, method):
    w = 2.0
    prob = sciode.ODEProblem(oscillator, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 6.0), torch.tensor(w, dtype=F64))
    rising = sciode.Event(position, direction=1, name="rising")
    stop = sciode.Event(lambda u, p, t: u[..., 1] - 1.5, terminal=2, direction=0, name="fast")
    sol = sciode.solve(prob, solver, events=[rising, stop], **TIGHT)

    def x(t, y):
        return y[0]

    def fast(t, y):
        return y[1] - 1.5

    x.direction, fast.terminal = 1, 2
    ref = scipy.integrate.solve_ivp(lambda t, y: [y[1], -w * w * y[0]], (0.0, 6.0), [1.0, 0.0], method=method,
                                    events=[x, fast], **TIGHT)
    assert ref.status == 1  # scipy stopped on the terminal event too
    assert sol.retcode is ReturnCode.TERMINATED
    for name, ref_times in (("rising", ref.t_events[0]), ("fast", ref.t_events[1])):
        got = member_times(sol.events[name]).numpy()
        assert got.shape == ref_times.shape, (name, got, ref_times)
        np.testing.assert_allclose(got, ref_times, rtol=1e-7)
    assert float(sol.t[-1]) == pytest.approx(ref.t[-1], rel=1e-7)


def _decay_problem():
    return sciode.ODEProblem(decay, torch.ones(3, 1, dtype=F64), (0.0, 1.0), torch.tensor(1.0, dtype=F64))


@pytest.mark.parametrize("label, make, argument", [
    ("condition not callable", lambda: sciode.Event(0.5), "condition"),
    ("direction not in -1, 0, 1", lambda: sciode.Event(below_half, direction=2), "direction"),
    ("direction a string", lambda: sciode.Event(below_half, direction="up"), "direction"),
    ("terminal negative", lambda: sciode.Event(below_half, terminal=-1), "terminal"),
    ("terminal a float", lambda: sciode.Event(below_half, terminal=1.5), "terminal"),
    ("name not a string", lambda: sciode.Event(below_half, name=3), "name"),
])
def test_bad_event_construction_raises_problem_error(label, make, argument):
    with pytest.raises(sciode.ProblemError, match=argument):
        make()


@pytest.mark.parametrize("label, events, argument", [
    ("events not Events", lambda: [0.5], "events"),
    ("condition output has the wrong shape", lambda: sciode.Event(lambda u, p, t: torch.cat([u, u], -1), name="wide"),
     "condition"),
    ("condition output not a tensor", lambda: sciode.Event(lambda u, p, t: 0.5, name="number"), "condition"),
    ("two events with one name", lambda: [sciode.Event(below_half, name="a"), sciode.Event(below_half, name="a")],
     "name"),
])
def test_bad_events_at_solve_raise_problem_error(label, events, argument):
    with pytest.raises(sciode.ProblemError, match=argument) as info:
        sciode.solve(_decay_problem(), "tsit5", events=events())
    assert "solver" not in str(info.value), "events is an argument of solve, not a solver option"
