"""The plugin's own tests, written with sciode's conformance helpers."""
from sciode import testing


def test_order():
    testing.assert_convergence_order("ssprk3", 3)


def test_batch_and_dtype():
    testing.assert_batch_consistent("ssprk3", dt=0.01)
    testing.assert_dtype_preserved("ssprk3")
