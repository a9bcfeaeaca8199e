"""Electronic fiscal receipts and red-letter receipts for school fees.

Duties:

- hold a receipt (blue) and a red-letter receipt, as issued;
- derive their ids, so a replay of the same decision names the same
  receipt and gets the same number back from ``numbering``;
- derive the check code and the issue date;
- build both from a bill, an order decision and an allocated number;
- turn both into their Avro records and back.

A refund never edits a receipt. It gets a red-letter receipt of its own,
numbered in the same receipt code as the original and linked to the
original's code and number.

Determinism. Everything printed on a receipt comes from the bill, the
decision and the number, never from the clock: the issue time is the
notification time of the event that caused the receipt, and the issue date
is that instant's business day in Asia/Shanghai. A replay after a crash
therefore rebuilds the same receipt, field for field.

Check code. Our own scheme, not a national algorithm: the first 8 bytes of
HMAC-SHA256 over ``code|number|signed amount`` (the red-letter amount
negative), as an integer mod 10**6, written as 6 digits. The key stays with
the issuer, so a check code cannot be made up for a receipt that was never
issued; a verifier with the key recomputes it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from edustream.billing.bills import Bill, BillItem, ReceiptSeries
from edustream.billing.orders import IssueReceipt, IssueRedLetterReceipt
from edustream.errors import CodecError, PoisonError

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_RECEIPT_NUMBER = 9_999_999_999

_RECEIPT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:billing:receipts")
_CHECK_CODE_MODULUS = 10**6


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """A blue receipt: one per paid order.

    ``payer_ref`` is the student's pseudonym (fiscal receipts name the
    student as payer); no name or ID number is ever on it.
    """

    receipt_id: str
    receipt_code: str
    receipt_number: str
    check_code: str
    issue_date: date
    issued_at: datetime
    payer_ref: str
    items: tuple[BillItem, ...]
    amount_fen: int
    collecting_unit_code: str
    school_id: str
    order_id: str
    channel: str
    channel_txn_id: str
    paid_at: datetime | None

    def __post_init__(self) -> None:
        """Refuse a receipt that could not have been issued."""
        _check_printed(self.receipt_code, self.receipt_number, self.check_code)
        if self.amount_fen <= 0:
            raise PoisonError("invalid_receipt", "a receipt amount is positive")

    def as_record(self) -> dict[str, Any]:
        """The receipt as an ``edustream.billing.ReceiptIssued`` record."""
        return {
            "event_id": self.receipt_id,
            "occurred_at": self.issued_at,
            "receipt_id": self.receipt_id,
            "receipt_code": self.receipt_code,
            "receipt_number": self.receipt_number,
            "check_code": self.check_code,
            "issue_date": self.issue_date,
            "issued_at": self.issued_at,
            "payer_ref": self.payer_ref,
            "items": [item.as_record() for item in self.items],
            "amount_fen": self.amount_fen,
            "collecting_unit_code": self.collecting_unit_code,
            "school_id": self.school_id,
            "order_id": self.order_id,
            "channel": self.channel,
            "channel_txn_id": self.channel_txn_id,
            "paid_at": self.paid_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Receipt:
        """Rebuild a receipt from a decoded ``ReceiptIssued`` record."""
        try:
            return cls(
                receipt_id=str(record["receipt_id"]),
                receipt_code=record["receipt_code"],
                receipt_number=record["receipt_number"],
                check_code=record["check_code"],
                issue_date=record["issue_date"],
                issued_at=record["issued_at"],
                payer_ref=record["payer_ref"],
                items=tuple(BillItem.from_record(item) for item in record["items"]),
                amount_fen=record["amount_fen"],
                collecting_unit_code=record["collecting_unit_code"],
                school_id=record["school_id"],
                order_id=record["order_id"],
                channel=record["channel"],
                channel_txn_id=record["channel_txn_id"],
                paid_at=record.get("paid_at"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CodecError(
                "invalid_record", f"receipt record is invalid: {type(exc).__name__}"
            ) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class RedLetterReceipt:
    """A red-letter receipt: reverses ``refund_fen`` of an original receipt.

    ``refund_fen`` is positive and means money going back to the payer.
    """

    receipt_id: str
    receipt_code: str
    receipt_number: str
    check_code: str
    issue_date: date
    issued_at: datetime
    payer_ref: str
    refund_fen: int
    refund_id: str | None
    refund_key: str
    refunded_at: datetime | None
    collecting_unit_code: str
    school_id: str
    order_id: str
    channel: str
    channel_txn_id: str
    original_receipt_id: str
    original_receipt_code: str
    original_receipt_number: str

    def __post_init__(self) -> None:
        """Refuse a red-letter receipt that could not have been issued."""
        _check_printed(self.receipt_code, self.receipt_number, self.check_code)
        _check_printed(self.original_receipt_code, self.original_receipt_number)
        if self.refund_fen <= 0:
            raise PoisonError("invalid_receipt", "a red-letter amount is positive")

    def as_record(self) -> dict[str, Any]:
        """The receipt as an ``edustream.billing.RedLetterReceiptIssued``."""
        return {
            "event_id": self.receipt_id,
            "occurred_at": self.issued_at,
            "receipt_id": self.receipt_id,
            "receipt_code": self.receipt_code,
            "receipt_number": self.receipt_number,
            "check_code": self.check_code,
            "issue_date": self.issue_date,
            "issued_at": self.issued_at,
            "payer_ref": self.payer_ref,
            "refund_fen": self.refund_fen,
            "refund_id": self.refund_id,
            "refund_key": self.refund_key,
            "refunded_at": self.refunded_at,
            "collecting_unit_code": self.collecting_unit_code,
            "school_id": self.school_id,
            "order_id": self.order_id,
            "channel": self.channel,
            "channel_txn_id": self.channel_txn_id,
            "original_receipt_id": self.original_receipt_id,
            "original_receipt_code": self.original_receipt_code,
            "original_receipt_number": self.original_receipt_number,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RedLetterReceipt:
        """Rebuild a red-letter receipt from its decoded record."""
        try:
            return cls(
                receipt_id=str(record["receipt_id"]),
                receipt_code=record["receipt_code"],
                receipt_number=record["receipt_number"],
                check_code=record["check_code"],
                issue_date=record["issue_date"],
                issued_at=record["issued_at"],
                payer_ref=record["payer_ref"],
                refund_fen=record["refund_fen"],
                refund_id=record.get("refund_id"),
                refund_key=record["refund_key"],
                refunded_at=record.get("refunded_at"),
                collecting_unit_code=record["collecting_unit_code"],
                school_id=record["school_id"],
                order_id=record["order_id"],
                channel=record["channel"],
                channel_txn_id=record["channel_txn_id"],
                original_receipt_id=str(record["original_receipt_id"]),
                original_receipt_code=record["original_receipt_code"],
                original_receipt_number=record["original_receipt_number"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CodecError(
                "invalid_record",
                f"red-letter record is invalid: {type(exc).__name__}",
            ) from exc


def receipt_id_for(order_id: str) -> str:
    """The id of an order's one blue receipt."""
    return str(uuid.uuid5(_RECEIPT_IDS, f"receipt:{order_id}"))


def red_letter_id_for(order_id: str, refund_key: str) -> str:
    """The id of the red-letter receipt for one refund of an order."""
    return str(uuid.uuid5(_RECEIPT_IDS, f"red-letter:{order_id}:{refund_key}"))


def business_day(moment: datetime) -> date:
    """The Asia/Shanghai calendar day an aware instant falls on."""
    if moment.utcoffset() is None:
        raise ValueError("a business day needs an aware datetime")
    return moment.astimezone(SHANGHAI).date()


def format_receipt_number(number: int) -> str:
    """A receipt number as printed: 10 digits, zero-padded."""
    if not 1 <= number <= MAX_RECEIPT_NUMBER:
        raise ValueError("a receipt number is 1 to 9999999999")
    return f"{number:010d}"


def check_code(
    receipt_code: str, receipt_number: str, amount_fen: int, key: bytes
) -> str:
    """The 6-digit check code of a receipt (our own scheme; see module doc)."""
    message = f"{receipt_code}|{receipt_number}|{amount_fen}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    value = int.from_bytes(digest[:8], "big") % _CHECK_CODE_MODULUS
    return f"{value:06d}"


def issue_receipt(
    bill: Bill, decision: IssueReceipt, number: int, key: bytes
) -> Receipt:
    """Build the blue receipt for a paid order.

    ``number`` comes from ``ReceiptNumberer.allocate(bill.receipt_series,
    receipt_id_for(order_id))``; ``key`` is the check-code key.
    """
    _check_same_order(bill, decision.order_id)
    code = ReceiptSeries.parse(bill.receipt_series).code
    printed = format_receipt_number(number)

    return Receipt(
        receipt_id=receipt_id_for(decision.order_id),
        receipt_code=code,
        receipt_number=printed,
        check_code=check_code(code, printed, decision.amount_fen, key),
        issue_date=business_day(decision.issued_at),
        issued_at=decision.issued_at,
        payer_ref=bill.student_ref,
        items=bill.items,
        amount_fen=decision.amount_fen,
        collecting_unit_code=bill.collecting_unit_code,
        school_id=bill.school_id,
        order_id=decision.order_id,
        channel=decision.channel,
        channel_txn_id=decision.channel_txn_id,
        paid_at=decision.paid_at,
    )


def issue_red_letter_receipt(
    bill: Bill,
    decision: IssueRedLetterReceipt,
    number: int,
    original_number: int,
    key: bytes,
) -> RedLetterReceipt:
    """Build the red-letter receipt for one refund.

    ``original_number`` is the blue receipt's number; ``numbering`` returns
    it again for ``receipt_id_for(order_id)`` without allocating.
    """
    _check_same_order(bill, decision.order_id)
    code = ReceiptSeries.parse(bill.receipt_series).code
    printed = format_receipt_number(number)

    return RedLetterReceipt(
        receipt_id=red_letter_id_for(decision.order_id, decision.refund_key),
        receipt_code=code,
        receipt_number=printed,
        check_code=check_code(code, printed, -decision.refund_fen, key),
        issue_date=business_day(decision.issued_at),
        issued_at=decision.issued_at,
        payer_ref=bill.student_ref,
        refund_fen=decision.refund_fen,
        refund_id=decision.refund_id,
        refund_key=decision.refund_key,
        refunded_at=decision.refunded_at,
        collecting_unit_code=bill.collecting_unit_code,
        school_id=bill.school_id,
        order_id=decision.order_id,
        channel=decision.channel,
        channel_txn_id=decision.channel_txn_id,
        original_receipt_id=receipt_id_for(decision.order_id),
        original_receipt_code=code,
        original_receipt_number=format_receipt_number(original_number),
    )


def _check_printed(code: str, number: str, check: str | None = None) -> None:
    """Refuse a code, number or check code of the wrong shape."""
    ReceiptSeries.parse(code)
    if len(number) != 10 or not number.isdigit() or number == "0" * 10:
        raise PoisonError("invalid_receipt", "a receipt number is 10 digits")
    if check is not None and (len(check) != 6 or not check.isdigit()):
        raise PoisonError("invalid_receipt", "a check code is 6 digits")


def _check_same_order(bill: Bill, order_id: str) -> None:
    """Refuse to print one order's receipt from another order's bill."""
    if bill.order_id != order_id:
        raise ValueError("the decision is for another order than the bill")
