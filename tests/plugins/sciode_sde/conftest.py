"""Helpers for the SDE plugin tests."""
from __future__ import annotations

import pytest
import torch

import sciode


class _ByName(sciode.Sensitivity):
    """A stand-in carrying only a name: SDE solvers dispatch on ``sensealg.name``."""

    def __init__(self, name: str) -> None:
        self.name = name


def _sensitivity(name: str) -> object:
    return name if name in sciode.sensitivities() else _ByName(name)


@pytest.fixture
def sensitivity() -> object:
    """name -> the registered sensitivity if the sensitivity plugin provides it, else a stand-in with that name."""
    return _sensitivity


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
