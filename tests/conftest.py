"""Shared fixtures. The mock device is real TT-NN (host stack and allocator) with no card."""

import pytest


@pytest.fixture(scope="session")
def mock_device():
    from fxport.runtime.devices import open_session_device

    return open_session_device("mock", "n150")


@pytest.fixture
def ctx(mock_device):
    """A lowering context on the mock n150 with activations in DRAM."""
    from fxport.runtime.context import LoweringContext

    return LoweringContext(mock_device, memory="dram")
