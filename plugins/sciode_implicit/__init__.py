"""Implicit and stiff solvers: ``implicit_euler``, ``trapezoid``, ``rodas4``, ``rodas4p``.

- ``implicit_euler`` (order 1, L-stable) and ``trapezoid`` (order 2, A-stable) solve their
  stage equation by simplified Newton on a batched Jacobian (``newton.py``, ``linalg.py``,
  ``jacobian.py``); fixed step (``adaptive=False, dt=...``) or adaptive. Options:
  ``max_iters``, ``newton_tol``, ``reuse_jacobian``, ``refresh_rate``.
- ``rodas4`` / ``rodas4p`` (order 4(3), stiffly accurate Rosenbrock, dense output): one
  Jacobian, one LU and six linear solves per step, no Newton loop; the recommended stiff
  solvers for batches.

The Jacobian is the Problem's ``jac(u, p, t)`` when given, else autodiff. Members of a
batch are assumed independent (block-diagonal Jacobian). ``stepping="per_member"`` gives
each member its own t, dt, accept/reject and retcode (an ensemble of parameter sets: one
stiff or failing member does not slow down or fail the others); the default
``stepping="shared"`` treats the batch as one coupled system with one step size (e.g. a
neural ODE's minibatch, where every member must be at the same t), and a Newton failure
of any member then rejects the shared step.

Gradients: backprop (sensealg=None) works through all four; the Newton solve is
differentiated implicitly (see ``theta.py``), Rosenbrock steps as written.
"""
from __future__ import annotations

import sciode

from .methods import IMPLICIT


@sciode.hookimpl
def sciode_add_solvers() -> list[type]:
    return list(IMPLICIT)
