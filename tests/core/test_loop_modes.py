"""The loop's contract, one matrix over the three stepping modes (issue 11 items 1, 4 and 5).

fixed: rk4 at a fixed dt; shared: tsit5, the batch one coupled system with one clock;
per_member: tsit5 with stepping="per_member", each member its own clock. Every
behaviour below is asked of every mode; where a behaviour cannot exist in a mode
(a collapsing step size at a fixed dt) the test says so.
"""
import math
import subprocess
import sys
import textwrap

import pytest
import torch

import sciode
from sciode import ReturnCode

F64 = torch.float64
MODES = {
    "fixed": ("rk4", dict(dt=1e-2)),
    "shared": ("tsit5", dict(rtol=1e-9, atol=1e-12)),
    "per_member": ("tsit5", dict(rtol=1e-9, atol=1e-12, stepping="per_member")),
}
ADAPTIVE_MODES = ["shared", "per_member"]
STAT_KEYS = {"nfe", "njac", "nlinsolve", "nsteps", "naccepted", "nrejected"}


def run(mode, prob, **extra):
    solver, options = MODES[mode]
    return sciode.solve(prob, solver, **{**options, **extra})


def decay(u, p, t):
    return -p * u


RATES = torch.tensor([[0.5], [2.0], [5.0]], dtype=F64)


def decays(tspan=(0.0, 2.0)):
    return sciode.ODEProblem(decay, torch.ones(3, 1, dtype=F64), tspan, RATES)


def exact(times):
    return torch.exp(-RATES[None, :, 0] * times[:, None])[..., None]


@pytest.mark.parametrize("mode", MODES)
def test_max_steps_returns_max_steps_and_the_partial_trajectory(mode):
    saveat = torch.linspace(0.0, 10.0, 10001, dtype=F64)  # fine enough for five steps to pass save times
    sol = run(mode, decays((0.0, 10.0)), max_steps=5, saveat=saveat)
    assert sol.retcode is ReturnCode.MAX_STEPS
    assert all(sol.member_retcode(i) is ReturnCode.MAX_STEPS for i in range(3))
    assert "max_steps" in sol.message
    # the points reached are there and right; nothing is saved past where the members got
    reached = torch.isfinite(sol.u).all(-1).all(-1)
    assert int(reached.sum()) >= 2 and bool(reached[0])
    assert float(sol.t[reached].max()) < 10.0
    torch.testing.assert_close(sol.u[reached], exact(sol.t[reached]), rtol=1e-6, atol=1e-12)
    assert sol.stats["iterations"] == 5  # max_steps bounds the loop's passes
    assert sol.stats["nsteps"] <= 5 * (3 if mode == "per_member" else 1)


@pytest.mark.parametrize("mode", MODES)
def test_blow_up_is_unstable_for_that_member_only(mode):
    # float32 and loose tolerances: member 1 overflows (near t = 0.11) after a few hundred steps, not thousands
    rates = torch.tensor([[-1.0], [800.0], [-0.5]])
    prob = sciode.ODEProblem(lambda u, p, t: p * u, torch.ones(3, 1), (0.0, 2.0), rates)
    sol = run(mode, prob, rtol=1e-4, atol=1e-6)
    assert sol.member_retcode(1) is ReturnCode.UNSTABLE, sol.message
    assert sol.member_retcode(0) is ReturnCode.SUCCESS and sol.member_retcode(2) is ReturnCode.SUCCESS
    assert "member (1,)" in sol.message and "non-finite" in sol.message
    assert float(sol.t[-1]) == 2.0
    torch.testing.assert_close(sol.u[-1, [0, 2], 0], torch.exp(-torch.tensor([2.0, 1.0])), rtol=1e-3, atol=0)


def kink_or_decay(u, p, t):
    """Member with p = 1: u' = sign(1 - t) / sqrt|1 - t| (the step collapses at t = 1); p = 0: u' = -u."""
    kink = torch.sign(1.0 - t) / (1.0 - t).abs().clamp_min(1e-300).sqrt()
    return p * kink * torch.ones_like(u) - (1 - p) * u


@pytest.mark.parametrize("mode", MODES)
def test_dt_too_small_isolated_to_the_member(mode):
    if mode == "fixed":
        pytest.skip("a fixed step cannot collapse: DT_TOO_SMALL is a code of the adaptive modes")
    prob = sciode.ODEProblem(kink_or_decay, torch.zeros(2, 1, dtype=F64) + torch.tensor([[1.0], [0.0]], dtype=F64),
                             (0.0, 2.0), torch.tensor([[0.0], [1.0]], dtype=F64))
    sol = run(mode, prob, rtol=1e-10, atol=1e-12)
    assert sol.member_retcode(1) is ReturnCode.DT_TOO_SMALL, sol.message
    assert sol.member_retcode(0) is ReturnCode.SUCCESS
    assert "member (1,)" in sol.message and "step size" in sol.message
    assert float(sol.u[-1, 0, 0]) == pytest.approx(math.exp(-2.0), rel=1e-7)


@pytest.mark.parametrize("mode", MODES)
def test_saveat_values_match_the_closed_form(mode):
    saveat = torch.linspace(0.0, 2.0, 11, dtype=F64)
    sol = run(mode, decays(), saveat=saveat)
    assert sol.retcode is ReturnCode.SUCCESS
    assert torch.equal(sol.t, saveat)
    assert sol.u.shape == (11, 3, 1)
    torch.testing.assert_close(sol.u, exact(saveat), rtol=1e-6, atol=1e-12)  # rk4 at dt = 0.01: 5e-7


@pytest.mark.parametrize("mode", MODES)
def test_saveat_values_do_not_depend_on_keeping_dense_output(mode):
    """Without dense output a shared clock keeps just the steps that reach a save time; the values are
    bitwise those read from every step's record, also at save times a rounding away from a step's end
    (0.6000000000000001 against the grid's 0.6), at a tstop and at the ends."""
    saveat = torch.cat([torch.linspace(0.0, 2.0, 11, dtype=F64), torch.tensor([0.605, 0.61, 1.2345], dtype=F64)])
    saveat = saveat.sort().values
    kept = run(mode, decays(), saveat=saveat, tstops=[1.2345], dense=True)
    lean = run(mode, decays(), saveat=saveat, tstops=[1.2345], dense=False)
    assert lean.retcode is kept.retcode is ReturnCode.SUCCESS
    assert torch.equal(lean.t, kept.t)
    assert torch.equal(lean.u, kept.u)
    torch.testing.assert_close(lean.u, exact(saveat), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_dense_output_matches_the_closed_form(mode):
    sol = run(mode, decays())
    assert sol.has_dense_output
    times = torch.tensor([1.37, 0.013, 0.5, 2.0, 0.0], dtype=F64)
    values = sol(times)
    assert values.shape == (5, 3, 1)
    torch.testing.assert_close(values, exact(times), rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(sol(1.37), exact(times[:1])[0], rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_on_step_is_called_once_per_step_with_its_start(mode):
    """on_step(t, dt, u, state, accepted): the step that started at (t, u) with size dt.

    accepted is None when the whole batch took the step (fixed and shared modes: one
    call per accepted step) and a per-member mask otherwise (one call per iteration in
    which some member accepted: each member's accepted steps are the calls it is masked in).
    """
    solver_name, options = MODES[mode]
    solver = sciode.solvers()[solver_name]()
    calls = []
    opts = sciode.LoopOptions(dt=options.get("dt"), rtol=1e-9, atol=1e-12, per_member=mode == "per_member",
                              adaptive=solver.adaptive,
                              on_step=lambda t, dt, u, state, accepted: calls.append((t, dt, u, accepted)))
    sol = sciode.integrate(decays(), solver, opts)
    assert sol.retcode is ReturnCode.SUCCESS
    if mode == "per_member":
        assert len(calls) <= sol.stats["nsteps"]
        total = torch.zeros(3, dtype=F64)
        taken = torch.zeros(3, dtype=torch.int64)
        for t, dt, u, accepted in calls:
            mask = accepted.reshape(3)
            taken += mask
            total += torch.where(mask, torch.as_tensor(dt, dtype=F64).reshape(-1).expand(3), 0.0)
        assert torch.equal(taken, sol.member_stats["naccepted"].reshape(3).to(torch.int64))
        torch.testing.assert_close(total, torch.full((3,), 2.0, dtype=F64), rtol=1e-12, atol=0)
        return
    assert len(calls) == sol.stats["naccepted"]
    assert all(accepted is None for *_, accepted in calls)
    starts = torch.tensor([float(t) for t, *_ in calls], dtype=F64)
    steps = torch.tensor([float(dt) for _, dt, *_ in calls], dtype=F64)
    torch.testing.assert_close(starts, sol.t[:-1], rtol=0, atol=1e-14)
    torch.testing.assert_close(starts + steps, sol.t[1:], rtol=0, atol=1e-14)
    for (_, _, u, _), saved in zip(calls, sol.u[:-1]):
        assert torch.equal(u, saved)


@pytest.mark.parametrize("mode", MODES)
def test_stats_mean_the_same_in_every_mode(mode):
    sol = run(mode, decays(), rtol=1e-6, atol=1e-9) if mode != "fixed" else run(mode, decays())
    stats = sol.stats
    assert set(stats) >= STAT_KEYS
    assert all(isinstance(stats[key], int) and stats[key] >= 0 for key in STAT_KEYS)
    assert stats["nsteps"] == stats["naccepted"] + stats["nrejected"]  # attempted = accepted + rejected
    assert stats["njac"] == 0 and stats["nlinsolve"] == 0  # explicit solvers
    if mode != "per_member":  # one clock: every pass of the loop is one step of the batch
        assert stats["iterations"] == stats["nsteps"]
    if mode == "fixed":
        assert stats["nrejected"] == 0 and stats["naccepted"] == 200
        assert 4 * 200 <= stats["nfe"] <= 4 * 200 + 2
    if mode == "per_member":
        members = sol.member_stats
        assert set(members) >= {"nsteps", "naccepted", "nrejected"}
        for key in ("nsteps", "naccepted", "nrejected"):
            assert members[key].shape == (3,) and not members[key].dtype.is_floating_point
            assert int(members[key].sum()) == stats[key]
        assert torch.equal(members["nsteps"], members["naccepted"] + members["nrejected"])
        assert stats["iterations"] == int(members["nsteps"].max())  # each pass steps every running member once
        # the stiffer member needs more accepted steps
        assert int(members["naccepted"][2]) > int(members["naccepted"][0])


@pytest.mark.parametrize("mode", ADAPTIVE_MODES)
def test_stats_of_rejecting_runs_add_up(mode):
    # a first step far too large is rejected: the counts must say so
    sol = run(mode, decays(), dt=1.0, rtol=1e-9, atol=1e-12)
    assert sol.stats["nrejected"] >= 1
    assert sol.stats["nsteps"] == sol.stats["naccepted"] + sol.stats["nrejected"]


def test_rejected_first_step_per_member_does_not_leak_into_saved_output():
    """The issue's quoted seam case."""
    prob = sciode.ODEProblem(lambda u, p, t: -p * u, torch.ones(2, 1), (0., 2.), torch.tensor([[0.5], [300.]]))
    sol = sciode.solve(prob, "tsit5", stepping="per_member")
    assert torch.equal(sol.u[0], torch.tensor([[1.0], [1.0]]))
    torch.testing.assert_close(sol.u[-1, 0], torch.exp(torch.tensor([-1.0])), rtol=1e-4, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_rejected_first_step_does_not_leak_in_any_mode(mode):
    prob = sciode.ODEProblem(decay, torch.ones(2, 1, dtype=F64), (0.0, 2.0), torch.tensor([[0.5], [300.0]], dtype=F64))
    sol = run(mode, prob, dt=0.5 if mode != "fixed" else 1e-3, saveat=torch.tensor([0.0, 1.0, 2.0], dtype=F64))
    assert torch.equal(sol.u[0], torch.ones(2, 1, dtype=F64))
    torch.testing.assert_close(sol.u[1, 0, 0], torch.tensor(math.exp(-0.5), dtype=F64), rtol=1e-6, atol=0)


BAD = 5


def faulty(u, p, t):
    """Member BAD returns NaN once t > 0.5; the others decay."""
    bad = torch.zeros(16, 1, dtype=torch.bool)
    bad[BAD] = True
    return torch.where(bad & (t > 0.5), torch.full_like(u, math.nan), -p * u)


@pytest.mark.parametrize("mode", MODES)
def test_sixteen_members_one_goes_non_finite(mode):
    # under a shared clock the error norm covers the batch, so until the fault the members
    # must look alike for the 15-member run to take the same steps; apart from that clock
    # they are independent, and fixed and per-member runs get different rates
    spread = torch.linspace(0.5, 2.0, 16, dtype=F64)[:, None]
    rates = torch.full((16, 1), 1.3, dtype=F64) if mode == "shared" else spread
    u0 = torch.ones(16, 1, dtype=F64)
    saveat = torch.linspace(0.0, 2.0, 9, dtype=F64)
    sol = run(mode, sciode.ODEProblem(faulty, u0, (0.0, 2.0), rates), saveat=saveat, rtol=1e-6, atol=1e-9)
    good = [i for i in range(16) if i != BAD]
    ref = run(mode, sciode.ODEProblem(decay, u0[good], (0.0, 2.0), rates[good]), saveat=saveat, rtol=1e-6, atol=1e-9)
    assert ref.retcode is ReturnCode.SUCCESS
    assert sol.member_retcode(BAD) is ReturnCode.UNSTABLE, sol.message
    assert all(sol.member_retcode(i) is ReturnCode.SUCCESS for i in good), sol.message
    assert f"member ({BAD},)" in sol.message and "1 of 16" in sol.message
    assert torch.equal(sol.t, ref.t)
    torch.testing.assert_close(sol.u[:, good], ref.u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("mode", MODES)
def test_non_finite_f_at_t0_is_unstable_at_once(mode, value):
    prob = sciode.ODEProblem(lambda u, p, t: torch.full_like(u, value), torch.ones(3, 1, dtype=F64), (0.0, 1.0))
    sol = run(mode, prob)
    assert sol.retcode is ReturnCode.UNSTABLE
    assert all(sol.member_retcode(i) is ReturnCode.UNSTABLE for i in range(3))
    assert sol.stats["nfe"] <= 20, sol.stats


def test_tiny_fixed_step_with_max_steps_returns_at_once():
    """A grid of 1e10 steps is never built: MAX_STEPS after 100 steps, memory flat (rk4, and tsit5 at a fixed dt)."""
    code = textwrap.dedent("""
        import resource, tracemalloc, torch, sciode
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
        prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(4, 1, dtype=torch.float64), (0.0, 10.0))
        for solver, extra in (("rk4", {}), ("tsit5", {"adaptive": False})):
            sciode.solve(prob, solver, dt=1.0, max_steps=2, **extra)  # plugins load outside the measurement
            tracemalloc.start()
            sol = sciode.solve(prob, solver, dt=1e-9, max_steps=100, **extra)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(solver, sol.retcode.name, sol.stats["nsteps"], peak)
    """)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("solve with dt=1e-9, max_steps=100 did not return within 60 s")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")[:2]
    for line in lines:
        solver, name, nsteps, peak = line.split()
        assert name == "MAX_STEPS" and int(nsteps) == 100, line
        assert int(peak) < 20 * 2**20, f"{solver}: peak Python allocation {int(peak) / 2**20:.1f} MiB"
