"""The SDE methods as data: what each sciode name means in torchsde and what it accepts.

One row per method; ``solver.py`` turns every row into a registered Solver class, so
adding a torchsde method is adding a row. Names that would clash with the ODE
solvers (``heun``, ``midpoint``) get an ``sde_`` prefix.
"""
from __future__ import annotations

import dataclasses

ALL_NOISE = ("diagonal", "additive", "scalar", "general")
ALL_LEVY = ("none", "space-time", "davie", "foster")


@dataclasses.dataclass(frozen=True)
class SDEMethod:
    """One torchsde method under its sciode name."""

    name: str                      #: sciode registry name
    torchsde: str                  #: torchsde ``method=``
    sde_types: tuple[str, ...]     #: "ito" and/or "stratonovich"
    noise: tuple[str, ...]         #: noise types it accepts
    order: float                   #: strong order with diagonal or scalar noise
    levy_areas: tuple[str, ...]    #: Levy area approximations it accepts; the first is the default
    summary: str
    reference: str
    additive_order: float | None = None  #: strong order with additive noise, when different
    general_order: float | None = None   #: strong order with general noise, when different

    def strong_order(self, noise: str) -> float:
        """The strong order of convergence for the given noise type."""
        if noise == "additive" and self.additive_order is not None:
            return self.additive_order
        if noise == "general" and self.general_order is not None:
            return self.general_order
        return self.order


METHODS: tuple[SDEMethod, ...] = (
    SDEMethod("euler_maruyama", "euler", ("ito",), ALL_NOISE, 0.5, ALL_LEVY,
              "Euler-Maruyama: the basic Ito scheme (strong order 0.5, 1.0 for additive noise)",
              "Kloeden & Platen (1992), Numerical Solution of SDEs, sec. 9.1", additive_order=1.0),
    SDEMethod("milstein", "milstein", ("ito", "stratonovich"), ("diagonal", "additive", "scalar"), 1.0, ALL_LEVY,
              "Milstein: Euler-Maruyama plus the g g' correction (strong order 1.0); derivative_free=True "
              "replaces g' by a finite difference",
              "Milstein (1974); Kloeden & Platen (1992), sec. 10.3"),
    SDEMethod("srk", "srk", ("ito",), ("diagonal", "additive", "scalar"), 1.5, ("space-time", "davie", "foster"),
              "stochastic Runge-Kutta of Roessler (strong order 1.5 for diagonal/scalar/additive noise)",
              "Roessler (2010), SIAM J. Numer. Anal. 48(3)"),
    SDEMethod("euler_heun", "euler_heun", ("stratonovich",), ALL_NOISE, 1.0, ALL_LEVY,
              "Euler-Heun: Heun's predictor for the diffusion only (Stratonovich)",
              "Kloeden & Platen (1992), sec. 10.4", general_order=0.5),
    SDEMethod("sde_heun", "heun", ("stratonovich",), ALL_NOISE, 1.0, ALL_LEVY,
              "stochastic Heun (trapezoidal predictor-corrector, Stratonovich); "
              "strong order 1.0 unless noise is general",
              "Ruemelin (1982), SIAM J. Numer. Anal. 19(3)", general_order=0.5),
    SDEMethod("sde_midpoint", "midpoint", ("stratonovich",), ALL_NOISE, 1.0, ALL_LEVY,
              "stochastic midpoint method (Stratonovich); strong order 1.0 unless noise is general",
              "Burrage, Burrage & Tian (2004), Proc. R. Soc. A 460", general_order=0.5),
    SDEMethod("reversible_heun", "reversible_heun", ("stratonovich",), ALL_NOISE, 0.5, ALL_LEVY,
              "reversible Heun (Stratonovich): algebraically reversible, so sensealg='adjoint' gives exact "
              "gradients of the discrete solution",
              "Kidger, Foster, Li & Lyons (2021), Efficient and Accurate Gradients for Neural SDEs",
              additive_order=1.0),
    SDEMethod("log_ode", "log_ode", ("stratonovich",), ALL_NOISE, 1.0, ("foster", "davie"),
              "log-ODE midpoint method (Stratonovich) using a Levy area approximation; strong order 1.0 "
              "unless noise is general",
              "Foster, Lyons & Oberhauser (2020), An optimal polynomial approximation of Brownian motion",
              general_order=0.5),
)

BY_NAME = {m.name: m for m in METHODS}
