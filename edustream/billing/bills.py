"""Bills: what a school asks a student's family to pay for one term.

Duties:

- hold a published bill and its fee items (tuition, accommodation, agency
  service), refusing one whose items do not add up to its total;
- define the layout of the 8-digit receipt code a bill names as its receipt
  series;
- map between a bill and the order that pays it;
- turn a bill into its Avro record (``edustream.billing.Bill``) and back.

Orders. A bill is paid by exactly one order and the order id *is* the bill
id. Every channel keeps its own order-number namespace, so the same number
can go to Alipay, WeChat Pay and UnionPay; a parent who starts in one channel
and pays in another still pays the same order. Attempts are told apart by
the channel and the channel's transaction id, which is what the order state
machine keys payments on. That is why a bill id must also be a valid order
number on every channel: 8 to 32 ASCII letters and digits (UnionPay's
``orderId`` allows nothing else; WeChat caps ``out_trade_no`` at 32).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from edustream.errors import CodecError, PoisonError

_BILL_ID = re.compile(r"[A-Za-z0-9]{8,32}", re.ASCII)
_RECEIPT_SERIES = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{4})", re.ASCII)


class FeeKind(StrEnum):
    """The kinds of fee a school may charge."""

    TUITION = "TUITION"
    ACCOMMODATION = "ACCOMMODATION"
    AGENCY_SERVICE = "AGENCY_SERVICE"


class BillStatus(StrEnum):
    """Where a bill stands in the school's own system."""

    OPEN = "OPEN"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class ReceiptSeries:
    """The 8-digit receipt code receipts for a bill are numbered under.

    Layout, ``RRCCYYYY``:

    - ``RR``: the region, the 2-digit provincial division code (Shanghai is
      ``31``);
    - ``CC``: the receipt category the finance bureau assigns (for example
      one for tuition and another for agency-service fees);
    - ``YYYY``: the fiscal year.

    Receipt numbers are consecutive within one code (see ``numbering``).
    """

    region: str
    category: str
    year: int

    def __post_init__(self) -> None:
        """Refuse parts that do not fit the layout."""
        if len(self.region) != 2 or not self.region.isdigit():
            raise PoisonError("invalid_receipt_series", "region is 2 digits")
        if len(self.category) != 2 or not self.category.isdigit():
            raise PoisonError("invalid_receipt_series", "category is 2 digits")
        if not 1000 <= self.year <= 9999:
            raise PoisonError("invalid_receipt_series", "year is 4 digits")

    @property
    def code(self) -> str:
        """The receipt code as printed on a receipt."""
        return f"{self.region}{self.category}{self.year:04d}"

    @classmethod
    def parse(cls, code: str) -> ReceiptSeries:
        """Split an 8-digit receipt code into its parts."""
        match = _RECEIPT_SERIES.fullmatch(code)
        if match is None:
            raise PoisonError("invalid_receipt_series", "a receipt code is 8 digits")

        region, category, year = match.groups()
        return cls(region=region, category=category, year=int(year))


@dataclass(frozen=True, slots=True)
class BillItem:
    """One fee on a bill, with the item code the receipt prints."""

    item_code: str
    item_name: str
    kind: FeeKind
    amount_fen: int

    def __post_init__(self) -> None:
        """Refuse a fee that is not a positive amount."""
        if self.amount_fen <= 0:
            raise PoisonError("invalid_bill", "a fee item must be positive")

    def as_record(self) -> dict[str, Any]:
        """The item as a nested Avro record (bills and receipts alike)."""
        return {
            "item_code": self.item_code,
            "item_name": self.item_name,
            "kind": str(self.kind),
            "amount_fen": self.amount_fen,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BillItem:
        """Rebuild an item from its nested record; ``KeyError`` if incomplete."""
        return cls(
            item_code=record["item_code"],
            item_name=record["item_name"],
            kind=FeeKind(record["kind"]),
            amount_fen=record["amount_fen"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Bill:
    """The fees one student owes one school for one term.

    ``student_ref`` is a keyed pseudonym of the student, never a name or an
    ID number. ``receipt_series`` is the receipt code (see
    ``ReceiptSeries``) the bill's receipts are numbered under.
    """

    bill_id: str
    school_id: str
    collecting_unit_code: str
    student_ref: str
    term: str
    items: tuple[BillItem, ...]
    total_fen: int
    receipt_series: str
    published_at: datetime
    status: BillStatus = BillStatus.OPEN
    # Keyed digest of the child's name (edustream.pseudonym.name_digest);
    # the parent's bill lookup compares against it.
    student_name_digest: str | None = None

    def __post_init__(self) -> None:
        """Refuse a bill that no channel or receipt could carry."""
        if not _BILL_ID.fullmatch(self.bill_id):
            raise PoisonError("invalid_bill", "a bill id is 8-32 letters and digits")
        if not self.items:
            raise PoisonError("invalid_bill", f"bill {self.bill_id} has no items")

        if sum(item.amount_fen for item in self.items) != self.total_fen:
            raise PoisonError(
                "invalid_bill", f"bill {self.bill_id} items do not add up to total"
            )

        ReceiptSeries.parse(self.receipt_series)
        if self.published_at.utcoffset() != timedelta(0):
            raise PoisonError("invalid_bill", "published_at must be UTC-aware")

    @property
    def order_id(self) -> str:
        """The order that pays this bill (the same string; see module doc)."""
        return self.bill_id

    def as_record(self, *, event_id: str, occurred_at: datetime) -> dict[str, Any]:
        """The bill as an ``edustream.billing.Bill`` Avro record."""
        return {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "bill_id": self.bill_id,
            "school_id": self.school_id,
            "collecting_unit_code": self.collecting_unit_code,
            "student_ref": self.student_ref,
            "term": self.term,
            "items": [item.as_record() for item in self.items],
            "total_fen": self.total_fen,
            "receipt_series": self.receipt_series,
            "published_at": self.published_at,
            "status": str(self.status),
            "student_name_digest": self.student_name_digest,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Bill:
        """Rebuild a bill from its decoded Avro record.

        Raises ``CodecError("invalid_record")`` for a missing or mistyped
        field and ``PoisonError("invalid_bill")`` for a bill that does not
        hold together.
        """
        try:
            return cls(
                bill_id=record["bill_id"],
                school_id=record["school_id"],
                collecting_unit_code=record["collecting_unit_code"],
                student_ref=record["student_ref"],
                term=record["term"],
                items=tuple(BillItem.from_record(item) for item in record["items"]),
                total_fen=record["total_fen"],
                receipt_series=record["receipt_series"],
                published_at=record["published_at"],
                status=BillStatus(record["status"]),
                student_name_digest=record.get("student_name_digest"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CodecError(
                "invalid_record", f"bill record is invalid: {type(exc).__name__}"
            ) from exc


def bill_id_for(order_id: str) -> str:
    """The bill an order pays: the order id is the bill id."""
    return order_id
