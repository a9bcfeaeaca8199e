"""The bills read model: each student's open bills, for the parent's lookup.

Duties:

- keep the latest version of every bill in Redis and, per student
  pseudonym, the set of that student's bills;
- mark a bill paid when its receipt is issued, and count the red-letter
  receipts against it. A refund never reopens a bill: the order state
  machine refuses a second payment on a refunded order, so showing the bill
  as open again would invite a payment that cannot be receipted;
- keep, per student, the keyed digest of the child's name that the bill
  carries (``student_name_digest``), so the lookup can check a name
  without any name being stored;
- read a student's open bills and name digest back for the HTTP lookup.

Every write is keyed by the record's own ids (bill id, receipt id), so a
replay writes the same values again and changes nothing. Receipts may be
read before their bill (the topics are consumed side by side); the paid
mark waits on the bill's hash until the bill arrives.

Redis keys, under ``prefix`` (``billing:lookup`` by default):

- ``{prefix}:bill:{bill_id}``: hash with ``bill`` (the bill as JSON),
  ``receipt`` (the receipt id once paid) and ``red:{receipt id}`` (each
  red-letter receipt's refunded fen);
- ``{prefix}:student:{student_ref}:bills``: set of the student's bill ids;
- ``{prefix}:student:{student_ref}``: hash with ``name_digest``.

The name digest. ``Bill`` records carry ``student_name_digest``, a keyed
digest of the child's name computed by the bill's publisher (see
``edustream.pseudonym.name_digest``). A bill without one leaves the student
unfindable by lookup, which is the safe side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from consumers.base import Delivered
from edustream.billing.bills import Bill, BillStatus
from edustream.errors import PoisonError
from edustream.logs import get_logger
from infra.redis import wrap
from topics import billing
from topics.spec import TopicSpec

log = get_logger(component="bills_lookup")

PREFIX = "billing:lookup"
BILL_SCHEMA = "edustream.billing.Bill"
RECEIPT_SCHEMA = "edustream.billing.ReceiptIssued"
RED_LETTER_SCHEMA = "edustream.billing.RedLetterReceiptIssued"
NAME_DIGEST_FIELD = "student_name_digest"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLI = timedelta(milliseconds=1)


@dataclass(frozen=True)
class BillKeys:
    """The Redis key layout of the read model under one prefix."""

    prefix: str = PREFIX

    def bill(self, bill_id: str) -> str:
        """Hash of one bill: its JSON, its receipt and its red letters."""
        return f"{self.prefix}:bill:{bill_id}"

    def student_bills(self, student_ref: str) -> str:
        """Set of one student's bill ids."""
        return f"{self.prefix}:student:{student_ref}:bills"

    def student(self, student_ref: str) -> str:
        """Hash of what is known of one student: the name digest."""
        return f"{self.prefix}:student:{student_ref}"


class BillsLookup:
    """Subscriber keeping open bills per student for ``POST /bills/lookup``."""

    topics: tuple[TopicSpec, ...] = (
        billing.BILLS,
        billing.RECEIPTS,
        billing.RED_RECEIPTS,
    )

    def __init__(
        self, redis: Redis, *, group: str = "billing-bills-lookup", prefix: str = PREFIX
    ) -> None:
        self.group = group
        self._redis = redis
        self._keys = BillKeys(prefix)

    async def handle(self, item: Delivered) -> None:
        """Apply one bill, receipt or red-letter receipt to the read model."""
        try:
            if item.schema == BILL_SCHEMA:
                await self._on_bill(item)
            elif item.schema == RECEIPT_SCHEMA:
                await self._on_receipt(item.record)
            elif item.schema == RED_LETTER_SCHEMA:
                await self._on_red_letter(item.record)
        except RedisError as exc:
            raise wrap(exc) from exc

    async def _on_bill(self, item: Delivered) -> None:
        """Store a bill version and file it under its student."""
        try:
            bill = Bill.from_record(item.record)
        except PoisonError as exc:
            log.error(
                "bill_skipped",
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                reason=exc.reason,
            )
            return

        key = self._keys.bill(bill.bill_id)
        previous = await self._stored_bill(key)
        version_ms = epoch_millis(item.record["occurred_at"])
        if previous is not None and previous["version_ms"] > version_ms:
            return

        async with self._redis.pipeline(transaction=True) as pipe:
            if previous is not None and previous["student_ref"] != bill.student_ref:
                pipe.srem(
                    self._keys.student_bills(previous["student_ref"]), bill.bill_id
                )
            pipe.hset(key, "bill", json.dumps(bill_view(bill, item.record)))
            pipe.sadd(self._keys.student_bills(bill.student_ref), bill.bill_id)
            digest = item.record.get(NAME_DIGEST_FIELD)
            if isinstance(digest, str) and digest:
                pipe.hset(self._keys.student(bill.student_ref), "name_digest", digest)
            await pipe.execute()

    async def _on_receipt(self, record: dict[str, Any]) -> None:
        """Mark the receipt's bill paid (the order id is the bill id)."""
        key = self._keys.bill(record["order_id"])
        await self._redis.hset(key, "receipt", str(record["receipt_id"]))

    async def _on_red_letter(self, record: dict[str, Any]) -> None:
        """Count one red-letter receipt against its bill."""
        key = self._keys.bill(record["order_id"])
        field = f"red:{record['receipt_id']}"
        await self._redis.hset(key, field, str(record["refund_fen"]))

    async def _stored_bill(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(key, "bill")
        return json.loads(raw) if raw else None


def bill_view(bill: Bill, record: dict[str, Any]) -> dict[str, Any]:
    """What the lookup shows of a bill, plus the version it came from."""
    return {
        "bill_id": bill.bill_id,
        "school_id": bill.school_id,
        "collecting_unit_code": bill.collecting_unit_code,
        "student_ref": bill.student_ref,
        "term": bill.term,
        "items": [item.as_record() for item in bill.items],
        "total_fen": bill.total_fen,
        "status": str(bill.status),
        "published_at": bill.published_at.isoformat(),
        "version_ms": epoch_millis(record["occurred_at"]),
    }


async def open_bills(
    redis: Redis, student_ref: str, prefix: str = PREFIX
) -> list[dict[str, Any]]:
    """The student's bills that are open and unpaid, by term then bill id.

    Raises ``RetriableError`` when Redis fails.
    """
    keys = BillKeys(prefix)
    try:
        bill_ids = sorted(await redis.smembers(keys.student_bills(student_ref)))
        async with redis.pipeline(transaction=False) as pipe:
            for bill_id in bill_ids:
                pipe.hmget(keys.bill(_text(bill_id)), "bill", "receipt")
            rows = await pipe.execute()
    except RedisError as exc:
        raise wrap(exc) from exc

    found = [json.loads(raw) for raw, receipt in rows if raw and not receipt]
    shown = [
        _without_version(bill)
        for bill in found
        if bill["status"] == BillStatus.OPEN and bill["student_ref"] == student_ref
    ]
    return sorted(shown, key=lambda bill: (bill["term"], bill["bill_id"]))


async def stored_name_digest(
    redis: Redis, student_ref: str, prefix: str = PREFIX
) -> str | None:
    """The name digest the student's bills carry, if any.

    Raises ``RetriableError`` when Redis fails.
    """
    try:
        raw = await redis.hget(BillKeys(prefix).student(student_ref), "name_digest")
    except RedisError as exc:
        raise wrap(exc) from exc
    return _text(raw) if raw else None


def _without_version(bill: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in bill.items() if name != "version_ms"}


def epoch_millis(moment: datetime | int) -> int:
    """Epoch milliseconds of a decoded timestamp-millis value, exactly."""
    if isinstance(moment, int):
        return moment
    return (moment - _EPOCH) // _MILLI


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
