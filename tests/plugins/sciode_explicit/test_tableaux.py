"""Every built-in tableau is internally consistent; dense output matches published values."""
import numpy as np
import pytest

import sciode
from sciode_explicit import tableaux
from sciode_explicit.second_order import NYSTROM4

ALL = {name: getattr(tableaux, name) for name in ("EULER", "MIDPOINT", "HEUN", "RK4", "BOSH3", "DOPRI5", "TSIT5")}


@pytest.mark.parametrize("name", ALL)
def test_tableau_consistency(name):
    tab = ALL[name]
    tab.check()
    for i, row in enumerate(tab.A):
        assert abs(sum(row) - tab.c[i]) < 1e-12
    assert abs(sum(tab.b) - 1) < 1e-12
    if tab.error is not None:
        assert abs(sum(tab.error)) < 1e-12
    assert tab.explicit


def test_broken_tableau_is_rejected():
    bad = sciode.ButcherTableau.from_rows(A=[[], [0.4]], b=[0.5, 0.5], c=[0, 0.5], order=2)
    with pytest.raises(sciode.ProblemError, match="row 1 of A"):
        bad.check()


def test_dopri5_matches_scipy_rk45_coefficients():
    from scipy.integrate._ivp.rk import RK45

    tab = tableaux.DOPRI5
    np.testing.assert_allclose(np.array(tab.interpolant), RK45.P, rtol=1e-14, atol=1e-15)
    # scipy's E is b_hat - b (with the FSAL stage) in its sign convention
    np.testing.assert_allclose(-np.array(tab.error), RK45.E, rtol=1e-12, atol=1e-16)


def test_rkn_tableau_consistency():
    NYSTROM4.check()


def test_every_registered_solver_has_declared_order():
    for name, cls in sciode.solvers().items():
        assert cls.order > 0, name
