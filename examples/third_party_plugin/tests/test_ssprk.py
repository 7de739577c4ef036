"""The plugin's own tests, written with sciode's conformance helpers."""
from sciode import testing


def test_order():
    testing.assert_convergence_order("ssprk3", 3)


def test_batch_and_dtype():
    testing.assert_batch_consistent("ssprk3", dt=0.01)
    testing.assert_dtype_preserved("ssprk3")


def test_tableau_version_has_the_same_order_and_works_with_saveat():
    import torch

    import sciode

    testing.assert_convergence_order("ssprk3_tableau", 3)
    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(2, dtype=torch.float64), (0.0, 1.0))
    on_grid = sciode.solve(prob, "ssprk3_tableau", dt=0.01, saveat=4)
    by_hand = sciode.solve(prob, "ssprk3", dt=0.01, saveat=4)
    torch.testing.assert_close(on_grid.u, by_hand.u, rtol=1e-12, atol=1e-14)
