"""Shared fixtures: deterministic seeds, and single-threaded torch.

The tests' tensors are small: two intra-op threads on a 2-core machine cost far more
in synchronisation than they gain (measured by the plugin engineers: tiny ops such as
LU backward taking ~20 ms, ~100x CPU time for one FFJORD training step). The previous
thread count is restored after each test.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
