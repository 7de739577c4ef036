"""Model tests run single-threaded: their tensors are small, and two intra-op threads on a
shared, busy machine cost far more in synchronisation than they gain (measured: ~100x
CPU time for one FFJORD training step). The previous thread count is restored after."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
