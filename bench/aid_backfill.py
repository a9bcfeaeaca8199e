"""Benchmark: a start-of-term registry backfill through the aid flow.

Starts an embedded broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``, which must
then hold no earlier aid records), publishes a backfill to the upstream
topics and replays it through the aid flow on one worker process:

- ``--records`` registry entries (one per student, default 1,000,000);
- for ``--eligible`` of them (default 5%): a guardian link and a guardian
  status that qualify the student for one offer; every other student has a
  link and no status.

Then it reports, all measured in the same run on the same broker:

- the raw ceiling: one aiokafka consumer reading the registry records and
  one producer writing each one back out (consume -> produce pass-through,
  no processing), in records per second;
- the aid flow: every input event (registry entries, links and statuses)
  from the first record intake writes to the moment the worker has
  committed every record of every aid topic, in events per second, and the
  ratio to the pass-through;
- a check that the flow made exactly one offer per eligible student.

The worker runs the aid agents only, with the production code and the
app's settings; ``--tuning`` names Faust settings to change in the worker
(see ``TUNINGS``), one measurement each, so every change is measured
against the same baseline and pass-through.

Usage::

    python bench/aid_backfill.py --records 100000 [--tuning baseline producer]
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
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import passthrough

from avro_schemas import default_codec
from consumers.lag.offsets import OffsetReader
from edustream.aid.decider import StudentDecider, StudentState
from edustream.aid.facts import (
    person_fact_from_dict,
    person_fact_to_dict,
    student_fact_from_dict,
    student_fact_to_dict,
)
from edustream.aid.inputs import AssistanceStatus, FamilyLink, RegistryChange
from edustream.aid.intake import Intake
from edustream.aid.policy import load_default_policy
from edustream.aid.router import PersonState, person_key, route
from edustream.aid.vocabulary import Category, Change, Relation, Stage
from edustream.ids import make_id
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from streams.runtime import Step, as_input, handle
from topics import CATALOGUE, aid


@dataclass(frozen=True)
class Tuning:
    """Faust settings to change in the worker, and whether to patch Faust.

    ``direct_handoff`` replaces, in the worker only, Faust's per-message
    hand-off from its fetcher to the agents (``Consumer.wait_first``: four
    tasks and an ``asyncio.wait`` per record) by a plain ``await`` while the
    flow is not suspended. It is an experiment that prices that hand-off,
    not a setting: a suspension requested in the middle of a hand-off then
    waits for it to finish.

    ``take`` makes each aid agent read its stream in batches
    (``stream.take_events``, up to ``TAKE`` events or ``TAKE_WITHIN_S``) and
    run the flow's own step on each event of the batch; the events are
    acknowledged once the batch is done.
    """

    settings: dict[str, Any] = field(default_factory=dict)
    direct_handoff: bool = False
    take: bool = False


_LINGER: dict[str, Any] = {"producer_linger": 0.005}
_BATCH: dict[str, Any] = {"producer_max_batch_size": 256 * 1024}
_FETCH: dict[str, Any] = {
    "consumer_max_fetch_size": 4 * 1024**2,
    "stream_buffer_maxsize": 32_768,
}

# Each tuning is measured against the same baseline and pass-through.
TUNINGS: dict[str, Tuning] = {
    "baseline": Tuning(),
    # Batch produce requests: linger 5 ms instead of sending each at once.
    "linger": Tuning(_LINGER),
    "linger+batch": Tuning({**_LINGER, **_BATCH}),
    # Bigger fetches and a deeper buffer between the consumer and the agents.
    "linger+batch+fetch": Tuning({**_LINGER, **_BATCH, **_FETCH}),
    "linger+handoff": Tuning(_LINGER, direct_handoff=True),
    "linger+batch+fetch+handoff": Tuning(
        {**_LINGER, **_BATCH, **_FETCH}, direct_handoff=True
    ),
    "take": Tuning(take=True),
    "linger+batch+fetch+take": Tuning({**_LINGER, **_BATCH, **_FETCH}, take=True),
}
TAKE = 1000
TAKE_WITHIN_S = 0.02

# The pass-through writes here; it is the bench's own, not a catalogue topic.
PASSTHROUGH_TOPIC = "bench.aid-passthrough"
FLOW_TOPICS = (
    aid.REGISTRY_CHANGES,
    aid.FAMILY_LINKS,
    aid.ASSISTANCE_STATUS,
    aid.PERSON_FACTS,
    aid.STUDENT_FACTS,
)
DISTRICTS = ("310101", "310104", "310105", "310106", "310107", "310109", "310110")
HOUR = 3_600_000
# An offset poll that takes longer than this is abandoned and made again.
READ_LIMIT_S = 20.0
_STUDENTS_BORN = date(2012, 1, 1).toordinal()
_GUARDIANS_BORN = date(1985, 1, 1).toordinal()


def main() -> None:
    """Run the benchmark and print one JSON document."""
    args = _arguments()
    if args.serve:
        _serve(args.tuning[0])
        return

    report: dict[str, Any] = {"records": args.records, "eligible": args.eligible}
    report["runs"] = [_run(args, tuning) for tuning in args.tuning]
    print(json.dumps(report, indent=2))


def _run(args: argparse.Namespace, tuning: str) -> dict[str, Any]:
    """One measurement on a broker of its own, so no run inherits state."""
    configured = get_settings().kafka_bootstrap_servers
    if configured:
        return asyncio.run(_measure_once(args, configured, tuning))
    with EmbeddedBroker() as broker:
        return asyncio.run(_measure_once(args, broker.bootstrap, tuning))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--eligible", type=float, default=0.05)
    parser.add_argument(
        "--tuning", nargs="+", default=["baseline"], choices=sorted(TUNINGS)
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


async def _measure_once(
    args: argparse.Namespace, bootstrap: str, tuning: str
) -> dict[str, Any]:
    settings = get_settings()
    result = await apply_topics(
        bootstrap, CATALOGUE.values(), settings.partitions, settings.replication_factor
    )
    assert result.ok, result.conflicts
    await _create_passthrough(bootstrap, settings.partitions)

    backfill = Backfill(args.records, args.eligible)
    core = core_rate(backfill)
    produced = await _publish(bootstrap, backfill)
    passthrough = await _passthrough(bootstrap, args.records)
    flow = await _replay(bootstrap, tuning, produced, backfill, args.timeout)
    return {
        "tuning": tuning,
        "settings": TUNINGS[tuning].settings,
        "direct_handoff": TUNINGS[tuning].direct_handoff,
        "input_events": produced,
        "publish_events_per_s": round(produced / backfill.publish_seconds),
        "passthrough_records_per_s": round(passthrough),
        "core_events_per_s": round(core),
        **flow,
        "ratio_to_passthrough": round(flow["events_per_s"] / passthrough, 3),
    }


@dataclass
class Backfill:
    """The synthetic registry refresh: students, links and a few statuses."""

    records: int
    eligible: float
    publish_seconds: float = 0.0

    @property
    def eligible_count(self) -> int:
        """Students who qualify for exactly one offer."""
        return round(self.records * self.eligible)

    def events(self) -> Iterator[tuple[str, bytes, bytes]]:
        """Topic, key and value of every input event, statuses and links first."""
        codec = default_codec()
        rng = random.Random(20260901)
        since = time.time_ns() // 1_000_000 - 24 * HOUR
        eligible = set(rng.sample(range(self.records), self.eligible_count))
        for index in range(self.records):
            student, guardian = _people(index)
            if index in eligible:
                yield _status(codec, guardian, index, since)
            yield _link(codec, guardian, student, index, since)
        for index in range(self.records):
            student, _ = _people(index)
            yield _registry(codec, student, index, since)


def _people(index: int) -> tuple[str, str]:
    """Distinct ID numbers for student ``index`` and their guardian."""
    district = DISTRICTS[index % len(DISTRICTS)]
    day, sequence = divmod(index // len(DISTRICTS), 1000)
    student = make_id(district, date.fromordinal(_STUDENTS_BORN + day), sequence)
    guardian = make_id(district, date.fromordinal(_GUARDIANS_BORN + day), sequence)
    return student, guardian


def _registry(
    codec: Any, student: str, index: int, since: int
) -> tuple[str, bytes, bytes]:
    school = f"SCH{index % 420:05d}"
    record = RegistryChange(
        event_id=str(uuid.UUID(int=index + 1)),
        occurred_at=since,
        change=Change.ENROL,
        student_id=student,
        student_name="张三明",
        school_id=school,
        school_name=f"{school} school",
        district_code=DISTRICTS[index % len(DISTRICTS)],
        stage=Stage.JUNIOR,
        grade=1 + index % 3,
        boarding=True,
    )
    value = codec.encode("edustream.aid.RegistryChange", record.to_dict())
    return aid.REGISTRY_CHANGES.name, ("G" + student).encode(), value


def _link(
    codec: Any, guardian: str, student: str, index: int, since: int
) -> tuple[str, bytes, bytes]:
    record = FamilyLink(
        event_id=str(uuid.UUID(int=(1 << 64) + index)),
        occurred_at=since + 1,
        guardian_id=guardian,
        guardian_account=f"portal-{index:012x}",
        student_id=student,
        relation=Relation.MOTHER,
        linked=True,
    )
    value = codec.encode("edustream.aid.FamilyLink", record.to_dict())
    return aid.FAMILY_LINKS.name, guardian.encode(), value


def _status(
    codec: Any, guardian: str, index: int, since: int
) -> tuple[str, bytes, bytes]:
    record = AssistanceStatus(
        event_id=str(uuid.UUID(int=(2 << 64) + index)),
        occurred_at=since + 2,
        person_id=guardian,
        category=Category.MINIMUM_LIVING,
        granted=True,
        valid_from=date(2026, 1, 1),
        valid_to=None,
        status_id=f"MZ-{index}",
    )
    value = codec.encode("edustream.aid.AssistanceStatus", record.to_dict())
    return aid.ASSISTANCE_STATUS.name, guardian.encode(), value


def core_rate(backfill: Backfill) -> float:
    """Input events per second through the flow's own steps, with no Kafka.

    Every hop decodes and encodes its record and every state is read from
    and written back to JSON, as the agents do, so this is the ceiling the
    flow's own code sets for one process before any Kafka or Faust work.
    """
    codec = default_codec()
    settings = get_settings()
    intake = Intake(settings.pseudonym_key.encode())
    decider = StudentDecider(load_default_policy())
    persons: dict[str, bytes] = {}
    students: dict[str, bytes] = {}
    inputs = list(backfill.events())

    started = time.perf_counter()
    for topic, _key, value in inputs:
        for fact in _intake_hop(codec, intake, topic, value):
            schema, record = codec.decode(fact)
            if schema == "edustream.aid.PersonFact":
                for routed in _route_hop(codec, persons, record):
                    _decide_hop(codec, decider, students, routed)
            else:
                _decide_hop(codec, decider, students, fact)
    return len(inputs) / (time.perf_counter() - started)


def _intake_hop(codec: Any, intake: Intake, topic: str, value: bytes) -> list[bytes]:
    if topic == aid.REGISTRY_CHANGES.name:
        change = RegistryChange.from_dict(
            codec.decode_as("edustream.aid.RegistryChange", value)
        )
        fact = student_fact_to_dict(intake.registry(change))
        return [codec.encode("edustream.aid.StudentFact", fact)]
    if topic == aid.FAMILY_LINKS.name:
        link = FamilyLink.from_dict(codec.decode_as("edustream.aid.FamilyLink", value))
        record = person_fact_to_dict(intake.link(link))
    else:
        status = AssistanceStatus.from_dict(
            codec.decode_as("edustream.aid.AssistanceStatus", value)
        )
        record = person_fact_to_dict(intake.status(status))
    return [codec.encode("edustream.aid.PersonFact", record)]


def _route_hop(
    codec: Any, persons: dict[str, bytes], record: dict[str, Any]
) -> list[bytes]:
    fact = person_fact_from_dict(record)
    key = person_key(fact)
    raw = persons.get(key)
    state = PersonState() if raw is None else PersonState.from_dict(json.loads(raw))
    routed = route(state, fact)
    persons[key] = json.dumps(state.to_dict()).encode()
    return [
        codec.encode("edustream.aid.StudentFact", student_fact_to_dict(f))
        for f in routed
    ]


def _decide_hop(
    codec: Any, decider: StudentDecider, students: dict[str, bytes], value: bytes
) -> None:
    fact = student_fact_from_dict(codec.decode_as("edustream.aid.StudentFact", value))
    raw = students.get(fact.student_ref)
    state = (
        StudentState(student_ref=fact.student_ref)
        if raw is None
        else StudentState.from_dict(json.loads(raw))
    )
    for output in decider.decide(state, fact):
        codec.encode(f"edustream.aid.{type(output).__name__}", output.to_dict())
    students[fact.student_ref] = json.dumps(state.to_dict()).encode()


async def _create_passthrough(bootstrap: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = await admin.list_topics()
        if PASSTHROUGH_TOPIC not in existing:
            await admin.create_topics(
                [NewTopic(PASSTHROUGH_TOPIC, partitions, replication_factor=1)]
            )
    finally:
        await admin.close()


async def _publish(bootstrap: str, backfill: Backfill) -> int:
    """Produce the whole backfill; return how many events it holds."""
    producer = _producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    count = 0
    try:
        pending = []
        for topic, key, value in backfill.events():
            pending.append(await producer.send(topic, value=value, key=key))
            count += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    backfill.publish_seconds = time.perf_counter() - started
    return count


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
    )


async def _passthrough(bootstrap: str, records: int) -> float:
    """Consume the registry records and produce each one again; records/s."""
    return await passthrough(
        bootstrap, aid.REGISTRY_CHANGES.name, PASSTHROUGH_TOPIC, records
    )


async def _replay(
    bootstrap: str, tuning: str, produced: int, backfill: Backfill, limit_s: float
) -> dict[str, Any]:
    """Run the worker over the backfill; time it from first fact to all committed."""
    log = Path(tempfile.mkdtemp(prefix="aid-backfill-")) / "worker.log"
    worker = _spawn_worker(bootstrap, tuning, log)
    try:
        done_at = await _wait_committed(bootstrap, worker, limit_s)
        first = await _first_timestamp(bootstrap)
        offers = await _count(bootstrap, aid.OFFERS)
    finally:
        _stop(worker)
    seconds = done_at - first
    return {
        "seconds": round(seconds, 1),
        "events_per_s": round(produced / seconds),
        "offers": offers,
        "offers_expected": backfill.eligible_count,
        "worker_log": str(log),
    }


def _spawn_worker(bootstrap: str, tuning: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EDUSTREAM_LOG_FORMAT": "json",
        "EDUSTREAM_APP_ID": f"aid-backfill-{uuid.uuid4().hex[:8]}",
    }
    out = log.open("wb")
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


async def _wait_committed(
    bootstrap: str, worker: subprocess.Popen[bytes], limit_s: float
) -> float:
    """Return the wall time at which the worker had committed every record."""
    group = None
    deadline = time.monotonic() + limit_s
    async with OffsetReader(bootstrap) as reader:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}")
            try:
                snapshot = await asyncio.wait_for(reader.read(), READ_LIMIT_S)
            except TimeoutError:
                print("offset poll timed out; polling again", file=sys.stderr)
                continue
            now = time.time()
            group = group or next(
                (g for g in snapshot.committed if g.startswith("aid-backfill-")), None
            )
            if group and _caught_up(snapshot.log_ends, snapshot.committed[group]):
                return now
            _progress(snapshot.log_ends, snapshot.committed.get(group or "", {}))
            await asyncio.sleep(0.5)
    raise TimeoutError("the worker did not catch up in time")


def _progress(
    log_ends: Mapping[tuple[str, int], int], committed: Mapping[tuple[str, int], int]
) -> None:
    """Print how far the worker has committed each aid topic, to stderr."""
    done = {
        spec.name: (
            sum(o for (t, _), o in committed.items() if t == spec.name),
            sum(o for (t, _), o in log_ends.items() if t == spec.name),
        )
        for spec in FLOW_TOPICS
    }
    print(json.dumps(done), file=sys.stderr, flush=True)


def _caught_up(
    log_ends: Mapping[tuple[str, int], int], committed: Mapping[tuple[str, int], int]
) -> bool:
    for spec in FLOW_TOPICS:
        for (topic, partition), end in log_ends.items():
            if topic == spec.name and end > committed.get((topic, partition), 0):
                return False
    return True


async def _first_timestamp(bootstrap: str) -> float:
    """When intake wrote its first fact: the start of processing, in seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, aid.PERSON_FACTS, aid.STUDENT_FACTS)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        firsts: dict[TopicPartition, int] = {}
        while len(firsts) < len(partitions):
            batches = await consumer.getmany(timeout_ms=2000, max_records=1000)
            if not batches:
                break
            for tp, messages in batches.items():
                firsts.setdefault(tp, messages[0].timestamp)
        return float(min(firsts.values())) / 1000
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, *specs: Any) -> list[TopicPartition]:
    """Every partition of ``specs``, read before any is assigned."""
    await consumer.topics()
    return [
        TopicPartition(spec.name, partition)
        for spec in specs
        for partition in sorted(consumer.partitions_for_topic(spec.name) or ())
    ]


async def _count(bootstrap: str, spec: Any) -> int:
    """Distinct keys-with-values on ``topic``: here, one offer per student."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, spec)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        keys: set[bytes] = set()
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if not batches:
                break
            for messages in batches.values():
                keys.update(m.key for m in messages if m.key is not None)
        return len(keys)
    finally:
        await consumer.stop()


def _serve(tuning: str) -> None:
    """Run the aid agents in this process, with the tuning applied."""
    from edustream import logs  # noqa: PLC0415 - the worker child only

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    from faust import Worker  # noqa: PLC0415

    from streams import aid as aid_flow  # noqa: PLC0415 - registers agents
    from streams.app import app  # noqa: PLC0415

    chosen = TUNINGS[tuning]
    for name, value in chosen.settings.items():
        setattr(app.conf, name, value)
    if chosen.direct_handoff:
        _patch_handoff()
    if chosen.take:
        for agent, step in (
            (aid_flow.intake_agent, aid_flow.intake_step),
            (aid_flow.router_agent, aid_flow.route_step),
            (aid_flow.decider_agent, aid_flow.decide_step),
        ):
            agent.fun = _taking(aid_flow.FLOW, step)
    Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    ).execute_from_commandline()


def _taking(flow: str, step: Step) -> Callable[[Any], Awaitable[None]]:
    """An agent body that reads batches and runs ``step`` on each event."""

    async def body(stream: Any) -> None:
        async for events in stream.take_events(TAKE, within=TAKE_WITHIN_S):
            for event in events:
                await handle(flow, as_input(event), step)

    return body


def _patch_handoff() -> None:
    """Hand each fetched record to the agents with a plain ``await``."""
    from faust.transport.consumer import Consumer  # noqa: PLC0415
    from mode.services import WaitResults  # noqa: PLC0415

    original = Consumer.wait_first

    async def wait_first(self: Any, *coros: Any, **options: Any) -> Any:
        handing_off = len(coros) == 2 and asyncio.iscoroutine(coros[0])
        if not handing_off or self.suspend_flow.is_set():
            return await original(self, *coros, **options)
        coros[1].close()
        result = await coros[0]
        return WaitResults([coros[0]], [result], False)

    Consumer.wait_first = wait_first  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
