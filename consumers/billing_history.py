"""Payment history per student: payments, receipts, refunds and exceptions.

Duties:

- ``PaymentHistory``: a subscriber over receipts, red-letter receipts and
  payment exceptions that writes each student's history into Redis. It
  also reads bills, for one thing only: exceptions name an order, not a
  student, and the bill says whose order it is;
- ``read_history``: a student's history in time order, for the HTTP view
  and the ``edustream billing history`` command;
- ``subscribers()``: every billing read-model subscriber, for the process
  that runs the downstream consumers.

What one record becomes:

- a receipt: a ``payment`` entry at the payment time and a ``receipt``
  entry at the issue time;
- a red-letter receipt: a ``refund`` entry at the refund time and a
  ``red_letter_receipt`` entry at the issue time;
- an exception: an ``exception`` entry at the time of the event that raised
  it (a second payment waiting to be refunded, an amount that did not
  match the bill...).

Idempotent by record id: an entry's id is its kind plus the record's id
(receipt id, red-letter receipt id, exception id), and it is written with
the same score and JSON on every replay, so replays change nothing.

An exception read before its order's bill is parked under the order and
moved into the student's history when the bill (or a receipt) links the
order to a student. Exceptions for orders with no bill (``UNKNOWN_ORDER``)
stay parked: they belong to no student.

Redis keys, under ``prefix`` (``billing:history`` by default):

- ``{prefix}:student:{ref}:timeline``: sorted set, entry id by epoch ms;
- ``{prefix}:student:{ref}:entries``: hash, entry id to entry JSON;
- ``{prefix}:order:{order_id}:student``: the student the order bills;
- ``{prefix}:order:{order_id}:parked``: hash of entries waiting for that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from consumers.base import Delivered, Subscriber
from consumers.bills_lookup import (
    BILL_SCHEMA,
    RECEIPT_SCHEMA,
    RED_LETTER_SCHEMA,
    BillsLookup,
    epoch_millis,
)
from edustream.settings import get_settings
from infra.redis import async_client, wrap
from topics import billing
from topics.spec import TopicSpec

PREFIX = "billing:history"
EXCEPTION_SCHEMA = "edustream.billing.PaymentException"


@dataclass(frozen=True)
class HistoryKeys:
    """The Redis key layout of the history under one prefix."""

    prefix: str = PREFIX

    def timeline(self, student_ref: str) -> str:
        """Sorted set of a student's entry ids, scored by epoch ms."""
        return f"{self.prefix}:student:{student_ref}:timeline"

    def entries(self, student_ref: str) -> str:
        """Hash of a student's entries by id."""
        return f"{self.prefix}:student:{student_ref}:entries"

    def owner(self, order_id: str) -> str:
        """The student an order bills."""
        return f"{self.prefix}:order:{order_id}:student"

    def parked(self, order_id: str) -> str:
        """Entries of an order whose student is not known yet."""
        return f"{self.prefix}:order:{order_id}:parked"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a student's history."""

    entry_id: str
    at_ms: int
    body: dict[str, Any]

    def as_json(self) -> str:
        """The entry as stored: its body plus id, kind and time."""
        return json.dumps({"entry_id": self.entry_id, "at_ms": self.at_ms, **self.body})


class PaymentHistory:
    """Subscriber writing per-student payment history into Redis."""

    topics: tuple[TopicSpec, ...] = (
        billing.BILLS,
        billing.RECEIPTS,
        billing.RED_RECEIPTS,
        billing.EXCEPTIONS,
    )

    def __init__(
        self, redis: Redis, *, group: str = "billing-history", prefix: str = PREFIX
    ) -> None:
        self.group = group
        self._redis = redis
        self._keys = HistoryKeys(prefix)

    async def handle(self, item: Delivered) -> None:
        """Apply one record to the history."""
        try:
            await self._apply(item.schema, item.record)
        except RedisError as exc:
            raise wrap(exc) from exc

    async def _apply(self, schema: str, record: dict[str, Any]) -> None:
        if schema == BILL_SCHEMA:
            await self._link(record["bill_id"], record["student_ref"])
        elif schema == RECEIPT_SCHEMA:
            await self._link(record["order_id"], record["payer_ref"])
            await self._write(record["payer_ref"], receipt_entries(record))
        elif schema == RED_LETTER_SCHEMA:
            await self._link(record["order_id"], record["payer_ref"])
            await self._write(record["payer_ref"], red_letter_entries(record))
        elif schema == EXCEPTION_SCHEMA:
            await self._on_exception(record)

    async def _on_exception(self, record: dict[str, Any]) -> None:
        """Write an exception to its student, or park it until one is known."""
        order_id = record["order_id"]
        entry = exception_entry(record)
        student_ref = await self._owner(order_id)
        if student_ref is not None:
            await self._write(student_ref, [entry])
            return

        await self._redis.hset(
            self._keys.parked(order_id), entry.entry_id, entry.as_json()
        )
        # The link may have been written between the read and the park, by
        # another member handling the bill; look once more so nothing stays
        # parked behind a link that exists.
        student_ref = await self._owner(order_id)
        if student_ref is not None:
            await self._unpark(order_id, student_ref)

    async def _link(self, order_id: str, student_ref: str) -> None:
        """Record whose order this is, and release what waited for it."""
        await self._redis.set(self._keys.owner(order_id), student_ref)
        await self._unpark(order_id, student_ref)

    async def _unpark(self, order_id: str, student_ref: str) -> None:
        parked = await self._redis.hgetall(self._keys.parked(order_id))
        if not parked:
            return

        entries = [_entry_from_json(raw) for raw in parked.values()]
        await self._write(student_ref, entries)
        await self._redis.hdel(self._keys.parked(order_id), *parked.keys())

    async def _write(self, student_ref: str, entries: list[Entry]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry in entries:
                pipe.hset(
                    self._keys.entries(student_ref), entry.entry_id, entry.as_json()
                )
                pipe.zadd(
                    self._keys.timeline(student_ref), {entry.entry_id: entry.at_ms}
                )
            await pipe.execute()

    async def _owner(self, order_id: str) -> str | None:
        raw = await self._redis.get(self._keys.owner(order_id))
        return _text(raw) if raw else None


def receipt_entries(record: dict[str, Any]) -> list[Entry]:
    """The ``payment`` and ``receipt`` entries of a blue receipt."""
    receipt_id = str(record["receipt_id"])
    paid_at = record.get("paid_at") or record["issued_at"]
    common = {
        "order_id": record["order_id"],
        "school_id": record["school_id"],
        "channel": record["channel"],
        "receipt_id": receipt_id,
    }
    payment = {
        "kind": "payment",
        "at": _iso(paid_at),
        **common,
        "channel_txn_id": record["channel_txn_id"],
        "amount_fen": record["amount_fen"],
    }
    receipt = {
        "kind": "receipt",
        "at": _iso(record["issued_at"]),
        **common,
        "receipt_code": record["receipt_code"],
        "receipt_number": record["receipt_number"],
        "check_code": record["check_code"],
        "issue_date": _iso(record["issue_date"]),
        "amount_fen": record["amount_fen"],
        "collecting_unit_code": record["collecting_unit_code"],
        "items": record["items"],
    }
    return [
        Entry(f"payment:{receipt_id}", epoch_millis(paid_at), payment),
        Entry(f"receipt:{receipt_id}", epoch_millis(record["issued_at"]), receipt),
    ]


def red_letter_entries(record: dict[str, Any]) -> list[Entry]:
    """The ``refund`` and ``red_letter_receipt`` entries of a red letter."""
    receipt_id = str(record["receipt_id"])
    refunded_at = record.get("refunded_at") or record["issued_at"]
    common = {
        "order_id": record["order_id"],
        "school_id": record["school_id"],
        "channel": record["channel"],
        "receipt_id": receipt_id,
        "refund_fen": record["refund_fen"],
    }
    refund = {
        "kind": "refund",
        "at": _iso(refunded_at),
        **common,
        "refund_id": record.get("refund_id"),
    }
    red_letter = {
        "kind": "red_letter_receipt",
        "at": _iso(record["issued_at"]),
        **common,
        "receipt_code": record["receipt_code"],
        "receipt_number": record["receipt_number"],
        "check_code": record["check_code"],
        "issue_date": _iso(record["issue_date"]),
        "original_receipt_code": record["original_receipt_code"],
        "original_receipt_number": record["original_receipt_number"],
    }
    return [
        Entry(f"refund:{receipt_id}", epoch_millis(refunded_at), refund),
        Entry(
            f"red_letter_receipt:{receipt_id}",
            epoch_millis(record["issued_at"]),
            red_letter,
        ),
    ]


def exception_entry(record: dict[str, Any]) -> Entry:
    """The ``exception`` entry of a payment exception."""
    exception_id = str(record["event_id"])
    body = {
        "kind": "exception",
        "at": _iso(record["occurred_at"]),
        "exception_id": exception_id,
        "exception_kind": record["kind"],
        "order_id": record["order_id"],
        "school_id": record.get("school_id"),
        "channel": record["channel"],
        "channel_txn_id": record["channel_txn_id"],
        "amount_fen": record["amount_fen"],
        "detail": record["detail"],
    }
    return Entry(f"exception:{exception_id}", epoch_millis(record["occurred_at"]), body)


async def read_history(
    redis: Redis, student_ref: str, prefix: str = PREFIX
) -> list[dict[str, Any]]:
    """A student's history entries, oldest first.

    Entries at the same millisecond keep a fixed order (by entry id), so the
    answer is the same on every read. Raises ``RetriableError`` when Redis
    fails.
    """
    keys = HistoryKeys(prefix)
    try:
        timeline = await redis.zrange(keys.timeline(student_ref), 0, -1)
        entry_ids = cast("list[bytes]", timeline)
        if not entry_ids:
            return []
        raws = await redis.hmget(keys.entries(student_ref), entry_ids)
    except RedisError as exc:
        raise wrap(exc) from exc

    return [json.loads(raw) for raw in raws if raw]


def subscribers(redis_url: str | None = None) -> list[Subscriber]:
    """The billing read models: payment history and the bills lookup.

    Run each with ``consumers.base.run_subscriber``; both share one Redis
    client, at ``redis_url`` or the configured ``REDIS_URL``.
    """
    redis = async_client(redis_url or get_settings().redis_url)
    return [PaymentHistory(redis), BillsLookup(redis)]


def _entry_from_json(raw: bytes | str) -> Entry:
    body = json.loads(raw)
    return Entry(body.pop("entry_id"), body.pop("at_ms"), body)


def _iso(moment: datetime | date) -> str:
    return moment.isoformat()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
