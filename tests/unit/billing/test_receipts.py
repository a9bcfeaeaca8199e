"""Receipts and red-letter receipts: ids, numbers, check codes, dates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.orders import IssueReceipt, IssueRedLetterReceipt
from edustream.billing.receipts import (
    Receipt,
    RedLetterReceipt,
    business_day,
    check_code,
    format_receipt_number,
    issue_receipt,
    issue_red_letter_receipt,
    receipt_id_for,
    red_letter_id_for,
)
from edustream.errors import CodecError, PoisonError

KEY = b"test-check-code-key"
T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)

BILL = Bill(
    bill_id="B2025090100001",
    school_id="S310104001",
    collecting_unit_code="CU3101040001",
    student_ref="p-7f3a9c",
    term="2025-2026-1",
    items=(
        BillItem("T01", "学费", FeeKind.TUITION, 100_000),
        BillItem("A01", "住宿费", FeeKind.ACCOMMODATION, 20_000),
    ),
    total_fen=120_000,
    receipt_series="31052025",
    published_at=T0,
)

PAID = IssueReceipt(
    order_id=BILL.bill_id,
    channel="alipay",
    channel_txn_id="2025090122001",
    amount_fen=120_000,
    paid_at=T0,
    # 17:30 UTC is 01:30 the next day in Shanghai.
    issued_at=datetime(2025, 9, 1, 17, 30, tzinfo=UTC),
)

REFUNDED = IssueRedLetterReceipt(
    order_id=BILL.bill_id,
    channel="alipay",
    channel_txn_id="2025090122001",
    refund_key="alipay:2025090122001:cumulative:30000",
    refund_id="RB1",
    refund_fen=30_000,
    refunded_at=datetime(2025, 9, 3, 1, 0, tzinfo=UTC),
    issued_at=datetime(2025, 9, 3, 1, 0, tzinfo=UTC),
)


def test_receipt_fields_come_from_bill_decision_and_number() -> None:
    """A blue receipt prints code, padded number, items and the pseudonym."""
    receipt = issue_receipt(BILL, PAID, 42, KEY)

    assert receipt.receipt_code == "31052025"
    assert receipt.receipt_number == "0000000042"
    assert receipt.receipt_id == receipt_id_for(BILL.bill_id)
    assert receipt.issue_date == date(2025, 9, 2)
    assert receipt.payer_ref == "p-7f3a9c"
    assert receipt.items == BILL.items
    assert receipt.amount_fen == 120_000
    assert receipt.collecting_unit_code == "CU3101040001"
    assert receipt.check_code == check_code("31052025", "0000000042", 120_000, KEY)
    assert len(receipt.check_code) == 6
    assert receipt.check_code.isdigit()


def test_replay_rebuilds_the_same_receipt() -> None:
    """The same decision and number give an identical receipt."""
    assert issue_receipt(BILL, PAID, 42, KEY) == issue_receipt(BILL, PAID, 42, KEY)


def test_red_letter_links_the_original() -> None:
    """A red-letter receipt has its own number and names the original's."""
    red = issue_red_letter_receipt(BILL, REFUNDED, 57, 42, KEY)

    assert red.receipt_id == red_letter_id_for(BILL.bill_id, REFUNDED.refund_key)
    assert red.receipt_number == "0000000057"
    assert red.original_receipt_id == receipt_id_for(BILL.bill_id)
    assert red.original_receipt_code == "31052025"
    assert red.original_receipt_number == "0000000042"
    assert red.refund_fen == 30_000
    assert red.issue_date == date(2025, 9, 3)
    assert red.check_code == check_code("31052025", "0000000057", -30_000, KEY)


def test_ids_are_deterministic_and_distinct() -> None:
    """Receipt ids depend on order and refund key only."""
    blue = receipt_id_for("B2025090100001")
    reds = {red_letter_id_for("B2025090100001", f"k{i}") for i in range(3)}

    assert blue == receipt_id_for("B2025090100001")
    assert blue != receipt_id_for("B2025090100002")
    assert len(reds) == 3
    assert blue not in reds


def test_check_code_depends_on_key_and_content() -> None:
    """Another key, number or amount gives another check code."""
    base = check_code("31052025", "0000000001", 100, KEY)

    assert check_code("31052025", "0000000001", 100, b"other") != base
    assert check_code("31052025", "0000000002", 100, KEY) != base
    assert check_code("31052025", "0000000001", 101, KEY) != base


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2025, 9, 1, 15, 59, 59, tzinfo=UTC), date(2025, 9, 1)),
        (datetime(2025, 9, 1, 16, 0, 0, tzinfo=UTC), date(2025, 9, 2)),
        (datetime(2025, 12, 31, 16, 0, 0, tzinfo=UTC), date(2026, 1, 1)),
    ],
)
def test_business_day_is_shanghai(moment: datetime, day: date) -> None:
    """Business days turn at 00:00 Asia/Shanghai, 16:00 UTC."""
    assert business_day(moment) == day


@pytest.mark.parametrize(
    ("number", "printed"), [(1, "0000000001"), (9_999_999_999, "9999999999")]
)
def test_receipt_numbers_are_ten_digits(number: int, printed: str) -> None:
    """Numbers print as 10 zero-padded digits."""
    assert format_receipt_number(number) == printed


@pytest.mark.parametrize("number", [0, -1, 10_000_000_000])
def test_numbers_outside_ten_digits_are_refused(number: int) -> None:
    """Zero, negatives and 11-digit numbers cannot be printed."""
    with pytest.raises(ValueError, match="receipt number"):
        format_receipt_number(number)


def test_malformed_receipts_are_poison() -> None:
    """A receipt with a bad number or check code cannot exist."""
    receipt = issue_receipt(BILL, PAID, 1, KEY)

    with pytest.raises(PoisonError):
        replace(receipt, receipt_number="42")
    with pytest.raises(PoisonError):
        replace(receipt, check_code="12ab56")


def test_records_round_trip() -> None:
    """Both receipts survive as_record and from_record unchanged."""
    receipt = issue_receipt(BILL, PAID, 42, KEY)
    red = issue_red_letter_receipt(BILL, REFUNDED, 57, 42, KEY)

    assert Receipt.from_record(receipt.as_record()) == receipt
    assert RedLetterReceipt.from_record(red.as_record()) == red
    assert receipt.as_record()["event_id"] == receipt.receipt_id


def test_incomplete_record_is_a_codec_error() -> None:
    """A record missing a field raises CodecError, not KeyError."""
    record = issue_red_letter_receipt(BILL, REFUNDED, 57, 42, KEY).as_record()
    del record["refund_fen"]

    with pytest.raises(CodecError):
        RedLetterReceipt.from_record(record)


def test_receipt_needs_the_bill_of_its_order() -> None:
    """A decision for one order never prints with another order's bill."""
    other = replace(BILL, bill_id="B2025090199999")

    with pytest.raises(ValueError, match="another order"):
        issue_receipt(other, PAID, 1, KEY)
    with pytest.raises(ValueError, match="another order"):
        issue_red_letter_receipt(other, REFUNDED, 2, 1, KEY)
