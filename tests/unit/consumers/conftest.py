"""Fixtures for read-model tests: a real Redis client and a private prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from infra.redis import async_client


@pytest.fixture
def read_model_prefix() -> str:
    """A key prefix no other test or process uses."""
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
async def read_model_redis(
    redis_url: str, read_model_prefix: str
) -> AsyncIterator[Redis]:
    """A client of the session's Redis; the test's keys are deleted after."""
    client = async_client(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{read_model_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
