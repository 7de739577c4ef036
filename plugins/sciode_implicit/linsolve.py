"""The linear-algebra choice of the implicit solvers: how df/du is built and how W is factored.

``linsolve`` (an option of every implicit solver):
- ``"dense"``: a batched (*batch, n, n) Jacobian and a batched LU (``linalg.py``);
- ``"banded"``: a banded LAPACK LU of the whole batch (``banded.py``);
- ``"sparse"``: a SuperLU factorization of the whole batch (``sparse_lu.py``);
- ``"gmres"``: no matrix at all, restarted GMRES on Jacobian-vector products (``krylov.py``),
  optionally preconditioned by a user callable or by ``preconditioner="ilu"``, an incomplete
  LU of W built from the colored Jacobian on the pattern (``ilu.py``);
- ``None`` (default): ``"banded"`` for a ``sciode.Banded`` prototype, ``"sparse"`` for another
  ``jac_prototype``, else ``"dense"``. A ``jac`` returning a sparse tensor works with every choice
  (with ``linsolve="sparse"`` its first result's entries make the pattern).

Structured Jacobians come from the Problem's ``jac`` (dense or sparse tensors, gathered onto the
pattern) or, by default, from colored derivative products: one per color (``coloring.py``).
With a mass matrix M the factored matrix is M - scale*J; its entries join
the pattern. One ``LinearSystem`` is built per solve and kept on the RHS.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch

from sciode import RHS, ProblemError
from sciode.structure import Banded

from .banded import BandedFactorization
from .coloring import colored_jacobian
from .ilu import IncompleteLU
from .jacobian import jacobian as dense_jacobian
from .jacobian import time_derivative
from .krylov import KrylovFactorization, KrylovOptions, Linearization
from .linalg import factor as dense_factor
from .mass import MassMatrix
from .pattern import Pattern, make_pattern
from .sparse_lu import SparseFactorization
from .structured import member_scale

LINSOLVES = ("dense", "banded", "sparse", "gmres")
#: built-in GMRES preconditioners, chosen by name
PRECONDITIONERS = ("ilu",)
_ATTR = "_sciode_implicit_linear_system"


@dataclasses.dataclass(frozen=True)
class LinsolveOptions:
    """The solver options that pick and tune the linear solver."""

    linsolve: str | None = None
    krylov: KrylovOptions = dataclasses.field(default_factory=KrylovOptions)

    @classmethod
    def build(cls, linsolve: str | None, preconditioner: Any, krylov_tol: float, krylov_restart: int,
              krylov_maxiter: int) -> LinsolveOptions:
        if linsolve is not None and linsolve not in LINSOLVES:
            raise ProblemError(f"linsolve must be None or one of {LINSOLVES}; got {linsolve!r}")
        if preconditioner is not None and not callable(preconditioner) and preconditioner not in PRECONDITIONERS:
            raise ProblemError(f"preconditioner must be None, one of {PRECONDITIONERS} or a callable "
                               f"preconditioner(u, p, t, scale) -> (r -> P^-1 r); got {preconditioner!r}")
        if preconditioner is not None and linsolve not in (None, "gmres"):
            raise ProblemError(f"preconditioner applies to linsolve='gmres' only; got linsolve={linsolve!r}")
        if isinstance(krylov_tol, bool) or not isinstance(krylov_tol, (int, float)) or not 0 < krylov_tol < 1:
            raise ProblemError(f"krylov_tol must be a number in (0, 1); got {krylov_tol!r}")
        for name, value in (("krylov_restart", krylov_restart), ("krylov_maxiter", krylov_maxiter)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProblemError(f"{name} must be a positive int; got {value!r}")
        return cls(linsolve, KrylovOptions(float(krylov_tol), krylov_restart, krylov_maxiter, preconditioner))


@dataclasses.dataclass
class Structured:
    """df/du on a pattern: values (*batch, nnz)."""

    values: torch.Tensor
    pattern: Pattern

    def isfinite(self) -> bool:
        return bool(torch.isfinite(self.values.detach()).all())


class LinearSystem:
    """Builds df/du in the chosen representation and factors W = M - scale*J."""

    def __init__(self, problem: Any, options: LinsolveOptions) -> None:
        self.problem, self.options = problem, options
        self.n = problem.state_size
        self.kind = options.linsolve or self._default_kind(problem)
        self._pattern: Pattern | None = None
        preconditioner = options.krylov.preconditioner
        if preconditioner is not None and self.kind != "gmres":
            raise ProblemError(f"preconditioner applies to linsolve='gmres' only; this Problem's default linsolve is "
                               f"{self.kind!r}: pass linsolve='gmres'")
        #: a built-in preconditioner needs df/du on the pattern besides the products
        self.structured = isinstance(preconditioner, str)
        what = f"preconditioner={preconditioner!r}" if self.structured else f"linsolve={self.kind!r}"
        if (self.kind in ("banded", "sparse") or self.structured) and problem.jac_prototype is None \
                and problem.jac is None:
            raise ProblemError(f"{what} needs the Jacobian's structure: give the Problem a jac_prototype (a boolean "
                               "mask, a sparse tensor or sciode.Banded(lower, upper)) or a jac that returns a sparse "
                               "tensor")
        if problem.jac_prototype is not None:
            self._pattern = make_pattern(self.n, problem.jac_prototype, problem.mass_matrix)
        self.mass = MassMatrix(problem.mass_matrix, self.n)
        #: derivative products spent on colored Jacobians (one per color per Jacobian)
        self.nproducts = 0

    @staticmethod
    def _default_kind(problem: Any) -> str:
        proto = problem.jac_prototype
        if isinstance(proto, Banded):
            return "banded"
        return "dense" if proto is None else "sparse"

    @property
    def pattern(self) -> Pattern | None:
        return self._pattern

    @property
    def dense(self) -> bool:
        return self.kind == "dense"

    # -- df/du ---------------------------------------------------------------------------------
    def jacobian(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, with_time: bool = False,
                 create_graph: bool = False) -> tuple[Any, torch.Tensor | None]:
        """df/du at (t, u) (a dense tensor, a ``Structured`` or a ``Linearization``) and df/dt if asked."""
        if self.kind == "gmres":
            rhs.njac += 1
            structured = None
            if self.structured:  # for the preconditioner only: no graph
                with torch.no_grad():
                    structured = Structured(self._values(rhs, t, u.detach(), False), self._pattern)
            point = Linearization(rhs, t, u, exact=create_graph, structured=structured)
            return point, (time_derivative(rhs, t, u) if with_time else None)
        if self.problem.jac is None and self._pattern is None:
            return dense_jacobian(rhs, t, u, with_time, create_graph)
        rhs.njac += 1
        values = self._values(rhs, t, u, create_graph)
        ft = time_derivative(rhs, t, u) if with_time else None
        if self.dense:
            return (values if self._pattern is None else self._pattern.to_dense(values)), ft
        return Structured(values, self._pattern), ft

    def _values(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """df/du on the pattern, (*batch, nnz): the user's jac, else colored products."""
        if self.problem.jac is not None:
            with torch.set_grad_enabled(create_graph):
                return self._user_values(rhs, t, u)
        values, products = colored_jacobian(rhs, t, u, self._pattern, create_graph)
        self.nproducts += products
        return values

    def _user_values(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The user's jac on the pattern (or as a dense matrix for linsolve='dense' without a prototype)."""
        J = rhs.problem.jac(u, rhs.p, t)
        n = self.n
        expected = u.shape + (n,)
        if not isinstance(J, torch.Tensor) or tuple(J.shape) != tuple(expected):
            got = tuple(J.shape) if isinstance(J, torch.Tensor) else type(J).__name__
            raise ProblemError(f"jac(u, p, t) must return df/du with shape {tuple(expected)} (*batch, n, n), dense "
                               f"or sparse; got {got}")
        if J.dtype != u.dtype:
            raise ProblemError(f"jac returned dtype {J.dtype}; expected u0's dtype {u.dtype}")
        if J.layout == torch.strided:
            if self._pattern is None:
                return J if self.dense else self._no_pattern()
            return self._pattern.gather(J)
        coo = J.to_sparse_coo().coalesce()
        idx, vals = coo.indices(), coo.values()
        if self._pattern is None:
            if self.dense:
                return coo.to_dense()
            self._pattern = make_pattern(n, torch.sparse_coo_tensor(idx[-2:], torch.ones_like(vals), (n, n)).coalesce(),
                                         self.problem.mass_matrix)
            self.mass = MassMatrix(self.problem.mass_matrix, n)
        pos = self._pattern.positions(idx[-2], idx[-1], "jac(u, p, t)")
        batch = u.shape[:-1]
        flat_member = torch.zeros_like(idx[0])
        for d, size in zip(idx[:-2], batch):
            flat_member = flat_member * size + d
        out = vals.new_zeros((max(1, int(torch.tensor(batch).prod())) if batch else 1, self._pattern.nnz))
        out = out.index_put((flat_member.to(out.device), pos.to(out.device)), vals, accumulate=True)
        return out.reshape(batch + (self._pattern.nnz,))

    def _no_pattern(self) -> Any:
        raise ProblemError(f"linsolve={self.kind!r} with a jac returning a dense matrix needs jac_prototype")

    # -- W = M - scale J -----------------------------------------------------------------------
    def factor(self, J: Any, scale: Any) -> Any:
        """A factorization of M - scale*J with ``solve(b, counter)``, ``bad``, ``any_bad`` and ``reason()``."""
        if self.kind == "gmres":
            return KrylovFactorization(J, scale, None if self.mass.identity else self.mass, self.options.krylov,
                                       *self._preconditioner(J, scale))
        if isinstance(J, torch.Tensor):
            return dense_factor(J, scale, self.mass.dense(J))
        kind = BandedFactorization if self.kind == "banded" else SparseFactorization
        return kind(J.pattern, self._w(J, scale), J.values.shape[:-1])

    def _w(self, J: Structured, scale: Any) -> torch.Tensor:
        """W = M - scale*J on J's pattern, (*batch, nnz)."""
        batch = J.values.shape[:-1]
        s = member_scale(scale, batch, J.values.dtype, J.values.device)
        w = self.mass.on_pattern(J.pattern, J.values) - s * J.values
        if not self.mass.identity and isinstance(scale, torch.Tensor) and scale.ndim > 0:
            eye = torch.zeros_like(w).index_fill(-1, J.pattern.diagonal.to(w.device), 1.0)
            w = torch.where(s == 0, eye, w)  # frozen members under a singular M
        return w

    def _preconditioner(self, point: Linearization, scale: Any) -> tuple[Any, Any]:
        """(r -> P^-1 r, r -> P^-T r or None) for GMRES, or (None, None) without a preconditioner."""
        chosen = self.options.krylov.preconditioner
        if chosen is None:
            return None, None
        if chosen == "ilu":
            ilu = IncompleteLU(point.structured.pattern, self._w(point.structured, scale))
            return ilu.apply, functools.partial(ilu.apply, transpose=True)
        return chosen(point.u.detach(), point.rhs.p, point.t, scale), None

    def isfinite(self, J: Any) -> bool:
        if isinstance(J, torch.Tensor):
            return bool(torch.isfinite(J.detach()).all())
        return J.isfinite() if isinstance(J, Structured) else True


def linear_system(rhs: RHS, options: LinsolveOptions) -> LinearSystem:
    """The solve's LinearSystem, built on first use and kept on the RHS."""
    system = getattr(rhs, _ATTR, None)
    if system is None or system.options is not options:
        system = LinearSystem(rhs.problem, options)
        setattr(rhs, _ATTR, system)
    return system
