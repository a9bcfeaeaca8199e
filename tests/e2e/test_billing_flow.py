"""The billing flow end to end: real broker, real Redis, a real worker.

Payment callbacks are published as the ingress publishes them (normalised
``PaymentCallback`` records on the callback topic), so these tests exercise
the flow alone. Each test uses its own order ids, collecting unit and
receipt series, whose Redis counter it clears first, so tests sharing the
session worker never see each other's receipts or numbers.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiokafka import AIOKafkaProducer

from avro_schemas import default_codec
from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.numbering import ReceiptNumberer, series_keys
from edustream.billing.orders import PaymentEvent, PaymentStatus
from edustream.billing.receipts import SHANGHAI
from edustream.billing.remittance import DayClosed, batch_id_for
from edustream.demo.scenario import Publication
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from tests.conftest import start_worker, stop_worker
from tests.e2e.helpers import Outputs, produce
from topics import CATALOGUE, billing

pytestmark = pytest.mark.e2e

# A business day in the past, far from any midnight, so a receipt's day is
# the one the test names whatever the wall clock says.
DAY = date(2026, 9, 15)
MORNING = datetime(2026, 9, 15, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)


@dataclass
class Order:
    """One test order: its bill and the callbacks a test publishes for it."""

    bill: Bill
    notices: int = 0

    @property
    def order_id(self) -> str:
        """The order id, which is the bill id."""
        return self.bill.order_id

    def bill_publication(self) -> Publication:
        """The bill as the school fee system publishes it."""
        record = self.bill.as_record(
            event_id=str(uuid.uuid4()), occurred_at=self.bill.published_at
        )
        return Publication.record(billing.BILLS, self.order_id, record)

    def callback(
        self,
        status: PaymentStatus,
        *,
        channel: str = "alipay",
        txn: str = "T1",
        at: datetime = MORNING,
        notify_id: str | None = None,
        amount_fen: int | None = None,
        refund_fen: int | None = None,
        cumulative: bool = False,
        refund_id: str | None = None,
    ) -> Publication:
        """A normalised callback; a new notification id unless one is given."""
        self.notices += 1
        event = PaymentEvent(
            channel=channel,
            notify_id=notify_id or f"{self.order_id}-n{self.notices}",
            channel_txn_id=f"{self.order_id}-{txn}",
            order_id=self.order_id,
            status=status,
            amount_fen=amount_fen or self.bill.total_fen,
            notified_at=at,
            paid_at=at if status is PaymentStatus.PAID else None,
            refund_fen=refund_fen,
            refund_is_cumulative=cumulative,
            refund_id=refund_id,
            refunded_at=at if status is PaymentStatus.REFUNDED else None,
        )
        record = event.as_record(event_id=str(uuid.uuid4()), occurred_at=at)
        return Publication.record(billing.CALLBACKS, self.order_id, record)


@dataclass
class Books:
    """A collecting unit and receipt series of one test."""

    unit: str
    series: str

    def order(self, total_fen: int = 10_000) -> Order:
        """A new open bill of this unit, numbered in this series."""
        bill = Bill(
            bill_id="E" + uuid.uuid4().hex[:24],
            school_id="SCH-E2E",
            collecting_unit_code=self.unit,
            student_ref="stu_e2e" + uuid.uuid4().hex[:8],
            term="2026-2027-1",
            items=(
                BillItem("T01", "学费", FeeKind.TUITION, total_fen - 2_000),
                BillItem("D01", "代办费", FeeKind.AGENCY_SERVICE, 2_000),
            ),
            total_fen=total_fen,
            receipt_series=self.series,
            published_at=MORNING - timedelta(days=10),
        )
        return Order(bill)

    def day_closed(self, day: date = DAY) -> Publication:
        """The nightly command closing ``day`` for this unit."""
        command = DayClosed(
            event_id=str(uuid.uuid4()),
            occurred_at=datetime.now(UTC),
            business_day=day,
            collecting_unit_code=self.unit,
        )
        return Publication.record(billing.DAY_CLOSES, self.unit, command.as_record())


@pytest.fixture
async def books(redis_url: str) -> AsyncIterator[Books]:
    """A fresh unit and a receipt series whose Redis counter starts at zero."""
    series = f"3{random.randrange(1000):03d}{random.randrange(1000, 10_000)}"
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.delete(*series_keys(series))
    yield Books(unit="CU" + uuid.uuid4().hex[:10], series=series)
    await client.delete(*series_keys(series))
    await client.aclose()


@pytest.fixture
async def outputs(bootstrap: str, worker: Path) -> AsyncIterator[Outputs]:
    """Every output topic read from its start, with the session worker up."""
    async with Outputs(bootstrap) as out:
        yield out


def mine(out: Outputs, topic: str, orders: list[Order]) -> list[dict[str, Any]]:
    """Records of these orders on an output topic."""
    ids = {order.order_id for order in orders}
    return [r for r in out.records(topic) if r["order_id"] in ids]


async def wait_mine(
    out: Outputs, topic: str, orders: list[Order], count: int, timeout_s: float = 60
) -> list[dict[str, Any]]:
    """Wait for ``count`` distinct ids of these orders, settle, return all."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(_distinct(mine(out, topic, orders))) >= count:
            break
        await asyncio.sleep(0.1)
    await out.settle(1.5)
    return mine(out, topic, orders)


def _distinct(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records by event id: a replayed output counts once."""
    return {str(r["event_id"]): r for r in records}


async def test_one_receipt_per_order_under_resends(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """Resends, a second notice of the same payment and TRADE_FINISHED give
    each order exactly one receipt, for the bill's total and items."""
    orders = [books.order(10_000 + i) for i in range(5)]
    inputs = [order.bill_publication() for order in orders]
    for order in orders:
        paid = order.callback(PaymentStatus.PAID)
        inputs += [paid, paid, order.callback(PaymentStatus.PAID)]
        finished = MORNING + timedelta(seconds=1)
        inputs.append(order.callback(PaymentStatus.CLOSED, at=finished))

    await produce(bootstrap, inputs)
    receipts = _distinct(await wait_mine(outputs, billing.RECEIPTS.name, orders, 5))

    by_order = {r["order_id"]: r for r in receipts.values()}
    assert len(receipts) == len(by_order) == 5
    for order in orders:
        receipt = by_order[order.order_id]
        assert receipt["amount_fen"] == order.bill.total_fen
        assert [i["item_code"] for i in receipt["items"]] == ["T01", "D01"]
        assert receipt["receipt_code"] == books.series
        assert receipt["issue_date"] == DAY
        assert receipt["payer_ref"] == order.bill.student_ref
    assert mine(outputs, billing.EXCEPTIONS.name, orders) == []


@pytest.mark.parametrize(
    ("channel", "txn"),
    [("wechat", "W1"), ("unionpay", "U1"), ("alipay", "T2")],
)
async def test_second_payment_raises_one_exception(
    bootstrap: str, outputs: Outputs, books: Books, channel: str, txn: str
) -> None:
    """A second payment of a paid order, from any channel or transaction,
    raises one exception for a person to refund, however often it is sent;
    the first payment keeps the order's one receipt."""
    order = books.order(10_000)
    again = order.callback(PaymentStatus.PAID, channel=channel, txn=txn)
    inputs = [order.bill_publication(), order.callback(PaymentStatus.PAID), again]

    await produce(bootstrap, [*inputs, again])
    raised = await wait_mine(outputs, billing.EXCEPTIONS.name, [order], 1)
    receipts = mine(outputs, billing.RECEIPTS.name, [order])

    assert len(_distinct(raised)) == 1
    exception = raised[0]
    assert exception["kind"] == "DUPLICATE_PAYMENT"
    assert exception["channel"] == channel
    assert exception["channel_txn_id"] == f"{order.order_id}-{txn}"
    assert exception["amount_fen"] == 10_000
    assert exception["collecting_unit_code"] == books.unit
    assert [r["channel"] for r in _distinct(receipts).values()] == ["alipay"]


async def test_amount_mismatch_raises_an_exception_and_no_receipt(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """A payment that does not match the bill total gets no receipt."""
    order = books.order(10_000)
    short = order.callback(PaymentStatus.PAID, amount_fen=9_900)

    await produce(bootstrap, [order.bill_publication(), short, short])
    raised = await wait_mine(outputs, billing.EXCEPTIONS.name, [order], 1)

    assert [r["kind"] for r in _distinct(raised).values()] == ["AMOUNT_MISMATCH"]
    assert mine(outputs, billing.RECEIPTS.name, [order]) == []


async def test_cumulative_partial_refunds_issue_red_letter_receipts(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """Alipay's cumulative refund_fee: each increase gets a red-letter receipt
    for the increase alone, linked to the original; a repeat changes nothing."""
    order = books.order(10_000)
    later = [MORNING + timedelta(minutes=m) for m in (10, 20, 30)]
    inputs = [
        order.bill_publication(),
        order.callback(PaymentStatus.PAID),
        order.callback(
            PaymentStatus.REFUNDED, refund_fen=3_000, cumulative=True, at=later[0]
        ),
        order.callback(
            PaymentStatus.REFUNDED, refund_fen=3_000, cumulative=True, at=later[1]
        ),
        order.callback(
            PaymentStatus.REFUNDED, refund_fen=10_000, cumulative=True, at=later[2]
        ),
    ]

    await produce(bootstrap, inputs)
    reds = _distinct(await wait_mine(outputs, billing.RED_RECEIPTS.name, [order], 2))
    receipt = next(
        iter(_distinct(mine(outputs, billing.RECEIPTS.name, [order])).values())
    )

    by_amount = sorted(reds.values(), key=lambda r: r["issued_at"])
    assert [r["refund_fen"] for r in by_amount] == [3_000, 7_000]
    assert [r["issued_at"] for r in by_amount] == [later[0], later[2]]
    for red in by_amount:
        assert red["original_receipt_id"] == receipt["receipt_id"]
        assert red["original_receipt_number"] == receipt["receipt_number"]
        assert red["receipt_code"] == receipt["receipt_code"] == books.series
    numbers = [receipt["receipt_number"]] + [r["receipt_number"] for r in by_amount]
    assert numbers == ["0000000001", "0000000002", "0000000003"]


async def test_refund_before_payment_is_held_then_released(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """A refund that arrives before its payment issues nothing until the
    payment comes; then the receipt and its red-letter receipt follow."""
    order = books.order(10_000)
    paid_at = MORNING + timedelta(minutes=5)
    refund = order.callback(
        PaymentStatus.REFUNDED,
        channel="wechat",
        txn="W1",
        refund_fen=4_000,
        refund_id="RF1",
        at=MORNING,
    )
    await produce(bootstrap, [order.bill_publication(), refund, refund])
    await outputs.settle(3)
    assert mine(outputs, billing.RED_RECEIPTS.name, [order]) == []

    paid = order.callback(PaymentStatus.PAID, channel="wechat", txn="W1", at=paid_at)
    await produce(bootstrap, [paid])
    reds = _distinct(await wait_mine(outputs, billing.RED_RECEIPTS.name, [order], 1))
    receipts = _distinct(mine(outputs, billing.RECEIPTS.name, [order]))

    (red,) = reds.values()
    (receipt,) = receipts.values()
    assert red["refund_fen"] == 4_000
    assert red["refund_id"] == "RF1"
    assert red["issued_at"] == paid_at
    assert int(red["receipt_number"]) == int(receipt["receipt_number"]) + 1


async def test_late_paid_after_refund_is_ignored(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """After a full refund, a "paid" of the same payment and a "finished"
    change nothing: no second receipt, no exception."""
    order = books.order(10_000)
    refunded_at = MORNING + timedelta(minutes=10)
    inputs = [
        order.bill_publication(),
        order.callback(PaymentStatus.PAID, channel="wechat"),
        order.callback(
            PaymentStatus.REFUNDED,
            channel="wechat",
            refund_fen=10_000,
            refund_id="RF1",
            at=refunded_at,
        ),
        order.callback(
            PaymentStatus.PAID, channel="wechat", at=refunded_at + timedelta(seconds=1)
        ),
        order.callback(
            PaymentStatus.CLOSED,
            channel="wechat",
            at=refunded_at + timedelta(seconds=2),
        ),
    ]

    await produce(bootstrap, inputs)
    reds = _distinct(await wait_mine(outputs, billing.RED_RECEIPTS.name, [order], 1))

    assert [r["refund_fen"] for r in reds.values()] == [10_000]
    assert len(_distinct(mine(outputs, billing.RECEIPTS.name, [order]))) == 1
    assert mine(outputs, billing.EXCEPTIONS.name, [order]) == []


async def test_callback_before_its_bill_waits_for_the_bill(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """A callback that overtakes its bill is decided once the bill arrives."""
    order = books.order(10_000)
    await produce(bootstrap, [order.callback(PaymentStatus.PAID)])
    await outputs.settle(2)
    assert mine(outputs, billing.RECEIPTS.name, [order]) == []
    assert mine(outputs, billing.EXCEPTIONS.name, [order]) == []

    await produce(bootstrap, [order.bill_publication()])
    receipts = await wait_mine(outputs, billing.RECEIPTS.name, [order], 1)

    assert len(_distinct(receipts)) == 1


async def test_bad_callbacks_are_dead_lettered_with_source_coordinates(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """Undecodable bytes, another schema, a key that is not the order id and
    an invalid refund each reach the dead-letter topic with their reason and
    the topic, partition and offset they were read from."""
    order, other = books.order(), books.order()
    good = order.callback(PaymentStatus.PAID)
    invalid = order.callback(PaymentStatus.PAID)
    invalid_record = {**_decoded(invalid), "status": "REFUNDED", "refund_fen": None}
    bad = {
        "undecodable": Publication(billing.CALLBACKS, good.key, good.value[:-5]),
        "wrong_schema": Publication(
            billing.CALLBACKS, good.key, order.bill_publication().value
        ),
        "key_mismatch": Publication(
            billing.CALLBACKS, other.order_id.encode(), good.value
        ),
        "invalid_record": Publication.record(
            billing.CALLBACKS, order.order_id, invalid_record
        ),
    }

    where = await _produce_noting_offsets(bootstrap, list(bad.values()))
    found = await _dead_letters(outputs, set(where), len(bad))

    assert {r["reason"] for r in found.values()} == set(bad)
    for reason, publication in bad.items():
        letter = next(r for r in found.values() if r["reason"] == reason)
        assert (letter["source_partition"], letter["source_offset"]) in where
        assert letter["source_topic"] == billing.CALLBACKS.name
        assert letter["original_value"] == publication.value
        assert letter["flow"] == "billing"
    assert mine(outputs, billing.RECEIPTS.name, [order, other]) == []


async def test_receipt_numbers_are_consecutive_per_series(
    bootstrap: str, outputs: Outputs, books: Books, redis_url: str
) -> None:
    """Receipts and red-letter receipts of one series share one sequence:
    1..N, no gap, no number twice; another series counts on its own."""
    other = Books(
        unit=books.unit, series=f"{int(books.series[:4]) + 1:04d}{books.series[4:]}"
    )
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.delete(*series_keys(other.series))
    orders = [books.order() for _ in range(6)] + [other.order() for _ in range(4)]
    inputs = [order.bill_publication() for order in orders]
    inputs += [order.callback(PaymentStatus.PAID) for order in orders]
    inputs += [
        order.callback(PaymentStatus.REFUNDED, refund_fen=1_000, refund_id="RF1")
        for order in orders[:2]
    ]

    try:
        await produce(bootstrap, inputs)
        receipts = await wait_mine(outputs, billing.RECEIPTS.name, orders, 10)
        reds = await wait_mine(outputs, billing.RED_RECEIPTS.name, orders, 2)
        numbered = await ReceiptNumberer(client).numbers(other.series)
    finally:
        await client.delete(*series_keys(other.series))
        await client.aclose()

    series: dict[str, list[int]] = defaultdict(list)
    for record in _distinct(receipts + reds).values():
        series[record["receipt_code"]].append(int(record["receipt_number"]))
    assert sorted(series[books.series]) == list(range(1, 9))
    assert sorted(series[other.series]) == [1, 2, 3, 4]
    assert sorted(numbered.values()) == [1, 2, 3, 4]


async def test_remittance_batch_totals_per_unit_and_day(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """Closing a day remits the unit's receipts minus its red-letter receipts,
    once: closing it again yields the same batch."""
    orders = [books.order(10_000 * (i + 1)) for i in range(4)]
    inputs = [order.bill_publication() for order in orders]
    inputs += [order.callback(PaymentStatus.PAID) for order in orders]
    inputs.append(
        orders[0].callback(PaymentStatus.REFUNDED, refund_fen=2_500, refund_id="R")
    )
    await produce(bootstrap, inputs)
    await wait_mine(outputs, billing.RECEIPTS.name, orders, 4)
    await wait_mine(outputs, billing.RED_RECEIPTS.name, orders, 1)

    await produce(bootstrap, [books.day_closed(), books.day_closed()])
    batch = await _batch(outputs, books.unit, DAY)

    assert batch["receipt_count"] == 4
    assert batch["receipts_total_fen"] == 100_000
    assert batch["red_letter_count"] == 1
    assert batch["red_letter_total_fen"] == 2_500
    assert batch["net_fen"] == 97_500
    # Orders of other partitions may be numbered between the receipt and the
    # refund, so only the union of the runs is fixed: the series 1..5.
    blue = _numbers(batch["receipt_ranges"], books.series)
    red = _numbers(batch["red_letter_ranges"], books.series)
    assert (len(blue), len(red)) == (4, 1)
    assert sorted(blue | red) == [1, 2, 3, 4, 5]


def _numbers(ranges: list[dict[str, Any]], series: str) -> set[int]:
    """Every receipt number the runs of a batch cover, all in one series."""
    assert {r["receipt_code"] for r in ranges} <= {series}
    return {n for r in ranges for n in range(r["first"], r["last"] + 1)}


async def test_watermark_closes_a_day_and_books_late_receipts_to_the_next(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """A receipt issued past the next morning's grace closes the day before
    without a command; a receipt of the closed day that comes later is
    booked to the next open day, so the closed batch never changes."""
    early, next_day, late = books.order(), books.order(), books.order()
    after_grace = MORNING + timedelta(hours=17)  # 03:00 next day, Shanghai
    # Each receipt is awaited before the next input: receipts of different
    # orders reach the unit's partition in no fixed order otherwise.
    await _paid(bootstrap, outputs, early)
    await _paid(bootstrap, outputs, next_day, at=after_grace)
    first = await _batch(outputs, books.unit, DAY)

    await _paid(bootstrap, outputs, late)
    await produce(bootstrap, [books.day_closed(DAY + timedelta(days=1))])
    second = await _batch(outputs, books.unit, DAY + timedelta(days=1))

    assert (first["receipt_count"], first["net_fen"]) == (1, 10_000)
    assert (second["receipt_count"], second["net_fen"]) == (2, 20_000)


async def test_day_close_for_every_unit_reaches_every_partition(
    bootstrap: str, outputs: Outputs, books: Books
) -> None:
    """A day close with no unit closes that day for every unit we hold."""
    day = date(2001, 1, 1)
    at = datetime(2001, 1, 1, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
    units = [
        Books(unit="CU" + uuid.uuid4().hex[:10], series=books.series) for _ in range(6)
    ]
    orders = [unit.order() for unit in units]
    inputs = [order.bill_publication() for order in orders]
    inputs += [order.callback(PaymentStatus.PAID, at=at) for order in orders]
    await produce(bootstrap, inputs)
    await wait_mine(outputs, billing.RECEIPTS.name, orders, len(orders))

    command = DayClosed(
        event_id=str(uuid.uuid4()), occurred_at=datetime.now(UTC), business_day=day
    )
    await produce(
        bootstrap, [Publication.record(billing.DAY_CLOSES, None, command.as_record())]
    )
    batches = [await _batch(outputs, unit.unit, day) for unit in units]

    assert [b["receipt_count"] for b in batches] == [1] * len(units)


async def _paid(
    bootstrap: str, out: Outputs, order: Order, at: datetime = MORNING
) -> None:
    """Publish a bill and its payment; return once the receipt is out."""
    paid = order.callback(PaymentStatus.PAID, at=at)
    await produce(bootstrap, [order.bill_publication(), paid])
    receipts = await wait_mine(out, billing.RECEIPTS.name, [order], 1)
    assert receipts, "no receipt"


async def _batch(out: Outputs, unit: str, day: date) -> dict[str, Any]:
    """The one batch of a unit and day, once it arrived."""
    batch_id = batch_id_for(unit, day)
    found = await out.wait_for(billing.REMITTANCES.name, 1, batch_id=batch_id)
    await out.settle(1)
    found = out.records(billing.REMITTANCES.name, batch_id=batch_id)
    assert found, f"no batch for {day}"
    assert len({r["content_digest"] for r in found}) == 1
    return found[0]


def _decoded(publication: Publication) -> dict[str, Any]:
    return default_codec().decode(publication.value)[1]


async def _produce_noting_offsets(
    bootstrap: str, items: list[Publication]
) -> set[tuple[int, int]]:
    """Produce in order; the (partition, offset) each record got."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(p.spec.name, value=p.value, key=p.key)
            for p in items
        ]
    finally:
        await producer.stop()
    return {(meta.partition, meta.offset) for meta in sent}


async def _dead_letters(
    out: Outputs, where: set[tuple[int, int]], count: int
) -> dict[str, dict[str, Any]]:
    """Dead letters of callbacks read from these partitions and offsets."""
    deadline = time.monotonic() + 60
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(found) < count:
        found = {
            str(r["event_id"]): r
            for r in out.records(billing.DEAD_LETTERS.name)
            if r["source_topic"] == billing.CALLBACKS.name
            and (r["source_partition"], r["source_offset"]) in where
        }
        await asyncio.sleep(0.1)
    return found


# A crashing worker.


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A broker of this test alone, so its worker is the only consumer."""
    with EmbeddedBroker() as broker:
        result = asyncio.run(
            apply_topics(
                broker.bootstrap, CATALOGUE.values(), get_settings().partitions, 1
            )
        )
        assert result.ok, result.conflicts
        yield broker.bootstrap


# Enough orders that each restarted worker still has hundreds of inputs left
# when it resumes its partitions, which is where a restart can lose input.
# Most of the test's time is the two restarts joining the group.
KILL_ORDERS = 1_000


@pytest.fixture
def crashing_worker(
    own_broker: str, redis_url: str, tmp_path: Path
) -> Iterator[CrashingWorker]:
    """A worker of its own on the test's broker, stopped at teardown."""
    worker = CrashingWorker(own_broker, redis_url, tmp_path / "worker.log")
    yield worker
    worker.stop()


class CrashingWorker:
    """One worker process that the test kills with SIGKILL and restarts."""

    def __init__(self, bootstrap: str, redis_url: str, log_path: Path) -> None:
        self._args = (bootstrap, redis_url, log_path)
        # Its own application id: its own consumer group and changelogs.
        self._env = {"EDUSTREAM_APP_ID": "edustream-kill-" + uuid.uuid4().hex[:8]}
        self._proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        """Start (or restart) the worker."""
        self._proc = start_worker(*self._args, self._env)

    def kill(self) -> None:
        """kill -9, as a crash would: no commit, no flush, no leave."""
        assert self._proc is not None
        assert self._proc.poll() is None
        self._proc.kill()
        self._proc.wait()
        self.kills += 1

    def stop(self) -> None:
        """Stop it politely if it is still running."""
        if self._proc is not None:
            stop_worker(self._proc)


async def test_worker_killed_twice_issues_each_receipt_once_without_gaps(
    own_broker: str, crashing_worker: CrashingWorker, books: Books
) -> None:
    """kill -9 of the worker twice mid-stream, then a restart: every order has
    exactly one receipt, a replayed receipt keeps its number, the series is
    exactly 1..N, and the day's batch counts every receipt once."""
    orders = [books.order(10_000 + i) for i in range(KILL_ORDERS)]
    refunded = orders[::5]
    inputs = [order.bill_publication() for order in orders]
    for order in orders:
        paid = order.callback(PaymentStatus.PAID)
        inputs += [paid, paid]
    inputs += [
        order.callback(PaymentStatus.REFUNDED, refund_fen=1_000, refund_id="RF1")
        for order in refunded
    ]
    await produce(own_broker, inputs)

    async with Outputs(own_broker) as out:
        crashing_worker.start()
        for threshold in (KILL_ORDERS // 5, KILL_ORDERS // 2):
            seen = await _receipts_reach(out, orders, threshold)
            assert seen < KILL_ORDERS, "the worker finished before it was killed"
            crashing_worker.kill()
            crashing_worker.start()
        receipts = await wait_mine(out, billing.RECEIPTS.name, orders, KILL_ORDERS, 180)
        reds = await wait_mine(out, billing.RED_RECEIPTS.name, orders, len(refunded))
        await produce(own_broker, [books.day_closed()])
        batch = await _batch(out, books.unit, DAY)

    numbers_by_id: dict[str, set[str]] = defaultdict(set)
    for record in receipts + reds:
        numbers_by_id[str(record["receipt_id"])].add(record["receipt_number"])
    assert crashing_worker.kills == 2
    assert all(len(numbers) == 1 for numbers in numbers_by_id.values())
    assert len({r["order_id"] for r in receipts}) == KILL_ORDERS
    assert len(_distinct(receipts)) == KILL_ORDERS
    assert len(_distinct(reds)) == len(refunded)

    total = KILL_ORDERS + len(refunded)
    printed = sorted(int(min(numbers)) for numbers in numbers_by_id.values())
    assert printed == list(range(1, total + 1))
    assert batch["receipt_count"] == KILL_ORDERS
    assert batch["red_letter_count"] == len(refunded)
    paid_fen = sum(order.bill.total_fen for order in orders)
    assert batch["net_fen"] == paid_fen - 1_000 * len(refunded)


async def _receipts_reach(out: Outputs, orders: list[Order], count: int) -> int:
    """Wait until ``count`` distinct receipts of the orders were issued."""
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline:
        seen = len(_distinct(mine(out, billing.RECEIPTS.name, orders)))
        if seen >= count:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {seen} receipts before the deadline")
