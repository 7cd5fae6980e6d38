"""Fixtures shared by the test modules."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One CPU thread for a module: for the book's small networks it is faster than two, and comparisons with recorded
    numbers see the same kernels every time."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
