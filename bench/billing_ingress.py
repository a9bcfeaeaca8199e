"""Benchmark: signed payment callbacks through the real ingress.

Starts an embedded broker, the HTTP service (``edustream ingress``, with
``--processes`` processes sharing the port) and, with ``--workers N`` (or
``--worker`` for one), stream workers in one consumer group. Then it
drives signed callbacks (Alipay, WeChat Pay and UnionPay in turn, one
distinct order each unless ``--unique`` says fewer) at a fixed rate and
reports:

- the sustained rate of successful replies;
- p50/p99 ingress->publish latency. The ingress replies success only after
  the broker acknowledged the record, so the reply marks a published
  callback;
- with workers: p50/p99 ingress->receipt latency, to the moment the
  order's receipt is read off the receipts topic. Receipts still missing
  after ``RECEIPT_WAIT_S`` are counted as missing and left out of the
  percentiles, which are then a lower bound;
- both latencies per 10-second window, and how far the replies and the
  receipts trail the schedule when the drive ends: a backlog that grows
  shows as later windows that are slower than the first;
- CPU milliseconds per callback for each process, so the cost of the
  ingress can be read apart from the cost of the load generator;
- a raw aiokafka baseline on the same broker: one producer's throughput,
  and its ``send_and_wait`` latency at the same rate with the ingress
  producer's settings.

The load generator is built to cost little next to the ingress, so that
the figures are the ingress's:

- every callback is signed, and its whole HTTP request serialised, before
  the clock starts (signing is the channel's cost, not ours), on all cores;
- requests go out on ``--connections`` keep-alive connections, one request
  at a time on each, written as raw bytes;
- the schedule is open-loop: callback ``i`` is due at ``i / rate`` seconds,
  and every latency is counted from the due time, not from when a free
  connection sent it, so a slow ingress cannot hide its queue in ours.

Usage::

    python bench/billing_ingress.py --rate 2000 --seconds 60 [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from common import (
    cpu_seconds,
    ensure_topic,
    fill,
    peak_rss_mb,
    percentiles,
    stop,
    wait_for_group,
)

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
# The workers' consumer group (and Faust app id); the broker is the run's own.
APP_ID = "edustream-ingress-bench"
# Callbacks sent, and receipted when a worker runs, before the clock starts:
# the worker's first group join takes seconds and is not what we measure.
WARMUP = 30
WINDOW_S = 10.0
# How long receipts may trail the last callback before the run gives up.
RECEIPT_WAIT_S = 120.0


@dataclass(frozen=True)
class Request:
    """One signed callback, serialised as the HTTP request that carries it."""

    raw: bytes
    order_id: str
    amount_fen: int


@dataclass
class Drive:
    """What happened to each request of the drive, by index."""

    orders: list[str]
    due: list[float]
    sent: list[float]
    done: list[float]
    status: list[int]

    @classmethod
    def planned(cls, requests: Sequence[Request], started: float, rate: float) -> Drive:
        """Every request due at its place on the schedule, none sent yet."""
        count = len(requests)
        return cls(
            orders=[r.order_id for r in requests],
            due=[started + i / rate for i in range(count)],
            sent=[0.0] * count,
            done=[0.0] * count,
            status=[0] * count,
        )


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
        "--unique",
        type=int,
        default=0,
        help="distinct orders at most; 0 (default) makes every callback a new order",
    )
    parser.add_argument(
        "--connections", type=int, default=128, help="keep-alive connections"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="ingress processes on the port"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="stream worker processes to run"
    )
    parser.add_argument(
        "--worker", action="store_true", help="run one stream worker (--workers 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the raw producer baseline"
    )
    args = parser.parse_args()
    args.workers = max(args.workers, 1 if args.worker else 0)
    return args


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    total = int(args.rate * args.seconds)
    distinct = min(total, args.unique) if args.unique else total
    redis_url = ensure_redis(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), True
    )

    with tempfile.TemporaryDirectory(prefix="edustream-bench-") as workdir:
        keys_dir = Path(workdir) / "keys"
        generate_test_keys().save(keys_dir)
        broker = EmbeddedBroker(log_path=Path(workdir) / "broker.log")
        await asyncio.to_thread(broker.start)
        try:
            port = free_port()
            signed = await asyncio.to_thread(
                _signed_requests, keys_dir, port, distinct + WARMUP
            )
            return await _measure(args, broker, redis_url, Path(workdir), port, signed)
        finally:
            broker.stop()


async def _measure(  # noqa: PLR0917 - one call site, all required
    args: argparse.Namespace,
    broker: EmbeddedBroker,
    redis_url: str,
    workdir: Path,
    port: int,
    signed: list[Request],
) -> dict[str, Any]:
    bootstrap = broker.bootstrap
    await apply_topics(bootstrap, CATALOGUE.values(), 4, 1)
    env = _child_env(bootstrap, redis_url, workdir, args.processes)
    report: dict[str, Any] = {
        "rate_target": args.rate,
        "seconds": args.seconds,
        "ingress_processes": args.processes,
        "connections": args.connections,
        "workers": args.workers,
    }
    warmup, distinct = signed[:WARMUP], signed[WARMUP:]
    total = int(args.rate * args.seconds)
    requests = [distinct[i % len(distinct)] for i in range(total)]

    async with _children(args, env, workdir, port) as (ingress, workers):
        receipts = None
        if workers:
            await wait_for_group(bootstrap, APP_ID, len(workers))
            # Warm-up bills last: their receipts then show that the worker
            # has read every bill before the drive starts.
            await _publish_bills(bootstrap, [*distinct, *warmup])
            receipts = _ReceiptWatch(bootstrap)
            await receipts.start()
        await _warm_up(port, warmup, receipts, len(signed) if workers else 0)

        pids = _pids(ingress, workers, broker)
        before = {name: sum(cpu_seconds(p) for p in ps) for name, ps in pids.items()}
        drive = await _drive(port, requests, args.rate, args.connections)
        report["cpu_ms_per_callback"] = {
            name: round(
                (sum(cpu_seconds(p) for p in ps) - before[name]) * 1000 / total, 3
            )
            for name, ps in pids.items()
        }
        report["ingress"] = _ingress_figures(drive)
        if receipts is not None:
            report["receipts"] = await receipts.figures(drive, workers)
        report["peak_rss_mb"] = {
            name: max((peak_rss_mb(p) or 0.0) for p in ps) for name, ps in pids.items()
        }

    if not args.no_baseline:
        report["baseline"] = await _baseline(
            bootstrap, args.rate, min(args.seconds, 10.0)
        )
    return report


def _pids(
    ingress: subprocess.Popen[bytes],
    workers: list[subprocess.Popen[bytes]],
    broker: EmbeddedBroker,
) -> dict[str, list[int]]:
    """The processes whose CPU is counted, ingress children included."""
    pids = {
        "ingress": [ingress.pid, *_children_of(ingress.pid)],
        "broker": [broker.pid or 0],
        "load_generator": [os.getpid()],
    }
    if workers:
        pids["worker"] = [worker.pid for worker in workers]
    return pids


def _children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _child_env(
    bootstrap: str, redis_url: str, workdir: Path, processes: int
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "EDUSTREAM_CHANNEL_KEYS_DIR": str(workdir / "keys"),
        "EDUSTREAM_INGRESS_PROCESSES": str(processes),
        "EDUSTREAM_APP_ID": APP_ID,
        "EDUSTREAM_LOG_LEVEL": "WARNING",
        "EDUSTREAM_LOG_FORMAT": "json",
    }


@contextlib.asynccontextmanager
async def _children(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, port: int
) -> AsyncIterator[tuple[subprocess.Popen[bytes], list[subprocess.Popen[bytes]]]]:
    """The ingress process and the workers asked for, stopped on exit."""
    ingress_cmd = [
        sys.executable,
        "-c",
        "from edustream.commands.ingress import app; app()",
        "--port",
        str(port),
    ]
    ingress = _spawn(ingress_cmd, env, workdir / "ingress.log")
    worker_cmd = [sys.executable, "-m", "edustream", "worker"]
    workers = [
        _spawn(worker_cmd, env, workdir / f"worker-{index}.log")
        for index in range(args.workers)
    ]
    procs = [ingress, *workers]
    try:
        await _wait_ready(f"http://127.0.0.1:{port}", port, args.processes)
        yield ingress, workers
    finally:
        for proc in procs:
            stop(proc, grace_s=20)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one of our own processes (this interpreter, our modules)."""
    out = log.open("wb")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=out)  # noqa: S603


async def _wait_ready(base: str, port: int, processes: int) -> None:
    """Wait until ``/readyz`` answers 200 and every process listens.

    Each ingress process binds its own socket to the port once it has the
    broker and Redis; connections made before every one is bound would all
    land on the first, and keep-alive would keep them there.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/readyz") as resp:
                    if resp.status == 200 and _listeners(port) >= processes:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"ingress at {base} not ready within {READY_TIMEOUT_S}s")


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (one per ingress process)."""
    wanted = f":{port:04X}"
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()]
    return sum(1 for row in rows[1:] if row[1].endswith(wanted) and row[3] == "0A")


# --- the callbacks ----------------------------------------------------------


def _signed_requests(keys_dir: Path, port: int, count: int) -> list[Request]:
    """``count`` distinct paid callbacks, the three channels in turn."""
    started = time.monotonic()
    workers = max(1, os.cpu_count() or 1)
    chunks = [(keys_dir, port, start, count, workers) for start in range(workers)]
    # Spawned, not forked: this process already runs threads and a loop.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        parts = list(pool.map(_sign_chunk, chunks))
    # Chunk k holds indices k, k + workers, ...: interleave them back.
    requests: list[Request] = [parts[i % workers][i // workers] for i in range(count)]
    print(
        f"signed {count} callbacks in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return requests


def _sign_chunk(chunk: tuple[Path, int, int, int, int]) -> list[Request]:
    """Sign every ``step``-th callback from ``start`` (a pool worker's share)."""
    keys_dir, port, start, count, step = chunk
    keys = ChannelKeys.load(keys_dir)
    builders = (_alipay, _wechat, _unionpay)
    host = f"127.0.0.1:{port}"
    return [builders[i % 3](keys, i, host) for i in range(start, count, step)]


def _http(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The request as it goes on the wire: HTTP/1.1, keep-alive."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _order_id(index: int) -> str:
    return f"BENCH{uuid.uuid4().hex[:12].upper()}{index:08d}"


def _alipay(keys: ChannelKeys, index: int, host: str) -> Request:
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
    raw = _http(host, "/callbacks/alipay", {"Content-Type": FORM}, body)
    return Request(raw, order_id, fen)


def _wechat(keys: ChannelKeys, index: int, host: str) -> Request:
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
    return Request(_http(host, "/callbacks/wechat", headers, body), order_id, fen)


def _unionpay(keys: ChannelKeys, index: int, host: str) -> Request:
    now, order_id, fen = datetime.now(UTC), _order_id(index), 10_000 + index % 5000
    params = unionpay.consume_params(
        keys, order_id=order_id, query_id=f"{index:021d}", txn_fen=fen, txn_time=now
    )
    body = unionpay.sign_notification(keys, params)
    raw = _http(host, "/callbacks/unionpay", {"Content-Type": FORM}, body)
    return Request(raw, order_id, fen)


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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time.

    It reads just enough of each reply to find its status and its end
    (``Content-Length``; a 204 has no body).
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._reply: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self._buffer[:head_end]).lower()
        status = int(head[9:12])
        length = 0
        marker = head.find(b"\r\ncontent-length:")
        if marker >= 0 and status != 204:
            line_end = head.find(b"\r\n", marker + 2)
            length = int(head[marker + 17 : line_end if line_end > 0 else None])
        end = head_end + 4 + length
        if len(self._buffer) < end:
            return
        del self._buffer[:end]
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(ConnectionError("connection closed"))

    @property
    def open(self) -> bool:
        """Whether the connection can carry another request."""
        return self._transport is not None and not self._transport.is_closing()

    async def request(self, raw: bytes) -> int:
        """Send one serialised request and return the reply's status."""
        assert self._transport is not None
        self._reply = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._reply

    def close(self) -> None:
        """Close the connection."""
        if self._transport is not None:
            self._transport.close()


async def _connect(port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
    return protocol


async def _warm_up(
    port: int, warmup: list[Request], receipts: _ReceiptWatch | None, bills: int
) -> None:
    """Send the warm-up callbacks; with a worker, wait for their receipts."""
    connection = await _connect(port)
    try:
        for request in warmup:
            status = await connection.request(request.raw)
            if status not in {200, 204}:
                raise SystemExit(f"warm-up callback answered {status}")
    finally:
        connection.close()

    # The worker reads every bill first: allow it 500 bills a second.
    deadline = time.monotonic() + READY_TIMEOUT_S * 2 + bills / 500
    wanted = {request.order_id for request in warmup}
    while receipts is not None and not wanted <= receipts.stamps.keys():
        if time.monotonic() > deadline:
            raise SystemExit("the worker issued no receipts for the warm-up")
        await asyncio.sleep(0.2)


async def _drive(
    port: int, requests: list[Request], rate: float, connections: int
) -> Drive:
    """Send every request at its due time, as connections come free."""
    pool = [await _connect(port) for _ in range(connections)]
    drive = Drive.planned(requests, time.monotonic() + 0.1, rate)
    claimed = iter(range(len(requests)))

    async def carry(connection: _Connection) -> None:
        for index in claimed:
            delay = drive.due[index] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not connection.open:
                connection = await _connect(port)
            drive.sent[index] = time.monotonic()
            try:
                drive.status[index] = await connection.request(requests[index].raw)
            except (ConnectionError, OSError):
                drive.status[index] = -1
            drive.done[index] = time.monotonic()
        connection.close()

    await asyncio.gather(*(carry(connection) for connection in pool))
    return drive


def _ingress_figures(drive: Drive) -> dict[str, Any]:
    count = len(drive.due)
    ok = [i for i in range(count) if drive.status[i] in {200, 204}]
    started, finished = drive.due[0], max(drive.done)
    latencies = [(drive.done[i] - drive.due[i]) * 1000 for i in ok]
    service = [(drive.done[i] - drive.sent[i]) * 1000 for i in ok]
    return {
        "requests": count,
        "succeeded": len(ok),
        "failed": count - len(ok),
        "elapsed_s": round(finished - started, 2),
        "sustained_per_s": round(len(ok) / (finished - started), 1),
        **percentiles("publish_latency_ms", latencies),
        **percentiles("service_ms", service),
        "publish_p99_ms_by_window": _by_window(drive, ok, drive.done),
        "last_reply_behind_schedule_ms": round(
            (drive.done[-1] - drive.due[-1]) * 1000, 1
        ),
    }


def _by_window(drive: Drive, indices: list[int], ends: Sequence[float]) -> list[float]:
    """p99 latency (from due time) of the requests due in each window."""
    windows: dict[int, list[float]] = {}
    start = drive.due[0]
    for i in indices:
        slot = int((drive.due[i] - start) // WINDOW_S)
        windows.setdefault(slot, []).append((ends[i] - drive.due[i]) * 1000)
    return [
        percentiles("w", windows[slot]).get("w_p99", 0.0) for slot in sorted(windows)
    ]


# --- receipts ---------------------------------------------------------------


class _ReceiptWatch:
    """Reads the receipts topic from its current end: order id -> read time.

    The read time (this process's monotonic clock) rather than the record's
    timestamp keeps both ends on one clock. Fetches wait at most 10 ms for
    data, so a receipt is seen within about that of its publication.
    """

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
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
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    _schema, record = codec.decode(message.value)
                    self.stamps.setdefault(record["order_id"], now)

    async def figures(
        self, drive: Drive, workers: list[subprocess.Popen[bytes]]
    ) -> dict[str, Any]:
        first = _first_due(drive)
        deadline = time.monotonic() + RECEIPT_WAIT_S
        exited = False
        while not first.keys() <= self.stamps.keys():
            exited = any(worker.poll() is not None for worker in workers)
            if exited or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await self._stop()
        return {"worker_exited": exited, **self._summary(drive, first)}

    def _summary(self, drive: Drive, first: dict[str, int]) -> dict[str, Any]:
        receipted = [i for order, i in first.items() if order in self.stamps]
        ends = [self.stamps.get(order, 0.0) for order in drive.orders]
        latencies = [(ends[i] - drive.due[i]) * 1000 for i in receipted]
        last = max(receipted, default=0)
        finished = max((ends[i] for i in receipted), default=drive.due[0])
        elapsed = finished - drive.due[0]
        return {
            "orders": len(first),
            "receipts": len(receipted),
            "receipts_missing": len(first) - len(receipted),
            "receipts_per_s": round(len(receipted) / elapsed, 1) if elapsed else 0.0,
            **percentiles("receipt_latency_ms", latencies),
            "receipt_p99_ms_by_window": _by_window(drive, receipted, ends),
            "last_receipt_behind_schedule_ms": round(
                (ends[last] - drive.due[last]) * 1000, 1
            ),
        }

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


def _first_due(drive: Drive) -> dict[str, int]:
    """Each order's first request in the drive, by index."""
    first: dict[str, int] = {}
    for index, order in enumerate(drive.orders):
        first.setdefault(order, index)
    return first


# --- raw produce baseline ---------------------------------------------------


async def _baseline(bootstrap: str, rate: float, seconds: float) -> dict[str, Any]:
    """One producer on this broker: full-speed throughput, latency at ``rate``."""
    await ensure_topic(bootstrap, BASELINE_TOPIC, 4)
    value = _sample_value()
    throughput = await fill(
        bootstrap, BASELINE_TOPIC, value, int(max(rate * seconds, 20_000))
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    try:
        latencies = await _paced(producer, value, rate, seconds)
    finally:
        await producer.stop()
    return {
        "record_bytes": len(value),
        "throughput_per_s": round(throughput, 1),
        **percentiles("send_and_wait_ms", latencies),
    }


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


async def _paced(
    producer: AIOKafkaProducer, value: bytes, rate: float, seconds: float
) -> list[float]:
    latencies: list[float] = []

    async def one(i: int, due: float) -> None:
        await producer.send_and_wait(BASELINE_TOPIC, value, key=b"p%d" % i)
        latencies.append((time.monotonic() - due) * 1000)

    tasks = []
    started = time.monotonic()
    for i in range(int(rate * seconds)):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return latencies


def _render(report: dict[str, Any]) -> str:
    lines = [
        f"target {report['rate_target']:.0f}/s for {report['seconds']:.0f}s, "
        f"{report['ingress_processes']} ingress process(es), "
        f"{report['connections']} connections, {report['workers']} worker(s)"
    ]
    for section in (
        "ingress",
        "receipts",
        "cpu_ms_per_callback",
        "peak_rss_mb",
        "baseline",
    ):
        if section in report:
            values = ", ".join(f"{k}={v}" for k, v in report[section].items())
            lines.append(f"{section}: {values}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
