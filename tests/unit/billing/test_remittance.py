"""Remittance: day boundaries, booking, and batches that replay identically."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.orders import IssueReceipt, IssueRedLetterReceipt
from edustream.billing.receipts import (
    Receipt,
    RedLetterReceipt,
    issue_receipt,
    issue_red_letter_receipt,
)
from edustream.billing.remittance import (
    DEFAULT_GRACE,
    DayClosed,
    NumberRange,
    batch_id_for,
    booking_day,
    close_day,
    day_closes_at,
    day_ends_at,
    latest_closed_day,
    number_ranges,
)
from edustream.errors import PoisonError

KEY = b"test-check-code-key"
DAY = date(2025, 9, 1)
UNIT = "CU3101040001"
# 02:00 UTC is 10:00 in Shanghai, well inside DAY.
MORNING = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)


def bill(index: int, unit: str = UNIT, total: int = 10_000) -> Bill:
    """A one-item bill numbered ``index``."""
    return Bill(
        bill_id=f"B20250901{index:05d}",
        school_id="S310104001",
        collecting_unit_code=unit,
        student_ref=f"p-{index}",
        term="2025-2026-1",
        items=(BillItem("T01", "学费", FeeKind.TUITION, total),),
        total_fen=total,
        receipt_series="31052025",
        published_at=MORNING,
    )


def receipt(index: int, number: int, unit: str = UNIT) -> Receipt:
    """The blue receipt of bill ``index``, numbered ``number``."""
    the_bill = bill(index, unit)
    decision = IssueReceipt(
        order_id=the_bill.bill_id,
        channel="wechat",
        channel_txn_id=f"W{index}",
        amount_fen=the_bill.total_fen,
        paid_at=MORNING,
        issued_at=MORNING + timedelta(minutes=index),
    )
    return issue_receipt(the_bill, decision, number, KEY)


def red_letter(index: int, number: int, original: int, fen: int) -> RedLetterReceipt:
    """A red-letter receipt refunding ``fen`` of bill ``index``."""
    the_bill = bill(index)
    decision = IssueRedLetterReceipt(
        order_id=the_bill.bill_id,
        channel="wechat",
        channel_txn_id=f"W{index}",
        refund_key=f"wechat:W{index}:refund:R1",
        refund_id="R1",
        refund_fen=fen,
        refunded_at=MORNING,
        issued_at=MORNING + timedelta(hours=1),
    )
    return issue_red_letter_receipt(the_bill, decision, number, original, KEY)


BLUE = [receipt(i, n) for i, n in [(1, 1), (2, 2), (3, 3), (4, 7), (5, 8)]]
RED = [red_letter(2, 9, 2, 4_000), red_letter(4, 10, 7, 10_000)]


def test_batch_totals_and_ranges() -> None:
    """Totals, counts, net and number runs of one unit's day."""
    batch = close_day(UNIT, DAY, BLUE, RED)

    assert batch.batch_id == batch_id_for(UNIT, DAY)
    assert batch.receipt_count == 5
    assert batch.receipts_total_fen == 50_000
    assert batch.red_letter_count == 2
    assert batch.red_letter_total_fen == 14_000
    assert batch.net_fen == 36_000
    assert batch.receipt_ranges == (
        NumberRange("31052025", 1, 3),
        NumberRange("31052025", 7, 8),
    )
    assert batch.red_letter_ranges == (NumberRange("31052025", 9, 10),)


def test_other_units_are_left_out() -> None:
    """Receipts of another collecting unit do not enter the batch."""
    foreign = receipt(9, 11, unit="CU3101150001")

    batch = close_day(UNIT, DAY, [*BLUE, foreign], RED)

    assert batch == close_day(UNIT, DAY, BLUE, RED)


def test_the_same_receipt_with_other_content_is_poison() -> None:
    """One receipt id with two contents means something upstream is wrong."""
    twin = replace(BLUE[0], amount_fen=BLUE[0].amount_fen + 1)

    with pytest.raises(PoisonError) as caught:
        close_day(UNIT, DAY, [*BLUE, twin], RED)

    assert caught.value.reason == "conflicting_receipt"


def test_empty_day_closes_to_zero() -> None:
    """A day with nothing booked closes with zero totals and no ranges."""
    batch = close_day(UNIT, DAY, [], [])

    assert (batch.receipt_count, batch.net_fen, batch.receipt_ranges) == (0, 0, ())


@settings(max_examples=200)
@given(st.data())
def test_close_day_is_idempotent(data: st.DataObject) -> None:
    """Any order, with any replayed duplicates, closes the same batch."""
    blue = data.draw(st.permutations(BLUE))
    red = data.draw(st.permutations(RED))
    again_blue = data.draw(st.lists(st.sampled_from(BLUE), max_size=6))
    again_red = data.draw(st.lists(st.sampled_from(RED), max_size=3))

    batch = close_day(UNIT, DAY, [*blue, *again_blue], [*again_red, *red])

    assert batch == close_day(UNIT, DAY, BLUE, RED)


@given(st.sets(st.integers(min_value=1, max_value=60), max_size=30))
def test_number_ranges_cover_exactly_the_numbers(numbers: set[int]) -> None:
    """Runs are disjoint, sorted, maximal and cover exactly the numbers."""
    ranges = number_ranges(("31052025", f"{n:010d}") for n in numbers)

    covered = [n for r in ranges for n in range(r.first, r.last + 1)]
    assert covered == sorted(numbers)
    assert all(b.first > a.last + 1 for a, b in pairwise(ranges))


def test_day_boundaries_in_utc() -> None:
    """A Shanghai day ends at 16:00 UTC and closes after the grace."""
    ends = datetime(2025, 9, 1, 16, 0, tzinfo=UTC)

    assert day_ends_at(DAY) == ends
    assert day_closes_at(DAY) == ends + DEFAULT_GRACE
    assert day_closes_at(DAY, timedelta(0)) == ends


@pytest.mark.parametrize(
    ("watermark", "closed"),
    [
        (datetime(2025, 9, 1, 16, 59, tzinfo=UTC), date(2025, 8, 31)),
        (datetime(2025, 9, 1, 17, 0, tzinfo=UTC), date(2025, 9, 1)),
        (datetime(2025, 9, 2, 12, 0, tzinfo=UTC), date(2025, 9, 1)),
        (datetime(2025, 9, 2, 17, 0, tzinfo=UTC), date(2025, 9, 2)),
    ],
)
def test_latest_closed_day(watermark: datetime, closed: date) -> None:
    """A day closes once the watermark passes its end plus one hour."""
    assert latest_closed_day(watermark) == closed
    assert day_closes_at(closed) <= watermark < day_closes_at(closed + timedelta(1))


@pytest.mark.parametrize(
    ("issued", "closed_through", "booked"),
    [
        (date(2025, 9, 2), None, date(2025, 9, 2)),
        (date(2025, 9, 2), date(2025, 9, 1), date(2025, 9, 2)),
        (date(2025, 9, 1), date(2025, 9, 1), date(2025, 9, 2)),
        (date(2025, 8, 20), date(2025, 9, 1), date(2025, 9, 2)),
    ],
)
def test_late_entries_book_to_the_first_open_day(
    issued: date, closed_through: date | None, booked: date
) -> None:
    """An entry for a closed day goes to the first open day instead."""
    assert booking_day(issued, closed_through) == booked


def test_day_closed_command() -> None:
    """A command without a unit closes the day for every unit."""
    every = DayClosed(event_id="e1", occurred_at=MORNING, business_day=DAY)
    one = replace(every, collecting_unit_code=UNIT)

    assert every.applies_to("anything")
    assert one.applies_to(UNIT)
    assert not one.applies_to("CU3101150001")
    assert DayClosed.from_record(one.as_record()) == one


def test_batch_record_is_stamped_with_the_day_end() -> None:
    """The batch event id is the batch id and its time the end of the day."""
    record = close_day(UNIT, DAY, BLUE, RED).as_record()

    assert record["event_id"] == batch_id_for(UNIT, DAY)
    assert record["occurred_at"] == day_ends_at(DAY)
    assert record["receipt_ranges"][0] == {
        "receipt_code": "31052025",
        "first": 1,
        "last": 3,
    }
