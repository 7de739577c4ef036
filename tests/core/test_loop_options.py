"""What users of scipy, diffrax and Julia expect of a loop (issue 11 item 6).

max_step / min_step for every adaptive solver, tstops hit exactly, per-component
tolerances, complex states, numpy inputs, unsupported dtypes and devices, tolerance
and span checks, and unknown keywords reported as arguments of ``solve``.
"""
import math
import warnings

import numpy as np
import pytest
import torch

import sciode
from sciode import ReturnCode

F64 = torch.float64
NATIVE_ADAPTIVE = ["tsit5", "dopri5", "bosh3", "implicit_euler", "trapezoid", "rodas4", "rodas4p"]
SCIPY = ["scipy_radau", "scipy_bdf", "scipy_lsoda"]


def decay(u, p, t):
    return -u


def decay_problem(tspan=(0.0, 10.0), batch=()):
    return sciode.ODEProblem(decay, torch.ones(*batch, 2, dtype=F64), tspan)


@pytest.mark.parametrize("solver", NATIVE_ADAPTIVE + SCIPY)
def test_max_step_bounds_every_step(solver):
    free = sciode.solve(decay_problem(), solver, rtol=1e-3, atol=1e-6)
    assert float((free.t[1:] - free.t[:-1]).max()) > 0.1  # without the bound the steps grow past it
    sol = sciode.solve(decay_problem(), solver, rtol=1e-3, atol=1e-6, max_step=0.1)
    assert sol.retcode is ReturnCode.SUCCESS
    assert float((sol.t[1:] - sol.t[:-1]).max()) <= 0.1 * (1 + 1e-12)
    assert float(sol.t[-1]) == 10.0


def test_max_step_per_member_and_backwards():
    sol = sciode.solve(decay_problem(batch=(3,)), "tsit5", max_step=0.25, stepping="per_member", rtol=1e-4)
    assert sol.retcode is ReturnCode.SUCCESS
    assert bool((sol.member_stats["naccepted"] >= 40).all())  # 10 / 0.25
    back = sciode.solve(decay_problem((10.0, 0.0)), "tsit5", max_step=0.25, rtol=1e-4)
    steps = back.t[:-1] - back.t[1:]
    assert bool((steps > 0).all()) and float(steps.max()) <= 0.25 * (1 + 1e-12)


def kink(u, p, t):
    """u' = (1 + u / 10) sign(1 - t) / sqrt|1 - t|: near t = 1 the steps must get far smaller than 1e-3."""
    return torch.sign(1.0 - t) / (1.0 - t).abs().clamp_min(1e-300).sqrt() * (1 + 0.1 * u)


@pytest.mark.parametrize("solver", NATIVE_ADAPTIVE)
def test_min_step_stops_with_dt_too_small_instead_of_going_below(solver):
    """As Julia's dtmin: a step that would have to be shorter than min_step ends the solve (DT_TOO_SMALL)."""
    prob = sciode.ODEProblem(kink, torch.zeros(1, dtype=F64), (0.0, 2.0))
    tolerances = dict(rtol=1e-4, atol=1e-6) if solver == "implicit_euler" else dict(rtol=1e-6, atol=1e-8)
    assert sciode.solve(prob, solver, **tolerances).retcode is ReturnCode.SUCCESS  # with steps far below 1e-3
    sol = sciode.solve(prob, solver, min_step=1e-3, **tolerances)
    assert sol.retcode is ReturnCode.DT_TOO_SMALL, sol.message
    assert "min_step" in sol.message
    steps = (sol.t[1:] - sol.t[:-1]).abs()  # low-order methods may need less than 1e-3 from the start: no step then
    assert steps.numel() == 0 or float(steps.min()) >= 1e-3 * (1 - 1e-12)  # the first step too is raised to it
    assert float(sol.t[-1]) < 2.0


@pytest.mark.parametrize("solver", NATIVE_ADAPTIVE)
def test_min_step_below_the_steps_taken_changes_nothing(solver):
    plain = sciode.solve(decay_problem((0.0, 1.0)), solver, rtol=1e-5, atol=1e-8)
    bounded = sciode.solve(decay_problem((0.0, 1.0)), solver, rtol=1e-5, atol=1e-8, min_step=1e-8)
    assert torch.equal(plain.t, bounded.t) and torch.equal(plain.u, bounded.u)


@pytest.mark.parametrize("argument, value", [("max_step", -1.0), ("max_step", math.nan), ("min_step", -1e-3),
                                             ("min_step", "small")])
def test_bad_step_bounds_raise(argument, value):
    with pytest.raises(sciode.ProblemError, match=argument) as info:
        sciode.solve(decay_problem(), "tsit5", **{argument: value})
    assert "does not take option" not in str(info.value)  # an argument of solve, checked as such


def test_min_step_above_max_step_raises():
    with pytest.raises(sciode.ProblemError, match="min_step") as info:
        sciode.solve(decay_problem(), "tsit5", min_step=1.0, max_step=0.1)
    assert "max_step" in str(info.value) and "does not take option" not in str(info.value)


def dosing(u, p, t):
    """u' = -u + 5 after t = 1 (an infusion switched on): f jumps at t = 1. The step that ends on a tstop
    evaluates f at the stop, so f takes its value from before the stop there (t > 1, not t >= 1)."""
    return -u + 5.0 * (t > 1.0).to(u.dtype)


def dosing_exact(t):
    return math.exp(-t) if t < 1 else 5.0 + (math.exp(-1.0) - 5.0) * math.exp(-(t - 1.0))


@pytest.mark.parametrize("solver", ["tsit5", "rodas4", "implicit_euler"])
def test_tstops_are_hit_exactly_and_resolve_the_kink(solver):
    prob = sciode.ODEProblem(dosing, torch.ones(1, dtype=F64), (0.0, 2.0))
    tolerances = dict(rtol=1e-4, atol=1e-6) if solver == "implicit_euler" else dict(rtol=1e-8, atol=1e-10)
    blind = sciode.solve(prob, solver, **tolerances)
    sol = sciode.solve(prob, solver, tstops=[1.0, 1.5], **tolerances)
    assert sol.retcode is ReturnCode.SUCCESS
    assert bool((sol.t == 1.0).any()) and bool((sol.t == 1.5).any())
    assert sol.stats["nrejected"] < blind.stats["nrejected"]  # no failed steps spent finding the jump
    expected = dosing_exact(2.0)
    tol = 1e-2 if solver == "implicit_euler" else 1e-7
    assert float(sol.u[-1, 0]) == pytest.approx(expected, rel=tol)
    assert float(sol(1.0)[0]) == pytest.approx(math.exp(-1.0), rel=tol)


def test_tstops_fixed_step_per_member_and_backwards():
    prob = sciode.ODEProblem(dosing, torch.ones(1, dtype=F64), (0.0, 2.0))
    fixed = sciode.solve(prob, "rk4", dt=0.3, tstops=torch.tensor([1.0]))
    assert bool((fixed.t == 1.0).any())
    assert float(fixed.u[-1, 0]) == pytest.approx(dosing_exact(2.0), rel=1e-3)
    batch = sciode.ODEProblem(dosing, torch.ones(3, 1, dtype=F64), (0.0, 2.0))
    members = sciode.solve(batch, "tsit5", stepping="per_member", tstops=[1.0], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(members.u[-1, :, 0], torch.full((3,), dosing_exact(2.0), dtype=F64), rtol=1e-7, atol=0)
    back = sciode.solve(sciode.ODEProblem(decay, torch.ones(1, dtype=F64), (2.0, 0.0)), "tsit5", tstops=[0.7])
    assert bool((back.t == 0.7).any())


@pytest.mark.parametrize("tstops", [[3.0], [math.nan], "soon", [[1.0]]])
def test_bad_tstops_raise(tstops):
    with pytest.raises(sciode.ProblemError, match="tstops") as info:
        sciode.solve(sciode.ODEProblem(decay, torch.ones(1, dtype=F64), (0.0, 2.0)), "tsit5", tstops=tstops)
    assert "does not take option" not in str(info.value)


def two_scales(u, p, t):
    return u * torch.tensor([-1.0, -10.0], dtype=u.dtype)


def test_per_component_tolerances():
    prob = sciode.ODEProblem(two_scales, torch.ones(2, dtype=F64), (0.0, 3.0))
    scalar = sciode.solve(prob, "tsit5", rtol=1e-8, atol=1e-12)
    broadcast = sciode.solve(prob, "tsit5", rtol=torch.full((2,), 1e-8, dtype=F64),
                             atol=torch.full((2,), 1e-12, dtype=F64))
    assert torch.equal(scalar.u, broadcast.u)
    # the fast component left to a loose tolerance: far fewer steps, the slow one still accurate
    loose = sciode.solve(prob, "tsit5", rtol=torch.tensor([1e-8, 1.0]), atol=torch.tensor([1e-12, 1.0]))
    assert loose.stats["naccepted"] < scalar.stats["naccepted"] / 2
    assert float(loose.u[-1, 0]) == pytest.approx(math.exp(-3.0), rel=1e-7)
    members = sciode.solve(sciode.remake(prob, u0=torch.ones(4, 2, dtype=F64)), "tsit5", stepping="per_member",
                           rtol=torch.tensor([1e-8, 1.0]), atol=torch.tensor([1e-12, 1.0]))
    torch.testing.assert_close(members.u[-1, :, 0], torch.full((4,), math.exp(-3.0), dtype=F64), rtol=1e-7, atol=0)


@pytest.mark.parametrize("argument, value", [
    ("rtol", torch.full((3,), 1e-6)), ("atol", torch.ones(2, 2)),
    ("rtol", torch.tensor([1e-6, -1.0])), ("atol", torch.tensor([1e-9, math.nan])),
])
def test_bad_per_component_tolerances_raise(argument, value):
    prob = sciode.ODEProblem(two_scales, torch.ones(2, dtype=F64), (0.0, 1.0))
    with pytest.raises(sciode.ProblemError, match=argument):
        sciode.solve(prob, "tsit5", **{argument: value})


def rotation(u, p, t):
    return 1j * p * u


@pytest.mark.parametrize("dtype, tol", [(torch.complex128, 1e-8), (torch.complex64, 1e-4)])
@pytest.mark.parametrize("solver, options", [("tsit5", {}), ("dopri5", {}), ("bosh3", {}), ("rk4", dict(dt=2e-3)),
                                             ("tsit5", dict(stepping="per_member"))])
def test_complex_states_with_explicit_solvers(solver, options, dtype, tol):
    w = torch.tensor([[1.0], [3.0]], dtype=torch.float64 if dtype == torch.complex128 else torch.float32)
    prob = sciode.ODEProblem(rotation, torch.ones(2, 1, dtype=dtype), (0.0, 2.0), w)
    sol = sciode.solve(prob, solver, saveat=torch.linspace(0, 2, 5), rtol=tol / 100, atol=tol / 1000, **options)
    assert sol.retcode is ReturnCode.SUCCESS
    assert sol.u.dtype == dtype and sol.t.dtype == w.dtype  # time stays real
    exact = torch.exp(1j * w[None, :, :] * sol.t[:, None, None].to(w.dtype))
    torch.testing.assert_close(sol.u, exact.to(dtype), rtol=tol, atol=tol)
    if options.get("stepping") != "per_member":
        dense = sciode.solve(prob, solver, rtol=tol / 100, atol=tol / 1000, **options)
        torch.testing.assert_close(dense(1.3), torch.exp(1j * w * 1.3).to(dtype), rtol=tol, atol=tol)


def test_complex_state_with_an_implicit_solver_works_or_is_refused():
    prob = sciode.ODEProblem(rotation, torch.ones(1, dtype=torch.complex128), (0.0, 1.0), torch.tensor(2.0, dtype=F64))
    try:
        sol = sciode.solve(prob, "rodas4", rtol=1e-8, atol=1e-10)
    except sciode.ProblemError as exc:
        assert "complex" in str(exc)
        return
    assert sol.retcode is ReturnCode.SUCCESS
    torch.testing.assert_close(sol.u[-1], torch.exp(torch.tensor([2j], dtype=torch.complex128)), rtol=1e-6, atol=1e-6)


def test_numpy_scalars_and_arrays_are_accepted():
    rates = np.array([[0.5], [2.0]])
    prob = sciode.ODEProblem(lambda u, p, t: -p * u, np.ones((2, 1)), (np.float64(0.0), np.float32(1.0)), rates)
    sol = sciode.solve(prob, "tsit5", saveat=np.linspace(0.0, 1.0, 5), rtol=np.float64(1e-8), atol=np.float32(1e-10),
                       dt=np.float64(1e-3), max_steps=np.int64(10_000))
    assert sol.retcode is ReturnCode.SUCCESS
    assert sol.u.dtype == F64  # numpy's float64 becomes torch.float64
    expected = np.exp(-rates[None, :, 0] * np.linspace(0.0, 1.0, 5)[:, None])[..., None]
    np.testing.assert_allclose(sol.u.numpy(), expected, rtol=1e-7)
    single = sciode.remake(prob, u0=np.ones((2, 1), dtype=np.float32), p=rates.astype(np.float32))
    fixed = sciode.solve(single, "rk4", dt=np.float64(0.01))
    assert fixed.u.dtype == torch.float32
    np.testing.assert_allclose(fixed.u[-1].numpy(), np.exp(-rates), rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_or_supported(dtype):
    try:
        prob = sciode.ODEProblem(decay, torch.ones(2, dtype=dtype), (0.0, 1.0))
        sol = sciode.solve(prob, "tsit5", rtol=1e-2, atol=1e-3)
    except sciode.ProblemError as exc:
        assert str(dtype).split(".")[-1] in str(exc) and "u0" in str(exc)
        return
    assert sol.retcode is ReturnCode.SUCCESS, sol.message
    assert sol.u.dtype == dtype
    assert float(sol.u[-1, 0]) == pytest.approx(math.exp(-1.0), rel=2e-2)


def test_meta_device_is_refused_up_front():
    with pytest.raises(sciode.ProblemError, match="meta"):
        sciode.solve(sciode.ODEProblem(decay, torch.ones(2, device="meta"), (0.0, 1.0)), "tsit5")


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-8), (torch.float64, 1e-15)])
def test_rtol_below_100_eps_warns(dtype, rtol):
    prob = sciode.ODEProblem(decay, torch.ones(1, dtype=dtype), (0.0, 0.1))
    with pytest.warns(Warning, match="rtol"):
        sciode.solve(prob, "tsit5", rtol=rtol, atol=1e-20)


def test_reasonable_rtol_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sciode.solve(sciode.ODEProblem(decay, torch.ones(1, dtype=F64), (0.0, 1.0)), "tsit5", rtol=1e-12, atol=1e-14)
        sciode.solve(sciode.ODEProblem(decay, torch.ones(1), (0.0, 1.0)), "tsit5", rtol=1e-4, atol=1e-8)


def test_span_that_overflows_the_dtype_is_a_clear_error():
    with pytest.raises(sciode.ProblemError, match="tspan") as info:
        prob = sciode.ODEProblem(decay, torch.ones(1, dtype=torch.float32), (0.0, 1e300))
        sciode.solve(prob, "tsit5")
    assert "float32" in str(info.value)


@pytest.mark.parametrize("solver", ["tsit5", "implicit_euler"])
def test_unknown_keyword_is_an_unknown_argument_of_solve(solver):
    with pytest.raises(sciode.ProblemError) as info:
        sciode.solve(decay_problem(), solver, save_at=[0.0, 1.0])
    message = str(info.value)
    assert "save_at" in message and "argument" in message and "solve" in message
    assert "does not take option" not in message


@pytest.mark.parametrize("mode", [dict(), dict(dt=0.05, adaptive=False)])
def test_loop_jump_at_tstops(mode):
    """LoopOptions.jump changes the state where the clock lands on a tstop (the adjoint's jumps at output
    times), and the solver restarts from the jumped state: du/dt = -u, u <- u + 1 at t = 0.5 and t = 1."""
    landed = []

    def jump(t, u):
        landed.append(t)
        return u + 1.0

    prob = sciode.ODEProblem(decay, torch.ones(2, 1, dtype=F64), (0.0, 2.0))
    opts = sciode.LoopOptions(rtol=1e-10, atol=1e-12, tstops=[0.5, 1.0], jump=jump, saveat=torch.tensor([2.0]),
                              dense=False, **mode)
    sol = sciode.integrate(prob, sciode.lookup("solver", "tsit5", "solver")(), opts)
    exact = ((math.exp(-0.5) + 1.0) * math.exp(-0.5) + 1.0) * math.exp(-1.0)
    assert landed == [0.5, 1.0]
    torch.testing.assert_close(sol.u[-1], torch.full((2, 1), exact, dtype=F64), rtol=1e-6 if mode else 1e-9, atol=0)
    with pytest.raises(sciode.ProblemError, match="jump needs a clock shared by the batch"):
        sciode.integrate(prob, sciode.lookup("solver", "tsit5", "solver")(),
                         sciode.LoopOptions(tstops=[1.0], jump=jump, per_member=True))
