"""Options, stats, per-member stepping, bad input and third-party registration."""
from __future__ import annotations

import pytest
import torch
from sens_helpers import grads, max_rel

import sciode
from sciode_sensitivity import Adjoint, Checkpointed, Packing


def decay_problem(batch: tuple[int, ...] = ()) -> tuple[sciode.ODEProblem, torch.Tensor, torch.Tensor]:
    k = torch.linspace(0.5, 1.5, 3, dtype=torch.float64).requires_grad_(True)
    u0 = torch.ones(*batch, 3, dtype=torch.float64).requires_grad_(True)
    return sciode.ODEProblem(lambda u, p, t: -p * u * (1 + 0.1 * torch.sin(t)), u0, (0.0, 2.0), k), u0, k


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2)).double()

    def forward(self, u: torch.Tensor, p: object, t: torch.Tensor) -> torch.Tensor:
        return self.net(u)


def mlp_problem() -> tuple[sciode.ODEProblem, list[torch.Tensor]]:
    torch.manual_seed(3)
    f = MLP()
    u0 = torch.randn(4, 2, dtype=torch.float64)
    return sciode.ODEProblem(f, u0, (0.0, 2.0)), list(f.parameters())


@pytest.mark.parametrize("bad, match", [
    (lambda: Adjoint(rtol=-1.0), "adjoint rtol"),
    (lambda: Adjoint(solver=3), "adjoint solver"),
    (lambda: Adjoint(solver="no_such_solver"), "no_such_solver"),
    (lambda: Adjoint(solver="tsit5", solver_options={"bogus": 1}), "bogus"),
    (lambda: Adjoint(seminorm="yes"), "seminorm"),
    (lambda: Checkpointed(n_checkpoints=0), "n_checkpoints"),
    (lambda: Checkpointed(n_checkpoints=2.5), "n_checkpoints"),
])
def test_bad_options_raise_problem_error(bad, match: str) -> None:
    with pytest.raises(sciode.ProblemError, match=match):
        bad()


def test_fixed_step_backward_solver_needs_dt() -> None:
    prob, _, _ = decay_problem()
    with pytest.raises(sciode.ProblemError, match="Adjoint\\(dt=...\\)"):
        sciode.solve(prob, "tsit5", sensealg=Adjoint(solver="rk4"))


def test_checkpointed_rejects_per_member_stepping() -> None:
    prob, _, _ = decay_problem((4,))
    with pytest.raises(sciode.ProblemError, match="per_member"):
        sciode.solve(prob, "tsit5", sensealg="checkpointed", stepping="per_member")


def test_adjoint_per_member_forward_matches_shared() -> None:
    out = []
    for stepping in ("shared", "per_member"):
        prob, u0, k = decay_problem((4,))
        prob = sciode.remake(prob, u0=u0 * torch.linspace(0.5, 2.0, 4, dtype=torch.float64).reshape(4, 1))
        sol = sciode.solve(prob, "tsit5", sensealg="adjoint", saveat=4, stepping=stepping, rtol=1e-9, atol=1e-11)
        out.append(grads(sol.u.square().sum(), [u0, k]))
    for a, b in zip(*out):
        assert max_rel(a, b) < 1e-7


def test_adjoint_with_another_backward_solver() -> None:
    prob, u0, k = decay_problem()
    ref = grads(sciode.solve(prob, "rk4", dt=0.01, sensealg="backprop").u[-1].sum(), [u0, k])
    sens = Adjoint(solver="dopri5", rtol=1e-10, atol=1e-12)
    sol = sciode.solve(prob, "rk4", dt=0.01, sensealg=sens)
    got = grads(sol.u[-1].sum(), [u0, k])
    for a, b in zip(got, ref):
        assert max_rel(a, b) < 1e-7
    assert sol.stats["backward_nfe"] > 0 and sol.stats["backward_naccepted"] > 0


def test_seminorm_same_gradient_fewer_backward_evaluations() -> None:
    results = {}
    for seminorm in (False, True):
        prob, params = mlp_problem()
        sol = sciode.solve(prob, "dopri5", sensealg=Adjoint(seminorm=seminorm), saveat=[2.0], rtol=1e-5, atol=1e-7)
        assert sol.stats["backward_nfe"] == 0  # filled in during backward
        g = grads(sol.u[-1].square().sum(), params)
        results[seminorm] = (g, sol.stats["backward_nfe"])
    for a, b in zip(results[True][0], results[False][0]):
        assert max_rel(a, b) < 1e-3
    assert results[True][1] < results[False][1]


@pytest.mark.parametrize("solver, kwargs", [("rk4", dict(dt=0.01)), ("tsit5", dict(rtol=1e-8, atol=1e-10))])
def test_checkpoint_budget_is_respected(solver: str, kwargs: dict) -> None:
    prob, u0, k = decay_problem()
    ref = grads(sciode.solve(prob, solver, sensealg="backprop", **kwargs).u[-1].sum(), [u0, k])
    sol = sciode.solve(prob, solver, sensealg=Checkpointed(n_checkpoints=5), **kwargs)
    assert sol.stats["nsteps"] > 20 and 1 <= sol.stats["checkpoints"] <= 5
    got = grads(sol.u[-1].sum(), [u0, k])
    for a, b in zip(got, ref):
        assert float((a - b).abs().max()) <= 1e-10 * float(b.abs().max())
    assert sol.stats["backward_nsteps"] == sol.stats["naccepted"]


@pytest.mark.parametrize("sensealg", ["backprop", "adjoint", "checkpointed"])
def test_without_gradients_it_is_a_plain_solve(sensealg: str) -> None:
    u0 = torch.ones(3, dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: -u, u0, (0.0, 1.0))
    sol = sciode.solve(prob, "tsit5", sensealg=sensealg)
    plain = sciode.solve(prob, "tsit5")
    assert not sol.u.requires_grad and torch.equal(sol.u, plain.u)
    assert sol.sensealg.name == sensealg


def test_packing_round_trip() -> None:
    packing = Packing(torch.Size([2, 3]), [torch.Size([4]), torch.Size([2, 2])])
    u, a = torch.randn(2, 3), torch.randn(2, 3)
    g = [torch.randn(4), torch.randn(2, 2)]
    y = packing.pack(u, a, g)
    assert y.shape == (packing.size,) == (20,)
    u2, a2, g2 = packing.unpack(y)
    assert torch.equal(u, u2) and torch.equal(a, a2) and all(torch.equal(x, z) for x, z in zip(g, g2))
    assert torch.equal(packing.pack(u, a, [None, None])[12:], torch.zeros(8))


class _Forward(sciode.Sensitivity):
    """A third-party sensitivity: central finite differences in u0 only (as a registration example)."""

    name = "test_forward_fd"

    def solve(self, problem, solver, options):
        return sciode.integrate(problem, solver, options)


def test_third_party_sensitivity_registers_like_a_plugin() -> None:
    class Plugin:
        @sciode.hookimpl
        def sciode_add_sensitivities(self):
            return [_Forward]

    sciode.register_plugin(Plugin(), name="test_third_party_sensitivity")
    try:
        assert sciode.sensitivities()["test_forward_fd"] is _Forward
        prob, _, _ = decay_problem()
        sol = sciode.solve(prob, "tsit5", sensealg="test_forward_fd")
        assert sol.sensealg.name == "test_forward_fd" and sol.successful
    finally:
        sciode.registry.registry.unregister("test_third_party_sensitivity")
    assert "test_forward_fd" not in sciode.sensitivities()


def test_adjoint_backward_pass_is_one_solve_through_the_output_times(monkeypatch) -> None:
    """Ten output times, one backward solve (the outputs are its tstops, with the adjoint jumps there): set-up,
    first step size and f(t0) are paid once. Gradients as backprop's, an output at t0 included."""
    import sciode_sensitivity.adjoint as adjoint_module

    prob, u0, k = decay_problem((2,))
    times = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.1, 1.2, 1.5, 1.8, 1.9, 2.0], dtype=torch.float64)
    weights = torch.linspace(1.0, 2.0, 10, dtype=torch.float64)[:, None, None]
    loss = lambda sol: (weights * sol.u.square()).sum()  # noqa: E731
    ref = grads(loss(sciode.solve(prob, "dopri5", saveat=times, rtol=1e-11, atol=1e-13)), [u0, k])
    calls = []
    integrate = adjoint_module.sciode.integrate
    monkeypatch.setattr(adjoint_module.sciode, "integrate", lambda *a: calls.append(a[0].tspan) or integrate(*a))
    sol = sciode.solve(prob, "dopri5", saveat=times, rtol=1e-11, atol=1e-13, sensealg="adjoint")
    got = grads(loss(sol), [u0, k])
    assert calls == [(0.0, 2.0), (2.0, 0.0)]  # the forward solve and one backward solve
    for a, b in zip(got, ref):
        assert max_rel(a, b) < 1e-8
