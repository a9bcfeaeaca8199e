"""The bills read model: open bills per student, order-independent, replayable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from consumers.bills_lookup import BillsLookup, open_bills, stored_name_digest
from edustream.billing.bills import BillStatus
from tests.e2e.billing_records import (
    bill_record,
    delivered,
    new_bill,
    receipt_record,
    red_letter_record,
)

T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def model(read_model_redis: Redis, read_model_prefix: str) -> BillsLookup:
    """The subscriber under a private prefix."""
    return BillsLookup(read_model_redis, prefix=read_model_prefix)


async def _open(redis: Redis, prefix: str, ref: str) -> list[str]:
    return [bill["bill_id"] for bill in await open_bills(redis, ref, prefix)]


async def _dump(redis: Redis, prefix: str) -> dict[str, Any]:
    """Every key of the prefix with its whole value, for replay comparisons."""
    state: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        kind = await redis.type(key)
        if kind == b"hash":
            state[key] = await redis.hgetall(key)
        elif kind == b"set":
            state[key] = await redis.smembers(key)
    return state


async def test_a_published_bill_is_open_with_its_items(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """A bill shows under its student with items, total and school."""
    bill = new_bill("stu_a", total_items=(250_000, 80_000))

    await model.handle(delivered("bill", bill_record(bill)))

    [shown] = await open_bills(read_model_redis, "stu_a", read_model_prefix)
    assert shown["bill_id"] == bill.bill_id
    assert shown["school_id"] == "S310104001"
    assert shown["total_fen"] == 330_000
    assert [(i["item_name"], i["amount_fen"]) for i in shown["items"]] == [
        ("学费", 250_000),
        ("住宿费", 80_000),
    ]
    assert "version_ms" not in shown


@pytest.mark.parametrize(
    "receipt_first", [False, True], ids=["bill-first", "receipt-first"]
)
async def test_a_receipted_bill_is_no_longer_open(
    model: BillsLookup,
    read_model_redis: Redis,
    read_model_prefix: str,
    receipt_first: bool,
) -> None:
    """Paid is paid, whichever topic the read model happened to read first."""
    bill = new_bill("stu_b")
    items = [
        delivered("bill", bill_record(bill)),
        delivered("receipt", receipt_record(bill, T0)),
    ]
    if receipt_first:
        items.reverse()

    for item in items:
        await model.handle(item)

    assert await _open(read_model_redis, read_model_prefix, "stu_b") == []


async def test_a_refund_never_reopens_a_bill(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """After a full red-letter receipt the bill stays closed."""
    bill = new_bill("stu_c", total_items=(100_000,))
    await model.handle(delivered("bill", bill_record(bill)))
    await model.handle(delivered("receipt", receipt_record(bill, T0)))

    await model.handle(
        delivered(
            "red_letter", red_letter_record(bill, 100_000, T0 + timedelta(days=3))
        )
    )

    assert await _open(read_model_redis, read_model_prefix, "stu_c") == []


@pytest.mark.parametrize("status", [BillStatus.PAID, BillStatus.CANCELLED])
async def test_a_bill_the_school_closed_is_not_shown(
    model: BillsLookup,
    read_model_redis: Redis,
    read_model_prefix: str,
    status: BillStatus,
) -> None:
    """A new version marked PAID or CANCELLED replaces the open one."""
    bill = new_bill("stu_d")
    closed = new_bill("stu_d", bill_id=bill.bill_id, status=status)

    await model.handle(delivered("bill", bill_record(bill, T0)))
    await model.handle(delivered("bill", bill_record(closed, T0 + timedelta(hours=1))))

    assert await _open(read_model_redis, read_model_prefix, "stu_d") == []


async def test_an_older_version_read_late_changes_nothing(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Versions are ordered by their time, not by arrival."""
    bill = new_bill("stu_e")
    cancelled = new_bill("stu_e", bill_id=bill.bill_id, status=BillStatus.CANCELLED)

    await model.handle(
        delivered("bill", bill_record(cancelled, T0 + timedelta(hours=1)))
    )
    await model.handle(delivered("bill", bill_record(bill, T0)))

    assert await _open(read_model_redis, read_model_prefix, "stu_e") == []


async def test_a_corrected_student_moves_the_bill(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """A version naming another student takes the bill off the first one."""
    bill = new_bill("stu_f")
    corrected = new_bill("stu_g", bill_id=bill.bill_id)

    await model.handle(delivered("bill", bill_record(bill, T0)))
    await model.handle(
        delivered("bill", bill_record(corrected, T0 + timedelta(hours=1)))
    )

    assert await _open(read_model_redis, read_model_prefix, "stu_f") == []
    assert await _open(read_model_redis, read_model_prefix, "stu_g") == [bill.bill_id]


async def test_open_bills_come_by_term_then_id(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """Several open bills of one student are listed in a stable order."""
    later = new_bill("stu_h", term="2025-2026-2", bill_id="B0000000001")
    earlier = new_bill("stu_h", term="2025-2026-1", bill_id="B0000000009")

    for bill in (later, earlier):
        await model.handle(delivered("bill", bill_record(bill)))

    assert await _open(read_model_redis, read_model_prefix, "stu_h") == [
        "B0000000009",
        "B0000000001",
    ]


async def test_the_name_digest_a_bill_carries_is_kept_per_student(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """The digest is stored under the student; no name is ever involved."""
    bill = new_bill("stu_i")
    item = delivered("bill", bill_record(bill))
    item.record["student_name_digest"] = "ab" * 16

    await model.handle(item)

    assert (
        await stored_name_digest(read_model_redis, "stu_i", read_model_prefix)
        == "ab" * 16
    )
    assert (
        await stored_name_digest(read_model_redis, "stu_x", read_model_prefix) is None
    )


async def test_replaying_every_record_changes_nothing(
    model: BillsLookup, read_model_redis: Redis, read_model_prefix: str
) -> None:
    """At-least-once delivery: the whole stream twice gives the same state."""
    paid, still_open = new_bill("stu_j"), new_bill("stu_j")
    items = [
        delivered("bill", bill_record(paid)),
        delivered("bill", bill_record(still_open)),
        delivered("receipt", receipt_record(paid, T0)),
        delivered(
            "red_letter", red_letter_record(paid, 10_000, T0 + timedelta(days=1))
        ),
    ]
    for item in items:
        await model.handle(item)
    before = await _dump(read_model_redis, read_model_prefix)

    for item in items:
        await model.handle(item)

    assert await _dump(read_model_redis, read_model_prefix) == before
    assert await _open(read_model_redis, read_model_prefix, "stu_j") == [
        still_open.bill_id
    ]
