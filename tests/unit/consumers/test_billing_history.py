"""Payment history: per student, in time order, idempotent by record id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from consumers.base import Delivered
from consumers.billing_history import PaymentHistory, read_history, subscribers
from consumers.bills_lookup import BillsLookup
from edustream.billing.orders import ExceptionKind
from tests.e2e.billing_records import (
    bill_record,
    delivered,
    exception_record,
    new_bill,
    receipt_record,
    red_letter_record,
)
from topics import billing

T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def model(read_model_redis: Redis, read_model_prefix: str) -> PaymentHistory:
    """The subscriber under a private prefix."""
    return PaymentHistory(read_model_redis, prefix=read_model_prefix)


async def _kinds(redis: Redis, prefix: str, ref: str) -> list[str]:
    return [entry["kind"] for entry in await read_history(redis, ref, prefix)]


async def _dump(redis: Redis, prefix: str) -> dict[Any, Any]:
    state: dict[Any, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        kind = await redis.type(key)
        if kind == b"hash":
            state[key] = await redis.hgetall(key)
        elif kind == b"zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            state[key] = await redis.get(key)
    return state


def _story(ref: str) -> list[Delivered]:
    """A bill paid twice (the second refused), then partly refunded."""
    bill = new_bill(ref, total_items=(200_000,))
    return [
        delivered("bill", bill_record(bill)),
        delivered("receipt", receipt_record(bill, T0)),
        delivered(
            "exception", exception_record(bill, bill.bill_id, T0 + timedelta(minutes=5))
        ),
        delivered(
            "red_letter", red_letter_record(bill, 50_000, T0 + timedelta(days=2))
        ),
    ]


async def test_a_student_history_reads_in_time_order(
    model: PaymentHistory, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Payment, receipt, exception, refund, red letter: oldest first."""
    for item in _story("stu_a"):
        await model.handle(item)

    entries = await read_history(read_model_redis, "stu_a", read_model_prefix)

    assert [e["kind"] for e in entries] == [
        "payment",
        "receipt",
        "exception",
        "refund",
        "red_letter_receipt",
    ]
    payment, receipt, exception, refund, red = entries
    assert payment["amount_fen"] == receipt["amount_fen"] == 200_000
    assert payment["at"] == T0.isoformat()
    assert receipt["receipt_code"] == "31052025"
    assert receipt["receipt_number"] == "0000000001"
    assert exception["exception_kind"] == "DUPLICATE_PAYMENT"
    assert exception["channel"] == "wechat"
    assert refund["refund_fen"] == red["refund_fen"] == 50_000
    assert red["original_receipt_number"] == "0000000001"
    assert {e["order_id"] for e in entries} == {payment["order_id"]}


async def test_arrival_order_does_not_change_the_history(
    model: PaymentHistory, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Records read in reverse give the same history as in order."""
    for item in reversed(_story("stu_b")):
        await model.handle(item)

    assert await _kinds(read_model_redis, read_model_prefix, "stu_b") == [
        "payment",
        "receipt",
        "exception",
        "refund",
        "red_letter_receipt",
    ]


async def test_an_exception_before_its_bill_waits_then_joins(
    model: PaymentHistory, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """An exception names an order; it joins the student once the bill says whose."""
    bill = new_bill("stu_c")
    await model.handle(delivered("exception", exception_record(bill, bill.bill_id, T0)))
    assert await _kinds(read_model_redis, read_model_prefix, "stu_c") == []

    await model.handle(delivered("bill", bill_record(bill)))

    assert await _kinds(read_model_redis, read_model_prefix, "stu_c") == ["exception"]
    parked = await read_model_redis.hlen(
        f"{read_model_prefix}:order:{bill.bill_id}:parked"
    )
    assert parked == 0


async def test_an_exception_for_an_unknown_order_stays_with_no_student(
    model: PaymentHistory, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """UNKNOWN_ORDER has no bill, so it is parked under the order only."""
    record = exception_record(None, "BNOSUCHORDER01", T0, ExceptionKind.UNKNOWN_ORDER)

    await model.handle(delivered("exception", record))

    parked = await read_model_redis.hlen(
        f"{read_model_prefix}:order:BNOSUCHORDER01:parked"
    )
    assert parked == 1


async def test_replaying_the_stream_changes_nothing(
    model: PaymentHistory, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Every record twice leaves exactly the state of every record once."""
    story = _story("stu_d")
    for item in story:
        await model.handle(item)
    before = await _dump(read_model_redis, read_model_prefix)

    for item in [*story, *reversed(story)]:
        await model.handle(item)

    assert await _dump(read_model_redis, read_model_prefix) == before
    assert len(await read_history(read_model_redis, "stu_d", read_model_prefix)) == 5


async def test_students_do_not_see_each_other(
    model: PaymentHistory, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Each history holds only that student's orders."""
    for item in [*_story("stu_e"), *_story("stu_f")]:
        await model.handle(item)

    first = await read_history(read_model_redis, "stu_e", read_model_prefix)
    second = await read_history(read_model_redis, "stu_f", read_model_prefix)

    assert len(first) == len(second) == 5
    assert {e["order_id"] for e in first}.isdisjoint({e["order_id"] for e in second})


async def test_an_unknown_student_has_an_empty_history(
    read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Nothing recorded reads as an empty list, not an error."""
    assert await read_history(read_model_redis, "stu_none", read_model_prefix) == []


def test_subscribers_cover_the_billing_read_models(redis_url: str) -> None:
    """The consumer process gets the history and the bills lookup models."""
    found = subscribers(redis_url)

    assert [type(sub) for sub in found] == [PaymentHistory, BillsLookup]
    assert {sub.group for sub in found} == {"billing-history", "billing-bills-lookup"}
    assert {spec.name for spec in found[0].topics} == {
        billing.BILLS.name,
        billing.RECEIPTS.name,
        billing.RED_RECEIPTS.name,
        billing.EXCEPTIONS.name,
    }
