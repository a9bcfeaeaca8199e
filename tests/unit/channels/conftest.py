"""Shared fixtures for the payment-channel tests: one key set per session."""

from __future__ import annotations

import pytest

from edustream.channels.keys import ChannelKeys, VerifierConfig, generate_test_keys


@pytest.fixture(scope="session")
def channel_keys() -> ChannelKeys:
    """Generate the RSA keys once; four 2048-bit keys are slow to make."""
    return generate_test_keys()


@pytest.fixture(scope="session")
def verifier(channel_keys: ChannelKeys) -> VerifierConfig:
    """The merchant-side view of the session's keys."""
    return channel_keys.verifier()
