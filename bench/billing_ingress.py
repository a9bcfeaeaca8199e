"""Benchmark: signed payment callbacks through the real ingress.

Starts an embedded broker, the HTTP service (``edustream ingress``) in its
own process and, with ``--worker``, the stream worker. Then it drives signed
callbacks (Alipay, WeChat Pay and UnionPay in turn) at a fixed rate with an
aiohttp client and reports:

- the sustained rate of successful replies;
- p50/p99 ingress->publish latency: from sending the request to the reply.
  The ingress replies success only after the broker acknowledged the
  record, so this is the time to a published callback as a channel sees it;
- with ``--worker``: p50/p99 ingress->receipt latency, from sending the
  request to reading the order's receipt off the receipts topic;
- a raw aiokafka baseline measured in the same run on the same broker: the
  produce throughput of one producer, and the ``send_and_wait`` latency at
  the same rate, with the ingress producer's settings.

Callbacks are signed before the clock starts (RSA signing is the channel's
cost, not ours). With more requests than ``--unique`` orders, orders repeat:
a repeat is a channel resend, which the ingress publishes like any other.

Usage::

    python bench/billing_ingress.py --rate 2000 --seconds 60 [--worker]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from avro_schemas import default_codec
from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.channels import alipay, unionpay, wechat
from edustream.channels.keys import ChannelKeys, generate_test_keys
from infra.broker import EmbeddedBroker, free_port
from infra.provision import apply_topics
from infra.redis import ensure_redis
from topics import CATALOGUE, billing

FORM = "application/x-www-form-urlencoded; charset=utf-8"
BILL_SCHEMA = "edustream.billing.Bill"
# A scratch topic for the raw producer baseline, outside the catalogue so
# the baseline's records never reach a flow.
BASELINE_TOPIC = "bench.raw-produce-baseline"
READY_TIMEOUT_S = 30.0
# Callbacks sent, and receipted when a worker runs, before the clock starts:
# the worker's first group join takes seconds and is not what we measure.
WARMUP = 30


@dataclass(frozen=True)
class Request:
    """One signed callback ready to send."""

    path: str
    headers: dict[str, str]
    body: bytes
    order_id: str
    amount_fen: int


@dataclass
class Sample:
    """What happened to one request."""

    order_id: str
    sent: float
    done: float = 0.0
    status: int = 0


@dataclass
class Drive:
    """The outcome of driving the ingress."""

    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


def main() -> None:
    """Parse flags, run the benchmark, print the report."""
    args = _arguments()
    report = asyncio.run(_run(args))
    print(json.dumps(report, indent=2) if args.json else _render(report))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="callbacks per second"
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="length of the drive"
    )
    parser.add_argument(
        "--unique", type=int, default=30_000, help="distinct orders at most"
    )
    parser.add_argument("--concurrency", type=int, default=256, help="open connections")
    parser.add_argument("--worker", action="store_true", help="run the stream worker")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    total = int(args.rate * args.seconds)
    keys = generate_test_keys()
    requests = _signed_requests(keys, min(total, args.unique) + WARMUP)
    redis_url = ensure_redis(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), True
    )

    with tempfile.TemporaryDirectory(prefix="edustream-bench-") as workdir:
        keys.save(Path(workdir) / "keys")
        broker = EmbeddedBroker(log_path=Path(workdir) / "broker.log")
        await asyncio.to_thread(broker.start)
        try:
            return await _measure(args, broker, redis_url, Path(workdir), requests)
        finally:
            broker.stop()


async def _measure(
    args: argparse.Namespace,
    broker: EmbeddedBroker,
    redis_url: str,
    workdir: Path,
    requests: list[Request],
) -> dict[str, Any]:
    bootstrap = broker.bootstrap
    await apply_topics(bootstrap, CATALOGUE.values(), 4, 1)
    env = _child_env(bootstrap, redis_url, workdir)
    report: dict[str, Any] = {"rate_target": args.rate, "seconds": args.seconds}

    async with _children(args, env, workdir) as (base, ingress, worker):
        warmup, requests = requests[:WARMUP], requests[WARMUP:]
        receipts = None
        if worker is not None:
            # Warm-up bills last: their receipts then show that the worker
            # has read every bill before the drive starts.
            await _publish_bills(bootstrap, [*requests, *warmup])
            receipts = _ReceiptWatch(bootstrap)
            await receipts.start()
        await _warm_up(base, warmup, receipts)
        pids = {
            "ingress": ingress.pid,
            "broker": broker.pid or 0,
            "client": os.getpid(),
        }
        if worker is not None:
            pids["worker"] = worker.pid
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        drive = await _drive(base, requests, args)
        report["ingress"] = _ingress_figures(drive)
        report["cpu_ms_per_request"] = _cpu_per_request(
            pids, before, len(drive.samples)
        )
        if receipts is not None:
            report["receipts"] = await receipts.figures(drive, worker)

    report["baseline"] = await _baseline(bootstrap, args.rate, min(args.seconds, 10.0))
    return report


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _cpu_per_request(
    pids: dict[str, int], before: dict[str, float], requests: int
) -> dict[str, float]:
    """CPU milliseconds each process spent per request during the drive."""
    return {
        name: round((_cpu_seconds(pid) - before[name]) * 1000 / requests, 3)
        for name, pid in pids.items()
    }


def _child_env(bootstrap: str, redis_url: str, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "EDUSTREAM_CHANNEL_KEYS_DIR": str(workdir / "keys"),
        "EDUSTREAM_LOG_LEVEL": "WARNING",
        "EDUSTREAM_LOG_FORMAT": "json",
    }


@contextlib.asynccontextmanager
async def _children(
    args: argparse.Namespace, env: dict[str, str], workdir: Path
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes] | None]]:
    """The ingress process (and the worker if asked), stopped on exit."""
    port = free_port()
    ingress_cmd = [
        sys.executable,
        "-c",
        "from edustream.commands.ingress import app; app()",
        "--port",
        str(port),
    ]
    ingress = _spawn(ingress_cmd, env, workdir / "ingress.log")
    procs = [ingress]
    worker = None
    if args.worker:
        worker_cmd = [sys.executable, "-m", "edustream", "worker"]
        worker = _spawn(worker_cmd, env, workdir / "worker.log")
        procs.append(worker)
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_ready(base)
        yield base, ingress, worker
    finally:
        for proc in procs:
            _stop(proc)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one of our own processes (this interpreter, our modules)."""
    out = log.open("wb")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=out)  # noqa: S603


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_ready(base: str) -> None:
    """Poll /readyz until 200 (the ingress has the broker and Redis)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"ingress at {base} not ready within {READY_TIMEOUT_S}s")


# --- the callbacks ----------------------------------------------------------


def _signed_requests(keys: ChannelKeys, count: int) -> list[Request]:
    """``count`` distinct paid callbacks, the three channels in turn."""
    builders = (_alipay, _wechat, _unionpay)
    started = time.monotonic()
    requests = [builders[i % 3](keys, i) for i in range(count)]
    print(
        f"signed {count} callbacks in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return requests


def _order_id(index: int) -> str:
    return f"BENCH{uuid.uuid4().hex[:12].upper()}{index:08d}"


def _alipay(keys: ChannelKeys, index: int) -> Request:
    now, order_id, fen = datetime.now(UTC), _order_id(index), 10_000 + index % 5000
    params = alipay.trade_params(
        keys,
        notify_id=uuid.uuid4().hex,
        trade_no=f"2025{index:024d}",
        order_id=order_id,
        trade_status="TRADE_SUCCESS",
        total_fen=fen,
        notified_at=now,
        paid_at=now,
    )
    body = alipay.sign_notification(keys, params)
    return Request("/callbacks/alipay", {"Content-Type": FORM}, body, order_id, fen)


def _wechat(keys: ChannelKeys, index: int) -> Request:
    now, order_id, fen = datetime.now(UTC), _order_id(index), 10_000 + index % 5000
    resource = wechat.transaction_resource(
        keys,
        order_id=order_id,
        transaction_id=f"4200{index:024d}",
        total_fen=fen,
        paid_at=now,
    )
    headers, body = wechat.sign_notification(
        keys,
        resource,
        "TRANSACTION.SUCCESS",
        timestamp=int(now.timestamp()),
        nonce=uuid.uuid4().hex,
        notification_id=str(uuid.uuid4()),
    )
    return Request("/callbacks/wechat", headers, body, order_id, fen)


def _unionpay(keys: ChannelKeys, index: int) -> Request:
    now, order_id, fen = datetime.now(UTC), _order_id(index), 10_000 + index % 5000
    params = unionpay.consume_params(
        keys, order_id=order_id, query_id=f"{index:021d}", txn_fen=fen, txn_time=now
    )
    body = unionpay.sign_notification(keys, params)
    return Request("/callbacks/unionpay", {"Content-Type": FORM}, body, order_id, fen)


async def _publish_bills(bootstrap: str, requests: list[Request]) -> None:
    """One open bill per order, so the worker can issue receipts."""
    codec = default_codec()
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = []
        for request in requests:
            bill = Bill(
                bill_id=request.order_id,
                school_id="S310104001",
                collecting_unit_code="CU3101040001",
                student_ref=f"stu_bench{request.order_id[-8:]}",
                term="2025-2026-1",
                items=(BillItem("F01", "学费", FeeKind.TUITION, request.amount_fen),),
                total_fen=request.amount_fen,
                receipt_series="31052025",
                published_at=now,
            )
            value = codec.encode(
                BILL_SCHEMA, bill.as_record(event_id=str(uuid.uuid4()), occurred_at=now)
            )
            sends.append(
                await producer.send(
                    billing.BILLS.name, value, key=request.order_id.encode()
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


# --- driving the ingress ----------------------------------------------------


async def _warm_up(
    base: str, warmup: list[Request], receipts: _ReceiptWatch | None
) -> None:
    """Send the warm-up callbacks; with a worker, wait for their receipts."""
    async with aiohttp.ClientSession(base) as session:
        for request in warmup:
            await _send(session, request, Sample(request.order_id, 0.0))

    deadline = time.monotonic() + READY_TIMEOUT_S * 2
    wanted = {request.order_id for request in warmup}
    while receipts is not None and not wanted <= receipts.stamps.keys():
        if time.monotonic() > deadline:
            raise SystemExit("the worker issued no receipts for the warm-up")
        await asyncio.sleep(0.2)


async def _drive(base: str, requests: list[Request], args: argparse.Namespace) -> Drive:
    """Send ``rate * seconds`` requests on an open-loop schedule."""
    total = int(args.rate * args.seconds)
    drive = Drive()
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        tasks = []
        drive.started = time.monotonic()
        for index in range(total):
            due = drive.started + index / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sample = Sample(requests[index % len(requests)].order_id, 0.0)
            drive.samples.append(sample)
            tasks.append(
                asyncio.create_task(
                    _send(session, requests[index % len(requests)], sample)
                )
            )
        await asyncio.gather(*tasks)
        drive.finished = time.monotonic()
    return drive


async def _send(
    session: aiohttp.ClientSession, request: Request, sample: Sample
) -> None:
    sample.sent = time.monotonic()
    try:
        async with session.post(
            request.path, data=request.body, headers=request.headers
        ) as resp:
            await resp.read()
            sample.status = resp.status
    except aiohttp.ClientError:
        sample.status = -1
    sample.done = time.monotonic()


def _ingress_figures(drive: Drive) -> dict[str, Any]:
    ok = [s for s in drive.samples if s.status in (200, 204)]
    elapsed = drive.finished - drive.started
    latencies = [(s.done - s.sent) * 1000 for s in ok]
    return {
        "requests": len(drive.samples),
        "succeeded": len(ok),
        "failed": len(drive.samples) - len(ok),
        "elapsed_s": round(elapsed, 2),
        "sustained_per_s": round(len(ok) / elapsed, 1) if elapsed else 0.0,
        **_percentiles("publish_latency_ms", latencies),
    }


def _percentiles(name: str, values: list[float]) -> dict[str, float]:
    """Smallest, median and 99th percentile, in the values' unit."""
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        f"{name}_min": round(min(values), 2),
        f"{name}_p50": round(cuts[49], 2),
        f"{name}_p99": round(cuts[98], 2),
    }


# --- receipts ---------------------------------------------------------------


class _ReceiptWatch:
    """Reads the receipts topic from its current end: order id -> read time.

    The read time (this process's monotonic clock, polled every 200 ms at
    most) rather than the record's timestamp keeps both ends on one clock.
    """

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False
        )
        self.stamps: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        name = billing.RECEIPTS.name
        parts = [
            TopicPartition(name, p)
            for p in self._consumer.partitions_for_topic(name) or ()
        ]
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        codec = default_codec()
        while True:
            for messages in (await self._consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    _schema, record = codec.decode(message.value)
                    self.stamps.setdefault(record["order_id"], time.monotonic())

    async def figures(
        self, drive: Drive, worker: subprocess.Popen[bytes] | None, wait_s: float = 60.0
    ) -> dict[str, Any]:
        first_sent: dict[str, float] = {}
        for sample in drive.samples:
            first_sent.setdefault(sample.order_id, sample.sent)
        deadline = time.monotonic() + wait_s
        while not first_sent.keys() <= self.stamps.keys():
            if time.monotonic() > deadline:
                break
            if worker is not None and worker.poll() is not None:
                break
            await asyncio.sleep(0.5)
        await self._stop()
        return self._summary(first_sent, worker)

    def _summary(
        self, first_sent: dict[str, float], worker: subprocess.Popen[bytes] | None
    ) -> dict[str, Any]:
        latencies = [
            (self.stamps[order] - sent) * 1000
            for order, sent in first_sent.items()
            if order in self.stamps
        ]
        return {
            "orders": len(first_sent),
            "receipts": len(latencies),
            "worker_exited": worker is not None and worker.poll() is not None,
            **_percentiles("receipt_latency_ms", latencies),
        }

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


# --- raw produce baseline ---------------------------------------------------


async def _baseline(bootstrap: str, rate: float, seconds: float) -> dict[str, Any]:
    """One producer on this broker: full-speed throughput, latency at ``rate``."""
    await _scratch_topic(bootstrap)
    value = _sample_value()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    try:
        throughput = await _full_speed(
            producer, value, count=int(max(rate * seconds, 20_000))
        )
        latencies = await _paced(producer, value, rate, seconds)
    finally:
        await producer.stop()
    return {
        "record_bytes": len(value),
        "throughput_per_s": round(throughput, 1),
        **_percentiles("send_and_wait_ms", latencies),
    }


async def _scratch_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if BASELINE_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(BASELINE_TOPIC, 4, 1)])
    finally:
        await admin.close()


def _sample_value() -> bytes:
    """A PaymentCallback record of the size the ingress publishes."""
    now = datetime.now(UTC)
    record = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": now,
        "channel": "alipay",
        "notify_id": uuid.uuid4().hex,
        "channel_txn_id": "2025" + "0" * 24,
        "order_id": "BENCH000000000000000001",
        "status": "PAID",
        "amount_fen": 12_300,
        "paid_fen": 12_300,
        "refund_is_cumulative": True,
        "paid_at": now,
        "notified_at": now,
        "source": "INGRESS",
    }
    return default_codec().encode("edustream.billing.PaymentCallback", record)


async def _full_speed(producer: AIOKafkaProducer, value: bytes, count: int) -> float:
    started = time.monotonic()
    pending = [
        await producer.send(BASELINE_TOPIC, value, key=f"k{i}".encode())
        for i in range(count)
    ]
    await asyncio.gather(*pending)
    return count / (time.monotonic() - started)


async def _paced(
    producer: AIOKafkaProducer, value: bytes, rate: float, seconds: float
) -> list[float]:
    latencies: list[float] = []

    async def one(i: int) -> None:
        sent = time.monotonic()
        await producer.send_and_wait(BASELINE_TOPIC, value, key=f"p{i}".encode())
        latencies.append((time.monotonic() - sent) * 1000)

    tasks = []
    started = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


def _render(report: dict[str, Any]) -> str:
    lines = [f"target {report['rate_target']:.0f}/s for {report['seconds']:.0f}s"]
    for section in ("ingress", "cpu_ms_per_request", "receipts", "baseline"):
        if section in report:
            values = ", ".join(f"{k}={v}" for k, v in report[section].items())
            lines.append(f"{section}: {values}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
