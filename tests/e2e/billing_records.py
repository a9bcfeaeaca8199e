"""Billing records as the read models receive them, built by the billing core.

Bills, receipts, red-letter receipts and exceptions come from the same
functions the billing flow uses, then go through the Avro codec, so a test
hands a subscriber exactly what it would read from a topic.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from avro_schemas import default_codec
from consumers.base import Delivered
from edustream.billing.bills import Bill, BillItem, BillStatus, FeeKind
from edustream.billing.orders import (
    ExceptionKind,
    IssueReceipt,
    IssueRedLetterReceipt,
    RaiseException,
)
from edustream.billing.receipts import issue_receipt, issue_red_letter_receipt
from edustream.ids import make_id
from topics import billing

CHECK_KEY = b"test-receipt-check-key"
SCHEMAS = {
    "bill": "edustream.billing.Bill",
    "receipt": "edustream.billing.ReceiptIssued",
    "red_letter": "edustream.billing.RedLetterReceiptIssued",
    "exception": "edustream.billing.PaymentException",
}
TOPICS = {
    "bill": billing.BILLS,
    "receipt": billing.RECEIPTS,
    "red_letter": billing.RED_RECEIPTS,
    "exception": billing.EXCEPTIONS,
}


def random_id_number(rng: random.Random | None = None) -> str:
    """A valid resident ID number of a child born 2010-2018 in Xuhui."""
    rng = rng or random.Random()
    born = date(2010, 1, 1) + timedelta(days=rng.randrange(9 * 365))
    return make_id("310104", born, rng.randrange(1000))


def new_bill(
    student_ref: str,
    *,
    total_items: tuple[int, ...] = (250_000, 80_000),
    term: str = "2025-2026-1",
    status: BillStatus = BillStatus.OPEN,
    bill_id: str | None = None,
    published_at: datetime | None = None,
) -> Bill:
    """A bill with a tuition item and, if two amounts, an accommodation item."""
    kinds = (FeeKind.TUITION, FeeKind.ACCOMMODATION, FeeKind.AGENCY_SERVICE)
    names = ("学费", "住宿费", "代办费")
    items = tuple(
        BillItem(f"F0{i + 1}", names[i], kinds[i], amount)
        for i, amount in enumerate(total_items)
    )
    return Bill(
        bill_id=bill_id or "B" + uuid.uuid4().hex[:20].upper(),
        school_id="S310104001",
        collecting_unit_code="CU3101040001",
        student_ref=student_ref,
        term=term,
        items=items,
        total_fen=sum(total_items),
        receipt_series="31052025",
        published_at=published_at or datetime(2025, 8, 20, 1, 0, tzinfo=UTC),
        status=status,
    )


def bill_record(bill: Bill, version_at: datetime | None = None) -> dict[str, Any]:
    """The ``Bill`` record of one version of a bill."""
    return bill.as_record(
        event_id=str(uuid.uuid4()), occurred_at=version_at or bill.published_at
    )


def receipt_record(
    bill: Bill, paid_at: datetime, number: int = 1, channel: str = "alipay"
) -> dict[str, Any]:
    """The receipt the flow issues when ``bill`` is paid at ``paid_at``."""
    decision = IssueReceipt(
        order_id=bill.order_id,
        channel=channel,
        channel_txn_id="TX" + bill.bill_id,
        amount_fen=bill.total_fen,
        paid_at=paid_at,
        issued_at=paid_at + timedelta(seconds=2),
    )
    return issue_receipt(bill, decision, number, CHECK_KEY).as_record()


def red_letter_record(
    bill: Bill, refund_fen: int, refunded_at: datetime, number: int = 2
) -> dict[str, Any]:
    """The red-letter receipt for one refund of ``bill``'s payment."""
    decision = IssueRedLetterReceipt(
        order_id=bill.order_id,
        channel="alipay",
        channel_txn_id="TX" + bill.bill_id,
        refund_key=f"alipay:TX{bill.bill_id}:cumulative:{refund_fen}",
        refund_id="R" + bill.bill_id,
        refund_fen=refund_fen,
        refunded_at=refunded_at,
        issued_at=refunded_at + timedelta(seconds=3),
    )
    return issue_red_letter_receipt(bill, decision, number, 1, CHECK_KEY).as_record()


def exception_record(
    bill: Bill | None,
    order_id: str,
    raised_at: datetime,
    kind: ExceptionKind = ExceptionKind.DUPLICATE_PAYMENT,
) -> dict[str, Any]:
    """A payment exception about ``order_id``, routed by ``bill`` if known."""
    raised = RaiseException(
        exception_id=str(uuid.uuid4()),
        kind=kind,
        order_id=order_id,
        channel="wechat",
        channel_txn_id="4200" + uuid.uuid4().hex[:20],
        amount_fen=bill.total_fen if bill else 10_000,
        refund_key=None,
        detail="order already paid through alipay; refund this one",
        raised_at=raised_at,
    )
    return raised.as_record(bill)


def delivered(kind: str, record: dict[str, Any], offset: int = 0) -> Delivered:
    """The record as a subscriber receives it: encoded, then decoded."""
    codec = default_codec()
    schema, decoded = codec.decode(codec.encode(SCHEMAS[kind], record))
    return Delivered(TOPICS[kind].name, 0, offset, _key(record), schema, decoded)


def _key(record: dict[str, Any]) -> bytes:
    """The topic key: the order id, which is the bill id."""
    return str(record.get("order_id") or record.get("bill_id")).encode()
