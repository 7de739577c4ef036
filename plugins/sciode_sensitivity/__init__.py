"""Built-in sensitivity algorithms: ``backprop``, ``adjoint`` and ``checkpointed``.

Each is a :class:`sciode.Sensitivity` registered through ``sciode_add_sensitivities``,
exactly as a third-party plugin would register its own. Pass one by name
(``solve(..., sensealg="adjoint")``) or as a configured instance
(``solve(..., sensealg=Adjoint(seminorm=True))``). See docs/sensitivity.md.
"""
from __future__ import annotations

import sciode

from .adjoint import Adjoint
from .augmented import AugmentedField, Packing, channel_norm
from .backprop import Backprop
from .checkpointed import Checkpointed

__all__ = ["Adjoint", "AugmentedField", "Backprop", "Checkpointed", "Packing", "channel_norm"]


@sciode.hookimpl
def sciode_add_sensitivities() -> list[type]:
    return [Backprop, Adjoint, Checkpointed]
