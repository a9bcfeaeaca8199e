"""Fixtures for the aid flow: an event builder and the shipped policy."""

from __future__ import annotations

import pytest
from aid_factories import Events

from edustream.aid.policy import Policy, load_default_policy


@pytest.fixture
def events() -> Events:
    """A fresh event builder."""
    return Events()


@pytest.fixture(scope="session")
def policy() -> Policy:
    """The policy file shipped with the package."""
    return load_default_policy()
