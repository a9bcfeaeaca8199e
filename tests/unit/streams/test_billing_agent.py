"""The billing flow's agents and steps, without a broker or Redis.

The remittance agent is driven through Faust's ``test_context``; the order
and day-close steps are called directly with inputs from their topics.
Sends and changelog writes are captured in one sequence, so tests can check
that outputs go out before the state that records them. Receipt numbers
come from an in-memory numberer. The tables live as long as the app, so
every test uses orders and units of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from avro_schemas import default_codec
from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.issuing import ReceiptIssuer
from edustream.billing.numbering import Numbered, NumberRequest
from edustream.billing.orders import PaymentEvent, PaymentStatus
from edustream.billing.receipts import SHANGHAI, receipt_id_for
from edustream.billing.remittance import DayClosed, batch_id_for
from edustream.errors import PoisonError
from edustream.settings import get_settings
from streams import billing as flow
from streams.runtime import Input, Outbox, settle
from topics import billing

codec = default_codec()
DAY = date(2026, 9, 15)
MORNING = datetime(2026, 9, 15, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)


class Numberer:
    """Receipt numbers per series, in memory, given once per receipt id."""

    def __init__(self) -> None:
        self.numbers: dict[str, dict[str, int]] = {}
        self.groups: list[int] = []

    async def allocate(self, series: str, receipt_id: str) -> int:
        given = self.numbers.setdefault(series, {})
        return given.setdefault(receipt_id, len(given) + 1)

    async def allocate_all(
        self, requests: Sequence[NumberRequest]
    ) -> list[Numbered | None]:
        self.groups.append(len(requests))
        numbered: list[Numbered | None] = []
        for request in requests:
            if request.original_id is None:
                number = await self.allocate(request.series, request.receipt_id)
                numbered.append(Numbered(number))
                continue
            original = await self.lookup(request.series, request.original_id)
            if original is None:
                numbered.append(None)
                continue
            number = await self.allocate(request.series, request.receipt_id)
            numbered.append(Numbered(number, original=original))
        return numbered

    async def lookup(self, series: str, receipt_id: str) -> int | None:
        return self.numbers.get(series, {}).get(receipt_id)


@dataclass
class Sent:
    """Sends and changelog writes, in the order they were made."""

    log: list[tuple[str, str, Any]] = field(default_factory=list)
    numberer: Numberer = field(default_factory=Numberer)

    def on(self, spec: Any) -> list[dict[str, Any]]:
        """Records sent to ``spec``."""
        return [r for kind, name, r in self.log if kind == "send" and name == spec.name]

    def order(self) -> list[str]:
        """What happened, in order: topic names and table names."""
        return [name for _, name, _ in self.log]


@pytest.fixture
def sent() -> Iterator[Sent]:
    """Capture the flow's sends and table writes; number in memory."""
    captured = Sent()

    async def send(
        spec: Any,
        key: str | None,
        schema: str,
        record: dict[str, Any],
        *,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        codec.encode(schema, record)  # what the flow sends must fit its schema
        captured.log.append(
            ("send", spec.name, {**record, "_key": key, "_p": partition})
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def changelog(table: Any) -> Any:
        def write(partition: int | None, key: str, *_: Any, **__: Any) -> None:
            captured.log.append(("changelog", table.name, (partition, key)))

        return write

    issuer = ReceiptIssuer(numberer=lambda: captured.numberer)
    tables = (flow.bills, flow.parked, flow.orders, flow.remittance)
    patches = [mock.patch.object(t, "send_changelog", changelog(t)) for t in tables]
    with (
        mock.patch.object(flow, "_send", send),
        mock.patch.object(flow, "_numberer", return_value=captured.numberer),
        mock.patch.object(flow, "_issuer", return_value=issuer),
        patches[0],
        patches[1],
        patches[2],
        patches[3],
    ):
        yield captured


async def order_step(item: Input) -> str:
    """One order input through the flow, its outbox settled as the runtime
    settles it: outputs stored first, then the state that records them."""
    outbox = Outbox()
    outcome = await flow.order_step(item, outbox)
    await settle([outbox])
    return outcome


def new_bill(unit: str | None = None, total_fen: int = 10_000) -> Bill:
    """An open bill of its own order and unit."""
    return Bill(
        bill_id="U" + uuid.uuid4().hex[:20],
        school_id="SCH-UNIT",
        collecting_unit_code=unit or "CU" + uuid.uuid4().hex[:8],
        student_ref="stu_unit",
        term="2026-2027-1",
        items=(BillItem("T01", "学费", FeeKind.TUITION, total_fen),),
        total_fen=total_fen,
        receipt_series="31219999",
        published_at=MORNING - timedelta(days=3),
    )


def bill_input(bill: Bill, partition: int = 1) -> Input:
    record = bill.as_record(event_id=str(uuid.uuid4()), occurred_at=bill.published_at)
    value = codec.encode(flow.BILL_SCHEMA, record)
    return Input(bill.order_id.encode(), value, billing.BILLS.name, partition, 0, 0)


def callback_input(
    bill: Bill,
    status: PaymentStatus = PaymentStatus.PAID,
    *,
    notify_id: str = "n1",
    key: str | None = None,
    at: datetime = MORNING,
    refund_fen: int | None = None,
) -> Input:
    event = PaymentEvent(
        channel="wechat",
        notify_id=notify_id,
        channel_txn_id="W1",
        order_id=bill.order_id,
        status=status,
        amount_fen=bill.total_fen,
        notified_at=at,
        refund_fen=refund_fen,
        refund_id="R1" if refund_fen else None,
    )
    value = codec.encode(
        flow.CALLBACK_SCHEMA,
        event.as_record(event_id=str(uuid.uuid4()), occurred_at=at),
    )
    raw_key = (key or bill.order_id).encode()
    return Input(raw_key, value, billing.CALLBACKS.name, 1, 0, 0)


async def test_a_payment_issues_a_receipt_before_its_state_is_kept(sent: Sent) -> None:
    """The remittance entry, then the receipt, then the order state: a crash
    after the state write cannot have lost the receipt."""
    bill = new_bill()
    await order_step(bill_input(bill))

    outcome = await order_step(callback_input(bill))

    (receipt,) = sent.on(billing.RECEIPTS)
    (entry,) = sent.on(billing.REMITTANCE_ENTRIES)
    assert outcome == "receipt"
    assert receipt["receipt_id"] == receipt_id_for(bill.order_id)
    assert receipt["receipt_number"] == "0000000001"
    assert receipt["_key"] == bill.order_id
    assert entry["_key"] == bill.collecting_unit_code
    assert entry["receipt"]["receipt_id"] == receipt["receipt_id"]
    assert sent.order()[-3:] == [
        billing.REMITTANCE_ENTRIES.name,
        billing.RECEIPTS.name,
        "billing-orders",
    ]


async def test_a_callback_before_its_bill_is_parked_then_decided(sent: Sent) -> None:
    """A callback with no bill waits, a resend of it is kept once, and the
    bill's arrival decides it: one receipt."""
    bill = new_bill()
    paid = callback_input(bill)

    first = await order_step(paid)
    again = await order_step(paid)
    stored = await order_step(bill_input(bill))

    assert (first, again) == ("parked", "parked_again")
    assert stored == "bill_stored+released:receipt"
    assert len(sent.on(billing.RECEIPTS)) == 1
    assert flow.parked.data.get(bill.order_id) is None


async def test_a_refund_then_a_resend_issue_one_red_letter(sent: Sent) -> None:
    """A refund gets a red-letter receipt numbered after the original; its
    resend is ignored."""
    bill = new_bill()
    refund = callback_input(
        bill, PaymentStatus.REFUNDED, notify_id="n2", refund_fen=4_000
    )
    outcomes = [
        await order_step(i)
        for i in (bill_input(bill), callback_input(bill), refund, refund)
    ]

    (red,) = sent.on(billing.RED_RECEIPTS)
    assert outcomes[2:] == ["red_letter", "ignored:duplicate_notification"]
    assert (red["refund_fen"], red["receipt_number"]) == (4_000, "0000000002")
    assert red["original_receipt_number"] == "0000000001"


async def test_a_red_letter_without_a_numbered_original_is_poison(sent: Sent) -> None:
    """A refund whose original receipt has no number (Redis lost it, and this
    process did not number it) goes to the dead-letter topic rather than
    print a broken link; nothing is queued for it."""
    bill = new_bill()
    await order_step(bill_input(bill))
    await order_step(callback_input(bill))
    sent.numberer.numbers[bill.receipt_series].pop(receipt_id_for(bill.order_id))
    before = len(sent.log)
    restarted = ReceiptIssuer(numberer=lambda: sent.numberer)

    refund = callback_input(bill, PaymentStatus.REFUNDED, notify_id="n2", refund_fen=1)
    with (
        mock.patch.object(flow, "_issuer", return_value=restarted),
        pytest.raises(PoisonError) as raised,
    ):
        await flow.order_step(refund, Outbox())

    assert raised.value.reason == "original_receipt_unknown"
    assert sent.log[before:] == []


async def test_an_original_lost_after_it_was_numbered_stops_the_flow(
    sent: Sent,
) -> None:
    """When Redis loses an original this process numbered, its refund's
    outputs never settle: no red-letter receipt is sent and the state that
    records it is not written, so the input is read again after a restart."""
    bill = new_bill()
    await order_step(bill_input(bill))
    await order_step(callback_input(bill))
    sent.numberer.numbers[bill.receipt_series].pop(receipt_id_for(bill.order_id))
    before = len(sent.log)

    refund = callback_input(bill, PaymentStatus.REFUNDED, notify_id="n2", refund_fen=1)
    outbox = Outbox()
    await flow.order_step(refund, outbox)
    with pytest.raises(PoisonError) as raised:
        await settle([outbox])

    assert raised.value.reason == "original_receipt_unknown"
    assert sent.log[before:] == []


async def test_outputs_go_out_in_decision_order_across_inputs(sent: Sent) -> None:
    """Receipts of several orders decided before any is numbered are
    numbered in one group, in decision order, and each order's state is
    written only once every output of the group is stored."""
    bills = [new_bill() for _ in range(3)]
    for bill in bills:
        await order_step(bill_input(bill))
    before = len(sent.log)

    outboxes = [Outbox() for _ in bills]
    for bill, outbox in zip(bills, outboxes, strict=True):
        await flow.order_step(callback_input(bill), outbox)
    await settle(outboxes)

    receipts = sent.on(billing.RECEIPTS)[-3:]
    assert sent.numberer.groups[-1] == 3
    assert [r["order_id"] for r in receipts] == [b.order_id for b in bills]
    assert [r["receipt_number"] for r in receipts] == [
        "0000000001",
        "0000000002",
        "0000000003",
    ]
    kinds = [kind for kind, _, _ in sent.log[before:]]
    assert kinds == ["send"] * 6 + ["changelog"] * 3


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda b: callback_input(b, key="another-order"), "key_mismatch"),
        (lambda b: replace(bill_input(b), key=b"other-order"), "key_mismatch"),
        (
            lambda b: Input(b"k", b"not avro at all", billing.CALLBACKS.name, 0, 0, 0),
            "undecodable",
        ),
        (
            lambda b: Input(
                b.order_id.encode(),
                bill_input(b).value,
                billing.CALLBACKS.name,
                0,
                0,
                0,
            ),
            "wrong_schema",
        ),
    ],
)
async def test_bad_order_inputs_are_poison(make: Any, reason: str, sent: Sent) -> None:
    """Inputs a person must look at raise PoisonError with their reason."""
    with pytest.raises(PoisonError) as raised:
        await order_step(make(new_bill()))

    assert raised.value.reason == reason
    assert sent.log == []


# Day closes and remittance.


def entry_input(record: dict[str, Any], key: str | None, partition: int = 2) -> Input:
    value = codec.encode(flow.ENTRY_SCHEMA, record)
    raw_key = None if key is None else key.encode()
    return Input(raw_key, value, billing.REMITTANCE_ENTRIES.name, partition, 0, 0)


def day_closed(day: date, unit: str | None) -> DayClosed:
    return DayClosed(
        event_id=str(uuid.uuid4()),
        occurred_at=MORNING,
        business_day=day,
        collecting_unit_code=unit,
    )


async def receipts_of(sent: Sent, bills: list[tuple[Bill, datetime]]) -> list[Input]:
    """Pay each bill at its time; the remittance entries the flow sent."""
    before = len(sent.on(billing.REMITTANCE_ENTRIES))
    for index, (bill, at) in enumerate(bills):
        await order_step(bill_input(bill))
        await order_step(callback_input(bill, notify_id=f"n{index}", at=at))
    entries = sent.on(billing.REMITTANCE_ENTRIES)[before:]
    return [entry_input(strip(e), e["_key"]) for e in entries]


def strip(record: dict[str, Any]) -> dict[str, Any]:
    """A captured record without the capture's own fields."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


async def test_a_day_close_for_one_unit_is_forwarded_keyed_by_it(sent: Sent) -> None:
    """A unit's command goes to the remittance entries under the unit's key."""
    command = day_closed(DAY, "CU-ONE")
    value = codec.encode(flow.DAY_CLOSED_SCHEMA, command.as_record())

    outcome = await flow.day_close_step(
        Input(b"CU-ONE", value, billing.DAY_CLOSES.name, 0, 0, 0)
    )

    (entry,) = sent.on(billing.REMITTANCE_ENTRIES)
    assert outcome == "forwarded"
    assert (entry["_key"], entry["_p"]) == ("CU-ONE", None)
    assert entry["day_closed"]["business_day"] == DAY


async def test_a_day_close_for_every_unit_reaches_every_partition(sent: Sent) -> None:
    """A command naming no unit is copied to each remittance partition."""
    value = codec.encode(flow.DAY_CLOSED_SCHEMA, day_closed(DAY, None).as_record())

    outcome = await flow.day_close_step(
        Input(None, value, billing.DAY_CLOSES.name, 0, 0, 0)
    )

    partitions = [e["_p"] for e in sent.on(billing.REMITTANCE_ENTRIES)]
    assert outcome == "forwarded_to_every_partition"
    assert partitions == list(range(get_settings().partitions))


async def test_remittance_books_receipts_and_closes_on_command(sent: Sent) -> None:
    """Receipts booked to their day are remitted once the day is closed, and
    a replayed receipt is booked once."""
    unit = "CU" + uuid.uuid4().hex[:8]
    entries = await receipts_of(
        sent, [(new_bill(unit, 10_000), MORNING), (new_bill(unit, 20_000), MORNING)]
    )
    booked = [await flow.remittance_step(e) for e in [*entries, entries[0]]]
    close = flow._entry(str(uuid.uuid4()), MORNING, unit)
    close["day_closed"] = day_closed(DAY, unit).as_record()
    closed = await flow.remittance_step(entry_input(close, unit))

    (batch,) = sent.on(billing.REMITTANCES)
    assert booked == ["booked", "booked", "already_booked"]
    assert closed == "day_closed:1"
    assert batch["batch_id"] == batch_id_for(unit, DAY)
    assert (batch["receipt_count"], batch["net_fen"]) == (2, 30_000)


async def test_the_watermark_closes_a_day_and_a_late_receipt_books_ahead(
    sent: Sent,
) -> None:
    """A receipt past the next morning's grace closes the day; a receipt of
    the closed day arriving later counts towards the next day."""
    unit = "CU" + uuid.uuid4().hex[:8]
    early, next_day, late = await receipts_of(
        sent,
        [
            (new_bill(unit), MORNING),
            (new_bill(unit), MORNING + timedelta(hours=17)),
            (new_bill(unit), MORNING + timedelta(minutes=5)),
        ],
    )

    outcomes = [await flow.remittance_step(e) for e in (early, next_day, late)]
    ledger = flow._ledger(2, unit)

    (batch,) = sent.on(billing.REMITTANCES)
    assert outcomes == ["booked", "booked+closed:1", "booked"]
    assert (batch["business_day"], batch["receipt_count"]) == (DAY, 1)
    assert ledger.closed_through == DAY
    assert ledger.open_days == {DAY + timedelta(days=1): 2}


async def test_remittance_agent_closes_every_unit_of_its_partition(
    sent: Sent,
) -> None:
    """Through the agent: a day close with no unit closes the day for each
    unit booked in the partition, and a unit never seen there stays out."""
    units = ["CU" + uuid.uuid4().hex[:8] for _ in range(3)]
    entries = await receipts_of(sent, [(new_bill(unit), MORNING) for unit in units])
    close = flow._entry(str(uuid.uuid4()), MORNING, None)
    close["day_closed"] = day_closed(DAY, None).as_record()

    async with flow.remittance_agent.test_context() as agent:
        for entry in entries[:2]:
            await agent.put(value=entry.value, key=entry.key, partition=3)
        await agent.put(value=entry_input(close, None).value, key=None, partition=3)

    batches = sent.on(billing.REMITTANCES)
    assert sorted(b["collecting_unit_code"] for b in batches) == sorted(units[:2])
    assert flow._get(flow.remittance, f"unit:{units[2]}") is None


async def test_closed_days_are_forgotten_after_a_week(sent: Sent) -> None:
    """Entries and seen-markers of a day closed more than a week before the
    last closed day are dropped from the table."""
    unit = "CU" + uuid.uuid4().hex[:8]
    (entry,) = await receipts_of(sent, [(new_bill(unit), MORNING)])
    await flow.remittance_step(entry)
    receipt_id = strip(sent.on(billing.RECEIPTS)[-1])["receipt_id"]

    for day in (DAY, DAY + timedelta(days=8)):
        close = flow._entry(str(uuid.uuid4()), MORNING, unit)
        close["day_closed"] = day_closed(day, unit).as_record()
        await flow.remittance_step(entry_input(close, unit))

    ledger = flow._ledger(2, unit)
    assert ledger.kept_days == {}
    assert flow._get(flow.remittance, f"seen:{unit}:{receipt_id}") is None
    assert flow._get(flow.remittance, f"entry:{unit}:{DAY.isoformat()}:0") is None
