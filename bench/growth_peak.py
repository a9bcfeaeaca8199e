"""Benchmark: a morning peak of venue check-ins through the growth flow.

Starts an embedded broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``, which must
then hold no earlier growth records) and replays a morning peak through the
growth flow on one worker process:

- ``--venues`` catalogued venues (default 2,500) and one enrolment fact per
  student, applied by a first worker, which then stops;
- ``--events`` check-ins and check-outs (default 50,000: one visit per
  student, 25,000 students), published while no worker runs, in the order
  the devices would send them (by time, check-outs 20 to 90 minutes after
  their check-ins, between 07:00 and 09:30);
- a second worker then works the whole peak off as fast as it can.

It reports, all measured in the same run on the same broker:

- the raw ceiling: one aiokafka consumer reading the peak's scan records
  and one producer writing each one back out (consume -> produce
  pass-through, no processing), in records per second;
- the growth flow: scans per second, from the worker's first state write to
  its last statement (both read from the records' broker timestamps, so
  start-up, group join and table recovery are not counted), and the ratio
  to the pass-through;
- a check that the flow made exactly one statement per visit.

The worker runs the growth agents only, with the production code and the
app's settings; ``--tuning`` names changes to measure (see ``TUNINGS``), one
run each on a broker of its own, so each is compared with the same kind of
baseline and pass-through.

Usage::

    python bench/growth_peak.py [--events 50000] [--tuning baseline producer]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import drain_without_tasks, partitions_of, passthrough

from avro_schemas import default_codec
from edustream.growth.events import EnrolmentFact, Scan, Venue
from edustream.growth.terms import local_minute
from edustream.growth.vocabulary import CATEGORIES, Direction
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from streams.faust_compat import high_watermarks
from topics import CATALOGUE, growth

MINUTE = 60_000
PEAK_DAY = date(2026, 9, 15)

# The pass-through writes here; it is the bench's own, not a catalogue topic.
PASSTHROUGH_TOPIC = "bench.growth-passthrough"


def _baseline(_app: faust.App) -> None:
    """The worker exactly as shipped."""


def _producer(app: faust.App) -> None:
    """Let the producer batch: wait up to 5 ms and fill 256 kB batches."""
    app.conf.producer_linger = 0.005
    app.conf.producer_max_batch_size = 256 * 1024


def _bigger_batches(_app: faust.App) -> None:
    """Hand the growth agent 5,000 events per batch instead of 1,000."""
    from streams import growth as flow  # noqa: PLC0415

    flow.BATCH_SIZE = 5000


def _direct_drain(app: faust.App) -> None:
    """Producer batching, and Faust's fetch loop without a task per message
    (``common.drain_without_tasks``)."""
    _producer(app)
    drain_without_tasks()


TUNINGS: dict[str, Callable[[faust.App], None]] = {
    "baseline": _baseline,
    "producer": _producer,
    "batches": _bigger_batches,
    "direct-drain": _direct_drain,
}


def main() -> None:
    """Run the benchmark and print one JSON document."""
    args = _arguments()
    if args.serve:
        _serve(args.tuning[0])
        return

    report: dict[str, Any] = {"events": args.events, "venues": args.venues}
    report["runs"] = [_run(args, tuning) for tuning in args.tuning]
    print(json.dumps(report, indent=2))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--venues", type=int, default=2_500)
    parser.add_argument(
        "--tuning", nargs="+", default=["baseline"], choices=sorted(TUNINGS)
    )
    parser.add_argument("--limit-s", type=float, default=600.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def _run(args: argparse.Namespace, tuning: str) -> dict[str, Any]:
    """One measurement on a broker of its own, so no run inherits state."""
    configured = get_settings().kafka_bootstrap_servers
    if configured:
        return asyncio.run(_measure_once(args, configured, tuning))
    with EmbeddedBroker() as broker:
        return asyncio.run(_measure_once(args, broker.bootstrap, tuning))


async def _measure_once(
    args: argparse.Namespace, bootstrap: str, tuning: str
) -> dict[str, Any]:
    settings = get_settings()
    await apply_topics(bootstrap, CATALOGUE.values(), settings.partitions, 1)
    await _create_passthrough(bootstrap, settings.partitions)
    peak = Peak(args.events // 2, args.venues)
    app_id = f"growth-peak-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="growth-peak-"))

    await _publish(bootstrap, peak.catalogue_and_enrolments())
    await _warm_up(bootstrap, app_id, tuning, workdir, peak, args.limit_s)
    changelog = f"{app_id}-growth-students-changelog"
    before = await _end_offsets(bootstrap, changelog)
    await _publish(bootstrap, peak.scans())

    flow = await _work_off(
        bootstrap, app_id, tuning, workdir, peak, changelog, before, args.limit_s
    )
    passthrough = await _passthrough(bootstrap, len(peak.scan_records))
    return {
        "tuning": tuning,
        "change": (TUNINGS[tuning].__doc__ or "").split("\n")[0],
        "passthrough_records_per_s": round(passthrough),
        **flow,
        "ratio_to_passthrough": round(flow["events_per_s"] / passthrough, 3),
        "worker_log": str(workdir / "worker.log"),
    }


class Peak:
    """The morning peak: venues, students, and their scans in time order."""

    def __init__(self, visits: int, venues: int) -> None:
        rng = random.Random(20260915)
        codec = default_codec()
        self.visits = visits
        self.venue_records = [
            (
                growth.VENUES,
                v.venue_id,
                codec.encode(growth.VENUES.schema or "", v.to_dict()),
            )
            for v in (_venue(i) for i in range(venues))
        ]
        self.accounts = [f"stu_peak{i:08d}" for i in range(visits)]
        self.enrolment_records = [
            (
                growth.ENROLMENTS,
                account,
                codec.encode(growth.ENROLMENTS.schema or "", _enrolment(account, i)),
            )
            for i, account in enumerate(self.accounts)
        ]
        self.scan_records = _scans(rng, self.accounts, venues)

    def catalogue_and_enrolments(self) -> list[tuple[Any, str, bytes]]:
        """What the first worker applies before the peak."""
        return self.venue_records + self.enrolment_records

    def scans(self) -> list[tuple[Any, str, bytes]]:
        """The peak itself."""
        return self.scan_records


def _venue(index: int) -> Venue:
    return Venue(
        event_id=str(uuid.UUID(int=index + 1, version=4)),
        occurred_at=local_minute(PEAK_DAY, 0),
        venue_id=f"PEAK-VEN{index:05d}",
        name=f"Peak venue {index}",
        district_code="310104",
        categories=(CATEGORIES[index % len(CATEGORIES)],),
        opens_at=7 * 60,
        closes_at=21 * 60,
        capacity=500,
    )


def _enrolment(account: str, index: int) -> dict[str, Any]:
    fact = EnrolmentFact(
        event_id=str(uuid.UUID(int=10**9 + index, version=4)),
        occurred_at=local_minute(PEAK_DAY, 0) - 30 * 24 * 60 * MINUTE,
        student_account=account,
        school_id=f"SCH{index % 400:05d}",
        district_code="310104",
        enrolled=True,
    )
    return fact.to_dict()


def _scans(
    rng: random.Random, accounts: list[str], venues: int
) -> list[tuple[Any, str, bytes]]:
    codec = default_codec()
    timed: list[tuple[int, str, bytes]] = []
    for account in accounts:
        venue_id = f"PEAK-VEN{rng.randrange(venues):05d}"
        start = local_minute(PEAK_DAY, 7 * 60) + rng.randrange(150 * MINUTE)
        end = start + rng.randrange(20, 91) * MINUTE
        for direction, at in ((Direction.CHECK_IN, start), (Direction.CHECK_OUT, end)):
            scan = Scan(
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                occurred_at=at + 2_000,
                device_id=f"gate-{venue_id}",
                student_account=account,
                venue_id=venue_id,
                activity_id=None,
                direction=direction,
                scanned_at=at,
            )
            value = codec.encode(growth.SCANS.schema or "", scan.to_dict())
            timed.append((at, account, value))
    timed.sort(key=lambda entry: entry[0])
    return [(growth.SCANS, account, value) for _, account, value in timed]


async def _create_passthrough(bootstrap: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = await admin.list_topics()
        if PASSTHROUGH_TOPIC not in existing:
            await admin.create_topics([NewTopic(PASSTHROUGH_TOPIC, partitions, 1)])
    finally:
        await admin.close()


def _producer_for(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )


async def _publish(bootstrap: str, records: list[tuple[Any, str, bytes]]) -> None:
    producer = _producer_for(bootstrap)
    await producer.start()
    try:
        pending = []
        for spec, key, value in records:
            pending.append(
                await producer.send(spec.name, value=value, key=key.encode())
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _warm_up(  # noqa: PLR0917 - one call site, all required
    bootstrap: str,
    app_id: str,
    tuning: str,
    workdir: Path,
    peak: Peak,
    limit_s: float,
) -> None:
    """Apply catalogue and enrolments with a first worker, then stop it."""
    worker = _spawn_worker(bootstrap, app_id, tuning, workdir / "worker.log")
    try:
        changelog = f"{app_id}-growth-students-changelog"
        await _wait_records(bootstrap, changelog, len(peak.accounts), worker, limit_s)
    finally:
        _stop(worker)


async def _work_off(  # noqa: PLR0917 - one call site, all required
    bootstrap: str,
    app_id: str,
    tuning: str,
    workdir: Path,
    peak: Peak,
    changelog: str,
    before: dict[TopicPartition, int],
    limit_s: float,
) -> dict[str, Any]:
    """Run a second worker over the waiting peak and time it."""
    worker = _spawn_worker(bootstrap, app_id, tuning, workdir / "worker.log")
    try:
        statements = await _wait_records(
            bootstrap, growth.STATEMENTS.name, peak.visits, worker, limit_s
        )
        first_write = await _first_timestamp(bootstrap, changelog, before)
    finally:
        _stop(worker)
    seconds = (max(statements) - first_write) / 1000
    scans = len(peak.scan_records)
    return {
        "seconds": round(seconds, 2),
        "events_per_s": round(scans / seconds),
        "statements": len(statements),
        "statements_expected": peak.visits,
    }


def _spawn_worker(
    bootstrap: str, app_id: str, tuning: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EDUSTREAM_LOG_FORMAT": "json",
        "EDUSTREAM_APP_ID": app_id,
    }
    out = log.open("ab")
    return subprocess.Popen(  # noqa: S603 - this interpreter running this script
        [sys.executable, __file__, "--serve", "--tuning", tuning],
        env=env,
        stdout=out,
        stderr=out,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_records(
    bootstrap: str,
    topic: str,
    count: int,
    worker: subprocess.Popen[bytes],
    limit_s: float,
) -> list[int]:
    """Broker timestamps of the first ``count`` records on ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    deadline = time.monotonic() + limit_s
    try:
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        stamps: list[int] = []
        while len(stamps) < count:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(stamps)} of {count} on {topic}")
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            stamps += [m.timestamp for ms in batches.values() for m in ms]
        return stamps
    finally:
        await consumer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """True log ends (the embedded broker's ListOffsets can fall short)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        listed = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    marks = await high_watermarks(bootstrap, listed)
    return {tp: max(int(end), marks.get(tp) or 0) for tp, end in listed.items()}


async def _first_timestamp(
    bootstrap: str, topic: str, since: dict[TopicPartition, int]
) -> int:
    """The earliest broker timestamp on ``topic`` after the ``since`` offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        batches = await consumer.getmany(timeout_ms=2000, max_records=len(since) * 50)
        return int(min(ms[0].timestamp for ms in batches.values() if ms))
    finally:
        await consumer.stop()


async def _passthrough(bootstrap: str, records: int) -> float:
    """Consume the peak's scans and produce each one again; records/s."""
    return await passthrough(bootstrap, growth.SCANS.name, PASSTHROUGH_TOPIC, records)


def _serve(tuning: str) -> None:
    """Run the growth agents in this process, with the tuning applied."""
    from edustream import logs  # noqa: PLC0415 - the worker child only

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    from faust import Worker  # noqa: PLC0415

    from streams import growth as growth_flow  # noqa: PLC0415, F401 - agents
    from streams.app import app  # noqa: PLC0415

    TUNINGS[tuning](app)
    Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
