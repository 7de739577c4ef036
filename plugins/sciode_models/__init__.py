"""Neural-ODE model families: ODE-Net, CNF and FFJORD (and further families added below).

Every model is an ``nn.Module`` built on ``sciode.solve``; it takes its solver and
sensitivity by registered name, so any installed solver or sensitivity drives it.
``sciode_add_models`` registers the classes in ``MODELS``.
"""
from __future__ import annotations

import sciode

from .classifiers import MLPClassifier, ODENetClassifier, ResNetClassifier, parameter_count
from .cnf import CNF, FFJORD, standard_normal_log_prob
from .digits import load_digits_split

# Further model families: import them here and extend MODELS (e.g. the latent ODE of issue 7).
from .latent_ode import ODERNN, LatentODE, RNNBaseline
from .layers import ConcatSquashLinear, ConcatSquashMLP
from .odenet import ConcatConv2d, ConvODEFunc, ODEBlock
from .toy_data import TOY_DATASETS, toy_entropy, toy_log_density, toy_sample

MODELS: list[type] = [ODEBlock, ODENetClassifier, CNF, FFJORD, LatentODE, ODERNN, RNNBaseline]

__all__ = [
    "CNF", "ConcatConv2d", "ConcatSquashLinear", "ConcatSquashMLP", "ConvODEFunc", "FFJORD", "MLPClassifier",
    "MODELS", "ODEBlock", "ODENetClassifier", "ResNetClassifier", "TOY_DATASETS", "load_digits_split",
    "parameter_count", "standard_normal_log_prob", "toy_entropy", "toy_log_density", "toy_sample",
]


@sciode.hookimpl
def sciode_add_models() -> list[type]:
    return list(MODELS)
