"""Liveness and readiness: ready only when Kafka and Redis both answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from redis.asyncio import Redis

from edustream.http import health
from edustream.http.context import Context
from edustream.settings import Settings
from infra.broker import free_port
from infra.redis import async_client
from topics import billing


class _Metadata:
    def __init__(self, topics: set[str]) -> None:
        self._topics = topics

    def topics(self) -> set[str]:
        return self._topics


class _Client:
    def __init__(self, topics: set[str] | None) -> None:
        self._topics = topics

    async def fetch_all_metadata(self) -> _Metadata:
        if self._topics is None:
            raise KafkaConnectionError("no broker")
        return _Metadata(self._topics)


class _Producer:
    """Only what readiness reads: the client's cluster metadata."""

    def __init__(self, topics: set[str] | None) -> None:
        self.client = _Client(topics)


ALL_TOPICS = {billing.CALLBACKS.name, billing.REJECTED_CALLBACKS.name, "other"}


async def _probe(settings: Settings, producer: Any, redis: Redis, path: str) -> Any:
    app = web.Application()
    health.routes(app, Context(settings, cast(AIOKafkaProducer, producer), redis))
    async with (
        TestClient(TestServer(app)) as client,
        client.get(path) as resp,
    ):
        return resp.status, await resp.json()


@pytest.fixture
async def live_redis(redis_url: str) -> AsyncIterator[Redis]:
    """The session's Redis."""
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    """A client of a port nothing listens on."""
    client = async_client(f"redis://127.0.0.1:{free_port()}/0")
    yield client
    await client.aclose()


async def test_liveness_checks_nothing_else(
    settings: Settings, dead_redis: Redis
) -> None:
    """/healthz is 200 even with Kafka and Redis down."""
    answer = await _probe(settings, _Producer(None), dead_redis, "/healthz")

    assert answer == (200, {"status": "ok"})


async def test_ready_when_both_answer(settings: Settings, live_redis: Redis) -> None:
    """Metadata listing the callback topics and a PING make the service ready."""
    answer = await _probe(settings, _Producer(ALL_TOPICS), live_redis, "/readyz")

    assert answer == (200, {"status": "ready", "kafka": "ok", "redis": "ok"})


@pytest.mark.parametrize(
    "topics", [None, {"other"}], ids=["broker-down", "topics-missing"]
)
async def test_not_ready_without_kafka(
    settings: Settings, live_redis: Redis, topics: set[str] | None
) -> None:
    """No broker, or a broker without the callback topics, is not ready."""
    answer = await _probe(settings, _Producer(topics), live_redis, "/readyz")

    assert answer == (
        503,
        {"status": "not_ready", "kafka": "unavailable", "redis": "ok"},
    )


async def test_not_ready_without_redis(settings: Settings, dead_redis: Redis) -> None:
    """A Redis that does not answer makes the service not ready."""
    answer = await _probe(settings, _Producer(ALL_TOPICS), dead_redis, "/readyz")

    assert answer == (
        503,
        {"status": "not_ready", "kafka": "ok", "redis": "unavailable"},
    )
