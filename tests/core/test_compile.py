"""solve(..., compile=True): each step as one torch.compile graph, the same answers as eager.

Compiling takes seconds per solver on a 2-core machine, so all but the argument check are slow.
"""
import warnings

import pytest
import torch

import sciode
from sciode.loop.attempt import CompileWarning
from sciode.testing import linear_problem, nonlinear_scalar_problem
from sciode_implicit import stiff_problems


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _both(prob, solver, **kw):
    eager = sciode.solve(prob, solver, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # these must compile
        compiled = sciode.solve(prob, solver, compile=True, **kw)
    return eager, compiled


def test_compile_argument_is_checked():
    prob = linear_problem().problem
    with pytest.raises(sciode.ProblemError, match="compile must be True, False or a torch.compile mode"):
        sciode.solve(prob, "tsit5", compile="fastest")


@pytest.mark.slow
@pytest.mark.parametrize("solver,kw", [("tsit5", {}), ("dopri5", {}), ("bosh3", {}), ("rk4", dict(dt=0.01)),
                                       ("heun", dict(dt=0.01))])
@pytest.mark.parametrize("reference", [linear_problem, nonlinear_scalar_problem])
def test_explicit_compiled_matches_eager(solver, kw, reference):
    # compared at fixed times: the step times themselves differ in the last bits (fused ops round differently,
    # and the error estimate of a step magnifies that in the next step size)
    eager, compiled = _both(reference().problem, solver, rtol=1e-8, atol=1e-10, saveat=20, **kw)
    assert _relative(compiled.u, eager.u) <= 1e-12
    assert compiled.retcode == eager.retcode == sciode.ReturnCode.SUCCESS
    assert {k: compiled.stats[k] for k in eager.stats} == eager.stats  # same steps, same evaluations
    assert compiled.stats["compile_time"] > 0


@pytest.mark.slow
def test_per_member_compiled_matches_eager():
    k = torch.linspace(0.5, 3.0, 16, dtype=torch.float64)[:, None]
    prob = sciode.ODEProblem(lambda u, p, t: -p * u * torch.cos(t), torch.ones(16, 1, dtype=torch.float64),
                             (0.0, 5.0), k)
    eager, compiled = _both(prob, "tsit5", rtol=1e-8, atol=1e-10, stepping="per_member", saveat=10)
    assert _relative(compiled.u, eager.u) <= 1e-12
    assert torch.equal(compiled.retcodes, eager.retcodes)
    assert torch.equal(compiled.member_stats["naccepted"], eager.member_stats["naccepted"])


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["rodas4", "rodas4p"])
def test_rosenbrock_compiled_matches_eager(solver):
    prob = stiff_problems.robertson((0.0, 1e3), members=8)
    eager, compiled = _both(prob, solver, rtol=1e-6, atol=1e-10, saveat=[0.0, 1.0, 1e3])
    assert _relative(compiled.u, eager.u) <= 1e-12
    assert compiled.retcode == eager.retcode == sciode.ReturnCode.SUCCESS
    # njac and nlinsolve are counted inside the graph; a compiled step re-linearizes after a rejection (the eager
    # step reuses the start Jacobian, a test that needs host syncs), so it may form a few more Jacobians
    same = [k for k in eager.stats if k != "njac"]
    assert {k: compiled.stats[k] for k in same} == {k: eager.stats[k] for k in same}
    assert eager.stats["njac"] <= compiled.stats["njac"] <= eager.stats["nsteps"]


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["implicit_euler", "trapezoid"])
def test_newton_solvers_fall_back_to_the_eager_answer(solver):
    """A Newton iteration's convergence test is a host sync: the step is not one graph, the answer is eager's."""
    prob = linear_problem().problem
    eager = sciode.solve(prob, solver, dt=0.05)
    with pytest.warns(CompileWarning, match=f"solver '{solver}'"):
        compiled = sciode.solve(prob, solver, dt=0.05, compile=True)
    assert torch.equal(compiled.u, eager.u) and compiled.retcode == eager.retcode
    assert "compile_time" not in compiled.stats


@pytest.mark.slow
def test_graph_breaking_f_falls_back_with_one_warning():
    def f(u, p, t):
        if float(u.abs().max()) > 1e6:  # a host sync and a data-dependent branch
            return u
        return -u

    prob = sciode.ODEProblem(f, torch.ones(3, 2, dtype=torch.float64), (0.0, 1.0))
    eager = sciode.solve(prob, "tsit5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = sciode.solve(prob, "tsit5", compile=True)
    ours = [w for w in caught if issubclass(w.category, CompileWarning)]
    assert len(ours) == 1 and "runs eagerly" in str(ours[0].message)
    assert torch.equal(compiled.u, eager.u) and torch.equal(compiled.t, eager.t)


@pytest.mark.slow
@pytest.mark.parametrize("sensealg", ["backprop", "checkpointed"])
def test_compiled_gradients_match_eager(sensealg):
    ref = linear_problem()
    grads = []
    for compile in (False, True):
        A = ref.problem.p.clone().requires_grad_(True)
        u0 = ref.problem.u0.clone().requires_grad_(True)
        # long enough (283 steps) for backprop to differentiate through compiled blocks of steps
        sol = sciode.solve(sciode.remake(ref.problem, p=A, u0=u0, tspan=(0.0, 12.0)), "tsit5", saveat=5, rtol=1e-8,
                           atol=1e-10, sensealg=sensealg, compile=compile)
        assert ("compile_time" in sol.stats) == compile
        assert sol.stats["iterations"] > 40
        grads.append(torch.autograd.grad(sol.u.square().sum(), (A, u0)))
    for eager, compiled in zip(*grads):
        assert _relative(compiled, eager) <= 1e-10


@pytest.mark.slow
def test_repeated_solves_reuse_the_compiled_graph():
    from torch._dynamo.utils import counters

    prob = nonlinear_scalar_problem().problem
    for _ in range(2):  # the first solve compiles the step; the second its start's evaluations of f as well
        sciode.solve(prob, "tsit5", compile=True)
    graphs = counters["stats"]["unique_graphs"]
    other = sciode.remake(prob, u0=prob.u0 * 0.5)
    again = sciode.solve(other, "tsit5", compile=True)
    assert counters["stats"]["unique_graphs"] == graphs  # same shapes, solver and f: no new graph
    assert again.retcode == sciode.ReturnCode.SUCCESS
    # the tolerances are inputs of the graphs, not constants: other tolerances, the same graphs, eager's answer
    # (looser ones, so that the solve stays below BLOCK_AFTER steps: a tighter one would compile its first block)
    looser = sciode.solve(other, "tsit5", compile=True, rtol=1e-4, atol=1e-6, saveat=10)
    assert counters["stats"]["unique_graphs"] == graphs
    eager = sciode.solve(other, "tsit5", rtol=1e-4, atol=1e-6, saveat=10)
    assert _relative(looser.u, eager.u) <= 1e-12
    assert looser.stats["nsteps"] == eager.stats["nsteps"] < again.stats["nsteps"]


@pytest.mark.slow
def test_blocks_of_steps_match_eager_and_halt_for_a_failing_member(monkeypatch):
    """Past BLOCK_AFTER steps a shared clock runs compiled blocks of steps; a member that blows up halts the
    block, the ordinary path freezes it, and the rest finish as eagerly."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from sciode.loop.compiled import CompiledAttempt, _block

    blocks = []
    block = CompiledAttempt.block
    monkeypatch.setattr(CompiledAttempt, "block", lambda self, *a: blocks.append(block(self, *a)) or blocks[-1])

    def f(u, p, t):  # Van der Pol, plus x**3 growth (a blow-up near t = 1) for the member with p = 0.5
        x, y = u.unbind(-1)
        return torch.stack([y + p * x ** 3, (1 - x * x) * y - x], -1)

    p = torch.zeros(6, dtype=torch.float64)
    u0 = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)[:, None].expand(6, 2).clone()
    blowing_up = p.index_fill(0, torch.tensor([2]), 0.5)
    entries, first_block_at_start = [], []
    for prob in (sciode.ODEProblem(f, u0, (0.0, 8.0), p), sciode.ODEProblem(f, u0, (0.0, 8.0), blowing_up)):
        blocks.clear()
        eager, compiled = _both(prob, "dopri5", rtol=1e-7, atol=1e-9, saveat=16)
        assert any(blocks)
        entries.append(len(_debug_get_cache_entry_list(_block.__code__)))
        first_block_at_start.append(blocks[0])
        assert torch.equal(compiled.retcodes, eager.retcodes)
        finite = eager.u.isfinite()
        assert torch.equal(compiled.u.isfinite(), finite)
        assert _relative(compiled.u[finite], eager.u[finite]) <= 1e-12
        assert {k: compiled.stats[k] for k in eager.stats} == eager.stats
    assert eager.retcodes[2] != sciode.ReturnCode.SUCCESS and (eager.retcodes != sciode.ReturnCode.SUCCESS).sum() == 1
    # the second solve of the warm key takes blocks from its first step, before its clock has an accepted step:
    # the same block graph (a NaN standing for "no accepted step yet" was a guard, and compiled the block again)
    assert first_block_at_start == [False, True] and entries[1] == entries[0]


@pytest.mark.slow
def test_repeated_short_solves_earn_blocks(monkeypatch):
    """Steps count towards BLOCK_AFTER_SOLVES across solves of one solver, f and shape (a training loop's
    short solves): a later solve takes blocks, with the eager result and gradients."""
    from sciode.loop import compiled
    from sciode.loop.compiled import CompiledAttempt

    blocks = []
    block = CompiledAttempt.block
    monkeypatch.setattr(CompiledAttempt, "block", lambda self, *a: blocks.append(block(self, *a)) or blocks[-1])
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)

    def f(u, p, t):
        return (u ** 3) @ p

    prob = sciode.ODEProblem(f, torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64), (0.0, 1.0), A)
    eager_sol = sciode.solve(prob, "dopri5", rtol=1e-6, atol=1e-8, saveat=5)
    assert eager_sol.stats["nsteps"] < compiled.BLOCK_AFTER  # one solve alone would never take blocks
    took = []
    monkeypatch.setattr(compiled, "BLOCK_AFTER_SOLVES", 40)  # a few solves, not the default's twenty-odd
    for _ in range(40 // eager_sol.stats["nsteps"] + 2):
        blocks.clear()
        p = A.clone().requires_grad_(True)
        sol = sciode.solve(sciode.remake(prob, p=p), "dopri5", rtol=1e-6, atol=1e-8, saveat=5, compile=True)
        grad = torch.autograd.grad(sol.u.square().sum(), p)[0]
        took.append(any(blocks))
        assert _relative(sol.u, eager_sol.u) <= 1e-12
        assert sol.stats["nsteps"] == eager_sol.stats["nsteps"]
    p = A.clone().requires_grad_(True)
    eager_grad = torch.autograd.grad(sciode.solve(sciode.remake(prob, p=p), "dopri5", rtol=1e-6, atol=1e-8,
                                                  saveat=5).u.square().sum(), p)[0]
    assert _relative(grad, eager_grad) <= 1e-10
    assert not took[0] and took[-1]


@pytest.mark.slow
def test_adjoint_backward_solve_compiles():
    """The adjoint's augmented field takes torch.func VJPs under compile=True, so its backward solve compiles too."""
    ref = linear_problem()
    grads = []
    for compile in (False, True):
        A = ref.problem.p.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)
            sol = sciode.solve(sciode.remake(ref.problem, p=A), "tsit5", saveat=5, rtol=1e-8, atol=1e-10,
                               sensealg="adjoint", compile=compile)
            grads.append(torch.autograd.grad(sol.u.square().sum(), A)[0])
        assert sol.stats["backward_nfe"] > 0
    assert _relative(grads[1], grads[0]) <= 1e-10
