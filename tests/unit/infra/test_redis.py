"""Redis: the configured server, or a clear error, or the embedded fallback."""

from __future__ import annotations

import pytest

from edustream.errors import ConfigError
from infra.broker import free_port
from infra.redis import answers, ensure_redis


def test_unreachable_redis_without_fallback_names_the_url() -> None:
    """The error message carries the URL that did not answer."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError, match=url.replace("/", "\\/")):
        ensure_redis(url, embedded_fallback=False)


def test_unreachable_redis_with_fallback_starts_an_embedded_one() -> None:
    """With the fallback on, a working Redis URL comes back."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    got = ensure_redis(url, embedded_fallback=True)
    assert got != url
    assert answers(got)
