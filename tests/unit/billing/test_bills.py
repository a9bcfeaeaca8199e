"""Bills: validation, receipt series layout, order mapping and records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from edustream.billing.bills import (
    Bill,
    BillItem,
    BillStatus,
    FeeKind,
    ReceiptSeries,
    bill_id_for,
)
from edustream.errors import CodecError, PoisonError

T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)

BILL = Bill(
    bill_id="B2025090100001",
    school_id="S310104001",
    collecting_unit_code="CU3101040001",
    student_ref="p-7f3a9c",
    term="2025-2026-1",
    items=(
        BillItem("T01", "学费", FeeKind.TUITION, 100_000),
        BillItem("A01", "住宿费", FeeKind.ACCOMMODATION, 15_000),
        BillItem("S01", "代办费", FeeKind.AGENCY_SERVICE, 5_000),
    ),
    total_fen=120_000,
    receipt_series="31052025",
    published_at=T0,
)


def test_order_id_is_bill_id() -> None:
    """An order pays one bill and carries the bill id."""
    assert BILL.order_id == "B2025090100001"
    assert bill_id_for(BILL.order_id) == BILL.bill_id


def test_receipt_series_layout() -> None:
    """A receipt code is region, category and year."""
    series = ReceiptSeries.parse("31052025")

    assert series == ReceiptSeries(region="31", category="05", year=2025)
    assert series.code == "31052025"


@pytest.mark.parametrize("code", ["3105202", "310520251", "3105202X", ""])
def test_bad_receipt_codes_are_refused(code: str) -> None:
    """Anything but 8 digits is not a receipt code."""
    with pytest.raises(PoisonError) as caught:
        ReceiptSeries.parse(code)

    assert caught.value.reason == "invalid_receipt_series"


@pytest.mark.parametrize(
    "changes",
    [
        {"total_fen": 119_999},
        {"items": ()},
        {"bill_id": "B-2025"},
        {"bill_id": "B" * 33},
        {"receipt_series": "31-05-2025"},
        {"published_at": datetime(2025, 9, 1)},
    ],
    ids=["total", "no-items", "dash", "too-long", "series", "naive-time"],
)
def test_bills_that_cannot_be_paid_are_poison(changes: dict[str, object]) -> None:
    """A bill no channel or receipt could carry is refused at the door."""
    with pytest.raises(PoisonError):
        replace(BILL, **changes)  # type: ignore[arg-type]


def test_fee_items_must_be_positive() -> None:
    """A zero or negative fee item is refused."""
    with pytest.raises(PoisonError, match="positive"):
        BillItem("T01", "学费", FeeKind.TUITION, 0)


def test_record_round_trip() -> None:
    """A bill survives as_record and from_record unchanged."""
    record = BILL.as_record(
        event_id="6f1c8d3e-9a4b-4c2d-8e5f-0a1b2c3d4e5f", occurred_at=T0
    )
    cancelled = dict(record, status="CANCELLED")

    assert Bill.from_record(record) == BILL
    assert Bill.from_record(cancelled).status is BillStatus.CANCELLED


@pytest.mark.parametrize(
    "broken",
    [
        {"status": "LOST"},
        {"items": [{"item_code": "T01"}]},
        {"published_at": 1_756_692_000_000},
    ],
    ids=["status", "item", "time-type"],
)
def test_broken_records_are_codec_errors(broken: dict[str, object]) -> None:
    """Missing or mistyped fields raise CodecError with reason invalid_record."""
    record = BILL.as_record(
        event_id="6f1c8d3e-9a4b-4c2d-8e5f-0a1b2c3d4e5f", occurred_at=T0
    )

    with pytest.raises(CodecError) as caught:
        Bill.from_record({**record, **broken})

    assert caught.value.reason == "invalid_record"
