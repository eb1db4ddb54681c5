"""Shared test setup."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The tests use tiny networks on 2 cores that other jobs share; two intra-op threads
    # spinning against each other made small convolutions 10-30x slower here.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
