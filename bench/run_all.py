"""Every benchmark in one run, next to the raw aiokafka baseline.

Runs, one after the other and each in a process of its own (each starts its
own embedded broker, unless ``KAFKA_BOOTSTRAP_SERVERS`` is set):

- the baseline: a raw aiokafka consume -> produce pass-through with no
  processing, flat out (records/s) and paced (latency from the first send
  to arrival on the output topic);
- the ingress (``billing_ingress.py``): signed callbacks over HTTP at 2,000/s,
  publish latency; and the same with one worker, callback-to-receipt
  latency and the receipts per second the worker kept up, at 2,000/s and at
  500/s;
- the billing, growth and aid flow benchmarks (``billing_flow.py``,
  ``growth_peak.py``, ``aid_backfill.py``) on smaller inputs than their own
  defaults, each a backlog worked off by one worker;
- the billing flow's backlog again with 1 and then 2 worker processes in one
  consumer group, to show how throughput scales with processes.

It prints one table: events/s, p50/p99 latency, the peak resident memory of
the process that does the work (the worker; the ingress for the ingress
row; the pass-through process for the baseline), the ratio of events/s
to the baseline's records/s, and the machine's load average as each row
finished. Backlog benchmarks measure throughput only: their events wait in
the backlog by design, so they have no latency. A paced row's rate is the
rate offered, so it has no ratio.

``--quick`` shrinks every input (about 3 minutes on 2 idle cores instead of
about 7); ``--only`` picks steps; ``--json`` prints every figure each
script reported.

Usage::

    .venv/bin/python bench/run_all.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from billing_flow import bench_bill, bill_value, callback_value
from common import (
    bulk_producer,
    cpu_seconds,
    ensure_topic,
    fill,
    partitions_of,
    passthrough,
    passthrough_latency,
    percentiles,
    spawn_worker,
    stop,
    wait_for_group,
)

from avro_schemas import default_codec
from edustream.billing.numbering import series_keys
from edustream.billing.orders import PaymentStatus
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from infra.redis import async_client, ensure_redis
from topics import CATALOGUE, billing

BENCH = Path(__file__).resolve().parent
SOURCE_TOPIC = "bench.baseline-source"
TARGET_TOPIC = "bench.baseline-target"
# Paced runs offer the ingress target rate, and callbacks to receipts also
# a rate one billing worker keeps up with on the development machine, for
# the 20 s of the full run (for longer the embedded broker slows down: see
# the README's "Embedded broker quirks").
RATE = 2000.0
EASY_RATE = 500.0
STEP_LIMIT_S = 1200.0
# What a flow benchmark may take to work its backlog off before it gives up.
FLOW_LIMIT_S = 300
SAMPLE_EVERY_S = 0.25


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark gets."""

    baseline_records: int
    paced_seconds: float
    ingress_seconds: float
    receipts_seconds: float
    billing_orders: int
    growth_events: int
    growth_venues: int
    aid_records: int
    scaling_orders: int


FULL = Sizes(100_000, 10.0, 20.0, 10.0, 3_000, 20_000, 2_500, 20_000, 3_000)
QUICK = Sizes(30_000, 5.0, 10.0, 5.0, 1_000, 6_000, 500, 5_000, 1_000)


@dataclass
class Row:
    """One line of the table."""

    name: str
    events_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    ratio: float | None = None
    paced: bool = False
    # The machine's 1-minute load average as the row finished: on a shared
    # machine, a figure taken at a load above the core count is a low one.
    load: float | None = None
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def main() -> None:
    """Run every benchmark and print the table (or JSON)."""
    args = _arguments()
    if args.baseline_only:
        print(json.dumps(asyncio.run(_baseline_measure(args))))
        return
    if args.scaling_workers:
        print(json.dumps(asyncio.run(_scaling_measure(args))))
        return

    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    rows = _run_everything(sizes, args.only)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": _machine(),
        "quick": args.quick,
        "seconds": round(time.monotonic() - started),
        "rows": [dataclasses.asdict(row) for row in rows],
    }
    print(json.dumps(report, indent=2) if args.json else _render(report, rows))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(STEPS),
        help="run only these steps (the baseline always runs)",
    )
    # The two measurements this script makes itself run in child processes.
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--scaling-workers", type=int, default=0, help=argparse.SUPPRESS
    )
    return parser.parse_args()


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GB, "
        f"Python {platform.python_version()}, {platform.system()}"
    )


# --- running the steps ------------------------------------------------------


def _run_everything(sizes: Sizes, only: list[str] | None) -> list[Row]:
    rows = _step_rows("baseline", _baseline_step, sizes)
    ceiling = rows[0].events_per_s
    for name in only or list(STEPS):
        rows += _step_rows(name, STEPS[name], sizes)
    for row in rows:
        # A paced row's rate is the rate offered, not a ceiling to compare.
        if ceiling and row.events_per_s and not row.paced:
            row.ratio = round(row.events_per_s / ceiling, 3)
    return rows


def _step_rows(name: str, step: Step, sizes: Sizes) -> list[Row]:
    print(f"[run_all] {name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    rows: list[Row] = []
    for command, read in step(sizes):
        outcome = _run_child(command)
        try:
            if outcome.failed:
                raise RuntimeError(outcome.failed)
            row = read(outcome.report, outcome.rss)
        except (RuntimeError, KeyError, IndexError, TypeError) as exc:
            row = Row(name, note=f"failed: {exc}"[:200])
        row.load = round(os.getloadavg()[0], 1)
        rows.append(row)
    print(
        f"[run_all] {name} done in {time.monotonic() - started:.0f}s",
        file=sys.stderr,
        flush=True,
    )
    return rows


@dataclass
class Outcome:
    """A child benchmark's JSON report and its processes' peak memory."""

    report: dict[str, Any]
    rss: dict[str, float]
    failed: str = ""


def _run_child(command: list[str]) -> Outcome:
    """Run one benchmark script, sampling its processes' memory meanwhile."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our scripts
            [sys.executable, *command], stdout=out, stderr=err, cwd=BENCH.parent
        )
        with _sampling(proc.pid) as rss:
            try:
                proc.wait(timeout=STEP_LIMIT_S)
            except subprocess.TimeoutExpired:
                stop(proc, grace_s=10)
                return Outcome({}, rss, f"no result within {STEP_LIMIT_S:.0f}s")
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if proc.returncode != 0:
            lines = err.read().decode(errors="replace").strip().splitlines()
            last = lines[-1] if lines else "no output"
            return Outcome({}, rss, f"exit {proc.returncode}: {last}")
        return Outcome(_last_json(text), rss)


def _last_json(text: str) -> dict[str, Any]:
    """The last JSON object a script printed (logs may come before it)."""
    decoder = json.JSONDecoder()
    start = text.rfind("\n{")
    candidates = [start + 1] if start >= 0 else []
    if text.startswith("{"):
        candidates.append(0)
    for position in candidates:
        with contextlib.suppress(json.JSONDecodeError):
            found, _ = decoder.raw_decode(text, position)
            if isinstance(found, dict):
                return found
    raise RuntimeError("the script printed no JSON report")


@contextlib.contextmanager
def _sampling(root: int) -> Iterator[dict[str, float]]:
    """Peak VmHWM (MB) of ``root``'s processes by role, sampled meanwhile."""
    peaks: dict[str, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, role in _descendants(root).items():
                high = _high_water_mb(pid)
                if high is not None and high > peaks.get(role, 0.0):
                    peaks[role] = high
            done.wait(SAMPLE_EVERY_S)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        done.set()
        thread.join()


def _descendants(root: int) -> dict[int, str]:
    """Every live process under ``root`` (itself included), with its role."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found}
        grew = not more <= found
        found |= more
    return {pid: _role(pid, root, parents) for pid in found}


def _role(pid: int, root: int, parents: dict[int, int]) -> str:
    """What a process is, from its command line or else its parent's role."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "gone"
    text = cmdline.decode(errors="replace")
    if "tansu" in text:
        return "broker"
    if " worker" in text or "--serve" in text:
        return "worker"
    if "commands.ingress" in text or " ingress" in text:
        return "ingress"
    if pid == root:
        return "bench"
    # An ingress helper process runs whatever its parent runs.
    parent = parents.get(pid, 0)
    inherited = _role(parent, root, parents) if parent not in {0, root} else ""
    return inherited if inherited in {"ingress", "worker"} else "other"


def _high_water_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


# --- the steps: commands and how to read their reports ----------------------

Reader = Callable[[dict[str, Any], dict[str, float]], Row]
Step = Callable[[Sizes], list[tuple[list[str], Reader]]]


def _script(name: str, *flags: object) -> list[str]:
    return [str(BENCH / name), *(str(flag) for flag in flags)]


def _baseline_step(sizes: Sizes) -> list[tuple[list[str], Reader]]:
    command = _script(
        "run_all.py",
        "--baseline-only",
        "--records",
        sizes.baseline_records,
        "--seconds",
        sizes.paced_seconds,
    )
    return [(command, _read_baseline)]


def _read_baseline(report: dict[str, Any], rss: dict[str, float]) -> Row:
    return Row(
        "raw aiokafka pass-through (baseline)",
        events_per_s=report["records_per_s"],
        p50_ms=report.get("latency_ms_p50"),
        p99_ms=report.get("latency_ms_p99"),
        peak_rss_mb=rss.get("bench"),
        note=f"latency paced at {RATE:.0f}/s",
        raw=report,
    )


def _ingress_step(sizes: Sizes) -> list[tuple[list[str], Reader]]:
    def command(rate: float, seconds: float, workers: int) -> list[str]:
        return _script(
            "billing_ingress.py",
            "--json",
            "--no-baseline",
            "--rate",
            rate,
            "--seconds",
            seconds,
            "--workers",
            workers,
        )

    return [
        (command(RATE, sizes.ingress_seconds, 0), _read_ingress),
        (command(RATE, sizes.receipts_seconds, 1), _read_receipts),
        (command(EASY_RATE, sizes.ingress_seconds, 1), _read_receipts),
    ]


def _read_ingress(report: dict[str, Any], rss: dict[str, float]) -> Row:
    figures = report["ingress"]
    return Row(
        "ingress: signed callbacks -> published",
        events_per_s=figures["sustained_per_s"],
        p50_ms=figures.get("publish_latency_ms_p50"),
        p99_ms=figures.get("publish_latency_ms_p99"),
        peak_rss_mb=rss.get("ingress"),
        paced=True,
        note=f"offered {report['rate_target']:.0f}/s for {report['seconds']:.0f}s",
        raw=report,
    )


def _read_receipts(report: dict[str, Any], rss: dict[str, float]) -> Row:
    figures = report["receipts"]
    missing = figures.get("receipts_missing", 0)
    note = f"offered {report['rate_target']:.0f}/s for {report['seconds']:.0f}s"
    if missing:
        note += f"; {missing} receipts missing, latency a lower bound"
    # A worker that kept up gives the offered rate: a pace, not a ceiling.
    kept_up = not missing and figures["last_receipt_behind_schedule_ms"] < 1000
    return Row(
        "ingress + 1 worker: callback -> receipt",
        paced=kept_up,
        events_per_s=figures.get("receipts_per_s"),
        p50_ms=figures.get("receipt_latency_ms_p50"),
        p99_ms=figures.get("receipt_latency_ms_p99"),
        peak_rss_mb=rss.get("worker"),
        note=note,
        raw=report,
    )


def _billing_step(sizes: Sizes) -> list[tuple[list[str], Reader]]:
    command = _script(
        "billing_flow.py", "--orders", sizes.billing_orders, "--timeout", FLOW_LIMIT_S
    )
    return [(command, _read_billing)]


def _read_billing(report: dict[str, Any], rss: dict[str, float]) -> Row:
    return Row(
        "billing flow: bills + callbacks -> receipts",
        events_per_s=report["events_per_s"],
        peak_rss_mb=rss.get("worker"),
        note=f"backlog of {report['input_events']} events, 1 worker",
        raw=report,
    )


def _growth_step(sizes: Sizes) -> list[tuple[list[str], Reader]]:
    command = _script(
        "growth_peak.py",
        "--events",
        sizes.growth_events,
        "--venues",
        sizes.growth_venues,
        "--limit-s",
        FLOW_LIMIT_S,
    )
    return [(command, _read_growth)]


def _read_growth(report: dict[str, Any], rss: dict[str, float]) -> Row:
    run = report["runs"][0]
    return Row(
        "growth flow: check-ins/outs -> statements",
        events_per_s=run["events_per_s"],
        peak_rss_mb=rss.get("worker"),
        note=f"backlog of {report['events']} scans, 1 worker",
        raw=report,
    )


def _aid_step(sizes: Sizes) -> list[tuple[list[str], Reader]]:
    command = _script(
        "aid_backfill.py", "--records", sizes.aid_records, "--timeout", FLOW_LIMIT_S
    )
    return [(command, _read_aid)]


def _read_aid(report: dict[str, Any], rss: dict[str, float]) -> Row:
    run = report["runs"][0]
    return Row(
        "aid flow: registry backfill -> offers",
        events_per_s=run["events_per_s"],
        peak_rss_mb=rss.get("worker"),
        note=f"backlog of {run['input_events']} events, 1 worker",
        raw=report,
    )


def _scaling_step(sizes: Sizes) -> list[tuple[list[str], Reader]]:
    return [
        (
            _script(
                "run_all.py",
                "--scaling-workers",
                workers,
                "--records",
                sizes.scaling_orders,
            ),
            _read_scaling,
        )
        for workers in (1, 2)
    ]


def _read_scaling(report: dict[str, Any], rss: dict[str, float]) -> Row:
    workers = report["workers"]
    check = "" if report["one_receipt_per_order"] else "; receipts wrong"
    cpu = report.get("cpu_seconds", {})
    if cpu:
        check += f"; CPU s: workers {cpu.get('workers')}, broker {cpu.get('broker')}"
    return Row(
        f"billing flow backlog, {workers} worker process{'es' if workers > 1 else ''}",
        events_per_s=report["events_per_s"],
        peak_rss_mb=rss.get("worker"),
        note=f"{report['input_events']} events{check}",
        raw=report,
    )


STEPS: dict[str, Step] = {
    "ingress": _ingress_step,
    "billing": _billing_step,
    "growth": _growth_step,
    "aid": _aid_step,
    "scaling": _scaling_step,
}


# --- the baseline, in its own process ---------------------------------------


async def _baseline_measure(args: argparse.Namespace) -> dict[str, Any]:
    """Pass-through flat out, then paced; on a broker of this process's own."""
    configured = get_settings().kafka_bootstrap_servers
    if configured:
        return await _baseline_on(configured, args.records, args.seconds)
    broker = EmbeddedBroker()
    await asyncio.to_thread(broker.start)
    try:
        return await _baseline_on(broker.bootstrap, args.records, args.seconds)
    finally:
        broker.stop()


async def _baseline_on(bootstrap: str, records: int, seconds: float) -> dict[str, Any]:
    partitions = get_settings().partitions
    suffix = uuid.uuid4().hex[:8]
    source, target = f"{SOURCE_TOPIC}-{suffix}", f"{TARGET_TOPIC}-{suffix}"
    for topic in (source, target):
        await ensure_topic(bootstrap, topic, partitions)
    value = bytes(200)
    produced = await fill(bootstrap, source, value, records)
    rate = await passthrough(bootstrap, source, target, records)
    paced_source, paced_target = f"{source}-paced", f"{target}-paced"
    for topic in (paced_source, paced_target):
        await ensure_topic(bootstrap, topic, partitions)
    latencies = await passthrough_latency(
        bootstrap, paced_source, paced_target, RATE, seconds
    )
    return {
        "record_bytes": len(value),
        "records": records,
        "produce_records_per_s": round(produced),
        "records_per_s": round(rate),
        "paced_rate": RATE,
        "paced_records": len(latencies),
        **percentiles("latency_ms", latencies),
    }


# --- billing backlog with N workers, in its own process ---------------------


async def _scaling_measure(args: argparse.Namespace) -> dict[str, Any]:
    """Bills and paid callbacks worked off by N workers in one group."""
    settings = get_settings()
    configured = settings.kafka_bootstrap_servers
    if configured:
        return await _scaling_on(configured, args.scaling_workers, args.records, None)
    broker = EmbeddedBroker()
    await asyncio.to_thread(broker.start)
    try:
        return await _scaling_on(
            broker.bootstrap, args.scaling_workers, args.records, broker.pid
        )
    finally:
        broker.stop()


async def _scaling_on(
    bootstrap: str, workers: int, orders: int, broker_pid: int | None
) -> dict[str, Any]:
    settings = get_settings()
    await apply_topics(
        bootstrap, CATALOGUE.values(), settings.partitions, settings.replication_factor
    )
    redis_url = ensure_redis(settings.redis_url, settings.redis_embedded_fallback)
    # A series of the run's own, so no other run's numbers mix in.
    series = f"9{random.randrange(1000):03d}{random.randrange(1000, 10_000)}"
    app_id = f"scaling-bench-{uuid.uuid4().hex[:8]}"
    records = _billing_backlog(orders, series)
    logs = Path(tempfile.mkdtemp(prefix="scaling-bench-"))
    procs = [
        _spawn_worker(bootstrap, redis_url, app_id, logs / f"w{i}.log")
        for i in range(workers)
    ]
    try:
        await wait_for_group(bootstrap, app_id, workers)
        busy = _cpu(procs, broker_pid)
        started = time.time()
        await _produce(bootstrap, records)
        stamps, numbers = await _receipts(bootstrap, orders, procs)
        busy = {
            role: round(s - busy[role], 1)
            for role, s in _cpu(procs, broker_pid).items()
        }
    finally:
        for proc in procs:
            stop(proc)
        await _clear_series(redis_url, series)
    seconds = max(stamps) / 1000 - started
    return {
        "workers": workers,
        "orders": orders,
        "input_events": len(records),
        "seconds": round(seconds, 2),
        "events_per_s": round(len(records) / seconds),
        "one_receipt_per_order": len(numbers) == orders
        and all(len(found) == 1 for found in numbers.values()),
        "cpu_seconds": busy,
        "worker_logs": str(logs),
    }


def _cpu(procs: list[subprocess.Popen[bytes]], broker: int | None) -> dict[str, float]:
    """CPU seconds used so far by the workers (together) and the broker."""
    used = {"workers": sum(cpu_seconds(proc.pid) for proc in procs)}
    if broker:
        used["broker"] = cpu_seconds(broker)
    return used


def _billing_backlog(orders: int, series: str) -> list[tuple[str, bytes, bytes]]:
    """One bill and one paid callback per order, bills first."""
    tag = uuid.uuid4().hex[:8].upper()
    bills = [bench_bill(f"SCALE{tag}{index:08d}", series) for index in range(orders)]
    return [
        (billing.BILLS.name, bill.order_id.encode(), bill_value(bill)) for bill in bills
    ] + [
        (
            billing.CALLBACKS.name,
            bill.order_id.encode(),
            callback_value(bill, PaymentStatus.PAID, "n1"),
        )
        for bill in bills
    ]


async def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = bulk_producer(bootstrap)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value=value, key=key)
            for topic, key, value in records
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _receipts(
    bootstrap: str, orders: int, procs: list[subprocess.Popen[bytes]]
) -> tuple[list[int], dict[str, set[str]]]:
    """Broker timestamps of the receipts, and the numbers given per order."""
    codec = default_codec()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    stamps: list[int] = []
    numbers: dict[str, set[str]] = {}
    deadline = time.monotonic() + STEP_LIMIT_S / 2
    try:
        parts = await partitions_of(consumer, billing.RECEIPTS.name)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while len(numbers) < orders:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(numbers)} of {orders} receipts")
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a worker exited")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    _schema, record = codec.decode(message.value)
                    numbers.setdefault(record["order_id"], set()).add(
                        record["receipt_number"]
                    )
                    stamps.append(message.timestamp)
    finally:
        await consumer.stop()
    return stamps, numbers


def _spawn_worker(
    bootstrap: str, redis_url: str, app_id: str, log: Path
) -> subprocess.Popen[bytes]:
    return spawn_worker(
        log,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        REDIS_URL=redis_url,
        EDUSTREAM_APP_ID=app_id,
        EDUSTREAM_LOG_LEVEL="WARNING",
    )


async def _clear_series(redis_url: str, series: str) -> None:
    client = async_client(redis_url)
    try:
        await client.delete(*series_keys(series))
    finally:
        await client.aclose()


# --- the table --------------------------------------------------------------


def _render(report: dict[str, Any], rows: list[Row]) -> str:
    header = (
        "| benchmark | events/s | p50 ms | p99 ms | peak RSS MB "
        "| ratio to baseline | load | notes |"
    )
    lines = [
        f"{report['date']}, {report['machine']}"
        f"{', --quick' if report['quick'] else ''}, {report['seconds']} s in all",
        "",
        header,
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = row.ratio
        lines.append(
            f"| {row.name} | {_number(row.events_per_s)} | {_number(row.p50_ms, 1)} "
            f"| {_number(row.p99_ms, 1)} | {_number(row.peak_rss_mb)} "
            f"| {_number(ratio, 3)} | {_number(row.load, 1)} | {row.note} |"
        )
    return "\n".join(lines)


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


if __name__ == "__main__":
    main()
