"""``edustream chaos``: the demo city under faults, checked by id.

Our promise is effectively-once output on an at-least-once broker: every
input has exactly one effect. Each fault below gets its own run of the demo
city, on its own fresh embedded broker, with the fault injected while the
phases play. Afterwards the run is checked like the demo (every expected
output kind, counted by distinct id) plus invariants that counting alone
would miss: every receipt id has one number, every series is numbered
1..N with no gap and no reuse.

- ``crash``: kill -9 of the worker at random moments, restarting it.
- ``rebalance``: a second worker joins; the first is killed mid-rebalance.
- ``redis``: the flows' Redis stops answering (SIGSTOP) for a while.
- ``poison``: a burst of malformed records and a 5 MB payload, mixed with
  the city's good records; reports the good-output rate during the burst.
- ``redelivery``: once everything is out, the worker's committed offsets are
  rewound to the start of every input partition and it runs again: every
  input is delivered twice, in a different interleaving.

The broker restart fault is a separate check (``tests/faults``): the
embedded broker loses its memory, so the promise there is a loud stop.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from edustream.demo.outputs import OutputCounter
from edustream.demo.runner import (
    RunContext,
    build_scenarios,
    run_scenarios,
)
from edustream.demo.scenario import Publication, Scenario
from edustream.logs import get_logger
from edustream.settings import Settings
from infra.broker import EmbeddedBroker, free_port
from infra.redis import answers, start_embedded
from topics import aid, billing, growth, upstream

log = get_logger(component="chaos")


@dataclass
class Bounds:
    """How hard each fault hits; CI uses smaller numbers than a full run."""

    kills: int = 20
    outage_s: float = 30.0
    burst: int = 10_000
    big_payload_bytes: int = 5 * 1024 * 1024
    scale: float = 1.0
    timeout_s: float = 600.0


BOUNDED = Bounds(kills=5, outage_s=10.0, burst=2_000, scale=0.3, timeout_s=300.0)


@dataclass
class FaultRow:
    """One line of the harness's table."""

    fault: str
    injected: int = 0
    inputs: int = 0
    outputs: int = 0
    missing: int = 0
    doubled: int = 0
    dead_letters: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Zero missing and zero doubled."""
        return self.missing == 0 and self.doubled == 0


@dataclass
class _Injection:
    count: int = 0
    notes: list[str] = field(default_factory=list)


def run_chaos(
    settings: Settings, faults: list[str], bounds: Bounds, seed: int
) -> list[FaultRow]:
    """Run each named fault on a fresh broker; return one row per fault."""
    rows = []
    for name in faults:
        rows.append(_run_one(settings, name, bounds, seed))
        print(render_table(rows[-1:]), flush=True)
    return rows


def _run_one(settings: Settings, name: str, bounds: Bounds, seed: int) -> FaultRow:
    injection = _Injection()
    fault = FAULTS[name](bounds, injection, random.Random(seed))
    scenarios = build_scenarios(settings, seed, bounds.scale)
    workdir = Path(tempfile.mkdtemp(prefix=f"edustream-chaos-{name}-"))
    with _OwnRedis() as redis, EmbeddedBroker() as broker:
        injection.notes.append(f"redis pid {redis.pid}")
        counter, _elapsed, _log = asyncio.run(
            run_scenarios(
                settings,
                broker.bootstrap,
                redis.url,
                scenarios,
                workdir,
                bounds.timeout_s,
                fault=lambda ctx: fault(ctx, redis),
                n_workers=1,
            )
        )
    return _row(name, scenarios, counter, injection)


def _row(
    name: str, scenarios: list[Scenario], counter: OutputCounter, injection: _Injection
) -> FaultRow:
    expected: dict[str, int] = {}
    for s in scenarios:
        expected.update(s.expected)
    row = FaultRow(fault=name, injected=injection.count, notes=injection.notes[1:])
    row.inputs = sum(
        len(p.publications) + len(p.callbacks) for s in scenarios for p in s.phases
    )
    for kind, want in expected.items():
        got = counter.observed(kind)
        row.outputs += got
        if kind.endswith("dead_letters"):
            row.dead_letters += got
            # Injected poison adds dead letters beyond the city's own.
            row.missing += max(0, want - got)
            continue
        row.missing += max(0, want - got)
        row.doubled += max(0, got - want)
    row.doubled += _receipt_number_faults(counter, row.notes)
    return row


def _receipt_number_faults(counter: OutputCounter, notes: list[str]) -> int:
    """Receipts with two numbers, numbers given twice, gaps in a series."""
    numbers_of: dict[str, set[str]] = defaultdict(set)
    by_series: dict[str, dict[str, str]] = defaultdict(dict)
    faults = 0
    for spec in (billing.RECEIPTS, billing.RED_RECEIPTS):
        for r in counter.records.get(spec.name, []):
            rid = str(r.get("receipt_id") or r.get("event_id"))
            code, number = str(r.get("receipt_code")), str(r.get("receipt_number"))
            numbers_of[rid].add(f"{code}/{number}")
            seen = by_series[code].setdefault(number, rid)
            if seen != rid:
                faults += 1
                notes.append(f"receipt number {code}/{number} given twice")
    faults += sum(len(v) - 1 for v in numbers_of.values() if len(v) > 1)
    for code, numbers in by_series.items():
        values = sorted(int(n) for n in numbers)
        if values != list(range(1, len(values) + 1)):
            faults += 1
            notes.append(f"series {code} is not 1..{len(values)}")
    return faults


def render_table(rows: list[FaultRow]) -> str:
    """The harness's table, one line per fault."""
    head = (
        f"{'fault':12} {'injected':>8} {'inputs':>7} {'outputs':>8} "
        f"{'missing':>7} {'doubled':>7} {'dead letters':>12}  notes"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.fault:12} {r.injected:>8} {r.inputs:>7} {r.outputs:>8} "
            f"{r.missing:>7} {r.doubled:>7} {r.dead_letters:>12}  {'; '.join(r.notes)}"
        )
    return "\n".join(lines)


# --- faults -----------------------------------------------------------------

FaultFn = Callable[[RunContext, "_OwnRedis"], Any]


def _crash(bounds: Bounds, inj: _Injection, rng: random.Random) -> FaultFn:
    async def inject(ctx: RunContext, _redis: _OwnRedis) -> None:
        for _ in range(bounds.kills):
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            ctx.workers.kill(0)
            inj.count += 1
            ctx.workers.start(0)

    return inject


def _rebalance(bounds: Bounds, inj: _Injection, rng: random.Random) -> FaultFn:
    async def inject(ctx: RunContext, _redis: _OwnRedis) -> None:
        for _ in range(max(1, bounds.kills // 5)):
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            ctx.workers.start(1)
            # The group is rebalancing now: the first worker dies in the middle.
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            ctx.workers.kill(0)
            inj.count += 1
            await asyncio.sleep(rng.uniform(3.0, 6.0))
            ctx.workers.start(0)
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            ctx.workers.kill(1)

    return inject


def _redis_outage(bounds: Bounds, inj: _Injection, rng: random.Random) -> FaultFn:
    async def inject(ctx: RunContext, redis: _OwnRedis) -> None:
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        redis.pause()
        inj.count += 1
        started = time.monotonic()
        await asyncio.sleep(bounds.outage_s)
        redis.resume()
        inj.notes.append(f"redis stopped {time.monotonic() - started:.0f}s")

    return inject


def _poison(bounds: Bounds, inj: _Injection, rng: random.Random) -> FaultFn:
    async def inject(ctx: RunContext, _redis: _OwnRedis) -> None:
        await asyncio.sleep(1.0)
        targets = [aid.REGISTRY_CHANGES, billing.CALLBACKS, growth.SCANS]
        bad = [
            Publication(rng.choice(targets), b"poison", _malformed(rng))
            for _ in range(bounds.burst)
        ]
        before, t0 = _good_outputs(ctx.counter), time.monotonic()
        for start in range(0, len(bad), 500):
            pending = [
                await ctx.producer.send(p.spec.name, value=p.value, key=p.key)
                for p in bad[start : start + 500]
            ]
            await asyncio.gather(*pending)
        inj.count += len(bad)
        inj.count += await _send_big(ctx, bounds.big_payload_bytes, inj)
        await asyncio.sleep(5.0)
        rate = (_good_outputs(ctx.counter) - before) / (time.monotonic() - t0)
        inj.notes.append(f"good outputs during burst {rate:.0f}/s")

    return inject


def _redelivery(_bounds: Bounds, inj: _Injection, rng: random.Random) -> FaultFn:
    async def inject(ctx: RunContext, _redis: _OwnRedis) -> None:
        await ctx.phases_done.wait()
        await asyncio.sleep(3.0)
        copied, partitions = await _replay_partitions(ctx, rng)
        inj.count += copied
        inj.notes.append(f"replayed {copied} records of {partitions} partitions")
        await asyncio.sleep(15.0)

    return inject


FAULTS: dict[str, Callable[[Bounds, _Injection, random.Random], FaultFn]] = {
    "crash": _crash,
    "rebalance": _rebalance,
    "redis": _redis_outage,
    "poison": _poison,
    "redelivery": _redelivery,
}


def _malformed(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 64))
    if kind == 1:
        # A wire header naming a real schema, then a truncated body.
        return b"\x00" + rng.randbytes(4) + rng.randbytes(3)
    return b"\x00\x7f\xff\xff\xfe" + rng.randbytes(16)


async def _send_big(ctx: RunContext, size: int, inj: _Injection) -> int:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, max_request_size=size + 1024 * 1024
    )
    await producer.start()
    try:
        await producer.send_and_wait(growth.SCANS.name, b"\x00" * size, key=b"big")
    except KafkaError as exc:
        inj.notes.append(
            f"broker refused the {size} byte payload ({type(exc).__name__})"
        )
        return 0
    finally:
        await producer.stop()
    return 1


def _good_outputs(counter: OutputCounter) -> int:
    return sum(len(ids) for kind, ids in counter.ids.items() if "dead" not in kind)


async def _replay_partitions(ctx: RunContext, rng: random.Random) -> tuple[int, int]:
    """Copy every upstream partition's records, from a random earlier offset,
    to the end of the same partition: each is delivered again, interleaved
    differently with the other partitions and topics."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ctx.bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    copied = partitions = 0
    try:
        for spec in upstream():
            for p in sorted(consumer.partitions_for_topic(spec.name) or ()):
                records = await _read_all(consumer, TopicPartition(spec.name, p))
                if not records:
                    continue
                start = rng.randrange(len(records))
                for key, value in records[start:]:
                    await ctx.producer.send(
                        spec.name, value=value, key=key, partition=p
                    )
                copied += len(records) - start
                partitions += 1
        await ctx.producer.flush()
    finally:
        await consumer.stop()
    return copied, partitions


async def _read_all(
    consumer: AIOKafkaConsumer, tp: TopicPartition
) -> list[tuple[bytes | None, bytes | None]]:
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    found: list[tuple[bytes | None, bytes | None]] = []
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
        if not batch:
            break
        found.extend((m.key, m.value) for m in batch.get(tp, []))
    return found


class _OwnRedis:
    """A Redis server owned by the harness, so an outage hurts nobody else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def __enter__(self) -> _OwnRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            # No system Redis: the embedded one serves, but cannot be paused.
            self.url = start_embedded()
            return self
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        self.pid = self._proc.pid
        deadline = time.monotonic() + 10
        while not answers(self.url) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def pause(self) -> None:
        """Stop answering (the process is frozen, connections hang)."""
        if self._proc:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Answer again, with every key intact."""
        if self._proc:
            os.kill(self._proc.pid, signal.SIGCONT)

    def __exit__(self, *_exc: object) -> None:
        if self._proc:
            self.resume()
            self._proc.terminate()
            self._proc.wait(timeout=10)
