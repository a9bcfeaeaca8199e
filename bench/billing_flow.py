"""Benchmark: bills and payment callbacks through the billing flow.

Starts an embedded broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``), publishes
``--orders`` bills and, per order, a "paid" callback and its resend, plus a
refund for ``--refunded`` of them, all before the worker starts. Then one
``edustream worker`` (all flows, production code and settings) processes the
backlog, and the bench reports, from the output records' own timestamps:

- input events per second: bills, callbacks and the remittance entries the
  flow writes for itself, from the worker's first table write (processing
  started) to the last receipt;
- receipts and red-letter receipts issued, and whether every order got
  exactly one receipt numbered 1..N with the red-letter receipts in one
  series with no gap;
- the raw ceiling on the same broker: one aiokafka producer's rate for the
  same records, so the flow's number can be read against the machine.

The series is the bench's own (its Redis counter is cleared before and
after), so runs never see each other's numbers.

Usage::

    python bench/billing_flow.py --orders 5000 [--refunded 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from common import spawn_worker

from avro_schemas import default_codec
from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.numbering import series_keys
from edustream.billing.orders import PaymentEvent, PaymentStatus
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from infra.redis import ensure_redis
from topics import CATALOGUE, billing

NOW = datetime.now(UTC).replace(microsecond=0)
codec = default_codec()


def main() -> None:
    """Run the benchmark and print one JSON document."""
    args = _arguments()
    configured = get_settings().kafka_bootstrap_servers
    if configured:
        report = asyncio.run(_measure(args, configured))
    else:
        with EmbeddedBroker() as broker:
            report = asyncio.run(_measure(args, broker.bootstrap))
    print(json.dumps(report, indent=2))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--refunded", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=900.0)
    return parser.parse_args()


async def _measure(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    settings = get_settings()
    applied = await apply_topics(
        bootstrap, CATALOGUE.values(), settings.partitions, settings.replication_factor
    )
    assert applied.ok, applied.conflicts
    redis_url = ensure_redis(settings.redis_url, settings.redis_embedded_fallback)
    series = f"3{random.randrange(1000):03d}{random.randrange(1000, 10_000)}"
    await _clear(redis_url, series)

    records, refunds = _inputs(args.orders, args.refunded, series)
    raw = await _publish(bootstrap, records)
    try:
        flow = await _process(bootstrap, redis_url, args, refunds)
    finally:
        await _clear(redis_url, series)
    inputs = len(records) + flow["receipts"] + flow["red_letters"]
    return {
        "orders": args.orders,
        "input_events": inputs,
        "raw_produce_records_per_s": round(raw),
        **flow,
        "events_per_s": round(inputs / flow["seconds"]),
    }


def _inputs(
    orders: int, refunded: float, series: str
) -> tuple[list[tuple[str, str, bytes]], int]:
    """Bills, callbacks with resends and refunds, as (topic, key, value)."""
    records: list[tuple[str, str, bytes]] = []
    refunds = 0
    tag = uuid.uuid4().hex[:8]
    for index in range(orders):
        bill = bench_bill(f"BENCH{tag}{index:08d}", series)
        records.append((billing.BILLS.name, bill.order_id, bill_value(bill)))
        paid = callback_value(bill, PaymentStatus.PAID, "n1")
        records += [(billing.CALLBACKS.name, bill.order_id, paid)] * 2
        if index < orders * refunded:
            refund = callback_value(bill, PaymentStatus.REFUNDED, "n2", refund_fen=500)
            records.append((billing.CALLBACKS.name, bill.order_id, refund))
            refunds += 1
    return records, refunds


def bench_bill(bill_id: str, series: str) -> Bill:
    """A bill of the benchmark's school, in ``series``."""
    return Bill(
        bill_id=bill_id,
        school_id="SCH-BENCH",
        collecting_unit_code=f"CU-BENCH-{int(bill_id[-2:]) % 12}",
        student_ref="stu_bench",
        term="2026-2027-1",
        items=(BillItem("T01", "学费", FeeKind.TUITION, 120_000),),
        total_fen=120_000,
        receipt_series=series,
        published_at=NOW,
    )


def bill_value(bill: Bill) -> bytes:
    """The bill, encoded as the schools publish it."""
    record = bill.as_record(event_id=str(uuid.uuid4()), occurred_at=NOW)
    return _encode(billing.BILLS, record)


def callback_value(
    bill: Bill, status: PaymentStatus, notify_id: str, refund_fen: int | None = None
) -> bytes:
    """An encoded Alipay callback of the bill's order."""
    event = PaymentEvent(
        channel="alipay",
        notify_id=f"{bill.order_id}-{notify_id}",
        channel_txn_id=f"{bill.order_id}-T1",
        order_id=bill.order_id,
        status=status,
        amount_fen=bill.total_fen,
        notified_at=NOW,
        refund_fen=refund_fen,
        refund_is_cumulative=True,
    )
    record = event.as_record(event_id=str(uuid.uuid4()), occurred_at=NOW)
    return _encode(billing.CALLBACKS, record)


def _encode(spec: Any, record: dict[str, Any]) -> bytes:
    return codec.encode(spec.schema, record)


async def _publish(bootstrap: str, records: list[tuple[str, str, bytes]]) -> float:
    """Produce every input; the producer's rate is the raw ceiling."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        sent = [
            await producer.send(topic, value=value, key=key.encode())
            for topic, key, value in records
        ]
        await asyncio.gather(*sent)
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _process(
    bootstrap: str, redis_url: str, args: argparse.Namespace, refunds: int
) -> dict[str, Any]:
    """Run a worker over the backlog until every receipt is out."""
    log = Path(tempfile.mkdtemp(prefix="billing-bench-")) / "worker.log"
    app_id = f"billing-bench-{uuid.uuid4().hex[:8]}"
    worker = _spawn_worker(bootstrap, redis_url, app_id, log)
    try:
        outputs = await _outputs(bootstrap, args.orders, refunds, args.timeout, worker)
        started = await _first_write(bootstrap, app_id)
    finally:
        _stop(worker)
    checked = _check(outputs, args.orders, refunds, started)
    return {**checked, "worker_log": str(log)}


async def _outputs(
    bootstrap: str,
    orders: int,
    refunds: int,
    limit_s: float,
    worker: subprocess.Popen[bytes],
) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Receipts and red-letter receipts with their broker timestamps."""
    names = (billing.RECEIPTS.name, billing.RED_RECEIPTS.name)
    found: dict[str, list[tuple[int, dict[str, Any]]]] = {n: [] for n in names}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [
            TopicPartition(name, p)
            for name in names
            for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + limit_s
        while (
            _distinct(found, names[0]) < orders or _distinct(found, names[1]) < refunds
        ):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not finish the backlog")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                found[tp.topic] += [
                    (m.timestamp, codec.decode(m.value)[1]) for m in messages
                ]
    finally:
        await consumer.stop()
    return found


def _distinct(found: dict[str, list[tuple[int, dict[str, Any]]]], name: str) -> int:
    return len({str(r["receipt_id"]) for _, r in found[name]})


async def _first_write(bootstrap: str, app_id: str) -> int:
    """When the worker first wrote order state: processing began, in ms."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        names = [f"{app_id}-billing-{t}-changelog" for t in ("bills", "parked")]
        parts = [
            TopicPartition(name, p)
            for name in names
            for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        batches = await consumer.getmany(timeout_ms=2_000, max_records=1_000)
        first: int = min(m.timestamp for ms in batches.values() for m in ms)
        return first
    finally:
        await consumer.stop()


def _check(
    found: dict[str, list[tuple[int, dict[str, Any]]]],
    orders: int,
    refunds: int,
    started_ms: int,
) -> dict[str, Any]:
    """Counts, timing and the one-receipt, no-gap invariants."""
    everything = [item for items in found.values() for item in items]
    stamps = [started_ms] + [stamp for stamp, _ in everything]
    numbers: dict[str, set[str]] = {}
    for _, record in everything:
        numbers.setdefault(str(record["receipt_id"]), set()).add(
            record["receipt_number"]
        )
    printed = sorted(int(min(n)) for n in numbers.values())
    receipts = {r["order_id"] for _, r in found[billing.RECEIPTS.name]}
    return {
        "seconds": round((max(stamps) - min(stamps)) / 1000, 2),
        "receipts": _distinct(found, billing.RECEIPTS.name),
        "red_letters": _distinct(found, billing.RED_RECEIPTS.name),
        "one_receipt_per_order": len(receipts) == orders
        and all(len(n) == 1 for n in numbers.values()),
        "series_without_gaps": printed == list(range(1, orders + refunds + 1)),
    }


def _spawn_worker(
    bootstrap: str, redis_url: str, app_id: str, log: Path
) -> subprocess.Popen[bytes]:
    return spawn_worker(
        log,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        REDIS_URL=redis_url,
        EDUSTREAM_APP_ID=app_id,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _clear(redis_url: str, series: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.delete(*series_keys(series))
    finally:
        await client.aclose()


if __name__ == "__main__":
    main()
