"""Drop-in fronts for code written against other ODE libraries, built on :func:`sciode.solve`.

- :mod:`sciode.compat.torchdiffeq`: ``odeint``, ``odeint_adjoint``, ``odeint_event``;
- :mod:`sciode.compat.scipy`: ``solve_ivp``.

Each keeps its peer's signature, defaults and failure semantics, maps the peer's method
names to registered sciode solvers and raises a :class:`sciode.ProblemError` naming any
option it cannot honour. The fronts hold no algorithms: every solve goes through ``solve``.
"""
