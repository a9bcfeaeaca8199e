"""Receipt numbering against the real Redis (database 15)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edustream.billing.numbering import (
    Numbered,
    NumberRequest,
    ReceiptNumberer,
    series_keys,
)
from edustream.errors import RetriableError

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client on database 15, or a skip when no Redis answers."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except RedisError:
        await client.aclose()
        pytest.skip(
            f"no Redis at {REDIS_URL}; start one with "
            "`redis-server --daemonize yes --port 6379 --save ''`"
        )

    yield client
    await client.aclose()


@pytest.fixture
async def series(redis: Redis) -> AsyncIterator[str]:
    """A series name used by this test alone; its keys are deleted after."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    await redis.delete(*series_keys(name))


def test_keys_share_a_hash_tag() -> None:
    """Both keys of a series carry the series as a cluster hash tag."""
    assert series_keys("31052025") == (
        "edustream:receipts:{31052025}:next",
        "edustream:receipts:{31052025}:numbers",
    )


@pytest.mark.parametrize("bad", ["", "31:05", "a{b}", "x" * 65])
def test_series_names_are_checked(bad: str) -> None:
    """Series names that could break the key layout are refused."""
    with pytest.raises(ValueError, match="series"):
        series_keys(bad)


async def test_numbers_are_consecutive_and_stable(redis: Redis, series: str) -> None:
    """New receipts get 1, 2, 3; a replayed receipt gets its number back."""
    numberer = ReceiptNumberer(redis)

    first = [await numberer.allocate(series, rid) for rid in ("a", "b", "c")]
    replayed = await numberer.allocate(series, "b")

    assert first == [1, 2, 3]
    assert replayed == 2
    assert await numberer.numbers(series) == {"a": 1, "b": 2, "c": 3}
    assert await numberer.lookup(series, "c") == 3
    assert await numberer.lookup(series, "zzz") is None


async def test_series_count_separately(redis: Redis, series: str) -> None:
    """Each receipt code has its own sequence."""
    numberer = ReceiptNumberer(redis)
    other = series + "-b"
    try:
        await numberer.allocate(series, "a")
        await numberer.allocate(series, "b")
        assert await numberer.allocate(other, "a") == 1
    finally:
        await redis.delete(*series_keys(other))


async def test_a_group_is_numbered_in_order_in_one_call(
    redis: Redis, series: str
) -> None:
    """A group gets numbers in the order asked: a red-letter receipt after its
    original, with the original's number; a replay gets its number back; a
    red-letter receipt whose original has no number gets none, and no number
    is used up for it."""
    numberer = ReceiptNumberer(redis)
    group = [
        NumberRequest(series, "blue"),
        NumberRequest(series, "red", original_id="blue"),
        NumberRequest(series, "orphan-red", original_id="missing"),
        NumberRequest(series, "blue"),
    ]

    numbers = await numberer.allocate_all(group)

    assert numbers == [Numbered(1), Numbered(2, original=1), None, Numbered(1)]
    assert await numberer.numbers(series) == {"blue": 1, "red": 2}
    assert await numberer.allocate(series, "next") == 3
    assert await numberer.allocate_all([]) == []


async def test_a_group_of_two_series_counts_each_apart(
    redis: Redis, series: str
) -> None:
    """Receipts of two series asked for together are numbered per series, and
    the answers come back in the order asked."""
    numberer = ReceiptNumberer(redis)
    other = series + "-b"
    try:
        numbers = await numberer.allocate_all(
            [
                NumberRequest(series, "a"),
                NumberRequest(other, "x"),
                NumberRequest(series, "b"),
                NumberRequest(other, "y"),
            ]
        )
    finally:
        await redis.delete(*series_keys(other))

    assert numbers == [Numbered(1), Numbered(1), Numbered(2), Numbered(2)]


async def test_concurrent_allocations_leave_no_gap(redis: Redis, series: str) -> None:
    """50 concurrent asks for 20 receipts from two workers: exactly 1..20."""
    second = Redis.from_url(REDIS_URL)
    workers = [ReceiptNumberer(redis), ReceiptNumberer(second)]
    receipt_ids = [f"r{i % 20}" for i in range(50)]

    try:
        numbers = await asyncio.gather(
            *(workers[i % 2].allocate(series, rid) for i, rid in enumerate(receipt_ids))
        )
    finally:
        await second.aclose()

    given: dict[str, set[int]] = {}
    for rid, number in zip(receipt_ids, numbers, strict=True):
        given.setdefault(rid, set()).add(number)
    assert all(len(seen) == 1 for seen in given.values())
    assert sorted(n for seen in given.values() for n in seen) == list(range(1, 21))
    stored = await workers[0].numbers(series)
    assert stored == {rid: next(iter(seen)) for rid, seen in given.items()}


async def test_redis_failure_is_retriable() -> None:
    """A Redis that cannot be reached raises RetriableError from the cause."""
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    numberer = ReceiptNumberer(client)

    try:
        with pytest.raises(RetriableError) as caught:
            await numberer.allocate("31052025", "a")
        with pytest.raises(RetriableError):
            await numberer.allocate_all([NumberRequest("31052025", "a")])
        with pytest.raises(RetriableError):
            await numberer.numbers("31052025")
    finally:
        await client.aclose()

    assert isinstance(caught.value.__cause__, RedisError)
    assert caught.value.retriable
