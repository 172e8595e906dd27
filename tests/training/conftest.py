"""Shared set-up of the training tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny; on a shared 2-core machine two OpenMP threads mostly wait on each
    other (tests/training took 187 s with 2 threads under load, 15 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
