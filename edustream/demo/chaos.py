"""``edustream chaos``: the demo city under faults, checked by id.

Our promise is effectively-once output on an at-least-once broker: every
input has exactly one effect. Each fault below gets its own run of the demo
city, on its own fresh embedded broker and its own Redis, with the fault
injected while the phases play. Once every consumer group has caught up,
the run is checked by id (``edustream.demo.chaos_checks``): every expected
output once, nothing unexpected, receipt numbers consecutive, every
injected input dead-lettered or refused with its reason, the read models
agreeing with the topics, and no ID number or name in clear on an output
topic or in any log line.

- ``crash``: kill -9 of the worker at random moments while it is producing,
  restarting it each time.
- ``rebalance``: a second worker joins the group; the first is killed while
  the group rebalances, then the same the other way round.
- ``redis``: the flows' Redis first hangs (SIGSTOP), then is gone
  (SIGKILL, connections refused), then comes back from its append-only
  file, while payments are arriving.
- ``poison``: random bytes, truncated Avro, unknown schema ids and one 5 MB
  record, a burst of them published together with the city's good records;
  reports the good-output rate while the burst is worked through.
- ``redelivery``: the worker is killed and its group's committed offsets
  rewound to earlier offsets, so inputs are delivered again.
- ``duplicates``: records of every input partition, from a random earlier
  offset, copied to its end, so they arrive again, after later ones.
- ``security``: every accepted payment callback replayed, tampered
  callbacks, guardians answering offers addressed to another family, and
  guardians asking for another family's growth archive.
- ``privacy``: refused records from the upstream topics that carry ID
  numbers and names. Every run scans every output topic (values and keys)
  and every log line for them; this one gives the scan something to find.

The broker restart fault is a separate check (``tests/faults``): the
embedded broker loses its memory, so the promise there is a loud stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiokafka import AIOKafkaProducer

from avro_schemas import default_codec
from edustream.demo import groups
from edustream.demo.chaos_checks import (
    Coord,
    FaultRow,
    Injection,
    ReadModels,
    read_models,
    verdict,
)
from edustream.demo.runner import (
    RunContext,
    build_scenarios,
    post_callbacks,
    run_scenarios,
)
from edustream.demo.scenario import HttpCallback, Publication, Scenario
from edustream.errors import CodecError
from edustream.http.growth import CALLER_HEADER, sign_caller
from edustream.logs import get_logger
from edustream.settings import Settings
from infra.broker import EmbeddedBroker, free_port
from infra.redis import answers, async_client, start_embedded
from topics import FLOWS, aid, billing, growth, upstream
from topics.spec import TopicSpec

log = get_logger(component="chaos")


@dataclass(frozen=True)
class Bounds:
    """How hard each fault hits; CI uses smaller numbers than a full run."""

    kills: int = 20
    rebalances: int = 3
    outage_s: float = 30.0
    burst: int = 10_000
    big_payload_bytes: int = 5 * 1024 * 1024
    # Forged answers, tampered callbacks and foreign archive queries, each.
    probes: int = 20
    scale: float = 1.0
    timeout_s: float = 900.0
    # How long every consumer group gets to catch up before the check.
    settle_s: float = 300.0


BOUNDED = Bounds(
    kills=5,
    rebalances=1,
    outage_s=10.0,
    burst=2_000,
    probes=5,
    scale=0.2,
    timeout_s=300.0,
    settle_s=120.0,
)


def run_chaos(
    settings: Settings, faults: list[str], bounds: Bounds, seed: int
) -> list[FaultRow]:
    """Run each named fault on a fresh broker; return one row per fault."""
    rows = []
    for name in faults:
        rows.append(run_fault(settings, name, bounds, seed))
        print(render_table(rows[-1:]), flush=True)
    return rows


def run_fault(settings: Settings, name: str, bounds: Bounds, seed: int) -> FaultRow:
    """One run of the city with one fault; its row of the table."""
    scenarios = build_scenarios(settings, seed, bounds.scale)
    workdir = Path(tempfile.mkdtemp(prefix=f"edustream-chaos-{name}-"))
    injection = Injection()
    snapshots: list[ReadModels] = []
    harness_log = workdir / "harness.log"
    started = time.monotonic()
    with (
        _OwnRedis(workdir) as redis,
        EmbeddedBroker() as broker,
        _stderr_copied_to(harness_log),
    ):
        run = _Run(
            settings,
            scenarios,
            bounds,
            injection,
            random.Random(f"{name}:{seed}"),
            redis,
            harness_log,
        )

        async def fault(ctx: RunContext) -> None:
            run.ctx = ctx
            await FAULTS[name](run)
            await ctx.phases_done.wait()
            await run.settle()
            snapshots.append(await _read_models(redis.url))

        counter, _elapsed, worker_log = asyncio.run(
            run_scenarios(
                settings,
                broker.bootstrap,
                redis.url,
                scenarios,
                workdir,
                bounds.timeout_s,
                fault=fault,
                n_workers=1,
            )
        )
    texts = {
        "worker log": worker_log.read_text(encoding="utf-8", errors="replace"),
        "harness log": harness_log.read_text(encoding="utf-8", errors="replace"),
    }
    row = verdict(
        name,
        scenarios,
        counter,
        injection=injection,
        models=snapshots[0] if snapshots else None,
        texts=texts,
    )
    if not snapshots:
        row.problems.append("the run ended before the read models were read")
    row.notes.append(f"{time.monotonic() - started:.0f}s, logs in {workdir}")
    return row


def render_table(rows: list[FaultRow]) -> str:
    """The harness's table, one line per fault, notes and problems below."""
    head = (
        f"{'fault':11} {'injected':>8} {'inputs':>7} {'outputs':>7} "
        f"{'missing':>7} {'doubled':>7} {'unexpected':>10} {'dead letters':>12} "
        f"{'leaks':>5}  result"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.fault:11} {r.injected:>8} {r.inputs:>7} {r.outputs:>7} "
            f"{r.missing:>7} {r.doubled:>7} {r.unexpected:>10} {r.dead_letters:>12} "
            f"{r.leaks:>5}  {'ok' if r.ok else 'FAILED'}"
        )
    for r in rows:
        lines.extend(f"  {r.fault}: {note}" for note in r.notes if note)
        lines.extend(f"  {r.fault}: PROBLEM {p}" for p in r.problems)
    return "\n".join(lines)


@dataclass
class _Run:
    """Everything a fault can reach while the city plays."""

    settings: Settings
    scenarios: list[Scenario]
    bounds: Bounds
    inj: Injection
    rng: random.Random
    redis: _OwnRedis
    harness_log: Path
    ctx: RunContext = field(init=False)

    def outputs(self) -> int:
        """Output records seen so far, every topic, copies included."""
        return sum(self.ctx.counter.raw.values())

    async def until_output(self, since: int, limit_s: float) -> bool:
        """Wait until more than ``since`` output records were seen."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.outputs() > since:
                return True
            await asyncio.sleep(0.1)
        return False

    async def until_phase(self, phase: int) -> None:
        """Wait until the runner plays ``phase`` (1-based) or a later one."""
        # The runner sets a plain number; looking often costs nothing.
        while self.ctx.phase < phase and not self.ctx.phases_done.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def settle(self) -> None:
        """Wait for every group to catch up; a group that does not is a problem."""
        lagging = await groups.settle(self.ctx.bootstrap, self.bounds.settle_s)
        if lagging:
            self.inj.problems.append(f"groups still behind: {lagging}")
        # The counter reads the last outputs a moment after they are stored.
        await asyncio.sleep(2.0)

    def logged(self, path: Path, event: str) -> int:
        """How many log lines of the file have an event starting ``event``,
        rendered as JSON or (the harness on a terminal) for the console."""
        if not path.exists():
            return 0
        needles = (f'"event": "{event}', f"] {event}")
        with path.open(encoding="utf-8", errors="replace") as lines:
            return sum(1 for line in lines if any(n in line for n in needles))

    async def until_logged(self, path: Path, event: str, since: int) -> bool:
        """Wait (30 s at most) until more than ``since`` lines log ``event``."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.logged(path, event) > since:
                return True
            await asyncio.sleep(0.1)
        return False


# --- faults -----------------------------------------------------------------


async def _crash(run: _Run) -> None:
    """kill -9 while outputs flow; restart at once, as a supervisor would."""
    pool, busy, starting = run.ctx.workers, 0, 0
    for _ in range(run.bounds.kills):
        # Outputs the last worker stored can still be on their way to the
        # counter: the new one is working once it has logged its start and
        # outputs grow after that.
        await run.until_logged(pool.log_path, "worker_starting", starting)
        await run.until_output(run.outputs(), limit_s=15.0)
        await asyncio.sleep(run.rng.uniform(0.0, 2.0))
        before = run.outputs()
        await asyncio.sleep(0.5)
        busy += run.outputs() > before
        pool.kill(0)
        run.inj.count += 1
        starting = run.logged(pool.log_path, "worker_starting")
        pool.start(0)
    run.inj.notes.append(f"{busy} of {run.inj.count} kills while outputs flowed")


async def _rebalance(run: _Run) -> None:
    """Two workers share the partitions; one dies while the group rebalances.

    The joiner's JoinGroup puts the group into a rebalance; the member
    already in it learns so from its next heartbeat and logs it. That line
    is the moment to strike: the member is killed before it has rejoined.
    """
    pool = run.ctx.workers
    rebalancing = f"Heartbeat failed for group {run.settings.app_id} because it is"
    confirmed = 0
    for _ in range(run.bounds.rebalances):
        for victim, joiner in ((0, 1), (1, 0)):
            await run.until_output(run.outputs(), limit_s=15.0)
            seen = run.logged(pool.log_path, rebalancing)
            pool.start(joiner)
            confirmed += await run.until_logged(pool.log_path, rebalancing, seen)
            await asyncio.sleep(run.rng.uniform(0.0, 0.5))
            pool.kill(victim)
            run.inj.count += 1
    run.inj.notes.append(
        f"{run.inj.count} workers killed as a second one joined, "
        f"{confirmed} of them after logging that the group was rebalancing"
    )
    if confirmed == 0:
        run.inj.problems.append("no kill came while the group was rebalancing")


async def _redis_outage(run: _Run) -> None:
    """Redis hangs, then refuses, while payments arrive; nothing is skipped."""
    # Phase 2 is the first with payment callbacks: receipts need numbers.
    await run.until_phase(2)
    await asyncio.sleep(run.rng.uniform(0.0, 1.0))
    receipts = _receipt_count(run)
    worker_retries = run.logged(run.ctx.workers.log_path, "retrying")
    model_retries = run.logged(run.harness_log, "subscriber_retrying")
    half = run.bounds.outage_s / 2

    run.redis.freeze()
    await asyncio.sleep(half)
    run.redis.crash()
    await asyncio.sleep(half)
    during = _receipt_count(run) - receipts
    run.redis.restart()
    run.inj.count += 1

    await run.ctx.phases_done.wait()
    await run.settle()
    worker_retries = run.logged(run.ctx.workers.log_path, "retrying") - worker_retries
    model_retries = run.logged(run.harness_log, "subscriber_retrying") - model_retries
    run.inj.notes.append(
        f"redis hung {half:.0f}s then refused {half:.0f}s; {during} receipts "
        f"issued meanwhile; retries: worker {worker_retries}, "
        f"read models {model_retries}"
    )
    if worker_retries == 0:
        run.inj.problems.append("no flow retried: the outage met no work")


def _receipt_count(run: _Run) -> int:
    return len(run.ctx.counter.records.get(billing.RECEIPTS.name, []))


async def _poison(run: _Run) -> None:
    """A burst of malformed records among the city's good ones."""
    targets = _read_by_flows()
    sources = _truncation_sources(run.scenarios)
    bad = [
        _malformed(run.rng, targets, sources, index)
        for index in range(run.bounds.burst)
    ]
    good_before, dead_before = _good_outputs(run), _injected_dead_letters(run)
    started = time.monotonic()
    for chunk in range(0, len(bad), 200):
        # Published alongside the runner's first phase, through one producer:
        # the poison lands between the good records of every partition.
        await _send(run, bad[chunk : chunk + 200])
        await asyncio.sleep(0)
    await _send_big(run, run.bounds.big_payload_bytes)
    run.inj.count += len(run.inj.poison)
    run.inj.inputs += len(run.inj.poison)

    # The burst is worked through once every poison record is dead-lettered
    # by every flow that reads its topic.
    letters = sum(len(flows) for flows in run.inj.poison.values())
    first: float | None = None
    good_first = good_before
    deadline = started + run.bounds.timeout_s / 2
    while time.monotonic() < deadline:
        lettered = _injected_dead_letters(run) - dead_before
        if first is None and lettered:
            first, good_first = time.monotonic(), _good_outputs(run)
        if lettered >= letters:
            break
        await asyncio.sleep(0.2)
    if first is None:
        run.inj.problems.append("no poison record was dead-lettered")
        return
    window = max(time.monotonic() - first, 0.001)
    run.inj.notes.append(
        f"burst of {len(run.inj.poison)} worked through in {window:.1f}s: "
        f"{(_good_outputs(run) - good_first) / window:.0f} good outputs/s and "
        f"{len(run.inj.poison) / window:.0f} dead letters/s meanwhile"
    )


def _read_by_flows() -> list[TopicSpec]:
    """Upstream topics some flow reads (the others go to read models only)."""
    return [s for s in upstream() if set(s.readers) & set(FLOWS)]


def _truncation_sources(scenarios: list[Scenario]) -> dict[str, list[bytes]]:
    """Good records per topic, to cut short. Topics carrying personal data
    are left out, so the harness itself puts none on a dead-letter topic."""
    codec = default_codec()
    found: dict[str, list[bytes]] = {}
    for s in scenarios:
        for phase in s.phases:
            for p in phase.publications:
                if p.spec.personal_data:
                    continue
                try:
                    codec.decode(p.value)
                except CodecError:
                    continue
                found.setdefault(p.spec.name, []).append(p.value)
    return found


def _malformed(
    rng: random.Random,
    targets: list[TopicSpec],
    sources: dict[str, list[bytes]],
    index: int,
) -> Publication:
    """Random bytes, a good record cut short, or an unknown schema id."""
    spec = rng.choice(targets)
    key = f"poison-{index}".encode()
    kind = index % 3
    if kind == 1 and sources.get(spec.name):
        good = rng.choice(sources[spec.name])
        return Publication(spec, key, good[: rng.randrange(5, len(good))])
    if kind == 2:
        unknown = rng.randrange(0x7F000000, 0x7FFFFFFF).to_bytes(4, "big")
        return Publication(spec, key, b"\x00" + unknown + rng.randbytes(24))
    return Publication(spec, key, rng.randbytes(rng.randint(1, 64)))


async def _send(run: _Run, items: list[Publication]) -> list[Coord]:
    """Produce, then note where each record was stored and who reads it."""
    pending = [
        await run.ctx.producer.send(p.spec.name, value=p.value, key=p.key)
        for p in items
    ]
    coords = []
    for p, meta in zip(items, await asyncio.gather(*pending), strict=True):
        coord = (p.spec.name, meta.partition, meta.offset)
        run.inj.poison[coord] = _dead_lettering_flows(p.spec)
        coords.append(coord)
    return coords


async def _send_big(run: _Run, size: int) -> None:
    spec = growth.SCANS
    producer = AIOKafkaProducer(
        bootstrap_servers=run.ctx.bootstrap, max_request_size=size + 1024 * 1024
    )
    await producer.start()
    try:
        meta = await producer.send_and_wait(spec.name, b"\x00" * size, key=b"big")
    finally:
        await producer.stop()
    run.inj.poison[(spec.name, meta.partition, meta.offset)] = frozenset({"growth"})


def _dead_lettering_flows(spec: TopicSpec) -> frozenset[str]:
    """The flow that dead-letters a bad record of an upstream topic: the one
    the topic belongs to. Another flow reading it (growth reads the aid
    registry) skips such a record, so it is dead-lettered once."""
    owner = spec.name.split(".", 1)[0]
    return frozenset({owner} & set(spec.readers) & set(FLOWS))


def _good_outputs(run: _Run) -> int:
    return sum(n for topic, n in run.ctx.counter.raw.items() if "dead" not in topic)


def _injected_dead_letters(run: _Run) -> int:
    found = 0
    for spec in (aid.DEAD_LETTERS, billing.DEAD_LETTERS, growth.DEAD_LETTERS):
        for r in run.ctx.counter.records.get(spec.name, []):
            coord = (r["source_topic"], r["source_partition"], r["source_offset"])
            found += coord in run.inj.poison
    return found


async def _redelivery(run: _Run) -> None:
    """Crash the worker and rewind its group: inputs are delivered again."""
    await run.ctx.phases_done.wait()
    await run.settle()
    replayed = await _rewind(run)
    run.inj.count += replayed
    run.inj.notes.append(f"{replayed} records delivered again from rewound offsets")


async def _duplicates(run: _Run) -> None:
    """Copy input partitions to their own end: every input again, late."""
    await run.ctx.phases_done.wait()
    await run.settle()
    copied, partitions = await _copy_partitions(run)
    run.inj.count += copied
    run.inj.inputs += copied
    run.inj.notes.append(
        f"{copied} records copied to the end of {partitions} partitions"
    )


async def _rewind(run: _Run) -> int:
    """Stop the worker, move its group back, restart it: a replay."""
    group = run.settings.app_id
    # Stopped, not killed: it leaves the group at once, so the rewind does
    # not wait out its session (the crash fault covers a kill).
    run.ctx.workers.stop(0)
    snap = await groups.snapshot(run.ctx.bootstrap)
    committed = snap.committed.get(group, {})
    earlier = {tp: run.rng.randint(0, offset) for tp, offset in committed.items()}
    await groups.rewind(run.ctx.bootstrap, group, earlier)
    run.ctx.workers.start(0)
    return sum(committed[tp] - offset for tp, offset in earlier.items())


async def _copy_partitions(run: _Run) -> tuple[int, int]:
    """Every input partition's records from a random earlier offset, sent
    again to the end of the same partition: each arrives a second time,
    after records that first came later."""
    snap = await groups.snapshot(run.ctx.bootstrap)
    copied = partitions = 0
    for spec in _read_by_flows():
        for (topic, partition), end in sorted(snap.log_ends.items()):
            if topic != spec.name or end == 0:
                continue
            stored = await groups.read_partition(
                run.ctx.bootstrap, topic, partition, end
            )
            if not stored:
                continue
            tail = stored[run.rng.randrange(len(stored)) :]
            pending = [
                await run.ctx.producer.send(
                    topic, value=value, key=key, partition=partition
                )
                for _, key, value in tail
            ]
            metas = await asyncio.gather(*pending)
            for (offset, _, _), meta in zip(tail, metas, strict=True):
                copy = (topic, partition, meta.offset)
                run.inj.copies[copy] = (topic, partition, offset)
            copied += len(tail)
            partitions += 1
    return copied, partitions


async def _security(run: _Run) -> None:
    """Replayed and tampered callbacks, foreign answers and archive queries."""
    await run.ctx.phases_done.wait()
    await run.settle()
    assert run.ctx.ingress_url is not None
    await _replay_callbacks(run, run.ctx.ingress_url)
    await _tampered_callbacks(run, run.ctx.ingress_url)
    await _foreign_answers(run)
    await _foreign_archive_queries(run, run.ctx.ingress_url)


def _accepted_callbacks(run: _Run) -> list[HttpCallback]:
    return [
        cb
        for s in run.scenarios
        for p in s.phases
        for cb in p.callbacks
        if cb.expect_status < 300
    ]


async def _replay_callbacks(run: _Run, base: str) -> None:
    """Every accepted callback again, byte for byte: a captured request
    replayed. A channel resends exactly so, so the ingress may take it; the
    flow must then do nothing. One it refuses must be recorded."""
    callbacks = [
        replace(cb, resign=None)
        for cb in {cb.body: cb for cb in _accepted_callbacks(run)}.values()
    ]
    statuses = await post_callbacks(base, callbacks, concurrency=16)
    taken = refused = 0
    for cb, status in zip(callbacks, statuses, strict=True):
        if status < 300:
            taken += 1
        elif status == 400:
            refused += 1
            run.inj.refused_bodies.add(hashlib.sha256(cb.body).hexdigest())
        else:
            run.inj.problems.append(f"replayed callback answered {status}")
    run.inj.count += len(callbacks)
    run.inj.inputs += len(callbacks)
    run.inj.notes.append(
        f"{len(callbacks)} callbacks replayed: {taken} taken as resends (no "
        f"effect allowed), {refused} refused as stale"
    )


async def _tampered_callbacks(run: _Run, base: str) -> None:
    """Accepted callbacks with the amount changed after signing."""
    accepted = _accepted_callbacks(run)
    chosen = run.rng.sample(accepted, min(run.bounds.probes, len(accepted)))
    tampered = [_tamper(cb) for cb in chosen]
    statuses = await post_callbacks(base, tampered, concurrency=16)
    for cb, status in zip(tampered, statuses, strict=True):
        run.inj.refused_bodies.add(hashlib.sha256(cb.body).hexdigest())
        if status != 400:
            run.inj.problems.append(f"tampered callback answered {status}")
    run.inj.count += len(tampered)
    run.inj.inputs += len(tampered)
    run.inj.notes.append(f"{len(tampered)} tampered callbacks posted")


def _tamper(cb: HttpCallback) -> HttpCallback:
    body = cb.body
    if cb.path.endswith("wechat"):
        doc = json.loads(body)
        doc["id"] = f"{doc.get('id', '')}0"
        body = json.dumps(doc, separators=(",", ":")).encode()
    else:
        field_name = rb"total_amount" if cb.path.endswith("alipay") else rb"txnAmt"
        changed, n = re.subn(
            field_name + rb"=([0-9]+)", lambda m: m.group(0) + b"9", body, count=1
        )
        body = changed if n else body + b"&tampered=1"
    return replace(cb, body=body, expect_status=400, resign=None)


async def _foreign_answers(run: _Run) -> None:
    """Guardians accepting offers addressed to another family's guardian."""
    records = run.ctx.counter.records
    offers = {str(r["offer_id"]): r for r in records.get(aid.OFFERS.name, [])}
    settled = {
        str(r["offer_id"])
        for spec in (aid.GRANTS, aid.CLOSURES, aid.WITHDRAWALS)
        for r in records.get(spec.name, [])
        if "offer_id" in r
    }
    open_first = sorted(offers, key=lambda oid: (oid in settled, oid))
    chosen = open_first[: run.bounds.probes]
    guardians = sorted({str(r["guardian_account"]) for r in offers.values()})
    codec = default_codec()
    items = []
    for offer_id in chosen:
        offer = offers[offer_id]
        strangers = [g for g in guardians if g != offer["guardian_account"]]
        if not strangers:
            continue
        answer = {
            "event_id": str(uuid.UUID(int=run.rng.getrandbits(128), version=4)),
            "occurred_at": _millis(offer["occurred_at"]) + 3_600_000,
            "offer_id": offer_id,
            "student_ref": offer["student_ref"],
            "guardian_account": run.rng.choice(strangers),
            "answer": "ACCEPT",
            "signature_ref": "esign-by-a-stranger",
        }
        value = codec.encode(aid.GUARDIAN_ANSWERS.schema or "", answer)
        items.append(
            Publication(aid.GUARDIAN_ANSWERS, offer["student_ref"].encode(), value)
        )
    await _send(run, items)
    open_count = sum(1 for oid in chosen if oid not in settled)
    run.inj.count += len(items)
    run.inj.inputs += len(items)
    run.inj.notes.append(
        f"{len(items)} offers answered by another family's guardian "
        f"({open_count} of them still open)"
    )


def _millis(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


async def _foreign_archive_queries(run: _Run, base: str) -> None:
    """A guardian asks for a growth archive of a child not theirs."""
    bound = _guardianships(run.scenarios)
    statements = run.ctx.counter.records.get(growth.STATEMENTS.name, [])
    students = sorted({str(r["archive_account"]) for r in statements})
    guardians = sorted({g for g, _ in bound})
    if not students or not guardians:
        run.inj.problems.append("no archive or guardian to query")
        return
    key = run.settings.growth_caller_key.encode()
    expires = int(time.time() * 1000) + 600_000
    probes: list[tuple[str, dict[str, str], int]] = []
    for student in run.rng.sample(students, min(run.bounds.probes, len(students))):
        strangers = [g for g in guardians if (g, student) not in bound]
        stranger = run.rng.choice(strangers)
        probes.append(
            (student, {CALLER_HEADER: sign_caller(key, stranger, expires)}, 403)
        )
        probes.append((student, {}, 401))
        forged = sign_caller(b"not-the-gateway-key", stranger, expires)
        probes.append((student, {CALLER_HEADER: forged}, 401))
    own = [(g, s) for g, s in sorted(bound) if s in set(students)][:3]
    probes += [(s, {CALLER_HEADER: sign_caller(key, g, expires)}, 200) for g, s in own]

    refusals_before = run.logged(run.harness_log, "growth_view_refused")
    async with aiohttp.ClientSession() as session:
        for student, headers, want in probes:
            async with session.get(f"{base}/growth/{student}", headers=headers) as resp:
                await resp.read()
                if resp.status != want:
                    run.inj.problems.append(
                        f"archive query answered {resp.status}, not {want}"
                    )
    sys.stderr.flush()
    refused = sum(1 for _, _, want in probes if want != 200)
    recorded = run.logged(run.harness_log, "growth_view_refused") - refusals_before
    if recorded != refused:
        run.inj.problems.append(f"{refused} archive queries refused, {recorded} logged")
    run.inj.count += refused
    run.inj.inputs += len(probes)
    run.inj.notes.append(
        f"{refused} foreign or unsigned archive queries refused and logged, "
        f"{len(own)} own-child queries answered"
    )


def _guardianships(scenarios: list[Scenario]) -> set[tuple[str, str]]:
    """(guardian, student) pairs the portal left bound."""
    codec = default_codec()
    latest: dict[tuple[str, str], tuple[int, bool]] = {}
    for s in scenarios:
        for phase in s.phases:
            for p in phase.publications:
                if p.spec.name != growth.GUARDIANSHIPS.name:
                    continue
                _, r = codec.decode(p.value)
                pair = (str(r["guardian_account"]), str(r["student_account"]))
                at = _millis(r["occurred_at"])
                if pair not in latest or latest[pair][0] <= at:
                    latest[pair] = (at, bool(r["linked"]))
    return {pair for pair, (_, linked) in latest.items() if linked}


async def _privacy(run: _Run) -> None:
    """Refused inputs from the upstream topics that carry ID numbers and
    names, each under its real key: a record cut short, and a record whose
    ID number has a mistyped check character. Their dead letters must not
    carry what the output topics may not."""
    await run.ctx.phases_done.wait()
    await run.settle()
    personal = [s for s in _read_by_flows() if s.personal_data]
    found = [
        p
        for s in run.scenarios
        for phase in s.phases
        for p in phase.publications
        if p.spec in personal and p.key
    ]
    chosen = run.rng.sample(found, min(run.bounds.probes, len(found)))
    items: list[Publication] = []
    for p in chosen:
        items.append(Publication(p.spec, p.key, p.value[: len(p.value) // 2]))
        mistyped = _mistyped(p)
        if mistyped is not None:
            items.append(mistyped)
    await _send(run, items)
    run.inj.count += len(items)
    run.inj.inputs += len(items)
    run.inj.notes.append(f"{len(items)} refused records from topics with personal data")


_ID_FIELDS = ("student_id", "guardian_id", "person_id")


def _mistyped(p: Publication) -> Publication | None:
    """The record with the check character of its first ID number changed."""
    codec = default_codec()
    try:
        schema, record = codec.decode(p.value)
    except CodecError:
        return None
    for name in _ID_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and len(value) == 18:
            last = value[-1]
            wrong = "0" if last == "X" else str((int(last) + 1) % 10)
            record[name] = value[:-1] + wrong
            return Publication(p.spec, p.key, codec.encode(schema, record))
    return None


FAULTS: dict[str, Callable[[_Run], Awaitable[None]]] = {
    "crash": _crash,
    "rebalance": _rebalance,
    "redis": _redis_outage,
    "poison": _poison,
    "redelivery": _redelivery,
    "duplicates": _duplicates,
    "security": _security,
    "privacy": _privacy,
}


async def _read_models(url: str) -> ReadModels:
    redis = async_client(url)
    try:
        return await read_models(redis)
    finally:
        await redis.aclose()


# --- the harness's own Redis and log ------------------------------------------


class _OwnRedis:
    """A Redis server owned by the harness, so an outage hurts nobody else.

    It keeps an append-only file synced on every write, so after a kill -9
    it comes back with every acknowledged write, as a production Redis
    with ``appendfsync always`` would.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = workdir / "redis"
        self._proc: subprocess.Popen[bytes] | None = None
        self._binary = shutil.which("redis-server")

    @property
    def pid(self) -> int | None:
        """The server's process id, when the harness started one."""
        return self._proc.pid if self._proc else None

    def __enter__(self) -> _OwnRedis:
        if self._binary is None:
            # No system Redis: the embedded one serves, but cannot be broken.
            self.url = start_embedded()
            return self
        self._dir.mkdir(parents=True, exist_ok=True)
        self._start()
        return self

    def _start(self) -> None:
        assert self._binary is not None
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self._dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.url) and time.monotonic() < deadline:
            time.sleep(0.05)

    def freeze(self) -> None:
        """Stop answering: the process is frozen, connections hang."""
        if self._proc:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def crash(self) -> None:
        """kill -9 the (frozen) server: connections are refused now."""
        if self._proc:
            self._proc.send_signal(signal.SIGKILL)
            os.kill(self._proc.pid, signal.SIGCONT)
            self._proc.wait()

    def restart(self) -> None:
        """Start again on the same port, from the append-only file."""
        if self._binary is not None:
            self._start()

    def __exit__(self, *_exc: object) -> None:
        if self._proc and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)
            self._proc.terminate()
            self._proc.wait(timeout=10)


class _Tee(io.TextIOBase):
    """Writes to the terminal and to the harness's log file alike."""

    def __init__(self, *streams: TextIO) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


@contextlib.contextmanager
def _stderr_copied_to(path: Path) -> Iterator[None]:
    """Keep every log line this process writes, for the privacy scan."""
    original = sys.stderr
    with path.open("w", encoding="utf-8") as copy:
        sys.stderr = _Tee(original, copy)
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr = original
