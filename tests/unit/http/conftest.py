"""Fixtures for the HTTP service tests: keys on disk, settings, a fake producer."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_fakes import FakeProducer

from edustream.channels.keys import ChannelKeys, generate_test_keys
from edustream.settings import Settings, get_settings


@pytest.fixture(scope="session")
def channel_keys() -> ChannelKeys:
    """Generate the RSA keys once; four 2048-bit keys are slow to make."""
    return generate_test_keys()


@pytest.fixture(scope="session")
def keys_dir(
    channel_keys: ChannelKeys, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The key set saved where the ingress loads it from."""
    directory = tmp_path_factory.mktemp("channel-keys")
    channel_keys.save(directory)
    return directory


@pytest.fixture
def settings(keys_dir: Path) -> Settings:
    """Settings pointing the ingress at the test keys, with a small body limit."""
    return get_settings().model_copy(
        update={"channel_keys_dir": keys_dir, "ingress_max_body_bytes": 16 * 1024}
    )


@pytest.fixture
def producer() -> FakeProducer:
    """A fresh fake producer per test."""
    return FakeProducer()
