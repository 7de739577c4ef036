"""The SDE solvers through ``sciode.solve``: shapes, seeds, retcodes, stats, xarray, bad input."""
from __future__ import annotations

import pytest
import torch
import torchsde

import sciode


def _ou(u0: torch.Tensor | None = None, **kw: object) -> sciode.SDEProblem:
    u0 = torch.ones(4, 2, dtype=torch.float64) if u0 is None else u0
    return sciode.SDEProblem(lambda u, p, t: -u, lambda u, p, t: 0.3 * torch.ones_like(u), u0, (0.0, 1.0), **kw)


def test_every_sde_solver_is_registered_as_an_owns_loop_solver() -> None:
    names = {"euler_maruyama", "milstein", "srk", "reversible_heun", "euler_heun", "sde_heun", "sde_midpoint",
             "log_ode"}
    registered = sciode.solvers()
    assert names <= set(registered)
    assert all(registered[n].owns_loop and registered[n].problem_types == (sciode.SDEProblem,) for n in names)


def test_same_seed_same_paths_and_other_seed_other_paths() -> None:
    prob = _ou()
    a, b = (sciode.solve(prob, "euler_maruyama", dt=0.01, seed=5).u for _ in range(2))
    c = sciode.solve(prob, "euler_maruyama", dt=0.01, seed=6).u
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    torch.manual_seed(1)
    d = sciode.solve(prob, "euler_maruyama", dt=0.01).u
    torch.manual_seed(1)
    e = sciode.solve(prob, "euler_maruyama", dt=0.01).u
    assert torch.equal(d, e)  # without a seed the path follows torch's global generator


def test_saveat_none_saves_every_step_and_stats_count_steps() -> None:
    sol = sciode.solve(_ou(), "euler_maruyama", dt=0.125, seed=0)
    assert sol.t.tolist() == [0.125 * k for k in range(9)]
    assert sol.u.shape == (9, 4, 2)
    assert torch.equal(sol.u[0], _ou().u0)
    assert sol.stats["nsteps"] == 8 and sol.stats["naccepted"] == 8 and sol.stats["nrejected"] == 0
    assert sol.stats["nfe"] >= 8 and sol.stats["nfe_g"] >= 8
    assert sol.retcode is sciode.ReturnCode.SUCCESS and sol.retcodes.shape == (4,)


def test_saveat_times_and_unbatched_state() -> None:
    sol = sciode.solve(_ou(torch.ones(3, dtype=torch.float64)), "srk", dt=0.01, seed=0, saveat=[0.25, 0.5, 1.0])
    assert sol.t.tolist() == [0.25, 0.5, 1.0] and sol.u.shape == (3, 3)
    assert sol.retcodes.shape == ()


@pytest.mark.parametrize("noise, g, shape", [
    ("scalar", lambda u, p, t: 0.2 * u.unsqueeze(-1), (2, 1)),
    ("general", lambda u, p, t: 0.1 * torch.ones(*u.shape, 3, dtype=u.dtype), (2, 3)),
    ("additive", lambda u, p, t: 0.2 * torch.ones_like(u), (2, 2)),
])
def test_noise_types(noise: str, g: object, shape: tuple[int, int]) -> None:
    prob = sciode.SDEProblem(lambda u, p, t: -u, g, torch.ones(2, 2, dtype=torch.float64), (0.0, 1.0), noise=noise,
                             noise_dim=3 if noise == "general" else None)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=shape, dtype=torch.float64, entropy=1)
    sol = sciode.solve(prob, "euler_maruyama", dt=0.05, brownian=bm)
    assert sol.u.shape == (21, 2, 2) and sol.successful
    with pytest.raises(sciode.ProblemError, match="brownian has shape"):
        sciode.solve(prob, "euler_maruyama", dt=0.05,
                     brownian=torchsde.BrownianInterval(0.0, 1.0, size=(2, 7), dtype=torch.float64))


def test_samples_add_a_sample_dim_in_xarray() -> None:
    sol = sciode.solve(_ou(), "euler_maruyama", dt=0.1, seed=0, samples=6)
    assert sol.u.shape == (11, 6, 4, 2)
    assert not torch.allclose(sol.u[-1, 0], sol.u[-1, 1])  # independent paths
    ds = sol.to_xarray()
    assert ds["u"].dims == ("sample", "member", "time", "state")  # members first, as in sciode run
    assert ds.sizes["sample"] == 6 and ds["retcode"].dims == ("sample", "member")
    single = sciode.solve(_ou(torch.ones(2, dtype=torch.float64)), "euler_maruyama", dt=0.1, seed=0, samples=3)
    assert single.to_xarray()["u"].dims == ("sample", "time", "state")
    plain = sciode.solve(_ou(), "euler_maruyama", dt=0.1, seed=0)
    assert plain.member_dims is None and plain.to_xarray()["u"].dims == ("member", "time", "state")


def test_blow_up_returns_unstable_with_the_partial_path() -> None:
    u0 = torch.tensor([[2.0], [3.0]], dtype=torch.float64)
    prob = sciode.SDEProblem(lambda u, p, t: u**3, lambda u, p, t: 0.1 * torch.ones_like(u), u0, (0.0, 5.0))
    sol = sciode.solve(prob, "euler_maruyama", dt=0.1, seed=0)
    assert sol.retcode is sciode.ReturnCode.UNSTABLE and "non-finite" in sol.message
    assert sol.t.shape[0] < 51 and sol.t.shape[0] == sol.u.shape[0]
    assert bool(torch.isfinite(sol.u[:-1]).any(-1).any(-1).all())  # up to the blow-up a member is still finite
    one_bad = sciode.remake(prob, u0=torch.tensor([[3.0], [0.0]], dtype=torch.float64), tspan=(0.0, 1.0))
    sol = sciode.solve(one_bad, "euler_maruyama", dt=0.1, seed=0)
    assert sol.retcodes.tolist() == [sciode.ReturnCode.UNSTABLE, sciode.ReturnCode.SUCCESS]


def test_max_steps_returns_the_path_so_far() -> None:
    sol = sciode.solve(_ou(), "euler_maruyama", dt=0.1, seed=0, max_steps=4)
    assert sol.retcode is sciode.ReturnCode.MAX_STEPS and sol.t.shape == (5,) and "max_steps=4" in sol.message


def test_gradients_reach_module_parameters_by_backprop() -> None:
    class Diffusion(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 2).double()

        def forward(self, u: torch.Tensor, p: object, t: torch.Tensor) -> torch.Tensor:
            return self.linear(u)

    g = Diffusion()
    prob = sciode.SDEProblem(lambda u, p, t: -u, g, torch.ones(3, 2, dtype=torch.float64), (0.0, 1.0))
    sciode.solve(prob, "milstein", dt=0.05, seed=0).u[-1].sum().backward()
    assert g.linear.weight.grad is not None and bool(torch.isfinite(g.linear.weight.grad).all())


# -- bad input --------------------------------------------------------------------------------

def test_missing_dt_names_dt() -> None:
    with pytest.raises(sciode.ProblemError, match="dt"):
        sciode.solve(_ou(), "euler_maruyama")


def test_unknown_sde_solver_name() -> None:
    with pytest.raises(sciode.ProblemError, match="euler_maruyamma"):
        sciode.solve(_ou(), "euler_maruyamma", dt=0.1)


@pytest.mark.parametrize("noise, g", [
    ("diagonal", lambda u, p, t: torch.ones(*u.shape, 1, dtype=u.dtype)),
    ("additive", lambda u, p, t: torch.ones(u.shape[0], dtype=u.dtype)),
    ("scalar", lambda u, p, t: torch.ones_like(u)),
    ("general", lambda u, p, t: torch.ones(*u.shape, 2, dtype=u.dtype)),
])
def test_g_shape_must_match_the_noise_type(noise: str, g: object) -> None:
    prob = sciode.SDEProblem(lambda u, p, t: -u, g, torch.ones(4, 2, dtype=torch.float64), (0.0, 1.0), noise=noise,
                             noise_dim=3 if noise == "general" else None)
    with pytest.raises(sciode.ProblemError, match=f"g returned shape .*noise='{noise}'"):
        sciode.solve(prob, "euler_maruyama", dt=0.1)


def test_f_shape_and_dtype_are_checked() -> None:
    prob = sciode.SDEProblem(lambda u, p, t: u[..., :1], lambda u, p, t: u, torch.ones(4, 2), (0.0, 1.0))
    with pytest.raises(sciode.ProblemError, match="f returned shape"):
        sciode.solve(prob, "euler_maruyama", dt=0.1)
    prob = sciode.SDEProblem(lambda u, p, t: u.double(), lambda u, p, t: u, torch.ones(4, 2), (0.0, 1.0))
    with pytest.raises(sciode.ProblemError, match="f returned dtype"):
        sciode.solve(prob, "euler_maruyama", dt=0.1)


def test_solver_must_fit_sde_type_and_noise() -> None:
    with pytest.raises(sciode.ProblemError, match="sde_type='stratonovich'"):
        sciode.solve(_ou(sde_type="stratonovich"), "euler_maruyama", dt=0.1)
    general = sciode.SDEProblem(lambda u, p, t: -u, lambda u, p, t: torch.ones(*u.shape, 2, dtype=u.dtype),
                                torch.ones(2, 2), (0.0, 1.0), noise="general", noise_dim=2)
    with pytest.raises(sciode.ProblemError, match="noise='general'"):
        sciode.solve(general, "milstein", dt=0.1)
    ode = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(2), (0.0, 1.0))
    with pytest.raises(sciode.ProblemError, match="SDEProblem"):
        sciode.solve(ode, "euler_maruyama", dt=0.1)


def test_bad_options() -> None:
    prob = _ou()
    for kwargs, pattern in [
        (dict(seed=-1), "seed"), (dict(samples=0), "samples"), (dict(levy_area="exact"), "levy_area"),
        (dict(brownian=torch.zeros(3)), "brownian"), (dict(adjoint_solver="rk4"), "adjoint_solver"),
        (dict(stepping="per_member"), "per_member"), (dict(rtol_sde=1.0), "rtol_sde"),
    ]:
        with pytest.raises(sciode.ProblemError, match=pattern):
            sciode.solve(prob, "euler_maruyama", dt=0.1, **kwargs)
    with pytest.raises(sciode.ProblemError, match="forward in time"):
        sciode.solve(sciode.remake(prob, tspan=(1.0, 0.0)), "euler_maruyama", dt=0.1)
    with pytest.raises(sciode.ProblemError, match="levy_area"):
        sciode.solve(prob, "srk", dt=0.1, levy_area="none")


def test_unsupported_sensitivity_is_rejected() -> None:
    class Checkpointed(sciode.Sensitivity):
        name = "checkpointed"

    with pytest.raises(sciode.ProblemError, match="sensealg 'checkpointed'"):
        sciode.solve(_ou(), "euler_maruyama", dt=0.1, sensealg=Checkpointed())


def test_solution_member_dims_hook_names_the_member_dims() -> None:
    """The core hook this plugin relies on: ``Solution.member_dims`` renames to_xarray's member dims by position."""
    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(2, 3, 1), (0.0, 1.0))
    sol = sciode.Solution(prob, torch.tensor([0.0, 1.0]), torch.ones(2, 2, 3, 1),
                          torch.ones(2, 3, dtype=torch.int8), "SUCCESS", {})
    default = sol.to_xarray()["u"].dims
    sol.member_dims = ("sample", "site")
    ds = sol.to_xarray()
    assert ds["u"].dims == ("sample", "site", "time", "state") and ds["retcode"].dims == ("sample", "site")
    assert default[:-2] != ("sample", "site")
