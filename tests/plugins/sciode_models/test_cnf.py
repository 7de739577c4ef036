"""CNF and FFJORD: exact and stochastic log-likelihoods, inversion, sampling, training, errors."""
from __future__ import annotations

import math

import pytest
import torch
from models_fields import LinearField, TanhField, registered_sensitivity

import sciode
from sciode_models import CNF, FFJORD, ConcatSquashMLP, standard_normal_log_prob

TIGHT = dict(rtol=1e-9, atol=1e-9)


def test_exact_log_likelihood_of_a_linear_flow_is_the_change_of_variables() -> None:
    A = torch.tensor([[0.3, -0.7, 0.1], [0.5, -0.2, 0.0], [0.2, 0.4, -0.6]], dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    flow = CNF(LinearField(A), 3, tspan=(0.0, 1.5), **TIGHT)
    M = torch.linalg.matrix_exp(1.5 * A)
    expected = standard_normal_log_prob(x @ M.T) + torch.linalg.slogdet(M).logabsdet
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(flow(x), x @ M.T, rtol=1e-8, atol=1e-8)


def test_hutchinson_estimate_averages_to_the_exact_trace() -> None:
    field = TanhField(3)
    x = torch.tensor([[0.3, -1.2, 0.7]], dtype=torch.float64)
    exact = CNF(field, 3, **TIGHT).log_prob(x).detach()
    for noise in ("rademacher", "gaussian"):
        # each member of the batch draws its own noise vector: 1000 independent estimates
        estimates = FFJORD(field, 3, noise=noise, rtol=1e-6, atol=1e-6).log_prob(x.expand(1000, 3)).detach()
        stderr = estimates.std() / math.sqrt(len(estimates))
        assert float(estimates.std()) > 0  # it is a stochastic estimate
        assert abs(float(estimates.mean() - exact)) < 3 * float(stderr), (noise, estimates.mean(), exact, stderr)


def test_ffjord_noise_is_fixed_within_one_solve() -> None:
    """With the noise fixed per solve, a linear field's estimate is exactly e^T A e * T for that e."""
    A = torch.tensor([[0.2, 1.0], [-0.5, 0.1]], dtype=torch.float64)
    flow = FFJORD(LinearField(A), 2, noise="gaussian", **TIGHT)
    torch.manual_seed(5)
    noise = flow.draw_noise(torch.zeros(4, 2, dtype=torch.float64))
    torch.manual_seed(5)
    x = torch.zeros(4, 2, dtype=torch.float64)
    _, logdet = flow.transform_with_logdet(x)
    torch.testing.assert_close(logdet, ((noise @ A.T) * noise).sum(-1), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("kind", [CNF, FFJORD])
def test_forward_then_reverse_round_trip(kind: type) -> None:
    fields = [TanhField(2), ConcatSquashMLP(2, (8, 8)).double()]
    flow = kind(fields, 2, **TIGHT)
    x = torch.randn(10, 2, dtype=torch.float64)
    z = flow(x)
    assert float((z - x).detach().abs().max()) > 0.1  # the flow moved the points
    assert float((flow.inverse(z) - x).detach().abs().max()) < 1e-4


def test_sample_shape_and_finiteness() -> None:
    flow = FFJORD(ConcatSquashMLP(2, (16, 16)), 2)
    samples = flow.sample(33)
    assert samples.shape == (33, 2) and samples.dtype == torch.float32
    assert bool(torch.isfinite(samples).all())
    g = torch.Generator().manual_seed(1)
    again = flow.sample(33, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(flow.sample(33, generator=g), again)


def _exact_nll(fields, x: torch.Tensor) -> float:  # noqa: ANN001
    with torch.no_grad():
        return float(-CNF(fields, 2, rtol=1e-6, atol=1e-6).log_prob(x).mean())


@pytest.mark.parametrize("kind", [CNF, FFJORD])
def test_one_training_step_lowers_the_loss(kind: type) -> None:
    field = ConcatSquashMLP(2, (16, 16))
    x = torch.randn(64, 2) * torch.tensor([2.0, 0.5]) + 1.0
    flow = kind(field, 2, rtol=1e-4, atol=1e-4)
    before = _exact_nll([field], x)
    opt = torch.optim.SGD(flow.parameters(), lr=0.05)
    loss = -flow.log_prob(x).mean()
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is not None for p in flow.parameters())
    opt.step()
    assert _exact_nll([field], x) < before - 1e-3


def test_rnode_regularisers_of_a_linear_flow() -> None:
    a = torch.tensor([0.4, -0.3], dtype=torch.float64)
    A = torch.diag(a)
    x = torch.randn(5, 2, dtype=torch.float64)
    flow = CNF(LinearField(A), 2, kinetic_energy=0.5, jacobian_norm=2.0, **TIGHT)
    flow.log_prob(x)
    # int_0^1 |A z|^2 dt with z_i = exp(a_i t) x_i, and int_0^1 |A|_F^2 dt
    kinetic = ((a / 2) * (torch.exp(2 * a) - 1) * x.square()).sum(-1).mean()
    torch.testing.assert_close(flow.regularization["kinetic_energy"], kinetic, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(flow.regularization["jacobian_norm"], a.square().sum(), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(flow.regularization_loss, 0.5 * kinetic + 2.0 * a.square().sum(), rtol=1e-8, atol=1e-10)


def test_ffjord_frobenius_estimate_is_unbiased() -> None:
    A = torch.tensor([[0.2, 1.0], [-0.5, 0.1]], dtype=torch.float64)
    flow = FFJORD(LinearField(A), 2, noise="rademacher", jacobian_norm=1.0, **TIGHT)
    flow.log_prob(torch.zeros(4000, 2, dtype=torch.float64))
    assert abs(float(flow.regularization["jacobian_norm"].detach()) - float(A.square().sum())) < 0.05


def test_per_member_stepping_gives_the_same_log_likelihood() -> None:
    field = ConcatSquashMLP(2, (8,)).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    shared = CNF(field, 2, **TIGHT).log_prob(x)
    per_member = CNF(field, 2, stepping="per_member", **TIGHT).log_prob(x)
    torch.testing.assert_close(per_member, shared, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("sensealg", [registered_sensitivity("adjoint"), registered_sensitivity("checkpointed"),
                                      registered_sensitivity("backprop")])
def test_sensitivities_give_the_autograd_gradient(sensealg: str) -> None:
    field = TanhField(2)
    x = torch.randn(8, 2, dtype=torch.float64)

    def grads(sens):  # noqa: ANN001, ANN202
        field.zero_grad()
        (-FFJORD(field, 2, sensealg=sens, **TIGHT).log_prob(x).mean()).backward()
        return [p.grad.clone() for p in field.parameters()]

    torch.manual_seed(0)
    reference = grads(None)
    torch.manual_seed(0)
    for got, want in zip(grads(sensealg), reference):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_clear_errors() -> None:
    field = ConcatSquashMLP(2, (8,))
    flow = CNF(field, 2)
    with pytest.raises(sciode.ProblemError, match=r"x must have shape \(batch, 2\)"):
        flow.log_prob(torch.randn(5, 3))
    with pytest.raises(sciode.ProblemError, match="x must be a tensor"):
        flow.log_prob([[0.0, 1.0]])
    with pytest.raises(sciode.ProblemError, match="noise must be one of"):
        FFJORD(field, 2, noise="uniform")
    with pytest.raises(sciode.ProblemError, match="dim must be a positive int"):
        CNF(field, 0)
    with pytest.raises(sciode.ProblemError, match="unknown solver 'rk45'"):
        CNF(field, 2, solver="rk45")
    with pytest.raises(sciode.ProblemError, match="unknown sensitivity 'nonesuch'"):
        CNF(field, 2, sensealg="nonesuch")
    with pytest.raises(sciode.ProblemError, match="n must be a positive int"):
        flow.sample(0)
    with pytest.raises(sciode.ProblemError, match="kinetic_energy must be"):
        CNF(field, 2, kinetic_energy=-1.0)
    with pytest.raises(sciode.ProblemError, match="unknown argument"):
        CNF(field, 2, bogus=1).log_prob(torch.randn(3, 2))


def test_a_solve_that_stops_early_raises() -> None:
    from sciode_models._solving import ModelSolveError

    flow = CNF(ConcatSquashMLP(2, (8,)), 2, max_steps=1)
    with pytest.raises(ModelSolveError, match="did not reach"):
        flow.log_prob(torch.randn(3, 2))
