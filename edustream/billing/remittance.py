"""Remittance: what each collecting unit hands the treasury per business day.

Duties:

- define when a business day (Asia/Shanghai) closes;
- say which day a receipt is booked to, so a closed batch never changes;
- build the remittance batch of one collecting unit and one day from its
  receipts and red-letter receipts (``close_day``), identically on replay;
- hold the explicit day-closed command and turn both into Avro records.

When a day closes. Business day D closes for a collecting unit when either
comes first:

- the unit's watermark, the latest ``issued_at`` among the receipts booked
  for it, reaches D+1 00:00 Asia/Shanghai plus ``grace``; or
- a ``DayClosed`` command names D (and the unit, or every unit). A
  scheduler sends it each night, because a unit that collects nothing after
  D would otherwise never see its watermark move.

``grace`` covers workers that issue receipts out of step with each other
(different partitions, different lag). An entry that still arrives after
its day closed is booked to the first open day (``booking_day``) rather
than reopening a batch the treasury may already hold.

Idempotence. ``close_day`` depends only on the set of entries given: the
batch id is a UUID5 of unit and day, entries are de-duplicated by receipt
id, and every list is sorted. A replay that books the same entries closes
the same batch with the same id and content.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from edustream.billing.receipts import SHANGHAI, Receipt, RedLetterReceipt
from edustream.errors import CodecError, PoisonError

_BATCH_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:billing:remittance")

# Receipts follow their payment notification within seconds; an hour covers
# a worker that lags behind its peers (a rebalance, a restart) without
# holding the treasury's batch past the early morning.
DEFAULT_GRACE = timedelta(hours=1)

_Entry = TypeVar("_Entry", Receipt, RedLetterReceipt)


@dataclass(frozen=True, slots=True)
class NumberRange:
    """A run of consecutive receipt numbers within one receipt code."""

    receipt_code: str
    first: int
    last: int

    def as_record(self) -> dict[str, Any]:
        """The range as a nested Avro record."""
        return {
            "receipt_code": self.receipt_code,
            "first": self.first,
            "last": self.last,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RemittanceBatch:
    """One collecting unit's collections for one business day.

    ``net_fen`` is receipts minus red-letter receipts, the amount to remit.
    ``content_digest`` is a SHA-256 over the sorted receipt ids, so two
    batches with the same id can be compared without their entries.
    """

    batch_id: str
    collecting_unit_code: str
    business_day: date
    receipt_count: int
    receipts_total_fen: int
    red_letter_count: int
    red_letter_total_fen: int
    net_fen: int
    receipt_ranges: tuple[NumberRange, ...]
    red_letter_ranges: tuple[NumberRange, ...]
    content_digest: str

    def as_record(self) -> dict[str, Any]:
        """The batch as an ``edustream.billing.RemittanceBatchClosed``."""
        return {
            "event_id": self.batch_id,
            "occurred_at": day_ends_at(self.business_day),
            "batch_id": self.batch_id,
            "collecting_unit_code": self.collecting_unit_code,
            "business_day": self.business_day,
            "receipt_count": self.receipt_count,
            "receipts_total_fen": self.receipts_total_fen,
            "red_letter_count": self.red_letter_count,
            "red_letter_total_fen": self.red_letter_total_fen,
            "net_fen": self.net_fen,
            "receipt_ranges": [r.as_record() for r in self.receipt_ranges],
            "red_letter_ranges": [r.as_record() for r in self.red_letter_ranges],
            "content_digest": self.content_digest,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DayClosed:
    """Close ``business_day`` for one collecting unit, or for all (``None``)."""

    event_id: str
    occurred_at: datetime
    business_day: date
    collecting_unit_code: str | None = None

    def applies_to(self, collecting_unit_code: str) -> bool:
        """Whether the command closes the day for this unit."""
        wanted = self.collecting_unit_code
        return wanted is None or wanted == collecting_unit_code

    def as_record(self) -> dict[str, Any]:
        """The command as an ``edustream.billing.DayClosed`` record."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "business_day": self.business_day,
            "collecting_unit_code": self.collecting_unit_code,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DayClosed:
        """Rebuild the command from its decoded record."""
        try:
            return cls(
                event_id=str(record["event_id"]),
                occurred_at=record["occurred_at"],
                business_day=record["business_day"],
                collecting_unit_code=record.get("collecting_unit_code"),
            )
        except (KeyError, TypeError) as exc:
            raise CodecError("invalid_record", "day-closed record is invalid") from exc


def batch_id_for(collecting_unit_code: str, business_day: date) -> str:
    """The id of a unit's batch for a day, the same on every replay."""
    name = f"remittance:{collecting_unit_code}:{business_day.isoformat()}"
    return str(uuid.uuid5(_BATCH_IDS, name))


def day_ends_at(business_day: date) -> datetime:
    """The UTC instant a business day ends (next 00:00 Asia/Shanghai)."""
    midnight = datetime.combine(business_day + timedelta(days=1), time(), SHANGHAI)
    return midnight.astimezone(UTC)


def day_closes_at(business_day: date, grace: timedelta = DEFAULT_GRACE) -> datetime:
    """The watermark at which a business day closes."""
    return day_ends_at(business_day) + grace


def latest_closed_day(watermark: datetime, grace: timedelta = DEFAULT_GRACE) -> date:
    """The last business day closed once the watermark reaches ``watermark``."""
    still_open = (watermark - grace).astimezone(SHANGHAI).date()
    return still_open - timedelta(days=1)


def booking_day(issue_date: date, closed_through: date | None) -> date:
    """The day an entry issued on ``issue_date`` counts towards.

    Its own day while that is open; otherwise the first day after the last
    closed one, so a late entry never changes a closed batch.
    """
    if closed_through is None or issue_date > closed_through:
        return issue_date
    return closed_through + timedelta(days=1)


def close_day(
    collecting_unit_code: str,
    business_day: date,
    receipts: Iterable[Receipt],
    red_letters: Iterable[RedLetterReceipt],
) -> RemittanceBatch:
    """The batch of the entries booked to one unit and day.

    Entries of other collecting units are left out, so a caller may pass
    everything booked to the day. The same receipt id given twice counts
    once; given twice with different content it is a ``PoisonError``.
    """
    blue = _unique(
        r for r in receipts if r.collecting_unit_code == collecting_unit_code
    )
    red = _unique(
        r for r in red_letters if r.collecting_unit_code == collecting_unit_code
    )

    receipts_total = sum(r.amount_fen for r in blue)
    red_letter_total = sum(r.refund_fen for r in red)
    return RemittanceBatch(
        batch_id=batch_id_for(collecting_unit_code, business_day),
        collecting_unit_code=collecting_unit_code,
        business_day=business_day,
        receipt_count=len(blue),
        receipts_total_fen=receipts_total,
        red_letter_count=len(red),
        red_letter_total_fen=red_letter_total,
        net_fen=receipts_total - red_letter_total,
        receipt_ranges=number_ranges((r.receipt_code, r.receipt_number) for r in blue),
        red_letter_ranges=number_ranges(
            (r.receipt_code, r.receipt_number) for r in red
        ),
        content_digest=_digest(
            [r.receipt_id for r in blue] + [r.receipt_id for r in red]
        ),
    )


def number_ranges(numbers: Iterable[tuple[str, str]]) -> tuple[NumberRange, ...]:
    """Compress (receipt code, printed number) pairs into sorted runs."""
    ordered = sorted({(code, int(number)) for code, number in numbers})
    return tuple(_runs(ordered))


def _runs(ordered: list[tuple[str, int]]) -> Iterator[NumberRange]:
    if not ordered:
        return

    code, first = ordered[0]
    last = first
    for next_code, number in ordered[1:]:
        if next_code == code and number == last + 1:
            last = number
            continue
        yield NumberRange(code, first, last)
        code, first, last = next_code, number, number
    yield NumberRange(code, first, last)


def _unique(entries: Iterable[_Entry]) -> list[_Entry]:
    """Entries de-duplicated by receipt id, sorted by it."""
    by_id: dict[str, _Entry] = {}
    for entry in entries:
        known = by_id.setdefault(entry.receipt_id, entry)
        if known != entry:
            raise PoisonError(
                "conflicting_receipt",
                f"receipt {entry.receipt_id} seen with two different contents",
            )
    return [by_id[receipt_id] for receipt_id in sorted(by_id)]


def _digest(receipt_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(receipt_ids)).encode()).hexdigest()
