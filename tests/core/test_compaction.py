"""Per-member compaction: stepping only the running members gives bitwise the uncompacted results,
and the loop's work (``member_evaluations``) falls when members finish at different times."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

import sciode
from sciode.loop.compaction import CompactionWarning

B = 16


def van_der_pol(u: torch.Tensor, p: dict, t: torch.Tensor) -> torch.Tensor:
    """mu per member (p["mu"] of shape (*batch, 1)) or shared (shape (1,)); a member with p["bad"] > 0
    turns non-finite after t = 1 (it fails while the others go on)."""
    mu = p["mu"]
    x, v = u[..., 0], u[..., 1]
    du = torch.stack([v, mu[..., 0] * (1 - x * x) * v - x], dim=-1)
    if "bad" in p:
        du = torch.where((p["bad"] > 0) & (t > 1.0), math.nan, du)
    return du


def problem(per_member_p: bool, batch: tuple[int, ...] = (B,), failing: bool = False) -> sciode.ODEProblem:
    count = math.prod(batch)
    spread = torch.linspace(0.0, 1.0, count, dtype=torch.float64).reshape(batch + (1,))
    u0 = torch.cat([2.0 + spread, 0.5 * spread], dim=-1)
    p = {"mu": (0.2 + 8.0 * spread) if per_member_p else torch.tensor([3.0], dtype=torch.float64)}
    if failing:
        p["bad"] = (torch.arange(count) % 5 == 0).to(torch.float64).reshape(batch + (1,))
    return sciode.ODEProblem(van_der_pol, u0, (0.0, 6.0), p=p)


def both(prob: sciode.ODEProblem, solver: str, **kw) -> tuple[sciode.Solution, sciode.Solution]:
    kw = dict(stepping="per_member", rtol=1e-6, atol=1e-8) | kw
    return sciode.solve(prob, solver, compact=None, **kw), sciode.solve(prob, solver, **kw)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, NaN where the other is NaN."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def assert_bitwise(plain: sciode.Solution, packed: sciode.Solution) -> None:
    assert torch.equal(plain.t, packed.t)
    assert same(plain.u, packed.u)
    assert torch.equal(plain.retcodes, packed.retcodes)
    for key in ("naccepted", "nrejected", "nsteps"):
        assert torch.equal(plain.member_stats[key], packed.member_stats[key]), key
    for key in ("nfe", "njac", "nlinsolve", "naccepted", "nrejected", "nsteps", "iterations"):
        assert plain.stats[key] == packed.stats[key], key


@pytest.mark.parametrize("saveat", [None, 25])
@pytest.mark.parametrize("per_member_p", [True, False], ids=["member_p", "shared_p"])
@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "rodas4", "bdf"])
def test_compaction_is_bitwise(solver: str, per_member_p: bool, saveat: int | None) -> None:
    plain, packed = both(problem(per_member_p), solver, saveat=saveat)
    assert_bitwise(plain, packed)
    full = plain.stats["iterations"] * B
    assert plain.stats["member_evaluations"] == full
    if solver == "bdf":  # its order and factorization are shared by the batch: never compacted
        assert packed.stats["member_evaluations"] == full
    else:
        assert packed.stats["member_evaluations"] < full
    if saveat is None:  # dense output of every member, over the whole span
        times = torch.linspace(0.0, 6.0, 61, dtype=torch.float64)
        assert same(plain(times), packed(times))


@pytest.mark.parametrize("compact", [None, 0.5], ids=["plain", "compacted"])
def test_save_times_denser_than_the_steps_are_all_filled(compact: float | None) -> None:
    """Steps that pass several save times at once (clustered ones and a grid finer than the steps)
    fill every one of them, and with the values dense output gives there."""
    prob = problem(True)
    clustered = torch.tensor([1.0 + 1e-9, 1.0 + 2e-9], dtype=torch.float64)
    times = torch.cat([torch.linspace(0.0, 6.0, 601, dtype=torch.float64), clustered]).sort().values
    sol = sciode.solve(prob, "tsit5", stepping="per_member", rtol=1e-5, atol=1e-8, saveat=times, compact=compact)
    dense = sciode.solve(prob, "tsit5", stepping="per_member", rtol=1e-5, atol=1e-8, compact=compact)
    assert int(sol.member_stats["nsteps"].max()) < 300  # so most steps pass several of the 603 save times
    assert not sol.u.isnan().any()
    torch.testing.assert_close(sol.u, dense(times), rtol=1e-12, atol=1e-12)


def test_multi_dimensional_batch_and_failing_members() -> None:
    """A (4, 4) batch (compacted flat) where every fifth member turns non-finite at t = 1."""
    plain, packed = both(problem(True, batch=(4, 4), failing=True), "tsit5", saveat=13)
    assert_bitwise(plain, packed)
    assert int((packed.retcodes == sciode.ReturnCode.UNSTABLE.value).sum()) == 4
    assert packed.stats["member_evaluations"] < plain.stats["member_evaluations"]


def test_work_falls_when_members_finish_at_very_different_times() -> None:
    """Oscillators whose frequencies span 100x: the fast ones need ~100x the steps of the slow ones,
    so most passes step a handful of members."""
    omega = torch.logspace(0, 2, 64, dtype=torch.float64)[:, None]

    def oscillator(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.stack([p[..., 0] * u[..., 1], -p[..., 0] * u[..., 0]], dim=-1)

    u0 = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(64, 2).clone()
    prob = sciode.ODEProblem(oscillator, u0, (0.0, 10.0), p=omega)
    plain, packed = both(prob, "tsit5", saveat=11)
    assert_bitwise(plain, packed)
    steps = plain.member_stats["nsteps"]
    assert int(steps.max()) > 30 * int(steps.min())
    # compacted, the loop steps about what the members need (each pass at least half of its batch runs)
    assert packed.stats["member_evaluations"] < 2 * int(steps.sum())
    assert packed.stats["member_evaluations"] < 0.3 * plain.stats["member_evaluations"]


def test_backprop_gradients_flow_through_compaction() -> None:
    mu = (0.2 + 8.0 * torch.linspace(0.0, 1.0, B, dtype=torch.float64))[:, None].requires_grad_()
    u0 = torch.tensor([2.0, 0.0], dtype=torch.float64).expand(B, 2).clone().requires_grad_()
    grads = []
    for compact in (None, 0.5):
        prob = sciode.ODEProblem(van_der_pol, u0, (0.0, 3.0), p={"mu": mu})
        sol = sciode.solve(prob, "tsit5", stepping="per_member", saveat=7, rtol=1e-7, atol=1e-9, compact=compact)
        grads.append(torch.autograd.grad(sol.u.square().sum(), (mu, u0)))
        if compact:
            assert sol.stats["member_evaluations"] < sol.stats["iterations"] * B
    for plain, packed in zip(*grads):
        torch.testing.assert_close(packed, plain, rtol=1e-13, atol=0)


def test_adjoint_forward_compacts_and_gradients_agree() -> None:
    mu = (0.5 + torch.linspace(0.0, 1.0, 8, dtype=torch.float64))[:, None].requires_grad_()
    u0 = torch.tensor([2.0, 0.0], dtype=torch.float64).expand(8, 2).clone()
    grads = []
    for compact in (None, 0.5):
        prob = sciode.ODEProblem(van_der_pol, u0, (0.0, 2.0), p={"mu": mu})
        sol = sciode.solve(prob, "tsit5", stepping="per_member", saveat=5, rtol=1e-8, atol=1e-10,
                           sensealg="adjoint", compact=compact)
        grads.append(torch.autograd.grad(sol.u.square().sum(), mu)[0])
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=0)


def test_events_keep_the_full_batch() -> None:
    event = sciode.Event(lambda u, p, t: u[..., 0], name="zero")
    plain, packed = both(problem(True), "tsit5", saveat=9, events=event)
    assert packed.stats["member_evaluations"] == packed.stats["iterations"] * B
    assert same(plain.events["zero"].t, packed.events["zero"].t)


def test_f_that_closes_over_members_warns_and_runs_uncompacted() -> None:
    mu = (0.2 + 8.0 * torch.linspace(0.0, 1.0, B, dtype=torch.float64))[:, None]

    def closure(u: torch.Tensor, p: None, t: torch.Tensor) -> torch.Tensor:
        return torch.stack([u[..., 1], mu[..., 0] * (1 - u[..., 0] ** 2) * u[..., 1] - u[..., 0]], dim=-1)

    u0 = torch.tensor([2.0, 0.0], dtype=torch.float64).expand(B, 2).clone()
    prob = sciode.ODEProblem(closure, u0, (0.0, 6.0))
    plain = sciode.solve(prob, "tsit5", stepping="per_member", saveat=5, compact=None)
    with pytest.warns(CompactionWarning, match="through p"):
        packed = sciode.solve(prob, "tsit5", stepping="per_member", saveat=5)
    assert_bitwise(plain, packed)
    assert packed.stats["member_evaluations"] == plain.stats["member_evaluations"]


def test_shared_stepping_counts_member_evaluations_and_ignores_compact() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = sciode.solve(problem(True), "tsit5", saveat=5)
    assert sol.stats["member_evaluations"] == sol.stats["iterations"] * B


@pytest.mark.parametrize("bad", [2.0, -0.5, True, "half", math.nan])
def test_compact_must_be_a_fraction(bad: object) -> None:
    with pytest.raises(sciode.ProblemError, match="compact must be"):
        sciode.solve(problem(True), "tsit5", stepping="per_member", compact=bad)


def test_rosenbrock_with_a_batch_wide_linear_solve_is_not_compacted() -> None:
    """GMRES iterates until every member converges: compaction stays off. (Two identical GMRES solves
    differ in the last digits already, so only the refusal is compared here.)"""
    packed = sciode.solve(problem(True), "rodas4", stepping="per_member", saveat=5, linsolve="gmres")
    assert packed.stats["member_evaluations"] == packed.stats["iterations"] * B
    assert sciode.solvers()["rodas4"](linsolve="gmres").couples_members(problem(True)) is not None
    assert sciode.solvers()["rodas4"](linsolve="dense").couples_members(problem(True)) is None
