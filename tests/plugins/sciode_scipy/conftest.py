"""Run these tests single-threaded: on a shared, loaded machine torch's intra-op thread pool
makes tiny batched kernels (LU backward's triu/tril, small reductions) take milliseconds."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
