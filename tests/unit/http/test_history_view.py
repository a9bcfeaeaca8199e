"""``GET /history/{student_ref}``: the read model's entries, oldest first."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from consumers.billing_history import PaymentHistory
from edustream.http import history
from edustream.http.context import Context
from edustream.settings import Settings
from infra.broker import free_port
from infra.redis import async_client
from tests.e2e.billing_records import (
    bill_record,
    delivered,
    new_bill,
    receipt_record,
    red_letter_record,
)

Client = TestClient[web.Request, web.Application]
T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis."""
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def client(settings: Settings, redis: Redis) -> AsyncIterator[Client]:
    """A test client of an app with only the history view."""
    app = web.Application()
    history.routes(app, Context(settings, cast(AIOKafkaProducer, None), redis))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def student(redis: Redis) -> AsyncIterator[str]:
    """A student with a paid and partly refunded bill in the history."""
    ref = f"stu_{uuid.uuid4().hex[:26]}"
    bill = new_bill(ref, total_items=(120_000,))
    model = PaymentHistory(redis)
    for item in (
        delivered(
            "red_letter", red_letter_record(bill, 20_000, T0 + timedelta(days=1))
        ),
        delivered("receipt", receipt_record(bill, T0)),
        delivered("bill", bill_record(bill)),
    ):
        await model.handle(item)
    yield ref
    await redis.delete(
        f"billing:history:student:{ref}:timeline",
        f"billing:history:student:{ref}:entries",
        f"billing:history:order:{bill.bill_id}:student",
    )


async def _get(client: Client, path: str) -> tuple[int, dict[str, Any]]:
    async with client.get(path) as resp:
        return resp.status, await resp.json()


async def test_history_comes_in_time_order(client: Client, student: str) -> None:
    """Payment, receipt, refund, red letter, whatever order they were read in."""
    status, answer = await _get(client, f"/history/{student}")

    assert status == 200
    assert answer["student_ref"] == student
    assert [e["kind"] for e in answer["entries"]] == [
        "payment",
        "receipt",
        "refund",
        "red_letter_receipt",
    ]
    assert [e["at"] for e in answer["entries"]] == sorted(
        e["at"] for e in answer["entries"]
    )
    assert answer["entries"][2]["refund_fen"] == 20_000


async def test_unknown_student_has_an_empty_history(client: Client) -> None:
    """Nothing recorded is an empty list."""
    status, answer = await _get(client, f"/history/stu_{uuid.uuid4().hex[:26]}")

    assert status == 200
    assert answer["entries"] == []


@pytest.mark.parametrize("ref", ["a", "stu_" + "x" * 80, "stu_a:b", "stu_%2A"])
async def test_a_path_that_is_no_reference_is_400(client: Client, ref: str) -> None:
    """Odd characters and lengths never reach Redis."""
    status, answer = await _get(client, f"/history/{ref}")

    assert (status, answer) == (400, {"error": "invalid_student_ref"})


async def test_redis_down_is_503(settings: Settings) -> None:
    """An unreachable read model is unavailable."""
    dead = async_client(f"redis://127.0.0.1:{free_port()}/0")
    app = web.Application()
    history.routes(app, Context(settings, cast(AIOKafkaProducer, None), dead))
    try:
        async with TestClient(TestServer(app)) as test_client:
            status, answer = await _get(test_client, "/history/stu_abcdef")
    finally:
        await dead.aclose()

    assert (status, answer) == (503, {"error": "unavailable"})
