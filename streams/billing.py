"""The billing flow: bills and payment callbacks in, receipts and remittance out.

Agents, one per key:

- ``billing-orders`` reads bills and payment callbacks together. Both are
  keyed by order id (the bill id), so one order's bill and callbacks share a
  partition number, and with it the partition of the order's state; one
  order's callbacks are read in the order they were published. Each
  callback goes through the order state machine
  (``edustream.billing.orders.decide``) and its decisions are carried out:
  receipts and red-letter receipts numbered in Redis and issued, exceptions
  raised for a person. Outputs are keyed by order id. Each receipt also goes
  to ``REMITTANCE_ENTRIES``, keyed by its collecting unit: that is how
  remittance gets its input re-keyed.
- ``billing-day-closes`` forwards ``DayClosed`` commands onto
  ``REMITTANCE_ENTRIES``: keyed by the unit, or to every partition when the
  command closes the day for every unit. A command therefore lands behind
  every receipt that reached the unit's partition before it, and a day is
  never closed ahead of receipts already issued for it.
- ``billing-remittance`` reads ``REMITTANCE_ENTRIES`` per collecting unit,
  books each receipt to its business day (``remittance.booking_day``) and
  closes a day on a command or when the unit's watermark passes it
  (``remittance.latest_closed_day``), emitting one batch per unit and day.

State, in Faust tables co-partitioned with each agent's source:

- ``billing-bills``: order id -> the bill's Avro bytes, as last published;
- ``billing-parked``: order id -> callbacks that arrived before their bill.
  Nothing orders two topics against each other, and Faust often reads a
  callback before a bill published earlier; the callback waits here and is
  decided once the bill arrives;
- ``billing-orders``: order id -> the order state (``orders.dump_state``);
- ``billing-remittance``: per collecting unit, its ledger, the entries
  booked per day and the receipt ids already booked (see ``UnitLedger``).

At-least-once without transactions. Every output has a deterministic id
(receipt ids from the order, numbers given once per receipt id in Redis,
batch ids from unit and day). Outputs are sent and acknowledged by the
broker *before* the state that records them is written: table changelogs
and outputs travel on different partitions, and a crash must never keep a
state that says "receipt issued" while losing the receipt itself. A replay
after a crash therefore re-emits the same records with the same ids and
numbers, and consumers count each id once.

The orders agent keeps that order without a broker round trip per callback
(``runtime.run_in_batches``): a callback is decided against the state in
memory, which the next callback of the order reads at once, while its
outputs and the changelog records of its state wait in an ``Outbox``. The
runtime writes those records, and acknowledges the inputs, once the outputs
of every input decided meanwhile are stored.

Bad input (undecodable, another schema, a key that is not the record's
order or unit, a record that fails validation) raises ``PoisonError`` and
the runtime dead-letters it with its source coordinates. The runtime logs
one line per input; nothing here logs payer data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import faust
from faust.types import TableT
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from avro_schemas import default_codec
from edustream import metrics
from edustream.billing.bills import Bill
from edustream.billing.issuing import ReceiptIssuer
from edustream.billing.numbering import Numbered, NumberRequest, ReceiptNumberer
from edustream.billing.orders import (
    Decision,
    HoldRefund,
    Ignore,
    IssueReceipt,
    IssueRedLetterReceipt,
    OrderState,
    PaymentEvent,
    RaiseException,
    decide,
    dump_state,
    load_state,
)
from edustream.billing.receipts import (
    Receipt,
    RedLetterReceipt,
    issue_receipt,
    issue_red_letter_receipt,
    receipt_id_for,
    red_letter_id_for,
)
from edustream.billing.remittance import (
    DayClosed,
    booking_day,
    close_day,
    latest_closed_day,
)
from edustream.errors import CodecError, PoisonError
from edustream.settings import get_settings
from infra.redis import async_client
from streams.app import app, topic
from streams.runtime import Input, Outbox, run, run_in_batches
from topics.billing import (
    BILLS,
    CALLBACKS,
    DAY_CLOSES,
    EXCEPTIONS,
    RECEIPTS,
    RED_RECEIPTS,
    REMITTANCE_ENTRIES,
    REMITTANCES,
)
from topics.spec import TopicSpec

FLOW = "billing"

BILL_SCHEMA = "edustream.billing.Bill"
CALLBACK_SCHEMA = "edustream.billing.PaymentCallback"
RECEIPT_SCHEMA = "edustream.billing.ReceiptIssued"
RED_LETTER_SCHEMA = "edustream.billing.RedLetterReceiptIssued"
EXCEPTION_SCHEMA = "edustream.billing.PaymentException"
DAY_CLOSED_SCHEMA = "edustream.billing.DayClosed"
ENTRY_SCHEMA = "edustream.billing.RemittanceEntry"
BATCH_SCHEMA = "edustream.billing.RemittanceBatchClosed"

# Resends of one notification are dropped while parked, so a parked order
# holds a handful of distinct callbacks. More than this means the bill is
# not coming; the callback goes to the dead-letter topic, where a person
# sees money that arrived for an order no school published.
#
# XXX A payment for an order whose bill never comes waits parked: the state
# machine's UNKNOWN_ORDER exception is never raised by this flow, because
# nothing here can tell a bill that is late from one that does not exist.
# The daily reconciliation against the channel's bill file (money received,
# no receipt) is what finds such a payment, a day later than an exception
# would. A deadline on parked callbacks needs a clock input per partition.
PARK_LIMIT = 64

# Closed days keep their entries (and the ids booked) this many days, so a
# receipt replayed after its day closed is still recognised instead of
# being booked a second time to the next day. Replays come from the commit
# interval of a crashed worker, seconds; a week covers a stalled one.
KEEP_CLOSED_DAYS = 7

# Decoded bills kept in memory, the most recently used. Every callback reads
# its order's bill, and decoding it from Avro each time cost more than
# deciding the callback. An entry is used only while the table still holds
# the same bytes object, so a republished or recovered bill is decoded anew.
# A bill is about 2 kB decoded: 20 MB at most.
DECODED_BILLS = 10_000

_settings = get_settings()
_codec = default_codec()
_decoded_bills: dict[str, tuple[bytes, Bill]] = {}


def _table(name: str) -> TableT[str, bytes]:
    """A table of text keys and bytes we encode ourselves.

    Values are Avro (bills, remittance entries) or JSON (states). Faust
    keeps ``bytes`` values raw, so the changelog holds exactly what the flow
    wrote and a recovery reads back the same.
    """
    return app.Table(
        name,
        default=None,
        partitions=_settings.partitions,
        key_type=str,
        value_type=bytes,
    )


bills = _table("billing-bills")
parked = _table("billing-parked")
orders = _table("billing-orders")
remittance = _table("billing-remittance")

_PARKED: TypeAdapter[tuple[PaymentEvent, ...]] = TypeAdapter(tuple[PaymentEvent, ...])


@app.agent(topic(BILLS, CALLBACKS), name="billing-orders")
async def order_agent(stream: faust.StreamT[bytes]) -> None:
    """Decide every payment callback against its order and bill."""
    await run_in_batches(FLOW, stream, order_step)


@app.agent(topic(DAY_CLOSES), name="billing-day-closes")
async def day_close_agent(stream: faust.StreamT[bytes]) -> None:
    """Forward day-closed commands to the units' remittance partitions."""
    await run(FLOW, stream, day_close_step)


@app.agent(topic(REMITTANCE_ENTRIES), name="billing-remittance")
async def remittance_agent(stream: faust.StreamT[bytes]) -> None:
    """Book receipts per collecting unit and day; close days into batches."""
    await run(FLOW, stream, remittance_step)


# Orders: bills and callbacks keyed by order id.


async def order_step(item: Input, outbox: Outbox) -> str:
    """One bill or one callback of an order, to an outcome.

    Outputs go into ``outbox`` with the table writes that record them; the
    caller settles it (outputs stored, then changelog records written).
    """
    if item.topic == BILLS.name:
        return await _on_bill(item, outbox)
    return await _on_callback(item, outbox)


async def _on_bill(item: Input, outbox: Outbox) -> str:
    """Keep the bill, then decide any callbacks that were waiting for it."""
    bill = Bill.from_record(_codec.decode_as(BILL_SCHEMA, item.value))
    _require_key(item, bill.order_id)
    assert item.value is not None  # decode_as refuses None

    _keep(outbox, bills, item.partition, bill.order_id, item.value)
    _remember_bill(bill, item.value)
    waiting = _parked_events(bill.order_id)
    if not waiting:
        return "bill_stored"

    outcomes = [await _decide(item.partition, bill, event, outbox) for event in waiting]
    _keep(outbox, parked, item.partition, bill.order_id, None)
    return "bill_stored+released:" + "+".join(outcomes)


async def _on_callback(item: Input, outbox: Outbox) -> str:
    """Decide a callback, or park it until its bill arrives."""
    event = PaymentEvent.from_record(_codec.decode_as(CALLBACK_SCHEMA, item.value))
    _require_key(item, event.order_id)

    bill = _bill(event.order_id)
    if bill is None:
        return _park(item.partition, event, outbox)
    return await _decide(item.partition, bill, event, outbox)


async def _decide(
    partition: int, bill: Bill, event: PaymentEvent, outbox: Outbox
) -> str:
    """Run the state machine, send its outputs, keep the new state after them."""
    state, decisions = decide(_order_state(event.order_id), bill, event)

    for decision in decisions:
        for sent in await _carry_out(bill, decision):
            outbox.sent(sent)

    kept = dump_state(state)
    if kept != _get(orders, event.order_id):
        # A resend leaves the state as it was: nothing new to keep.
        _keep(outbox, orders, partition, event.order_id, kept)
    return "+".join(_outcome(decision) for decision in decisions)


async def _carry_out(bill: Bill, decision: Decision) -> list[Awaitable[Any]]:
    """Queue what one decision produces; holds and ignores only change state.

    Outputs leave through the issuer in decision order, receipts once
    numbered; each future returned resolves when the output is stored.
    """
    issuer = _issuer()
    if isinstance(decision, IssueReceipt):
        receipt_id = receipt_id_for(decision.order_id)
        request = NumberRequest(bill.receipt_series, receipt_id)
        return [issuer.issue(request, partial(_publish_receipt, bill, decision))]
    if isinstance(decision, IssueRedLetterReceipt):
        request = await _red_letter_request(bill, decision)
        return [issuer.issue(request, partial(_publish_red_letter, bill, decision))]
    if isinstance(decision, RaiseException):
        record = decision.as_record(bill)
        publish = partial(_publish_exception, decision.order_id, record)
        return [issuer.issue(None, publish)]
    return []


async def _red_letter_request(
    bill: Bill, decision: IssueRedLetterReceipt
) -> NumberRequest:
    """What to number for a red-letter receipt, once its original has a number.

    The original counts as numbered when this process numbered it (or queued
    it to be, ahead of this one), else when Redis holds its number.
    """
    series, original_id = bill.receipt_series, receipt_id_for(bill.order_id)
    known = _issuer().numbered_here(series, original_id)
    if not known and await _numberer().lookup(series, original_id) is None:
        # The blue receipt is numbered before the state that allows a refund
        # is kept, so only a Redis that lost its data gets here.
        raise PoisonError("original_receipt_unknown", "original receipt has no number")

    red_letter_id = red_letter_id_for(decision.order_id, decision.refund_key)
    return NumberRequest(series, red_letter_id, original_id)


async def _publish_receipt(
    bill: Bill, decision: IssueReceipt, numbered: Numbered | None
) -> list[Awaitable[Any]]:
    """Build the order's blue receipt with its number and send it."""
    assert numbered is not None  # asked for with a NumberRequest
    receipt = issue_receipt(bill, decision, numbered.number, _receipt_check_key())
    return await _send_receipt(receipt)


async def _publish_red_letter(
    bill: Bill, decision: IssueRedLetterReceipt, numbered: Numbered | None
) -> list[Awaitable[Any]]:
    """Build a red-letter receipt in the original's series and send it."""
    if numbered is None or numbered.original is None:
        # Checked when decided, so Redis lost the original's number since.
        # The flow stops; after a restart the check above dead-letters the
        # refund.
        raise PoisonError("original_receipt_unknown", "original receipt has no number")

    red_letter = issue_red_letter_receipt(
        bill, decision, numbered.number, numbered.original, _receipt_check_key()
    )
    return await _send_red_letter(red_letter)


async def _publish_exception(
    order_id: str, record: dict[str, Any], _: Numbered | None
) -> list[Awaitable[Any]]:
    """Send an exception for a person; it has no number."""
    return [await _send(EXCEPTIONS, order_id, EXCEPTION_SCHEMA, record)]


async def _send_receipt(receipt: Receipt) -> list[Awaitable[Any]]:
    """The receipt for the order's consumers, and for its unit's remittance."""
    record = receipt.as_record()
    entry = _entry(receipt.receipt_id, receipt.issued_at, receipt.collecting_unit_code)
    entry["receipt"] = record
    return [
        await _send(
            REMITTANCE_ENTRIES, receipt.collecting_unit_code, ENTRY_SCHEMA, entry
        ),
        await _send(RECEIPTS, receipt.order_id, RECEIPT_SCHEMA, record),
    ]


async def _send_red_letter(red_letter: RedLetterReceipt) -> list[Awaitable[Any]]:
    """The red-letter receipt for the order's consumers and for remittance."""
    record = red_letter.as_record()
    unit = red_letter.collecting_unit_code
    entry = _entry(red_letter.receipt_id, red_letter.issued_at, unit)
    entry["red_letter_receipt"] = record
    return [
        await _send(REMITTANCE_ENTRIES, unit, ENTRY_SCHEMA, entry),
        await _send(RED_RECEIPTS, red_letter.order_id, RED_LETTER_SCHEMA, record),
    ]


def _park(partition: int, event: PaymentEvent, outbox: Outbox) -> str:
    """Keep a callback until its bill arrives; a resend is kept once."""
    waiting = _parked_events(event.order_id)
    if any(_same_notification(event, other) for other in waiting):
        return "parked_again"
    if len(waiting) >= PARK_LIMIT:
        raise PoisonError("bill_missing", f"no bill after {PARK_LIMIT} callbacks")

    waiting_now = _PARKED.dump_json((*waiting, event))
    _keep(outbox, parked, partition, event.order_id, waiting_now)
    return "parked"


def _same_notification(one: PaymentEvent, other: PaymentEvent) -> bool:
    return (one.channel, one.notify_id) == (other.channel, other.notify_id)


def _parked_events(order_id: str) -> tuple[PaymentEvent, ...]:
    raw = _get(parked, order_id)
    if raw is None:
        return ()
    try:
        return _PARKED.validate_json(raw)
    except (ValidationError, PoisonError) as exc:
        raise CodecError("invalid_record", "parked callbacks do not parse") from exc


def _bill(order_id: str) -> Bill | None:
    """The order's bill, decoded once per version kept in the table."""
    raw = _get(bills, order_id)
    if raw is None:
        return None
    cached = _decoded_bills.get(order_id)
    if cached is not None and cached[0] is raw:
        return cached[1]

    bill = Bill.from_record(_codec.decode_as(BILL_SCHEMA, raw))
    _remember_bill(bill, raw)
    return bill


def _remember_bill(bill: Bill, raw: bytes) -> None:
    """Keep a decoded bill beside the very bytes object the table holds."""
    _decoded_bills.pop(bill.order_id, None)
    _decoded_bills[bill.order_id] = (raw, bill)
    if len(_decoded_bills) > DECODED_BILLS:
        del _decoded_bills[next(iter(_decoded_bills))]


def _order_state(order_id: str) -> OrderState | None:
    raw = _get(orders, order_id)
    return None if raw is None else load_state(raw)


def _outcome(decision: Decision) -> str:
    """A short code for the log line: what the decision did."""
    if isinstance(decision, IssueReceipt):
        return "receipt"
    if isinstance(decision, IssueRedLetterReceipt):
        return "red_letter"
    if isinstance(decision, RaiseException):
        return f"exception:{decision.kind}"
    if isinstance(decision, HoldRefund):
        return "refund_held"
    assert isinstance(decision, Ignore)
    return f"ignored:{decision.reason}"


# Day closes: forwarded behind the receipts of the units they close.


async def day_close_step(item: Input) -> str:
    """Put a day-closed command on the partition(s) of the units it closes."""
    command = DayClosed.from_record(_codec.decode_as(DAY_CLOSED_SCHEMA, item.value))
    unit = command.collecting_unit_code
    if unit is not None:
        _require_key(item, unit)

    entry = _entry(command.event_id, command.occurred_at, unit)
    entry["day_closed"] = command.as_record()
    if unit is not None:
        await _delivered([await _send(REMITTANCE_ENTRIES, unit, ENTRY_SCHEMA, entry)])
        return "forwarded"

    partitions = REMITTANCE_ENTRIES.partitions or _settings.partitions
    sent = [
        await _send(REMITTANCE_ENTRIES, None, ENTRY_SCHEMA, entry, partition=p)
        for p in range(partitions)
    ]
    await _delivered(sent)
    return "forwarded_to_every_partition"


# Remittance: receipts and day closes keyed by collecting unit.


@dataclass(kw_only=True)
class UnitLedger:
    """What remittance remembers about one collecting unit.

    Table keys around it, all in the unit's partition:

    - ``unit:{unit}``: this ledger;
    - ``entry:{unit}:{day}:{i}``: the i-th entry booked to an open or kept
      day, as the ``RemittanceEntry`` bytes it arrived as;
    - ``seen:{unit}:{receipt id}``: the day a receipt was booked to, so a
      replayed receipt is not booked twice;
    - ``units:{partition}``: the units with a ledger in that partition, for
      a day close that applies to every unit.
    """

    unit: str
    closed_through: date | None = None
    watermark: datetime | None = None
    open_days: dict[date, int] = field(default_factory=dict)
    kept_days: dict[date, int] = field(default_factory=dict)


_LEDGER: TypeAdapter[UnitLedger] = TypeAdapter(UnitLedger)
_UNITS: TypeAdapter[list[str]] = TypeAdapter(list[str])


async def remittance_step(item: Input) -> str:
    """Book one receipt or carry out one day close for a collecting unit."""
    record = _codec.decode_as(ENTRY_SCHEMA, item.value)
    if record.get("day_closed") is not None:
        return await _on_day_closed(item, record["day_closed"])

    entry = _booked_entry(record)
    _require_key(item, entry.collecting_unit_code)
    assert item.value is not None  # decode_as refuses None
    return await _book(item, entry, item.value)


def _booked_entry(record: dict[str, Any]) -> Receipt | RedLetterReceipt:
    """The receipt or red-letter receipt an entry carries."""
    if record.get("receipt") is not None:
        return Receipt.from_record(record["receipt"])
    if record.get("red_letter_receipt") is not None:
        return RedLetterReceipt.from_record(record["red_letter_receipt"])
    raise PoisonError("invalid_record", "remittance entry carries nothing")


async def _book(item: Input, entry: Receipt | RedLetterReceipt, raw: bytes) -> str:
    """Book an entry to its day, then close what the watermark passed.

    Writes go entry, ledger, seen-marker, all to one changelog partition, so
    a crash keeps a prefix of them: a receipt marked seen is always booked,
    and one booked but not marked is booked again on replay, which
    ``close_day`` counts once.
    """
    unit, partition = entry.collecting_unit_code, item.partition
    seen_key = f"seen:{unit}:{entry.receipt_id}"
    if _get(remittance, seen_key) is not None:
        return "already_booked"

    ledger = _ledger(partition, unit)
    day = booking_day(entry.issue_date, ledger.closed_through)
    index = ledger.open_days.get(day, 0)
    _put(remittance, partition, _entry_key(unit, day, index), raw)
    ledger.open_days[day] = index + 1
    ledger.watermark = _later(ledger.watermark, entry.issued_at)
    _save_ledger(partition, ledger)
    _put(remittance, partition, seen_key, day.isoformat().encode())

    last_day = latest_closed_day(ledger.watermark)
    closed = await _close_through(partition, ledger, last_day)
    return "booked" + (f"+closed:{closed}" if closed else "")


async def _on_day_closed(item: Input, record: dict[str, Any]) -> str:
    """Close a business day for the unit named, or for every unit we hold."""
    command = DayClosed.from_record(record)
    if command.collecting_unit_code is None:
        units = _units(item.partition)
    else:
        _require_key(item, command.collecting_unit_code)
        units = [command.collecting_unit_code]

    closed = 0
    for unit in units:
        ledger = _ledger(item.partition, unit)
        closed += await _close_through(item.partition, ledger, command.business_day)
    return f"day_closed:{closed}"


async def _close_through(partition: int, ledger: UnitLedger, last_day: date) -> int:
    """Close every open day up to ``last_day``; return how many batches.

    Batches are delivered before the ledger says their days are closed, so
    a crash in between closes the same days again, into the same batches.
    """
    if ledger.closed_through is not None and last_day <= ledger.closed_through:
        return 0

    due = sorted(day for day in ledger.open_days if day <= last_day)
    sent = [await _send_batch(ledger, day) for day in due]
    await _delivered(sent)

    for day in due:
        ledger.kept_days[day] = ledger.open_days.pop(day)
    ledger.closed_through = last_day
    _forget_old_days(partition, ledger)
    _save_ledger(partition, ledger)
    return len(due)


async def _send_batch(ledger: UnitLedger, day: date) -> Awaitable[Any]:
    """Build one day's batch from its booked entries and send it."""
    blue: list[Receipt] = []
    red: list[RedLetterReceipt] = []
    for entry in _day_entries(ledger.unit, day, ledger.open_days[day]):
        if isinstance(entry, Receipt):
            blue.append(entry)
        else:
            red.append(entry)

    batch = close_day(ledger.unit, day, blue, red)
    return await _send(REMITTANCES, ledger.unit, BATCH_SCHEMA, batch.as_record())


def _day_entries(
    unit: str, day: date, count: int
) -> Iterable[Receipt | RedLetterReceipt]:
    """The entries booked to one unit and day, in booking order."""
    for index in range(count):
        raw = _get(remittance, _entry_key(unit, day, index))
        if raw is not None:
            yield _booked_entry(_codec.decode_as(ENTRY_SCHEMA, raw))


def _forget_old_days(partition: int, ledger: UnitLedger) -> None:
    """Drop the entries and seen-markers of kept days long closed."""
    assert ledger.closed_through is not None
    limit = ledger.closed_through - timedelta(days=KEEP_CLOSED_DAYS)
    for day in [d for d in ledger.kept_days if d < limit]:
        count = ledger.kept_days.pop(day)
        for entry in _day_entries(ledger.unit, day, count):
            _delete(remittance, partition, f"seen:{ledger.unit}:{entry.receipt_id}")
        for index in range(count):
            _delete(remittance, partition, _entry_key(ledger.unit, day, index))


def _entry_key(unit: str, day: date, index: int) -> str:
    return f"entry:{unit}:{day.isoformat()}:{index}"


def _later(known: datetime | None, moment: datetime) -> datetime:
    return moment if known is None else max(known, moment)


def _ledger(partition: int, unit: str) -> UnitLedger:
    """The unit's ledger; a new unit is added to its partition's index."""
    raw = _get(remittance, f"unit:{unit}")
    if raw is not None:
        return _LEDGER.validate_json(raw)

    units = _units(partition)
    _put(remittance, partition, f"units:{partition}", _UNITS.dump_json([*units, unit]))
    return UnitLedger(unit=unit)


def _save_ledger(partition: int, ledger: UnitLedger) -> None:
    _put(remittance, partition, f"unit:{ledger.unit}", _LEDGER.dump_json(ledger))


def _units(partition: int) -> list[str]:
    raw = _get(remittance, f"units:{partition}")
    return [] if raw is None else _UNITS.validate_json(raw)


# Shared steps.


def _entry(event_id: str, occurred_at: datetime, unit: str | None) -> dict[str, Any]:
    """A remittance entry with nothing in it yet."""
    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "collecting_unit_code": unit,
        "receipt": None,
        "red_letter_receipt": None,
        "day_closed": None,
    }


def _require_key(item: Input, expected: str) -> None:
    """Refuse a record whose key is not the id it must be partitioned by.

    State is kept per key in the partition the key hashes to; a record
    under another key would read and write another partition's state.
    """
    if item.key is None or item.key != expected.encode():
        raise PoisonError("key_mismatch", "message key is not the record's own id")


def _get(table: TableT[str, bytes], key: str) -> bytes | None:
    """A table value, or ``None``."""
    value: bytes | None = table.data.get(key)
    return value


def _put(table: TableT[str, bytes], partition: int, key: str, value: bytes) -> None:
    """Write a table value and its changelog record to the input's partition.

    Faust's ``table[key] = value`` takes the partition from the current
    stream event; naming it keeps every write in the partition of the input
    being handled, which is the partition the key's state belongs to.
    """
    table.data[key] = value
    _changelog(table, partition, key, value)


def _delete(table: TableT[str, bytes], partition: int, key: str) -> None:
    """Remove a table value, with a tombstone on the changelog partition."""
    table.data.pop(key, None)
    _changelog(table, partition, key, None)


def _keep(
    outbox: Outbox,
    table: TableT[str, bytes],
    partition: int,
    key: str,
    value: bytes | None,
) -> None:
    """Change a table value now; write its changelog record after the outputs.

    The next input of the key reads the new value from memory at once. The
    changelog record, the copy that survives a crash, waits until ``outbox``
    settles: until every output sent with it is stored. ``None`` removes.
    """
    if value is None:
        table.data.pop(key, None)
    else:
        table.data[key] = value
    outbox.once_sent(lambda: _changelog(table, partition, key, value))


def _changelog(
    table: TableT[str, bytes], partition: int, key: str, value: bytes | None
) -> None:
    """Send one changelog record; ``None`` is a tombstone."""
    if value is None:
        table.send_changelog(partition, key, None, value_serializer="raw")
    else:
        table.send_changelog(partition, key, value)


async def _send(
    spec: TopicSpec,
    key: str | None,
    schema: str,
    record: dict[str, Any],
    *,
    partition: int | None = None,
) -> Awaitable[Any]:
    """Encode and send one output; the result resolves once it is stored.

    Straight to the app's producer: a Faust ``Topic.send`` costs several
    times as much per record and adds nothing for raw bytes. A record with a
    key and no partition goes where the key hashes, as with a topic.
    """
    value = _codec.encode(schema, record)
    raw_key = None if key is None else key.encode()
    pending = await app.producer.send(spec.name, raw_key, value, partition, None, None)
    metrics.OUTPUTS.labels(FLOW, spec.name).inc()
    return pending


async def _delivered(sent: list[Awaitable[Any]]) -> None:
    """Wait until the broker has acknowledged every output sent."""
    if sent:
        await asyncio.gather(*sent)


_issuers: list[ReceiptIssuer] = []


def _issuer() -> ReceiptIssuer:
    """The order flow's issuer; it asks ``_numberer`` when it needs numbers."""
    if not _issuers:
        _issuers.append(ReceiptIssuer(numberer=_numberer))
    return _issuers[0]


_numberers: list[ReceiptNumberer] = []


def _numberer() -> ReceiptNumberer:
    """The receipt numberer, connected on first use inside the worker's loop."""
    if not _numberers:
        redis: Redis = async_client(_settings.redis_url)
        _numberers.append(ReceiptNumberer(redis))
    return _numberers[0]


def _receipt_check_key() -> bytes:
    return _settings.receipt_check_key.encode()
