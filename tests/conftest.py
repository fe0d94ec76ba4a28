"""Fixtures shared by the unit tests."""
import pytest

from ipkit import data


@pytest.fixture(scope="session")
def digits():
    """sklearn's 8x8 digits split into owner / attacker / test, on the CPU: small and fast."""
    return data.split("digits", seed=0, device="cpu")
