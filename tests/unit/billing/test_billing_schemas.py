"""The billing Avro schemas: conventions, and every record through the codec."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import avro_schemas
from avro_schemas.codec import Codec
from avro_schemas.registry import FileSchemaRegistry
from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.orders import (
    IssueReceipt,
    IssueRedLetterReceipt,
    PaymentEvent,
    PaymentSource,
    PaymentStatus,
    RaiseException,
    decide,
)
from edustream.billing.receipts import (
    Receipt,
    RedLetterReceipt,
    issue_receipt,
    issue_red_letter_receipt,
)
from edustream.billing.remittance import DayClosed, close_day

SCHEMA_DIR = Path(avro_schemas.__file__).parent / "billing"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
T0 = datetime(2025, 9, 1, 2, 0, 0, 123_000, tzinfo=UTC)
KEY = b"test-check-code-key"

BILL = Bill(
    bill_id="B2025090100001",
    school_id="S310104001",
    collecting_unit_code="CU3101040001",
    student_ref="p-7f3a9c",
    term="2025-2026-1",
    items=(BillItem("T01", "学费", FeeKind.TUITION, 120_000),),
    total_fen=120_000,
    receipt_series="31052025",
    published_at=T0,
)


def _fields(schema: Any) -> list[dict[str, Any]]:
    """Every field of every record inside a schema, nested ones included."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            found.extend(_fields(branch))
    elif isinstance(schema, dict):
        for field in schema.get("fields", []):
            found.append(field)
            found.extend(_fields(field["type"]))
        if schema.get("type") == "array":
            found.extend(_fields(schema["items"]))
    return found


def test_there_is_one_schema_per_event() -> None:
    """The billing directory holds a schema for every billing event type."""
    assert {path.name for path in SCHEMA_FILES} >= {
        "bill.avsc",
        "day_closed.avsc",
        "payment_callback.avsc",
        "payment_exception.avsc",
        "receipt.avsc",
        "red_letter_receipt.avsc",
        "remittance_batch.avsc",
    }


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_schema_conventions(path: Path) -> None:
    """Namespace, docs on everything, uuid event ids, millis, money in long."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    fields = _fields(schema)
    top = {field["name"]: field for field in schema["fields"]}

    assert schema["namespace"] == "edustream.billing"
    assert schema["doc"]
    assert all(field.get("doc") for field in fields)
    assert top["event_id"]["type"] == {"type": "string", "logicalType": "uuid"}
    assert top["occurred_at"]["type"] == {
        "type": "long",
        "logicalType": "timestamp-millis",
    }
    for field in fields:
        if field["name"].endswith("_fen"):
            assert field["type"] in ("long", ["null", "long"]), field["name"]


def test_payment_callback_shape() -> None:
    """The normalised callback has exactly the agreed fields and symbols."""
    schema = json.loads((SCHEMA_DIR / "payment_callback.avsc").read_text())
    top = {field["name"]: field for field in schema["fields"]}

    assert list(top) == [
        "event_id",
        "occurred_at",
        "channel",
        "notify_id",
        "channel_txn_id",
        "order_id",
        "status",
        "amount_fen",
        "paid_fen",
        "refund_fen",
        "refund_is_cumulative",
        "refund_id",
        "paid_at",
        "refunded_at",
        "notified_at",
        "source",
    ]
    assert top["status"]["type"]["symbols"] == [s.value for s in PaymentStatus]
    assert top["source"]["type"]["symbols"] == [s.value for s in PaymentSource]
    for name in ("paid_fen", "refund_fen", "refund_id", "paid_at", "refunded_at"):
        assert top[name]["type"][0] == "null"
        assert top[name]["default"] is None


def _payment(status: PaymentStatus, **extra: Any) -> PaymentEvent:
    return PaymentEvent(
        channel="alipay",
        notify_id=f"n-{status}",
        channel_txn_id="2025090122001",
        order_id=BILL.bill_id,
        status=status,
        amount_fen=120_000,
        notified_at=T0,
        **extra,
    )


def _records() -> list[tuple[str, dict[str, Any], Any]]:
    """(schema name, record, rebuild-from-record) for every billing event."""
    event_id = str(uuid.uuid4())
    receipt = issue_receipt(
        BILL,
        IssueReceipt(
            order_id=BILL.bill_id,
            channel="alipay",
            channel_txn_id="2025090122001",
            amount_fen=120_000,
            paid_at=T0,
            issued_at=T0,
        ),
        1,
        KEY,
    )
    red = issue_red_letter_receipt(
        BILL,
        IssueRedLetterReceipt(
            order_id=BILL.bill_id,
            channel="alipay",
            channel_txn_id="2025090122001",
            refund_key="alipay:2025090122001:cumulative:100",
            refund_id=None,
            refund_fen=100,
            refunded_at=None,
            issued_at=T0 + timedelta(days=1),
        ),
        2,
        1,
        KEY,
    )
    refund = _payment(
        PaymentStatus.REFUNDED,
        refund_fen=100,
        refund_is_cumulative=True,
        refund_id="RB1",
        refunded_at=T0,
        source=PaymentSource.RECONCILIATION,
    )
    closed = DayClosed(event_id=event_id, occurred_at=T0, business_day=date(2025, 9, 1))
    return [
        (
            "Bill",
            BILL.as_record(event_id=event_id, occurred_at=T0),
            Bill.from_record,
        ),
        ("ReceiptIssued", receipt.as_record(), Receipt.from_record),
        ("RedLetterReceiptIssued", red.as_record(), RedLetterReceipt.from_record),
        (
            "PaymentCallback",
            refund.as_record(event_id=event_id, occurred_at=T0),
            PaymentEvent.from_record,
        ),
        ("DayClosed", closed.as_record(), DayClosed.from_record),
        (
            "RemittanceBatchClosed",
            close_day("CU3101040001", date(2025, 9, 1), [receipt], [red]).as_record(),
            None,
        ),
    ]


@pytest.mark.parametrize(
    ("name", "record", "rebuild"),
    _records(),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_records_fit_their_schemas(
    name: str, record: dict[str, Any], rebuild: Any
) -> None:
    """Each record encodes, decodes to the same values, and rebuilds."""
    codec = Codec(FileSchemaRegistry())
    full_name = f"edustream.billing.{name}"

    decoded = codec.decode_as(full_name, codec.encode(full_name, record))

    # fastavro reads uuid fields back as UUID objects; compare them as text.
    assert _uuids_as_text(decoded) == record
    if rebuild is not None:
        assert rebuild(decoded).as_record(**_stamp(name, record)) == record


def _uuids_as_text(record: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in record.items()}


def _stamp(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """The arguments as_record needs for events that do not carry their id."""
    if name in ("Bill", "PaymentCallback"):
        return {"event_id": record["event_id"], "occurred_at": record["occurred_at"]}
    return {}


def test_exception_record_fits_its_schema() -> None:
    """A raised exception encodes under PaymentException."""
    _, decisions = decide(None, BILL, _payment(PaymentStatus.PAID, paid_fen=1))
    (raised,) = decisions
    assert isinstance(raised, RaiseException)
    codec = Codec(FileSchemaRegistry())

    record = raised.as_record(BILL)
    decoded = codec.decode_as(
        "edustream.billing.PaymentException",
        codec.encode("edustream.billing.PaymentException", record),
    )

    assert decoded["kind"] == "AMOUNT_MISMATCH"
    assert decoded["school_id"] == "S310104001"
    assert decoded["occurred_at"] == T0
